package authn

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// maxCredentialBytes bounds a credential before any parsing: JWTs from
// real IdPs are a few KiB.
const maxCredentialBytes = 16 << 10

// source is where a credential travels.
type source uint8

const (
	srcBearer source = iota + 1
	srcAPIKeyHeader
	srcConnParams
	srcCookie
	srcQuery
)

var sourceNames = map[string]source{
	SourceBearer:       srcBearer,
	SourceAPIKeyHeader: srcAPIKeyHeader,
	SourceConnParams:   srcConnParams,
	SourceCookie:       srcCookie,
	SourceQuery:        srcQuery,
}

func parseSource(s string) (source, bool) {
	src, ok := sourceNames[s]
	return src, ok
}

func (s source) String() string {
	for name, v := range sourceNames {
		if v == s {
			return name
		}
	}
	return "unknown"
}

// credential is a credential found in a request. Its value is a secret:
// never log it, never put it in an error.
type credential struct {
	src   source
	value string
}

// carriers reads the configured sources of one request. It parses the
// connection params at most once, for both reading and stripping.
type carriers struct {
	cfg *sourceConfig
	r   *http.Request
	ws  bool

	paramsRead bool
	params     map[string]json.RawMessage // nil: no params object
	dialect    rivet.Dialect
}

// sourceConfig is the credential-source part of Config, resolved.
type sourceConfig struct {
	order        []source
	apiKeyHeader string
	field        string
	cookie       string
	query        string
}

var errAmbiguous = errors.New("credential source is ambiguous")

// find returns the credential of the first source, in configured order,
// that carries one. A source carrying something unusable (two
// Authorization headers, another scheme, a non-string params field) stops
// the search with ErrTokenMalformed: falling through to the next source
// would let a client choose which of two credentials is checked.
func (c *carriers) find() (credential, bool, error) {
	for _, src := range c.cfg.order {
		v, ok, err := c.read(src)
		if err != nil {
			return credential{src: src}, true, wrap(ErrTokenMalformed, err)
		}
		if ok {
			if len(v) > maxCredentialBytes {
				return credential{src: src}, true, wrap(ErrTokenMalformed, errors.New("credential too long"))
			}
			return credential{src: src, value: v}, true, nil
		}
	}
	return credential{}, false, nil
}

// read returns the credential src carries. A carrier that is present but
// not in the one form the gateway reads (another scheme, odd whitespace, a
// quoted or repeated cookie, an empty value) is an error: ignoring it would
// let it through to the actor, where another reader may accept it (the
// inspector takes "Bearer<TAB>token" and a bare token).
func (c *carriers) read(src source) (string, bool, error) {
	h := c.r.Header
	var v string
	switch src {
	case srcBearer:
		vals := h.Values("Authorization")
		if len(vals) == 0 {
			return "", false, nil
		}
		if len(vals) > 1 {
			return "", false, errAmbiguous
		}
		tok, ok := strings.CutPrefix(vals[0], "Bearer ")
		if !ok || !token68(tok) {
			return "", false, errors.New(`Authorization is not "Bearer <token>"`)
		}
		return tok, true, nil
	case srcAPIKeyHeader:
		vals := h.Values(c.cfg.apiKeyHeader)
		if len(vals) == 0 {
			return "", false, nil
		}
		if len(vals) > 1 {
			return "", false, errAmbiguous
		}
		v = vals[0]
	case srcCookie:
		val, found, err := cookieCredential(h.Values("Cookie"), c.cfg.cookie)
		if err != nil || !found {
			return "", false, err
		}
		v = val
	case srcQuery:
		val, found, err := queryCredential(c.r.URL.RawQuery, c.cfg.query)
		if err != nil || !found {
			return "", false, err
		}
		v = val
	case srcConnParams:
		raw, ok := c.connParams()[c.cfg.field]
		if !ok || string(raw) == "null" {
			return "", false, nil
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", false, errors.New("connection-params credential field is not a string")
		}
	default:
		return "", false, nil
	}
	if !visibleASCII(v) {
		return "", false, errors.New("credential is empty or holds whitespace or non-ASCII bytes")
	}
	return v, true, nil
}

// token68 reports whether s is an RFC 7235 token68: what a bearer token is.
func token68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// visibleASCII reports whether s is non-empty and only visible ASCII.
func visibleASCII(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// cookieCredential reads cookie name from the Cookie header lines. A pair
// named name must appear once, as name=value with a plain (unquoted)
// RFC 6265 value: a second one may be planted by a sibling subdomain
// (cookie tossing), and other spellings are read differently by others.
func cookieCredential(lines []string, name string) (string, bool, error) {
	var val string
	n := 0
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			k, v, hasEq := strings.Cut(strings.TrimLeft(part, " \t"), "=")
			if strings.TrimSpace(k) != name {
				continue
			}
			if n++; n > 1 {
				return "", false, errAmbiguous
			}
			v = strings.TrimRight(v, " \t")
			if !hasEq || k != name || !cookieValue(v) {
				return "", false, errors.New("auth cookie is not name=value")
			}
			val = v
		}
	}
	return val, n > 0, nil
}

