// Package gateway assembles rivet-gateway: the request chain (CORS, route
// classification, authentication, server-side params, proxy), the public
// Echo server, the admin listener with health probes, and the shutdown
// sequence. cmd/rivet-gateway is a thin main around it.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rivet-gateway/rivet-gateway/actors"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/clientip"
	"github.com/rivet-gateway/rivet-gateway/cors"
	"github.com/rivet-gateway/rivet-gateway/metrics"
	"github.com/rivet-gateway/rivet-gateway/params"
	"github.com/rivet-gateway/rivet-gateway/proxy"
	"github.com/rivet-gateway/rivet-gateway/rivet"
	"github.com/rivet-gateway/rivet-gateway/tracing"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Gateway is a running gateway: a shell that lives as long as the process
// (listeners, metrics registry, shutdown state) around a runtime, the part
// a configuration reload replaces atomically (the request chain and what
// it is built from).
type Gateway struct {
	// cfg is the configuration the gateway started with; its restart-only
	// sections (restartOnly) never change.
	cfg Config
	log *slog.Logger

	// registry holds this gateway's metrics (never the global registry);
	// metrics is nil when disabled.
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	// tracing is nil when tracing is off (restart-only).
	tracing *tracing.Tracing
	opts    Options
	// clientIP resolves client addresses (server.trusted_proxies, a
	// restart-only setting).
	clientIP *clientip.Resolver

	live atomic.Pointer[runtime]
	// reloadMu serializes reloads (and Shutdown against them).
	reloadMu sync.Mutex
	// retired are proxies a reload replaced (the upstream section, or the
	// content of a file it names, changed), kept until their WebSockets
	// end; retiredMu guards it.
	retiredMu sync.Mutex
	retired   []*proxy.Proxy

	echo   *echo.Echo
	public *http.Server
	admin  *http.Server

	draining     atomic.Bool
	shuttingDown atomic.Bool
	ready        readiness
	// readyMu guards the last readiness answered, for logging changes.
	readyMu     sync.Mutex
	readyReason string
	readySeen   bool
}

// runtime is everything one configuration builds. Requests load it once,
// at their start, so each sees one whole configuration.
type runtime struct {
	cfg    Config
	cors   *cors.Policy
	auth   *authn.Authenticator
	par    *params.Injector
	proxy  *proxy.Proxy
	actors *actors.Resolver
	access *metrics.AccessLog
	cert   *tls.Certificate // server.tls_cert_file + tls_key_file, nil for plain HTTP
	// upstream is cfg.Upstream with token_file resolved into token: what
	// the proxy was built from, compared to keep it across reloads.
	upstream proxy.Config
	// files are the referenced files as build found them, by YAML path:
	// a kept proxy or params client must not have read an older content
	// than a rebuilt one would (upstream.ca_file, params.http.cert_file).
	files   map[string]fileState
	handler http.Handler
}

// Options are New's optional dependencies.
type Options struct {
	// SpanExporter replaces the OTLP exporter of tracing (tests).
	SpanExporter sdktrace.SpanExporter
	// Version is reported in traces.
	Version string
	// WrapUpstream, when set, wraps the transport of the HTTP requests the
	// gateway sends the engine (after tracing's own wrapping): for
	// embedding, and for tests that answer in place of an engine.
	WrapUpstream func(http.RoundTripper) http.RoundTripper
}

// New builds a gateway from a validated configuration.
func New(cfg Config, logger *slog.Logger, opts ...Options) (*Gateway, error) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	g := &Gateway{cfg: cfg, log: logger, registry: prometheus.NewRegistry(), opts: o}
	var err error
	if g.clientIP, err = cfg.Server.clientIPResolver(); err != nil {
		return nil, err
	}
	tr, err := tracing.New(cfg.Tracing, tracing.Options{Exporter: o.SpanExporter, Version: o.Version})
	if err != nil {
		return nil, err
	}
	g.tracing = tr
	if cfg.Metrics.Enabled {
		g.metrics, err = metrics.New(g.registry, cfg.Metrics, metrics.Options{
			OpenWebSockets: g.OpenWebSockets,
			Runtime:        true,
		})
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	rt, err := g.build(cfg, nil)
	if err != nil {
		return nil, err
	}
	g.live.Store(rt)
	g.metrics.SetAuthLabels(issuerNames(cfg.Auth), rt.auth.APIKeyIDs())
	logWarnings(logger, cfg)
	g.ready = readiness{
		check: func(ctx context.Context) error {
			if !cfg.Admin.ReadinessUpstream {
				return nil
			}
			return g.live.Load().proxy.CheckHealth(ctx)
		},
		interval: cfg.Admin.ReadinessInterval,
		timeout:  cfg.Admin.ReadinessTimeout,
	}
	g.echo = g.newEcho()
	g.public = &http.Server{
		Handler:           g.echo,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		ReadTimeout:       cfg.Server.ReadTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	if rt.cert != nil {
		// The certificate is read from the live runtime on every handshake,
		// so a reload rotates it.
		g.public.TLSConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return g.live.Load().cert, nil
			},
		}
	}
	g.admin = &http.Server{
		Handler:           g.adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	return g, nil
}

