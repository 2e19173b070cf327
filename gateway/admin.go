package gateway

import (
	"context"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/rivet-gateway/rivet-gateway/metrics"
)

// AdminHandler is the admin listener's handler (for tests and embedding).
func (g *Gateway) AdminHandler() http.Handler { return g.admin.Handler }

// adminHandler serves the probes: /healthz (the process is alive) and
// /readyz (not draining or shutting down, and the upstream's /health answers), and the
// Prometheus metrics at metrics.path when metrics are enabled, and
// net/http/pprof under /debug/pprof/ when admin.pprof is on.
func (g *Gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	if g.cfg.Admin.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if g.metrics != nil {
		mux.Handle("GET "+g.cfg.Metrics.Path, metrics.Handler(g.registry))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if g.draining.Load() || g.shuttingDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("shutting down\n"))
			return
		}
		if err := g.ready.get(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("upstream not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// readiness caches the upstream health check so probes cannot turn into
// load on the engine: at most one check per interval.
type readiness struct {
	check    func(context.Context) error
	interval time.Duration
	timeout  time.Duration

	mu   sync.Mutex
	at   time.Time
	last error
}

func (r *readiness) get(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < r.interval {
		return r.last
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	r.last = r.check(ctx)
	r.at = time.Now()
	return r.last
}
