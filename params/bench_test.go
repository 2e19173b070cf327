package params

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// BenchmarkInject measures the middleware on an HTTP action, per source:
// resolving, encoding and writing the params (the next handler does
// nothing). The http case uses a loopback params service over keep-alive
// and also reports the p50 and p99 of the fetch.
func BenchmarkInject(b *testing.B) {
	caller := &Caller{Method: "jwt", Subject: "user-123", Issuer: "https://issuer.example",
		Scopes: []string{"read"}, Claims: map[string]any{"role": "editor", "level": float64(7), "groups": []any{"a", "b"}}}

	b.Run("claims", func(b *testing.B) {
		cfg := claimsConfig(map[string]any{
			"userId": "{{ .Subject }}", "role": "{{ .Claims.role }}", "level": "{{ .Claims.level }}",
			"groups": "{{ .Claims.groups }}", "label": "{{ .Subject }}@{{ .Route.ActorName }}",
		})
		benchInject(b, cfg, Options{Caller: callerFn(caller)}, nil)
	})
	b.Run("static", func(b *testing.B) {
		benchInject(b, staticConfig(map[string]any{"tenant": "acme", "tier": "gold", "limits": map[string]any{"rps": 10}}), Options{}, nil)
	})
	b.Run("http", func(b *testing.B) {
		svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"userId":"user-123","role":"editor","token":"eyJhbGciOiJFUzI1NiJ9.e30.sig"}`)
		}))
		defer svc.Close()
		cfg := httpConfig(svc.URL)
		cfg.HTTP.ForwardClaims = []string{"role"}
		lat := &latencies{}
		benchInject(b, cfg, Options{Caller: callerFn(caller), Observe: lat.observe}, lat)
	})
}

func benchInject(b *testing.B, cfg Config, opts Options, lat *latencies) {
	inj, err := New(cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer inj.Close()
	h := inj.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(rivet.HeaderConnParams) == "" {
			b.Fatal("no params injected")
		}
	}))
	r := httptest.NewRequest(http.MethodPost, actionPath, nil)
	r.Header.Set(rivet.HeaderConnParams, `{"spoof":true}`)
	rt, err := rivet.ParseRequest(r)
	if err != nil {
		b.Fatal(err)
	}
	r = r.WithContext(rivet.WithRoute(r.Context(), &rt))
	w := discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // warm the keep-alive pool
	if lat != nil {
		lat.reset(b.N)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		h.ServeHTTP(w, r)
	}
	b.StopTimer()
	if lat != nil {
		lat.report(b)
	}
}

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d discardWriter) WriteHeader(int)             {}

// latencies collects fetch durations from Options.Observe and reports
// their p50 and p99 with b.ReportMetric.
type latencies struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *latencies) observe(f Fetch) {
	l.mu.Lock()
	l.ds = append(l.ds, f.Duration)
	l.mu.Unlock()
}

func (l *latencies) reset(n int) {
	l.mu.Lock()
	l.ds = make([]time.Duration, 0, n)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ds) == 0 {
		return
	}
	slices.Sort(l.ds)
	q := func(p float64) float64 { return float64(l.ds[int(p*float64(len(l.ds)-1))].Nanoseconds()) }
	b.ReportMetric(q(0.50), "p50-ns")
	b.ReportMetric(q(0.99), "p99-ns")
}
