package cors

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// corsHeaders returns h's Access-Control-* headers.
func corsHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			out[k] = v
		}
	}
	return out
}

// listHas reports whether a comma-separated header value lists name
// (case-insensitively).
func listHas(value, name string) bool {
	for part := range strings.SplitSeq(value, ",") {
		if strings.EqualFold(strings.TrimSpace(part), name) {
			return true
		}
	}
	return false
}

// varyTokens returns every Vary token of h, lower-cased, in order.
func varyTokens(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Vary") {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, strings.ToLower(part))
			}
		}
	}
	return out
}

func countToken(list []string, tok string) int {
	n := 0
	for _, v := range list {
		if v == tok {
			n++
		}
	}
	return n
}

// nextHandler records whether it was called and answers like the engine:
// with its own permissive CORS headers.
type nextHandler struct{ calls int }

func (n *nextHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.calls++
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Access-Control-Expose-Headers", "*")
	w.Header().Set("Vary", "Origin, Accept-Encoding")
	w.Header().Set("X-Rivet-Ray-Id", "ray1")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok"))
}

func preflight(origin, method, headers string) *http.Request {
	r := httptest.NewRequest(http.MethodOptions, "http://gw.example.com/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get", nil)
	r.Header.Set("Origin", origin)
	r.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		r.Header.Set("Access-Control-Request-Headers", headers)
	}
	return r
}

func checkOriginError(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusForbidden {
		t.Errorf("status: got %d, want 403", rec.Code)
	}
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", got)
	}
	var body struct{ Group, Code, Message string }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Group != "cors" || body.Code != "origin_not_allowed" {
		t.Errorf("body: got %s (%v), want the RivetKit error cors.origin_not_allowed", rec.Body, err)
	}
	if h := corsHeaders(rec.Header()); len(h) != 0 {
		t.Errorf("CORS headers on a rejection: got %v, want none", h)
	}
}

func TestPreflight(t *testing.T) {
	const origin = "https://app.example.com"
	tests := []struct {
		name        string
		origins     []string
		credentials bool
		maxAge      time.Duration
		allowOrigin string // "" = rejected
	}{
		{"credentials", []string{origin}, true, 24 * time.Hour, origin},
		{"no credentials", []string{origin}, false, time.Hour, origin},
		{"pattern", []string{"https://*.example.com"}, true, 24 * time.Hour, origin},
		{"any without credentials", []string{"*"}, false, 24 * time.Hour, "*"},
		{"no max age", []string{origin}, true, 0, origin},
		{"disallowed", []string{"https://other.example.com"}, true, 24 * time.Hour, ""},
		{"default none", nil, true, 24 * time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.AllowedOrigins = tt.origins
			cfg.AllowCredentials = tt.credentials
			cfg.MaxAge = tt.maxAge
			cfg.AllowedHeaders = []string{"X-Custom"}
			next := &nextHandler{}
			h := mustNew(t, cfg).Middleware(next)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, preflight(origin, "POST", "content-type, x-rivet-conn-params, x-rivet-encoding, authorization, x-custom, x-evil"))
			if next.calls != 0 {
				t.Errorf("preflight forwarded: next called %d times, want 0", next.calls)
			}
			vary := varyTokens(rec.Header())
			for _, v := range []string{"origin", "access-control-request-method", "access-control-request-headers"} {
				if countToken(vary, v) != 1 {
					t.Errorf("Vary: got %q, want %s once", vary, v)
				}
			}
			if tt.allowOrigin == "" {
				checkOriginError(t, rec)
				return
			}
			res := rec.Result()
			if res.StatusCode != http.StatusNoContent {
				t.Errorf("status: got %d, want 204", res.StatusCode)
			}
			if got := res.Header.Values("Access-Control-Allow-Origin"); !slices.Equal(got, []string{tt.allowOrigin}) {
				t.Errorf("Access-Control-Allow-Origin: got %q, want [%q]", got, tt.allowOrigin)
			}
			wantCred := []string(nil)
			if tt.credentials {
				wantCred = []string{"true"}
			}
			if got := res.Header.Values("Access-Control-Allow-Credentials"); !slices.Equal(got, wantCred) {
				t.Errorf("Access-Control-Allow-Credentials: got %q, want %q", got, wantCred)
			}
			if got, want := res.Header.Get("Access-Control-Allow-Methods"), "GET, POST, PUT, DELETE, OPTIONS, PATCH"; got != want {
				t.Errorf("Access-Control-Allow-Methods: got %q, want %q", got, want)
			}
			allow := res.Header.Get("Access-Control-Allow-Headers")
			for _, name := range append(append([]string(nil), rivet.AllowedPublicHeaders...), "Authorization", "X-API-Key", "X-Custom", "traceparent") {
				if !listHas(allow, name) {
					t.Errorf("Access-Control-Allow-Headers %q does not list %s", allow, name)
				}
			}
			if listHas(allow, "x-evil") || listHas(allow, "*") {
				t.Errorf("Access-Control-Allow-Headers %q echoes a header that is not configured", allow)
			}
			wantAge := []string(nil)
			if tt.maxAge > 0 {
				wantAge = []string{strconv.Itoa(int(tt.maxAge / time.Second))}
			}
			if got := res.Header.Values("Access-Control-Max-Age"); !slices.Equal(got, wantAge) {
				t.Errorf("Access-Control-Max-Age: got %q, want %q", got, wantAge)
			}
			if rec.Body.Len() != 0 {
				t.Errorf("body: got %q, want none", rec.Body)
			}
		})
	}
}

