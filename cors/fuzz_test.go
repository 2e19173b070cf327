package cors

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func FuzzOriginMatch(f *testing.F) {
	seeds := [][2]string{
		{"https://*.example.com", "https://a.example.com"},
		{"https://*.example.com", "http://a.example.com"},
		{"https://*.example.com", "https://a.b.example.com"},
		{"https://*.example.com:8443", "https://a.example.com:8443"},
		{"https://app.example.com", "HTTPS://APP.EXAMPLE.COM:443"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"capacitor://localhost", "capacitor://localhost"},
		{"http://*.localhost", "http://x.localhost"},
		{"https://example.com", "https://example.com.evil.com"},
		{"https://*.example.com", "https://evil.com/.example.com"},
		{"null", "null"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, allowed, origin string) {
		cfg := DefaultConfig()
		cfg.AllowedOrigins = []string{allowed}
		if allowed == "*" {
			return
		}
		p, err := New(cfg)
		if err != nil {
			return // an invalid entry is a config error, nothing to match
		}
		// Also try the pattern with its "*" replaced by the fuzzed origin,
		// so that near-misses of the wildcard are explored.
		for _, o := range []string{origin, strings.Replace(allowed, "*", origin, 1)} {
			checkMatch(t, p, allowed, o)
		}
	})
}

// checkMatch checks the invariants of a match of origin against the single
// entry allowed.
func checkMatch(t *testing.T, p *Policy, allowed, origin string) {
	t.Helper()
	if !p.AllowOrigin(origin) || origin == "" {
		return
	}
	o, ok := parseOrigin(origin)
	if !ok {
		t.Fatalf("%q allows %q, which is not a valid origin", allowed, origin)
	}
	scheme, rest, _ := strings.Cut(allowed, "://")
	if !strings.EqualFold(scheme, o.scheme) {
		t.Fatalf("%q allows %q: different scheme", allowed, origin)
	}
	if wild, ok := strings.CutPrefix(rest, "*."); ok {
		suffix := strings.ToLower(wild)
		if i := strings.LastIndexByte(suffix, ':'); i >= 0 {
			suffix = suffix[:i]
		}
		label, found := strings.CutSuffix(o.host, "."+suffix)
		if !found || label == "" || strings.Contains(label, ".") {
			t.Fatalf("%q allows %q: host is not exactly one label under %q", allowed, origin, suffix)
		}
	} else if o.String() != mustEntry(t, allowed).exact {
		t.Fatalf("%q allows %q, normalized %q", allowed, origin, o.String())
	}
	if again, ok := parseOrigin(o.String()); !ok || again != o {
		t.Fatalf("normalizing %q is not idempotent: %q then %q", origin, o, again)
	}
}

func mustEntry(t *testing.T, s string) entry {
	t.Helper()
	e, err := parseEntry(s)
	if err != nil {
		t.Fatalf("parseEntry(%q): %v", s, err)
	}
	return e
}

// FuzzMiddleware sends requests with arbitrary Origin headers (none, one or
// two), methods and preflight headers through a policy: a request from an
// origin the policy refuses never reaches the next handler, a preflight is
// never forwarded, and an answer to a request with an Origin carries at most
// one Allow-Origin, which echoes an allowed origin.
func FuzzMiddleware(f *testing.F) {
	f.Add("https://app.example.com", "", "OPTIONS", "POST", true)
	f.Add("https://evil.example", "", "POST", "", false)
	f.Add("https://a.example.com", "https://b.example.com", "GET", "", true)
	f.Add("null", "", "OPTIONS", "GET", false)
	f.Add("http://gateway.test", "", "GET", "", false)
	f.Add("HTTPS://APP.EXAMPLE.COM:443", "", "OPTIONS", "", false)
	f.Add("https://app.example.com\x00", "", "PUT", "DELETE", true)
	cfg := DefaultConfig()
	cfg.AllowedOrigins = []string{"https://app.example.com", "https://*.example.com"}
	p, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, origin, origin2, method, requestMethod string, upstreamCORS bool) {
		reached := false
		next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached = true
			if upstreamCORS {
				w.Header().Set("Access-Control-Allow-Origin", "*")
				w.Header().Set("Vary", "Origin, Accept-Encoding")
			}
			w.WriteHeader(http.StatusOK)
		})
		r := &http.Request{Method: method, Header: http.Header{}, Host: "gateway.test", URL: &url.URL{Path: "/gateway/counter/action/x"}}
		if origin != "" {
			r.Header.Add("Origin", origin)
		}
		if origin2 != "" {
			r.Header.Add("Origin", origin2)
		}
		if requestMethod != "" {
			r.Header.Set("Access-Control-Request-Method", requestMethod)
		}
		rec := httptest.NewRecorder()
		p.Middleware(next).ServeHTTP(rec, r)

		origins := r.Header.Values("Origin")
		allowed := len(origins) == 0 || len(origins) == 1 && (origins[0] == "" || p.allowed(r, origins[0]))
		preflight := len(origins) > 0 && !(len(origins) == 1 && origins[0] == "") && method == http.MethodOptions && requestMethod != ""
		if reached && (!allowed || preflight) {
			t.Fatalf("Origin %q (method %q, preflight %v) reached the next handler", origins, method, preflight)
		}
		if !reached && allowed && !preflight {
			t.Fatalf("allowed Origin %q (method %q) did not reach the next handler: %d", origins, method, rec.Code)
		}
		if len(origins) == 0 || len(origins) == 1 && origins[0] == "" {
			return // passed through untouched: the proxy strips the upstream's CORS headers
		}
		got := rec.Header().Values("Access-Control-Allow-Origin")
		if len(got) > 1 || len(got) == 1 && (len(origins) != 1 || got[0] != origins[0] || !allowed) {
			t.Fatalf("Origin %q: Allow-Origin %q", origins, got)
		}
		if !allowed && rec.Code != http.StatusForbidden {
			t.Fatalf("refused Origin %q: status %d, want 403", origins, rec.Code)
		}
	})
}

// FuzzStripUpstream: no Access-Control-* header survives, and Vary keeps
// exactly its non-CORS parts.
func FuzzStripUpstream(f *testing.F) {
	f.Add("Origin, Accept-Encoding", "access-control-allow-origin", "*")
	f.Add(" ,origin,, ACCESS-CONTROL-REQUEST-METHOD ", "Access-Control-Max-Age", "1")
	f.Add("Accept", "X-Other", "v")
	f.Fuzz(func(t *testing.T, vary, name, value string) {
		h := http.Header{}
		h.Add("Vary", vary)
		h[name] = []string{value}
		var want []string
		for part := range strings.SplitSeq(vary, ",") {
			part = strings.TrimSpace(part)
			switch {
			case part == "", strings.EqualFold(part, "Origin"), strings.EqualFold(part, "Access-Control-Request-Method"),
				strings.EqualFold(part, "Access-Control-Request-Headers"):
			default:
				want = append(want, part)
			}
		}
		if strings.EqualFold(name, "Vary") {
			return // the fuzzed header replaced Vary itself
		}
		StripUpstream(h)
		for k := range h {
			if len(k) > len("Access-Control-") && strings.EqualFold(k[:len("Access-Control-")], "Access-Control-") {
				t.Fatalf("header %q survived", k)
			}
		}
		var got []string
		for _, v := range h.Values("Vary") {
			for part := range strings.SplitSeq(v, ",") {
				if part = strings.TrimSpace(part); part != "" {
					got = append(got, part)
				}
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("Vary %q: got %q, want %q", vary, got, want)
		}
	})
}
