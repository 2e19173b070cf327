package cors

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// origin is a parsed serialized origin (RFC 6454 §6.2): lower-case scheme
// and host, and the port only when it is not the scheme's default.
type origin struct {
	scheme, host, port string
}

func (o origin) String() string {
	if o.port == "" {
		return o.scheme + "://" + o.host
	}
	return o.scheme + "://" + o.host + ":" + o.port
}

// hostPort is host[:port] as a Host header carries it.
func (o origin) hostPort() string {
	if o.port == "" {
		return o.host
	}
	return o.host + ":" + o.port
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// parseOrigin parses an Origin header value, scheme "://" host [":" port].
// Anything else (a path, user info, "null", a wildcard, non-ASCII) is not an
// origin the policy can allow, and ok is false.
func parseOrigin(s string) (o origin, ok bool) {
	scheme, rest, found := strings.Cut(s, "://")
	if !found || !validScheme(scheme) || rest == "" {
		return origin{}, false
	}
	host, port := rest, ""
	if rest[0] == '[' { // IPv6 literal
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return origin{}, false
		}
		addr, err := netip.ParseAddr(rest[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return origin{}, false
		}
		host = rest[:end+1]
		if after := rest[end+1:]; after != "" {
			p, hasPort := strings.CutPrefix(after, ":")
			if !hasPort {
				return origin{}, false
			}
			port = p
			if port == "" {
				return origin{}, false
			}
		}
	} else {
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			host, port = rest[:i], rest[i+1:]
			if port == "" {
				return origin{}, false
			}
		}
		if !validHost(host) {
			return origin{}, false
		}
	}
	if port != "" && !validPort(port) {
		return origin{}, false
	}
	o = origin{scheme: strings.ToLower(scheme), host: strings.ToLower(host), port: port}
	if o.port == defaultPort(o.scheme) {
		o.port = ""
	}
	return o, true
}

// validScheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1).
func validScheme(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validHost accepts ASCII DNS names and IPv4 addresses: non-empty labels of
// letters, digits, '-' and '_'. Browsers send IDNs in punycode.
func validHost(s string) bool {
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return len(s) <= 253
}

// validPort accepts canonical decimal ports 1-65535 (no sign, no leading
// zero), as browsers serialize them.
func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == s
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// pattern is an allowed_origins entry "scheme://*.suffix[:port]"; "*" is
// exactly one DNS label.
type pattern struct {
	scheme string
	suffix string // ".example.com": what follows the wildcard label
	port   string // "" for the scheme's default port
}

func (p pattern) match(o origin) bool {
	if o.scheme != p.scheme || o.port != p.port {
		return false
	}
	label, ok := strings.CutSuffix(o.host, p.suffix)
	return ok && label != "" && !strings.Contains(label, ".")
}

func (p pattern) String() string {
	o := origin{scheme: p.scheme, host: "*" + p.suffix, port: p.port}
	return o.String()
}

// entry is one parsed allowed_origins entry: an exact origin (normalized) or
// a pattern.
type entry struct {
	exact   string
	pattern *pattern
}

// parseEntry parses an allowed_origins entry other than "*".
func parseEntry(s string) (entry, error) {
	if s == "null" {
		return entry{}, fmt.Errorf(`"null" cannot be allowed: any site can send it (sandboxed iframes, file: pages)`)
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] <= ' ' {
			return entry{}, fmt.Errorf("%q: only printable ASCII is allowed (write an IDN in its punycode xn-- form)", s)
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return entry{}, fmt.Errorf(`%q has no scheme: write e.g. "https://app.example.com"`, s)
	}
	if strings.ContainsAny(rest, "/?#") {
		return entry{}, fmt.Errorf("%q has a path: an origin is scheme://host[:port], without even a trailing slash", s)
	}
	if strings.Contains(rest, "@") {
		return entry{}, fmt.Errorf("%q has user info: an origin is scheme://host[:port]", s)
	}
	wild := strings.HasPrefix(rest, "*.")
	if wild {
		rest = "x" + rest[1:] // validate the rest as a host
	}
	if strings.Contains(scheme, "*") || strings.Contains(rest, "*") {
		return entry{}, fmt.Errorf(`%q: "*" is only allowed as the whole leftmost label of the host ("https://*.example.com")`, s)
	}
	o, ok := parseOrigin(scheme + "://" + rest)
	if !ok {
		return entry{}, fmt.Errorf("%q is not a valid origin: want scheme://host[:port]", s)
	}
	if !wild {
		return entry{exact: o.String()}, nil
	}
	suffix := o.host[len("x."):]
	last := suffix[strings.LastIndexByte(suffix, '.')+1:]
	if isDigit(last[0]) {
		return entry{}, fmt.Errorf("%q: a wildcard needs a domain name, not an IP address", s)
	}
	if !strings.Contains(suffix, ".") && suffix != "localhost" {
		return entry{}, fmt.Errorf("%q: a wildcard over a top-level domain is too broad", s)
	}
	return entry{pattern: &pattern{scheme: o.scheme, suffix: "." + suffix, port: o.port}}, nil
}