// cookieValue reports whether v is a non-empty run of RFC 6265
// cookie-octets (no quotes).
func cookieValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// queryCredential reads name from a raw query, matching the raw key exactly
// as rivet.RemoveQueryParam does, so what is read is what is stripped.
func queryCredential(raw, name string) (string, bool, error) {
	var val string
	n := 0
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			continue
		}
		if n++; n > 1 {
			return "", false, errAmbiguous
		}
		u, err := url.QueryUnescape(v)
		if err != nil {
			return "", false, errors.New("bad escape in query credential")
		}
		val = u
	}
	return val, n > 0, nil
}

// connParams returns the request's connection params as a JSON object, or
// nil when there are none or they are not an object (the engine rejects
// those itself; they carry no credential the gateway can read).
func (c *carriers) connParams() map[string]json.RawMessage {
	if c.paramsRead {
		return c.params
	}
	c.paramsRead = true
	raw, found, err := rivet.ConnParams(c.r, c.ws)
	if err != nil || !found {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	c.params, c.dialect = obj, paramsDialect(c.r.Header, c.ws)
	return obj
}

// paramsDialect tells which carrier rivet.ConnParams read: the current one
// (the subprotocol on WebSocket, x-rivet-conn-params on HTTP) or the
// legacy header it falls back to.
func paramsDialect(h http.Header, ws bool) rivet.Dialect {
	if ws {
		for _, p := range rivet.Subprotocols(h) {
			if strings.HasPrefix(p, rivet.ProtocolConnParamsPrefix) {
				return rivet.DialectCurrent
			}
		}
	} else if h.Get(rivet.HeaderConnParams) != "" {
		return rivet.DialectCurrent
	}
	return rivet.DialectLegacy
}

// strip removes from out (a shallow copy of c.r whose Header and URL it
// may replace) every credential carrier the gateway knows, whichever were
// configured and whichever was used: Authorization (any scheme), the API key
// header, the auth cookie, the query parameter, and the conn-params field
// (removed by re-encoding the params, in the carrier and dialect they came
// in; params left empty stay "{}").
func (c *carriers) strip(out *http.Request) error {
	h := c.r.Header
	cloned := false
	header := func() http.Header {
		if !cloned {
			out.Header, cloned = h.Clone(), true
		}
		return out.Header
	}
	if len(h.Values("Authorization")) > 0 {
		header().Del("Authorization")
	}
	if len(h.Values(c.cfg.apiKeyHeader)) > 0 {
		header().Del(c.cfg.apiKeyHeader)
	}
	if hasCookie(h.Values("Cookie"), c.cfg.cookie) {
		removeCookie(header(), c.cfg.cookie)
	}
	if q := rivet.RemoveQueryParam(c.r.URL.RawQuery, c.cfg.query); q != c.r.URL.RawQuery {
		u := *c.r.URL
		u.RawQuery = q
		out.URL = &u
		out.RequestURI = u.RequestURI()
	}
	params := c.connParams()
	if _, ok := params[c.cfg.field]; !ok {
		return nil
	}
	rest := make(map[string]json.RawMessage, len(params)-1)
	for k, v := range params {
		if k != c.cfg.field {
			rest[k] = v
		}
	}
	enc, err := rivet.MarshalASCII(rest)
	if err != nil {
		return err
	}
	return rivet.SetConnParams(header(), c.ws, enc, c.dialect, 0)
}

// hasCookie reports whether any Cookie line has a pair named name, in any
// spelling removeCookie removes.
func hasCookie(lines []string, name string) bool {
	for _, line := range lines {
		for part := range strings.SplitSeq(line, ";") {
			if k, _, _ := strings.Cut(part, "="); strings.TrimSpace(k) == name {
				return true
			}
		}
	}
	return false
}

// removeCookie drops every name=value pair called name from h's Cookie
// headers, keeping the other cookies byte for byte.
func removeCookie(h http.Header, name string) {
	vals := h.Values("Cookie")
	kept := make([]string, 0, len(vals))
	for _, line := range vals {
		var b strings.Builder
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			if k, _, _ := strings.Cut(part, "="); strings.TrimSpace(k) == name || part == "" {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			}
			b.WriteString(part)
		}
		if b.Len() > 0 {
			kept = append(kept, b.String())
		}
	}
	h.Del("Cookie")
	for _, v := range kept {
		h.Add("Cookie", v)
	}
}