func TestPreflightSameOrigin(t *testing.T) {
	next := &nextHandler{}
	h := mustNew(t, DefaultConfig()).Middleware(next)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, preflight("http://gw.example.com", "PUT", ""))
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "http://gw.example.com" {
		t.Errorf("same-origin preflight: got %d %v, want 204 echoing the origin", rec.Code, corsHeaders(rec.Header()))
	}
}

func TestActualRequests(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowedOrigins = []string{"https://app.example.com"}
	cfg.ExposedHeaders = []string{"X-Extra"}
	p := mustNew(t, cfg)

	t.Run("allowed", func(t *testing.T) {
		next := &nextHandler{}
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "http://gw.example.com/gateway/abc/action/x", nil)
		r.Header.Set("Origin", "https://app.example.com")
		p.Middleware(next).ServeHTTP(rec, r)
		if next.calls != 1 {
			t.Fatalf("next called %d times, want 1", next.calls)
		}
		h := rec.Result().Header
		checkOneSet(t, h, "https://app.example.com", true)
		if got := h.Get("Access-Control-Expose-Headers"); !listHas(got, "X-Extra") || !listHas(got, "x-rivet-ray-id") {
			t.Errorf("Access-Control-Expose-Headers: got %q, want the defaults and X-Extra", got)
		}
		if !slices.Contains(varyTokens(h), "accept-encoding") {
			t.Errorf("Vary: got %q, want accept-encoding kept", varyTokens(h))
		}
	})
	t.Run("options without request method is an actual request", func(t *testing.T) {
		next := &nextHandler{}
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("OPTIONS", "http://gw.example.com/gateway/abc/request/x", nil)
		r.Header.Set("Origin", "https://app.example.com")
		p.Middleware(next).ServeHTTP(rec, r)
		if next.calls != 1 || rec.Code != 200 {
			t.Errorf("got next calls %d, status %d; want 1, 200", next.calls, rec.Code)
		}
	})
	t.Run("disallowed", func(t *testing.T) {
		for _, method := range []string{"GET", "POST", "DELETE", "OPTIONS"} {
			next := &nextHandler{}
			rec := httptest.NewRecorder()
			r := httptest.NewRequest(method, "http://gw.example.com/gateway/abc/action/x", nil)
			r.Header.Set("Origin", "https://evil.com")
			p.Middleware(next).ServeHTTP(rec, r)
			if next.calls != 0 {
				t.Errorf("%s: disallowed request forwarded", method)
			}
			checkOriginError(t, rec)
		}
	})
	t.Run("two origins", func(t *testing.T) {
		next := &nextHandler{}
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "http://gw.example.com/metadata", nil)
		r.Header.Add("Origin", "https://app.example.com")
		r.Header.Add("Origin", "https://app.example.com")
		p.Middleware(next).ServeHTTP(rec, r)
		if next.calls != 0 {
			t.Errorf("request with two Origin headers forwarded")
		}
		checkOriginError(t, rec)
	})
	t.Run("no origin passes untouched", func(t *testing.T) {
		next := &nextHandler{}
		rec := httptest.NewRecorder()
		p.Middleware(next).ServeHTTP(rec, httptest.NewRequest("GET", "http://gw.example.com/metadata", nil))
		if next.calls != 1 {
			t.Fatalf("next called %d times, want 1", next.calls)
		}
		if got := rec.Header().Values("Access-Control-Allow-Origin"); !slices.Equal(got, []string{"*"}) {
			t.Errorf("Access-Control-Allow-Origin: got %q, want next's own [*] untouched", got)
		}
	})
	t.Run("same origin", func(t *testing.T) {
		next := &nextHandler{}
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "http://gw.example.com/actors", nil)
		r.Header.Set("Origin", "http://gw.example.com")
		mustNew(t, DefaultConfig()).Middleware(next).ServeHTTP(rec, r)
		if next.calls != 1 {
			t.Fatalf("same-origin request: next called %d times, want 1", next.calls)
		}
		checkOneSet(t, rec.Result().Header, "http://gw.example.com", true)
	})
	t.Run("gateway errors carry CORS headers", func(t *testing.T) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "http://gw.example.com/gateway/abc/action/x", nil)
		r.Header.Set("Origin", "https://app.example.com")
		deny := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rivet.WriteHTTPError(w, r, &rivet.Error{Status: 401, Group: "auth", Code: "unauthorized", Message: "no"})
		})
		p.Middleware(deny).ServeHTTP(rec, r)
		if rec.Code != 401 {
			t.Errorf("status: got %d, want 401", rec.Code)
		}
		checkOneSet(t, rec.Result().Header, "https://app.example.com", true)
		if !listHas(rec.Header().Get("Access-Control-Expose-Headers"), "x-rivet-error") {
			t.Errorf("x-rivet-error not exposed: %q", rec.Header().Get("Access-Control-Expose-Headers"))
		}
	})
	t.Run("write without WriteHeader and flush", func(t *testing.T) {
		for _, first := range []string{"write", "flush"} {
			rec := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "http://gw.example.com/gateway/abc/request/x", nil)
			r.Header.Set("Origin", "https://app.example.com")
			p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Access-Control-Allow-Origin", "*")
				if first == "flush" {
					if err := http.NewResponseController(w).Flush(); err != nil {
						t.Errorf("Flush through the wrapper: %v", err)
					}
				}
				_, _ = w.Write([]byte("x"))
				w.Header().Set("Access-Control-Allow-Origin", "late") // after the header is sent: ignored
			})).ServeHTTP(rec, r)
			if first == "flush" && !rec.Flushed {
				t.Errorf("flush: recorder not flushed")
			}
			checkOneSet(t, rec.Result().Header, "https://app.example.com", true)
		}
	})
	t.Run("any origin without credentials", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.AllowedOrigins, cfg.AllowCredentials = []string{"*"}, false
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "http://gw.example.com/metadata", nil)
		r.Header.Set("Origin", "https://anything.test")
		mustNew(t, cfg).Middleware(&nextHandler{}).ServeHTTP(rec, r)
		checkOneSet(t, rec.Result().Header, "*", false)
	})
}

