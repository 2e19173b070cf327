package rivet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// WebSocket subprotocol entries RivetKit clients offer, in the order they
// offer them: "rivet", "rivet_encoding.<enc>", then optional entries.
const (
	ProtocolRivet            = "rivet"
	ProtocolEncodingPrefix   = "rivet_encoding."
	ProtocolConnParamsPrefix = "rivet_conn_params."
	ProtocolTokenPrefix      = "rivet_token."
	ProtocolTargetPrefix     = "rivet_target."
	ProtocolActorPrefix      = "rivet_actor."
)

// MaxProtocolParams is the largest encoded rivet_conn_params. entry the
// gateway sends: the value after the prefix, in bytes.
const MaxProtocolParams = 4096

// ErrParamsTooLarge is returned when params do not fit their carrier.
var ErrParamsTooLarge = errors.New("connection params exceed the carrier's size limit")

// Dialect selects where connection params are written.
type Dialect uint8

const (
	// DialectCurrent is RivetKit 2.3.x: header x-rivet-conn-params on HTTP,
	// subprotocol rivet_conn_params.<form-encoded JSON> on WebSocket.
	DialectCurrent Dialect = iota
	// DialectLegacy is RivetKit before rivetkit#1293: header
	// X-RivetKit-Conn-Params on HTTP requests and WebSocket upgrades.
	DialectLegacy
)

// String returns "current" or "legacy".
func (d Dialect) String() string {
	if d == DialectLegacy {
		return "legacy"
	}
	return "current"
}

// ParseDialect reads "current" (or "") and "legacy".
func ParseDialect(s string) (Dialect, error) {
	switch s {
	case "", "current":
		return DialectCurrent, nil
	case "legacy":
		return DialectLegacy, nil
	}
	return DialectCurrent, fmt.Errorf("unknown dialect %q (want current or legacy)", s)
}