// build makes a runtime for cfg. prev, when set, is the running one: its
// proxy is kept when the upstream section and the contents of the files it
// names are unchanged, so upstream connections stay warm and its
// WebSockets stay where they are; its params client likewise, and its
// actor resolver with the proxy. What is re-read on every build (keys,
// secrets, the TLS certificate) needs no such care.
func (g *Gateway) build(cfg Config, prev *runtime) (_ *runtime, err error) {
	// The files are hashed before anything reads them: a file that changes
	// in between was read newer than hashed, and the next reload sees it
	// differ and rebuilds once more, never less.
	rt := &runtime{cfg: cfg, files: readFileStates(fileRefs(cfg))}
	defer func() {
		if err != nil {
			rt.close(prev)
		}
	}()
	if cfg.Server.TLSCertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls_cert_file: %w", err)
		}
		rt.cert = &c
	}
	logger := g.log
	if rt.access, err = metrics.NewAccessLog(cfg.Log.Access, logger.With("component", "access")); err != nil {
		return nil, fmt.Errorf("log.access: %w", err)
	}
	if rt.cors, err = cors.New(cfg.CORS); err != nil {
		return nil, fmt.Errorf("cors: %w", err)
	}
	if rt.auth, err = authn.New(cfg.Auth, authn.Options{Logger: logger.With("component", "authn"), Observe: func(r *http.Request, o authn.Outcome) {
		metrics.NoteAuth(r, o) // the reason and caller for r's access-log line
		g.metrics.ObserveAuth(o)
	}, ObserveJWKS: g.metrics.ObserveJWKS}); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	authField := cfg.Auth.ConnParamsField
	if prev != nil && reflect.DeepEqual(prev.cfg.Params, cfg.Params) &&
		prev.cfg.Auth.ConnParamsField == authField && sameFiles(prev.files, rt.files, "params") {
		// Same service, same credentials: keep its connections and cache.
		rt.par = prev.par
	} else if rt.par, err = params.New(cfg.Params, params.Options{
		Logger:         logger.With("component", "params"),
		WrapTransport:  g.tracing.Transport,
		Caller:         callerFromIdentity,
		ConsumedFields: func(*http.Request) []string { return []string{authField} },
		Observe:        g.metrics.ObserveParams,
	}); err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	if rt.upstream, err = resolveUpstream(cfg.Upstream); err != nil {
		return nil, err
	}
	if prev != nil && reflect.DeepEqual(prev.upstream, rt.upstream) && sameFiles(prev.files, rt.files, "upstream") {
		rt.proxy = prev.proxy
	} else {
		// The origin check and the session deadline follow the live
		// runtime, so a kept proxy obeys the reloaded CORS and auth.
		rt.proxy, err = proxy.New(rt.upstream, proxy.Options{
			Logger:          logger.With("component", "proxy"),
			CheckOrigin:     func(r *http.Request) bool { return g.live.Load().cors.CheckOrigin(r) },
			StripCORS:       cors.StripUpstream,
			SessionDeadline: func(r *http.Request) time.Time { return g.live.Load().auth.SessionDeadline(r) },
			OnWebSocketOpen: metrics.NoteWebSocketOpen,
			OnWebSocketEnd:  metrics.NoteWebSocket,
			OnUpstream:      metrics.NoteUpstream,
			OnUpstreamError: metrics.NoteUpstreamError,
			WrapTransport:   g.wrapUpstream,
			Tracer:          g.tracing.Tracer(),
			InjectTrace:     g.injectTrace(),
		})
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
	}
	if prev != nil && prev.proxy == rt.proxy && reflect.DeepEqual(prev.cfg.Actors, cfg.Actors) {
		// Same engine, same settings: keep the cache warm across the reload.
		// (A changed upstream.namespace changed the proxy.)
		rt.actors = prev.actors
	} else if rt.actors, err = actors.New(cfg.actorsConfig(), rt.proxy, actors.Options{
		Logger:  logger.With("component", "actors"),
		Observe: g.metrics.ObserveActorLookup,
	}); err != nil {
		return nil, fmt.Errorf("actors: %w", err)
	}
	rt.handler = g.chain(rt)
	return rt, nil
}

