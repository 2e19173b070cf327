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
// Authorization headers, a non-string params field) stops the search with
// ErrTokenMalformed: falling through to the next source would let a client
// choose which of two credentials is checked.
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

func (c *carriers) read(src source) (string, bool, error) {
	h := c.r.Header
	switch src {
	case srcBearer:
		vals := h.Values("Authorization")
		if len(vals) == 0 {
			return "", false, nil
		}
		if len(vals) > 1 {
			return "", false, errAmbiguous
		}
		tok, ok := bearerToken(vals[0])
		if !ok {
			return "", false, nil // another scheme: not ours
		}
		if tok == "" {
			return "", false, errors.New("empty bearer token")
		}
		return tok, true, nil
	case srcAPIKeyHeader:
		vals := h.Values(c.cfg.apiKeyHeader)
		if len(vals) > 1 {
			return "", false, errAmbiguous
		}
		if len(vals) == 0 || strings.TrimSpace(vals[0]) == "" {
			return "", false, nil
		}
		return strings.TrimSpace(vals[0]), true, nil
	case srcCookie:
		cookies := c.r.CookiesNamed(c.cfg.cookie)
		if len(cookies) > 1 {
			// Cookie tossing: a sibling subdomain can plant a second cookie
			// of the same name that the browser sends first.
			return "", false, errAmbiguous
		}
		if len(cookies) == 0 || cookies[0].Value == "" {
			return "", false, nil
		}
		return cookies[0].Value, true, nil
	case srcQuery:
		return queryCredential(c.r.URL.RawQuery, c.cfg.query)
	case srcConnParams:
		raw, ok := c.connParams()[c.cfg.field]
		if !ok || string(raw) == "null" {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, errors.New("connection-params credential field is not a string")
		}
		if s == "" {
			return "", false, nil
		}
		return s, true, nil
	}
	return "", false, nil
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// value; ok is false for other schemes.
func bearerToken(v string) (string, bool) {
	scheme, tok, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
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
	return val, val != "", nil
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
// may replace) every credential present in a configured source, used or
// not: the gateway owns these carriers. A conn-params field is removed by
// re-encoding the params, in the carrier and dialect they came in; params
// left empty stay "{}".
func (c *carriers) strip(out *http.Request) error {
	h := c.r.Header
	cloned := false
	header := func() http.Header {
		if !cloned {
			out.Header, cloned = h.Clone(), true
		}
		return out.Header
	}
	for _, src := range c.cfg.order {
		switch src {
		case srcBearer:
			if _, ok := bearerToken(h.Get("Authorization")); ok || len(h.Values("Authorization")) > 1 {
				header().Del("Authorization")
			}
		case srcAPIKeyHeader:
			if len(h.Values(c.cfg.apiKeyHeader)) > 0 {
				header().Del(c.cfg.apiKeyHeader)
			}
		case srcCookie:
			if len(c.r.CookiesNamed(c.cfg.cookie)) > 0 {
				removeCookie(header(), c.cfg.cookie)
			}
		case srcQuery:
			if q := rivet.RemoveQueryParam(c.r.URL.RawQuery, c.cfg.query); q != c.r.URL.RawQuery {
				u := *c.r.URL
				u.RawQuery = q
				out.URL = &u
				out.RequestURI = u.RequestURI()
			}
		case srcConnParams:
			params := c.connParams()
			if _, ok := params[c.cfg.field]; !ok {
				continue
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
			if err := rivet.SetConnParams(header(), c.ws, enc, c.dialect, 0); err != nil {
				return err
			}
		}
	}
	return nil
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
