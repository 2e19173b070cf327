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
		reason := g.notReady(r.Context())
		g.noteReadiness(reason)
		if reason != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(reason + "\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// notReady returns why the gateway should not take traffic now, or "":
// it is draining or shutting down; a JWKS issuer has never loaded its keys
// (admin.readiness_jwks); the engine's /health does not answer
// (admin.readiness_upstream, checked at most every readiness_interval).
func (g *Gateway) notReady(ctx context.Context) string {
	if g.draining.Load() || g.shuttingDown.Load() {
		return "shutting down"
	}
	if g.cfg.Admin.ReadinessJWKS {
		if err := g.live.Load().auth.KeysReady(); err != nil {
			return err.Error()
		}
	}
	if err := g.ready.get(ctx); err != nil {
		return "upstream not ready"
	}
	return ""
}

// noteReadiness logs the first readiness answered and every change after
// it, so an operator sees when and why a replica left or rejoined.
func (g *Gateway) noteReadiness(reason string) {
	g.readyMu.Lock()
	prev, seen := g.readyReason, g.readySeen
	g.readyReason, g.readySeen = reason, true
	g.readyMu.Unlock()
	if seen && prev == reason {
		return
	}
	if reason == "" {
		g.log.Info("gateway ready")
		return
	}
	g.log.Warn("gateway not ready", "reason", reason)
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