// logWarnings logs what cfg leaves around its own rules (Config.Warnings).
func logWarnings(logger *slog.Logger, cfg Config) {
	for _, w := range cfg.Warnings() {
		logger.Warn("configuration leaves a way around a rule", "warning", w)
	}
}

// resolveUpstream reads upstream.token_file into the token, which must be
// one the proxy can send (proxy.CheckToken).
func resolveUpstream(c proxy.Config) (proxy.Config, error) {
	if c.TokenFile == "" {
		return c, nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return c, fmt.Errorf("upstream.token_file: %w", err)
	}
	c.Token = strings.TrimRight(string(b), "\r\n")
	if err := proxy.CheckToken(c.Token); err != nil {
		return c, fmt.Errorf("upstream.token_file: %s: %w", c.TokenFile, err)
	}
	return c, nil
}

// close releases what rt built; a proxy or params client it shares with
// keep stays.
func (rt *runtime) close(keep *runtime) {
	if rt.par != nil && (keep == nil || keep.par != rt.par) {
		rt.par.Close()
	}
	if rt.auth != nil {
		rt.auth.Close()
	}
	if rt.proxy != nil && (keep == nil || keep.proxy != rt.proxy) {
		rt.proxy.Close()
	}
}

// Handler returns the public request chain of the live configuration
// (see chain); each request runs through the runtime live at its start.
func (g *Gateway) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.live.Load().handler.ServeHTTP(w, r)
	})
}

// chain builds rt's request chain, in order:
//
//	stamp (ray id, client address) → metrics + access log → tracing → CORS →
//	route classification → authentication precheck → namespace pin →
//	actor resolution → authentication → server-side params → proxy
//
// stamp comes first so that everything after it, and every answer the
// gateway makes itself, names the request by the same ray id and client
// address. The metrics and access-log layer wraps the rest (tracing's
// request span included), so it sees every answer, rejections included;
// the two metrics.Note layers hand it the route and the identity, which
// only exist inside the chain (and authn's Observe hook its decision,
// metrics.NoteAuth). CORS answers
// preflights and refuses disallowed origins before anything else runs;
// classification reads the request as the engine and the actor will
// (rivet.SanitizeRequest, rivet.ParseRequest) into a rivet.Route the later
// layers read from the context, refusing what it cannot read with
// certainty; the precheck refuses what no rule could admit before anything
// is asked of the engine, and the namespace pin (upstream.namespace) what
// names another namespace; resolution learns the namespace, name and key of
// every actor the route reaches (asking the engine about ids); authentication verifies
// and strips credentials, applies the rules to each of those actors and
// stores the caller's identity; the params layer fetches fresh connection
// params for that identity and injects them; the proxy forwards to the
// engine.
func (g *Gateway) chain(rt *runtime) http.Handler {
	tr := g.tracing
	var h http.Handler = rt.proxy
	h = tr.Step("params", rt.par.Middleware, h, nil)
	h = metrics.Note(h) // the identity
	h = tr.Step("authn", rt.auth.Middleware, h, identityAttrs)
	h = traceRoute(h) // the request's span learns the intent and the actor
	h = tr.Step("actors.resolve", rt.actors.Middleware, h, nil)
	h = rt.proxy.PinNamespace(h) // upstream.namespace: nothing is asked about another namespace
	h = rt.auth.Precheck(h)      // no engine lookups for requests no rule could admit
	h = metrics.Note(h)          // the route, also for requests resolution or authn reject
	h = tr.Step("classify", classify, h, nil)
	h = rt.cors.Middleware(h)
	h = tr.Middleware(h)
	h = metrics.Middleware(g.metrics, rt.access, h)
	h = stamp(g.clientIP, h)
	return h
}

// stamp gives each request, before anything can answer it, its ray id
// (rivet.Exchange: sent as X-Rivet-Ray-Id on the gateway's own answers and
// logged) and its client address (clientip: the TCP peer, or what trusted
// proxies reported), in one context.
func stamp(ips *clientip.Resolver, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, peer := ips.Resolve(r)
		ctx := rivet.WithExchange(r.Context(), &rivet.Exchange{RayID: rivet.NewRayID()})
		next.ServeHTTP(w, r.WithContext(clientip.WithAddrs(ctx, client, peer)))
	})
}

// wrapUpstream wraps the engine transport: tracing's client spans, then
// Options.WrapUpstream.
func (g *Gateway) wrapUpstream(rt http.RoundTripper) http.RoundTripper {
	rt = g.tracing.Transport(rt)
	if g.opts.WrapUpstream != nil {
		rt = g.opts.WrapUpstream(rt)
	}
	return rt
}

