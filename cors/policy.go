package cors

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// CORS header names.
const (
	headerOrigin           = "Origin"
	headerVary             = "Vary"
	headerAllowOrigin      = "Access-Control-Allow-Origin"
	headerAllowCredentials = "Access-Control-Allow-Credentials"
	headerAllowMethods     = "Access-Control-Allow-Methods"
	headerAllowHeaders     = "Access-Control-Allow-Headers"
	headerExposeHeaders    = "Access-Control-Expose-Headers"
	headerMaxAge           = "Access-Control-Max-Age"
	headerRequestMethod    = "Access-Control-Request-Method"
)

// Policy is a validated Config, ready to answer requests. It is safe for
// concurrent use.
type Policy struct {
	anyOrigin   bool
	exact       map[string]bool // normalized origins
	patterns    []pattern
	credentials bool

	// Header values, built once.
	allowMethods  string
	allowHeaders  string
	exposeHeaders string
	maxAge        string // "" omits the header
}

// New validates cfg (errors name paths under "cors.", as Validate("cors")
// does) and builds its Policy. An empty AllowedMethods means the default
// methods; the allowed and exposed headers are the defaults plus cfg's (see
// Config).
func New(cfg Config) (*Policy, error) {
	if err := cfg.Validate("cors"); err != nil {
		return nil, err
	}
	p := &Policy{exact: make(map[string]bool), credentials: cfg.AllowCredentials}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			p.anyOrigin = true
			continue
		}
		e, _ := parseEntry(o) // validated above
		if e.pattern != nil {
			p.patterns = append(p.patterns, *e.pattern)
		} else {
			p.exact[e.exact] = true
		}
	}
	methods := cfg.AllowedMethods
	if len(methods) == 0 {
		methods = defaultMethods
	}
	p.allowMethods = joinUnique(methods)
	p.allowHeaders = joinUnique(append(defaultAllowedHeaders(), cfg.AllowedHeaders...))
	p.exposeHeaders = joinUnique(append(append([]string(nil), defaultExposedHeaders...), cfg.ExposedHeaders...))
	if cfg.MaxAge > 0 {
		p.maxAge = strconv.FormatInt(int64(cfg.MaxAge.Seconds()), 10)
	}
	return p, nil
}

