//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it: `make test` runs these tests in a
// second, race-free pass (go test -run Allocs).

package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rivet-gateway/rivet-gateway/authn"
)

// engineInMemory answers in place of an engine, without a network: actions
// with {"output":1}, id lookups with counter [alice].
type engineInMemory struct{}

func (engineInMemory) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	body := `{"output":1}`
	if r.URL.Path == "/actors" {
		body = `{"actors":[{"actor_id":"` + r.URL.Query().Get("actor_ids") + `","name":"counter","key":"alice"}]}`
	}
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}, "X-Rivet-Ray-Id": {"ray"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}, nil
}

// TestAllocsPerRequest is a regression guard on the gateway's own cost per
// request: a change that adds allocations to the chain (classification,
// resolution, authentication, params, the proxy's rewrite, the metrics and
// access log layers and Echo) fails here. The configuration is the bench's
// (JWT HS256, params from claims, access log off); the engine is answered
// in memory, so only the gateway's allocations count. Raise a ceiling only
// with the reason in the commit.
func TestAllocsPerRequest(t *testing.T) {
	g, tok := benchGateway(t)
	for _, tc := range []struct {
		name, target string
		// ceiling is allocations per request, measured when the guard was
		// written (2026-12-06, go1.26.8) plus a little headroom.
		ceiling float64
	}{
		{"action by key", chainTargets[0].target, 91},
		{"action by id, resolved from the cache", chainTargets[1].target, 94},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serve := func() {
				r := chainRequest(tc.target, tok)
				w := httptest.NewRecorder()
				g.echo.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
			serve() // warm caches: the JWT, the id, pools
			baseline := testing.AllocsPerRun(50, func() {
				_ = chainRequest(tc.target, tok)
				_ = httptest.NewRecorder()
			})
			got := testing.AllocsPerRun(200, serve) - baseline
			t.Logf("%s: %.0f allocations per request (the test's own request and recorder excluded)", tc.name, got)
			if tc.ceiling > 0 && got > tc.ceiling {
				t.Errorf("%s: %.0f allocations per request, ceiling %.0f", tc.name, got, tc.ceiling)
			}
		})
	}
}

// benchGateway is the gateway of the bench's hs256+claims configuration
// (JWT HS256, the README's key binding, params from claims, access log
// off) in front of engineInMemory, and a token for alice.
func benchGateway(tb testing.TB) (*Gateway, string) {
	tb.Helper()
	const secret = "alloc-test-secret-0123456789abcdef-0123"
	cfg := DefaultConfig()
	cfg.Server.Listen, cfg.Admin.Listen, cfg.Upstream.URL = "127.0.0.1:0", "127.0.0.1:1", "http://engine.invalid"
	cfg.Log.Access.Enabled = false
	cfg.Auth.JWT.Issuers = []authn.IssuerConfig{{Name: "hs", Issuer: "alloc", Algorithms: []string{"HS256"}, Secret: secret, RequiredClaims: []string{"sub"}}}
	cfg.Auth.Rules = []authn.Rule{{Match: authn.Match{Actors: []string{"counter"}}, KeyBinding: &authn.KeyBinding{Index: 0, Claim: "sub"}}}
	cfg.Params.Source = "claims"
	cfg.Params.Claims = map[string]any{"userId": "{{ .Subject }}", "token": "verified-by-gateway"}
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	g, err := New(cfg, slog.New(slog.DiscardHandler), Options{
		WrapUpstream: func(http.RoundTripper) http.RoundTripper { return engineInMemory{} },
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(g.Close)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "alloc", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		tb.Fatal(err)
	}
	return g, tok
}

// chainTargets are the requests the chain guards and benchmarks serve.
var chainTargets = []struct{ name, target string }{
	{"by key", "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=alice&rvt-crash-policy=sleep"},
	{"by id", "/gateway/hwzdj7sr4l7y4lxlvc506jrjwtal00/action/increment"},
}

// chainRequest is the action request the guard and the benchmark serve:
// a bearer JWT, a JSON body.
func chainRequest(target, tok string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(`{"args":[1]}`))
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Rivet-Encoding", "json")
	return r
}

// BenchmarkRequestChain is the gateway's own work per action request:
// Echo, classification, id resolution (cached), authentication, params,
// the proxy's rewrite, metrics, against an engine answered in memory.
func BenchmarkRequestChain(b *testing.B) {
	g, tok := benchGateway(b)
	for _, tc := range chainTargets {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := chainRequest(tc.target, tok)
				w := httptest.NewRecorder()
				g.echo.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