// injectTrace is the proxy's InjectTrace: nil (pass the client's
// traceparent through) unless tracing is on.
func (g *Gateway) injectTrace() func(context.Context, http.Header) {
	if g.tracing == nil {
		return nil
	}
	return g.tracing.Inject
}

// traceRoute names the request's span for the route it takes.
func traceRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := rivet.RouteFrom(r.Context()); rt != nil {
			ns := rt.Namespace
			if a := rt.Actor(); a != nil {
				ns = a.Namespace
			}
			tracing.SetRoute(r.Context(), rt.Intent.String(), rt.ActorLabel(), ns)
		}
		next.ServeHTTP(w, r)
	})
}

// identityAttrs describes the caller authn admitted, for its span: the kind
// of credential and the configured names, never a token or a subject.
func identityAttrs(r *http.Request) []attribute.KeyValue {
	id := authn.IdentityFrom(r.Context())
	if id == nil {
		return nil
	}
	out := []attribute.KeyValue{attribute.String("rivet.auth.method", id.Method)}
	if id.APIKeyID != "" {
		out = append(out, attribute.String("rivet.auth.api_key_id", id.APIKeyID))
	}
	if id.Issuer != "" {
		out = append(out, attribute.String("rivet.auth.issuer", id.Issuer))
	}
	return out
}

// OpenWebSockets counts the proxied WebSockets open, those a reload's
// replaced proxies still carry included.
func (g *Gateway) OpenWebSockets() int {
	n := 0
	for _, p := range g.proxies() {
		n += p.OpenWebSockets()
	}
	return n
}

// proxies returns the live proxy and the retired ones.
func (g *Gateway) proxies() []*proxy.Proxy {
	g.retiredMu.Lock()
	defer g.retiredMu.Unlock()
	out := make([]*proxy.Proxy, 0, 1+len(g.retired))
	if rt := g.live.Load(); rt != nil {
		out = append(out, rt.proxy)
	}
	return append(out, g.retired...)
}

// issuerNames are the values the issuer label may take: operator-chosen
// names only. (API key ids come from authn.Authenticator.APIKeyIDs, which
// includes the keys file.)
func issuerNames(c authn.Config) []string {
	out := make([]string, 0, len(c.JWT.Issuers))
	for _, is := range c.JWT.Issuers {
		out = append(out, is.Name)
	}
	return out
}

// classify stores the request's rivet.Route in its context. It first makes
// the headers read alike by every hop (rivet.SanitizeRequest: no tunnelled
// upgrades, no client-chosen hop-by-hop headers, no repeated x-rivet-*
// headers, no steering headers), then reads the target as the engine and
// the actor will (rivet.ParseRequest). Ambiguous targets, paths that are
// no RivetKit client route (the engine's other APIs are not exposed),
// and malformed conn params are refused here and never forwarded.
func classify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rivet.SanitizeRequest(r); err != nil {
			rivet.WriteError(w, r, err)
			return
		}
		rt, err := rivet.ParseRequest(r)
		if err != nil {
			rivet.WriteError(w, r, err)
			return
		}
		if rt.Intent != rivet.IntentInspector {
			// The inspector's own credential goes to the inspector only.
			rivet.StripSubprotocols(r.Header, rivet.ProtocolInspectorTokenPrefix)
		}
		// Malformed or repeated conn params are refused here: the engine
		// reads the last header but the first subprotocol entry, and stalls
		// on bad JSON in a subprotocol, while auth and params read the first.
		if rt.Intent.CarriesParams() {
			if err := rivet.CheckConnParams(r, rivet.IsUpgrade(r)); err != nil {
				rivet.WriteError(w, r, rivet.ErrInvalidRequest.Wrap(err).With("reason", err.Error()))
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(rivet.WithRoute(r.Context(), &rt)))
	})
}

func callerFromIdentity(r *http.Request) *params.Caller {
	id := authn.IdentityFrom(r.Context())
	if id == nil {
		return nil
	}
	return &params.Caller{
		Method:   id.Method,
		Subject:  id.Subject,
		Issuer:   id.Issuer,
		APIKeyID: id.APIKeyID,
		Scopes:   id.Scopes,
		Claims:   id.Claims,
	}
}