// Subprotocols returns the Sec-WebSocket-Protocol entries of h, in order,
// across repeated headers.
func Subprotocols(h http.Header) []string {
	vals := h.Values(HeaderWebSocketProtocol)
	if len(vals) == 0 {
		return nil
	}
	out := make([]string, 0, 4)
	for _, v := range vals {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// SetSubprotocols replaces h's Sec-WebSocket-Protocol with list (removing
// the header when list is empty).
func SetSubprotocols(h http.Header, list []string) {
	if len(list) == 0 {
		h.Del(HeaderWebSocketProtocol)
		return
	}
	h.Set(HeaderWebSocketProtocol, strings.Join(list, ", "))
}

// ConnParams returns the raw JSON connection params a client sent, from the
// carrier RivetKit reads for this kind of request (the subprotocol entry on
// WebSocket upgrades, the header otherwise), falling back to the legacy
// header. found is false when no carrier is present.
func ConnParams(r *http.Request, websocket bool) (raw []byte, found bool, err error) {
	if websocket {
		for _, p := range Subprotocols(r.Header) {
			if enc, ok := strings.CutPrefix(p, ProtocolConnParamsPrefix); ok {
				s, err := url.QueryUnescape(enc) // the engine form-decodes
				if err != nil {
					return nil, true, fmt.Errorf("rivet_conn_params subprotocol: %w", err)
				}
				return []byte(s), true, nil
			}
		}
	} else if v := r.Header.Get(HeaderConnParams); v != "" {
		return []byte(v), true, nil
	}
	if v := r.Header.Get(HeaderLegacyConnParams); v != "" {
		return []byte(v), true, nil
	}
	return nil, false, nil
}

// ErrInvalidConnParams is wrapped by every CheckConnParams failure.
var ErrInvalidConnParams = errors.New("invalid connection params")

// CheckConnParams reports a conn-params carrier of the current dialect the
// engine would misread or stall on: a request must carry at most one
// (x-rivet-conn-params header on HTTP, rivet_conn_params. subprotocol entry on
// WebSocket upgrades; the engine reads the LAST header but the FIRST entry,
// while ConnParams reads the first of both), and it must decode to JSON (the
// engine answers bad header JSON with 400 core.internal_error, but leaves a
// WebSocket with a bad entry open for ~20 s before closing it with the
// non-retryable guard.websocket_closed_before_open). Callers answer the error
// with ErrInvalidRequest before anything reads or forwards the params.
func CheckConnParams(r *http.Request, websocket bool) error {
	var vals []string
	if websocket {
		for _, p := range Subprotocols(r.Header) {
			if enc, ok := strings.CutPrefix(p, ProtocolConnParamsPrefix); ok {
				vals = append(vals, enc)
			}
		}
	} else {
		for _, v := range r.Header.Values(HeaderConnParams) {
			if v != "" { // an empty header is no params, as ConnParams reads it
				vals = append(vals, v)
			}
		}
	}
	switch {
	case len(vals) == 0:
		return nil
	case len(vals) > 1:
		return fmt.Errorf("%w: %d carriers, at most one allowed", ErrInvalidConnParams, len(vals))
	}
	v := vals[0]
	if websocket {
		dec, err := url.QueryUnescape(v)
		if err != nil {
			return fmt.Errorf("%w: bad escape in the rivet_conn_params subprotocol", ErrInvalidConnParams)
		}
		v = dec
	}
	if !json.Valid([]byte(v)) {
		return fmt.Errorf("%w: not JSON", ErrInvalidConnParams)
	}
	return nil
}

// StripConnParams removes every conn-params carrier, of both dialects, from
// h, keeping the other subprotocol entries in order.
func StripConnParams(h http.Header) {
	h.Del(HeaderConnParams)
	h.Del(HeaderLegacyConnParams)
	StripSubprotocols(h, ProtocolConnParamsPrefix)
}

// StripSubprotocols removes the entries starting with prefix.
func StripSubprotocols(h http.Header, prefix string) {
	list := Subprotocols(h)
	kept := list[:0]
	for _, p := range list {
		if !strings.HasPrefix(p, prefix) {
			kept = append(kept, p)
		}
	}
	if len(kept) != len(list) {
		SetSubprotocols(h, kept)
	}
}

// SetConnParams replaces every conn-params carrier in h with params, an
// ASCII-only JSON document (see ASCIIJSON), written where dialect says for a
// WebSocket upgrade or a plain HTTP request. maxHeader bounds the header
// carrier (0: no bound); the subprotocol carrier is bounded by
// MaxProtocolParams. Nothing is changed when params do not fit.
func SetConnParams(h http.Header, websocket bool, params []byte, d Dialect, maxHeader int) error {
	if d == DialectCurrent && websocket {
		enc := url.QueryEscape(string(params)) // not PathEscape: the engine reads '+' as space
		if len(enc) > MaxProtocolParams {
			return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrParamsTooLarge, len(enc), MaxProtocolParams)
		}
		StripConnParams(h)
		list := Subprotocols(h)
		SetSubprotocols(h, append(list, ProtocolConnParamsPrefix+enc))
		return nil
	}
	if maxHeader > 0 && len(params) > maxHeader {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrParamsTooLarge, len(params), maxHeader)
	}
	StripConnParams(h)
	name := HeaderConnParams
	if d == DialectLegacy {
		name = HeaderLegacyConnParams
	}
	h.Set(name, string(params))
	return nil
}

// MarshalASCII encodes v as JSON with every non-ASCII character escaped as
// \uXXXX: the engine silently drops raw UTF-8 bytes in a header.
func MarshalASCII(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	return ASCIIJSON(out), nil
}

// ASCIIJSON returns doc, a valid JSON document, with every non-ASCII
// character escaped as \uXXXX (a surrogate pair above U+FFFF). Outside
// strings JSON is ASCII already, so every such byte belongs to a string.
// Invalid UTF-8 becomes U+FFFD, as encoding/json does.
func ASCIIJSON(doc []byte) []byte {
	i := 0
	for i < len(doc) && doc[i] < utf8.RuneSelf {
		i++
	}
	if i == len(doc) {
		return doc
	}
	const hex = "0123456789abcdef"
	out := make([]byte, i, len(doc)+16)
	copy(out, doc[:i])
	esc := func(r rune) {
		out = append(out, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
	}
	for i < len(doc) {
		c := doc[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(doc[i:])
		i += size
		if r > 0xFFFF {
			r -= 0x10000
			esc(0xD800 + (r>>10)&0x3FF)
			esc(0xDC00 + r&0x3FF)
			continue
		}
		esc(r)
	}
	return out
}