// checkOneSet checks h carries exactly the policy's CORS headers for an
// actual response, once each.
func checkOneSet(t *testing.T, h http.Header, allowOrigin string, credentials bool) {
	t.Helper()
	if got := h.Values("Access-Control-Allow-Origin"); !slices.Equal(got, []string{allowOrigin}) {
		t.Errorf("Access-Control-Allow-Origin: got %q, want [%q]", got, allowOrigin)
	}
	wantCred := []string(nil)
	if credentials {
		wantCred = []string{"true"}
	}
	if got := h.Values("Access-Control-Allow-Credentials"); !slices.Equal(got, wantCred) {
		t.Errorf("Access-Control-Allow-Credentials: got %q, want %q", got, wantCred)
	}
	expose := h.Values("Access-Control-Expose-Headers")
	if len(expose) != 1 || listHas(expose[0], "*") {
		t.Errorf("Access-Control-Expose-Headers: got %q, want one explicit list", expose)
	} else {
		for _, name := range []string{"x-rivet-ray-id", "x-rivet-actor", "x-rivet-actor-generation", "x-rivet-actor-key", "x-rivet-error"} {
			if !listHas(expose[0], name) {
				t.Errorf("Access-Control-Expose-Headers %q does not list %s", expose[0], name)
			}
		}
	}
	for k := range corsHeaders(h) {
		switch k {
		case "Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers":
		default:
			t.Errorf("unexpected header %s: %q", k, h.Values(k))
		}
	}
	if n := countToken(varyTokens(h), "origin"); n != 1 {
		t.Errorf("Vary: got %q, want origin exactly once", varyTokens(h))
	}
}

func TestStripUpstream(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		vary []string // nil: no Vary header
	}{
		{"engine preflight", http.Header{
			"Access-Control-Allow-Origin":      {"https://app.example.com"},
			"Access-Control-Allow-Credentials": {"true"},
			"Access-Control-Allow-Methods":     {"GET, POST"},
			"Access-Control-Allow-Headers":     {"*"},
			"Access-Control-Expose-Headers":    {"*"},
			"Access-Control-Max-Age":           {"86400"},
			"Vary":                             {"Origin"},
			"X-Rivet-Ray-Id":                   {"r"},
		}, nil},
		{"api preflight", http.Header{
			"Vary": {"origin, access-control-request-method, access-control-request-headers"},
		}, nil},
		{"other vary kept", http.Header{
			"Vary": {"Accept-Encoding, Origin", "origin", "X-Foo"},
		}, []string{"Accept-Encoding, X-Foo"}},
		{"vary untouched", http.Header{
			"Vary": {"Accept-Encoding", "X-Foo"},
		}, []string{"Accept-Encoding", "X-Foo"}},
		{"non-canonical key", http.Header{
			"access-control-allow-origin": {"*"},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			StripUpstream(h)
			if c := corsHeaders(h); len(c) != 0 {
				t.Errorf("Access-Control-* left: %v", c)
			}
			if got := h.Values("Vary"); !slices.Equal(got, tt.vary) {
				t.Errorf("Vary: got %q, want %q", got, tt.vary)
			}
			if tt.in.Get("X-Rivet-Ray-Id") != "" && h.Get("X-Rivet-Ray-Id") == "" {
				t.Errorf("X-Rivet-Ray-Id removed")
			}
		})
	}
}