// newEcho mounts the chain on Echo, which provides the server edge: its
// own error handler (RivetKit-shaped; Echo's default would turn wrapped
// errors into 500s), panic recovery, and an IP extractor chosen on purpose:
// the gateway's own resolver (server.trusted_proxies), so c.RealIP() is
// the address the access log names. Echo's ExtractIPFromXFFHeader is not
// used: it trusts private and loopback peers unless told otherwise, and
// does not read Forwarded.
func (g *Gateway) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(io.Discard)
	e.IPExtractor = g.clientIP.Extract
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var he *echo.HTTPError
		if errors.As(err, &he) && he.Code == http.StatusNotFound {
			err = rivet.ErrNoRoute
		}
		rivet.WriteError(c.Response(), c.Request(), err)
	}
	e.Use(recoverMiddleware(g.log))
	chain := g.Handler()
	e.Any("/*", echo.WrapHandler(chain))
	e.Any("/", echo.WrapHandler(chain))
	return e
}

// recoverMiddleware turns a panic in the chain into a 500. The request's
// own Exchange is lost with the panic, so the answer gets a ray id of its
// own, the one the panic is logged with.
func recoverMiddleware(log *slog.Logger) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) (err error) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					x := &rivet.Exchange{RayID: rivet.NewRayID()}
					r := c.Request()
					c.SetRequest(r.WithContext(rivet.WithExchange(r.Context(), x)))
					log.Error("panic in request", "panic", fmt.Sprint(v), "ray_id", x.RayID, "client_ip", c.RealIP())
					err = rivet.ErrInternal
				}
			}()
			return next(c)
		}
	}
}

// Serve serves the public chain on pub and the admin endpoints on adm (nil
// when disabled) until Shutdown. It returns the first listener error.
func (g *Gateway) Serve(pub, adm net.Listener) error {
	errc := make(chan error, 2)
	go func() {
		var err error
		if g.public.TLSConfig != nil {
			err = g.public.ServeTLS(pub, "", "")
		} else {
			err = g.public.Serve(pub)
		}
		errc <- err
	}()
	n := 1
	if adm != nil {
		n++
		go func() { errc <- g.admin.Serve(adm) }()
	}
	var first error
	for range n {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = err
			go g.Shutdown(context.Background())
		}
	}
	return first
}

// Drain starts the shutdown the way Kubernetes needs it: /readyz answers
// 503 from now on, keep-alive connections are closed after their current
// request (so clients reconnect to another endpoint), and everything else
// keeps being served for server.drain_delay, or until ctx ends, while the
// pod is taken out of its Service. Shutdown follows.
func (g *Gateway) Drain(ctx context.Context) {
	if g.shuttingDown.Load() || !g.draining.CompareAndSwap(false, true) {
		return
	}
	g.public.SetKeepAlivesEnabled(false)
	d := g.cfg.Server.DrainDelay
	if d <= 0 {
		return
	}
	g.log.Info("draining before shutdown", "drain_delay", d.String(), "open_websockets", g.OpenWebSockets())
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Shutdown stops the gateway within server.shutdown_timeout (or ctx): it
// stops accepting, lets in-flight HTTP requests finish, and closes every
// proxied WebSocket with 1001 ws.going_away. http.Server.Shutdown does not
// see hijacked connections, so the proxy closes those itself, in parallel.
func (g *Gateway) Shutdown(ctx context.Context) error {
	if !g.shuttingDown.CompareAndSwap(false, true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Server.ShutdownTimeout)
	defer cancel()
	// Waits out a reload in progress; none starts after shuttingDown.
	g.reloadMu.Lock()
	proxies := g.proxies()
	g.reloadMu.Unlock()
	g.log.Info("shutting down", "open_websockets", g.OpenWebSockets())
	var wg sync.WaitGroup
	var httpErr error
	wsErrs := make([]error, len(proxies))
	wg.Go(func() { httpErr = g.public.Shutdown(ctx) })
	for i, p := range proxies {
		wg.Go(func() { wsErrs[i] = p.Shutdown(ctx) })
	}
	wg.Wait()
	wsErr := errors.Join(wsErrs...)
	if httpErr != nil {
		_ = g.public.Close()
	}
	_ = g.admin.Shutdown(ctx)
	g.Close()
	return errors.Join(httpErr, wsErr)
}

// Close releases background work (JWKS refreshers, idle connections).
func (g *Gateway) Close() {
	if rt := g.live.Load(); rt != nil {
		rt.close(nil)
	}
	g.retiredMu.Lock()
	defer g.retiredMu.Unlock()
	for _, p := range g.retired {
		p.Close()
	}
	g.retired = nil
	// The spans of the last requests go out before the process ends; the
	// exporter's goroutine stops.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.tracing.Shutdown(ctx); err != nil {
		g.log.Warn("flushing traces failed", "error", err)
	}
}