// joinUnique joins list with ", ", dropping case-insensitive repeats.
func joinUnique(list []string) string {
	seen := make(map[string]bool, len(list))
	out := make([]string, 0, len(list))
	for _, v := range list {
		k := strings.ToLower(v)
		if !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	return strings.Join(out, ", ")
}

// AllowOrigin reports whether the policy allows a browser at origin, the
// value of an Origin header. "" (no Origin header: not a browser's
// cross-origin request) is allowed. Same-origin requests are decided by
// CheckOrigin and Middleware, which see the request's Host.
func (p *Policy) AllowOrigin(origin string) bool {
	if origin == "" || p.anyOrigin {
		return true
	}
	o, ok := parseOrigin(origin)
	if !ok {
		return false
	}
	if p.exact[o.String()] {
		return true
	}
	for _, pat := range p.patterns {
		if pat.match(o) {
			return true
		}
	}
	return false
}

// CheckOrigin is the policy as a gorilla websocket.Upgrader.CheckOrigin: a
// request without an Origin header is allowed, as is a same-origin one (the
// Origin's host equals r.Host); otherwise AllowOrigin decides. Browsers do
// not apply CORS to WebSockets, so this check is what keeps other sites'
// pages from opening sockets with the user's cookies.
func (p *Policy) CheckOrigin(r *http.Request) bool {
	vals := r.Header.Values(headerOrigin)
	switch {
	case len(vals) == 0 || len(vals) == 1 && vals[0] == "":
		return true
	case len(vals) > 1: // no browser sends two
		return false
	}
	return p.allowed(r, vals[0])
}

// allowed reports whether a request carrying Origin origin may proceed:
// AllowOrigin, or a same-origin request.
func (p *Policy) allowed(r *http.Request, origin string) bool {
	if p.AllowOrigin(origin) {
		return true
	}
	o, ok := parseOrigin(origin)
	return ok && sameOrigin(r, o)
}

// sameOrigin reports whether o names the host r was sent to. The scheme is
// not compared: behind a TLS terminator the gateway cannot see it. If a
// proxy in front rewrites Host, list the public origin instead.
func sameOrigin(r *http.Request, o origin) bool {
	host := strings.ToLower(r.Host)
	if dp := defaultPort(o.scheme); dp != "" {
		host = strings.TrimSuffix(host, ":"+dp)
	}
	return host != "" && host == o.hostPort()
}

// allowOriginValue is the Access-Control-Allow-Origin for an allowed
// origin: "*" only for a "*" policy without credentials, else the origin as
// the browser sent it (browsers compare it byte for byte).
func (p *Policy) allowOriginValue(origin string) string {
	if p.anyOrigin && !p.credentials {
		return "*"
	}
	return origin
}

// Middleware applies the policy in front of next:
//
//   - A request without an Origin header passes through untouched.
//   - A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
//     answered here and never forwarded: 204 with the configured methods,
//     headers and max-age for an allowed origin (headers the browser asks for
//     that are not configured are not listed, so the browser refuses the
//     request), or 403 with the RivetKit error cors.origin_not_allowed and
//     no CORS headers.
//   - Any other request from a disallowed origin is refused and never
//     forwarded: an HTTP request with 403 cors.origin_not_allowed, a
//     WebSocket upgrade by accepting it and closing with 1011
//     "cors.origin_not_allowed" (what a RivetKit client turns into an
//     ActorError instead of a bare 1006).
//   - Any other request from an allowed origin goes to next through a
//     ResponseWriter that, at WriteHeader (or the first Write, Flush or
//     Hijack), removes every Access-Control-* header and the Origin pieces
//     of Vary that next or the upstream put on the response, then sets the
//     policy's: Access-Control-Allow-Origin, -Allow-Credentials,
//     -Expose-Headers and Vary: Origin. So the response carries exactly one
//     set, whatever the upstream sent. For a proxied WebSocket upgrade
//     (httputil.ReverseProxy hijacks, then copies the upstream's headers)
//     the proxy must also call StripUpstream in ModifyResponse.
func (p *Policy) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values(headerOrigin)
		if len(vals) == 0 || len(vals) == 1 && vals[0] == "" {
			next.ServeHTTP(w, r)
			return
		}
		origin := vals[0]
		ok := len(vals) == 1 && p.allowed(r, origin)
		if r.Method == http.MethodOptions && r.Header.Get(headerRequestMethod) != "" {
			p.preflight(w, r, origin, ok)
			return
		}
		if !ok {
			w.Header().Add(headerVary, headerOrigin)
			rivet.WriteError(w, r, rivet.ErrOriginNotAllowed)
			return
		}
		next.ServeHTTP(&responseWriter{ResponseWriter: w, policy: p, origin: origin}, r)
	})
}

func (p *Policy) preflight(w http.ResponseWriter, r *http.Request, origin string, allowed bool) {
	h := w.Header()
	StripUpstream(h)
	h.Add(headerVary, "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	if !allowed {
		rivet.WriteHTTPError(w, r, rivet.ErrOriginNotAllowed)
		return
	}
	h.Set(headerAllowOrigin, p.allowOriginValue(origin))
	if p.credentials {
		h.Set(headerAllowCredentials, "true")
	}
	h.Set(headerAllowMethods, p.allowMethods)
	h.Set(headerAllowHeaders, p.allowHeaders)
	if p.maxAge != "" {
		h.Set(headerMaxAge, p.maxAge)
	}
	if x := rivet.ExchangeFrom(r.Context()); x != nil && x.RayID != "" {
		h.Set(rivet.HeaderRayID, x.RayID) // the gateway's own answer, like its errors
	}
	w.WriteHeader(http.StatusNoContent)
}

// setActual replaces the CORS headers of a response to an allowed origin's
// actual (non-preflight) request with the policy's.
func (p *Policy) setActual(h http.Header, origin string) {
	StripUpstream(h)
	h.Set(headerAllowOrigin, p.allowOriginValue(origin))
	if p.credentials {
		h.Set(headerAllowCredentials, "true")
	}
	h.Set(headerExposeHeaders, p.exposeHeaders)
	h.Add(headerVary, headerOrigin)
}
