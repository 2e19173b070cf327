package rivet

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// A request target has several readers: Go's net/http, the engine's guard
// (hyper + its own /gateway/ parser, on the raw bytes), the engine's API
// router (axum, percent-decoding path parameters), the actor's router
// (rivetkit-core, which re-normalizes /request/ paths the WHATWG way) and the
// user's handler. SplitTarget accepts only targets on which they all agree,
// so the gateway can classify a request by the bytes it forwards.

// SplitTarget splits a request target (the raw request-target of the request
// line, r.RequestURI) into its raw path and raw query, refusing every target
// that another reader could read differently:
//
//   - anything but origin-form ("/path?query"): the engine ignores the host
//     of an absolute-form target, Go does not;
//   - "#" (the engine cuts the target there, Go does not), "\" (the actor
//     reads it as "/"), and bytes outside visible ASCII or that the WHATWG
//     URL parser would re-encode (space, "\"", "<", ">", "^", "`", "{", "|",
//     "}");
//   - in the path: empty segments ("//": the engine then routes by headers or
//     subprotocols instead; a trailing "/" is kept by all and allowed), dot segments ("." and "..", also as %2e: the
//     engine keeps them, the actor resolves them), and escapes of "/", "\",
//     ".", "%" or control characters, or malformed escapes.
//
// The query is only checked for its bytes here; ParseRequest reads it per
// route.
func SplitTarget(target string) (path, query string, err error) {
	if !strings.HasPrefix(target, "/") {
		return "", "", targetError("the request target must be an absolute path")
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; !targetByte(c) {
			if c == '#' {
				return "", "", targetError(`"#" in the request target`)
			}
			return "", "", targetError(fmt.Sprintf("byte %q in the request target", c))
		}
	}
	path, query, _ = strings.Cut(target, "?")
	if err := checkPath(path); err != nil {
		return "", "", err
	}
	if err := checkEscapes(query, false); err != nil {
		return "", "", err
	}
	return path, query, nil
}

// targetByte reports whether c may appear raw in a request target.
func targetByte(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '#', '\\', '"', '<', '>', '^', '`', '{', '|', '}':
		return false
	}
	return true
}

func checkPath(path string) error {
	if path == "/" {
		return nil
	}
	segs := strings.Split(path[1:], "/")
	for i, seg := range segs {
		switch seg {
		case "":
			if i == len(segs)-1 {
				continue // a trailing slash: every reader keeps it
			}
			return targetError("empty path segment")
		case ".", "..":
			return targetError("dot segment in the path")
		}
		if strings.Contains(seg, "%") {
			if err := checkEscapes(seg, true); err != nil {
				return err
			}
			if d := strings.ToLower(seg); d == "%2e" || d == "%2e%2e" || d == ".%2e" || d == "%2e." {
				return targetError("dot segment in the path")
			}
		}
	}
	return nil
}

// checkEscapes refuses malformed percent escapes, and in a path escapes of
// "/", "\", "." and "%" (which readers decode at different stages) and of
// control characters.
func checkEscapes(s string, inPath bool) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return targetError("malformed percent escape")
		}
		if inPath {
			b := unhex(s[i+1])<<4 | unhex(s[i+2])
			switch {
			case b == '/', b == '\\', b == '.', b == '%':
				return targetError(fmt.Sprintf("escaped %q in the path", b))
			case b < 0x20 || b == 0x7f:
				return targetError("escaped control character in the path")
			}
		}
		i += 2
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// percentDecode decodes %XX escapes (plus is kept: path decoding); form
// also turns "+" into a space first (form decoding, as the engine reads
// rvt-* values and serde reads API queries). The result must be valid UTF-8:
// the engine refuses or replaces invalid UTF-8 where Go would keep it.
func percentDecode(s string, form bool) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, utf8.ValidString(s)
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", false
			}
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		case c == '+' && form:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

// ErrInvalidTarget is the rejection of a request target the gateway cannot
// read with certainty the way the engine and the actor will.
var ErrInvalidTarget = &Error{Status: 400, Group: "gateway", Code: "invalid_path", Message: "The request path is ambiguous or malformed."}

func targetError(reason string) *Error { return ErrInvalidTarget.With("reason", reason) }
