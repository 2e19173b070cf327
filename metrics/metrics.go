// Package metrics observes the gateway's traffic: Prometheus metrics
// (registered on a registry the caller passes in, never the global one)
// and the access log. Middleware wraps the whole request chain but the
// layer that stamps each request with its ray id and client address; the
// chain's inner layers report what only they know (the route, the
// identity, the authentication decision, how a WebSocket ended) through
// Note, NoteAuth and NoteWebSocket, and the authn and params hooks feed
// ObserveAuth and ObserveParams.
//
// Every label value is bounded: intents, status classes, configured actor
// names, issuer names and API key ids, else "other". Actor ids, keys,
// subjects, paths and credentials never become labels.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rivet-gateway/rivet-gateway/actors"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/params"
	"github.com/rivet-gateway/rivet-gateway/proxy"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

const (
	namespace  = "rivet_gateway"
	labelOther = "other"
	labelNone  = "none"
)

// Options are New's inputs besides the config.
type Options struct {
	// IssuerNames and APIKeyIDs are the configured JWT issuer names and API
	// key ids: the only values of the issuer and api_key_id labels, until
	// SetAuthLabels replaces them.
	IssuerNames []string
	APIKeyIDs   []string
	// OpenWebSockets, when set, backs the open-WebSockets gauge.
	OpenWebSockets func() int
	// Runtime registers the Go runtime and process collectors.
	Runtime bool
}

// Metrics holds the gateway's collectors. A nil *Metrics records nothing,
// so callers need not check whether metrics are enabled.
type Metrics struct {
	actors set
	// authLabels bounds the issuer and api_key_id labels; a config reload
	// replaces it (SetAuthLabels).
	authLabels atomic.Pointer[authLabels]

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	wsDuration      *prometheus.HistogramVec
	wsMessages      *prometheus.CounterVec
	wsBytes         *prometheus.CounterVec
	wsCloses        *prometheus.CounterVec
	auth            *prometheus.CounterVec
	paramsDuration  *prometheus.HistogramVec
	paramsFetches   *prometheus.CounterVec
	paramsAttempts  *prometheus.CounterVec
	paramsCacheHits *prometheus.CounterVec
	overhead        *prometheus.HistogramVec
	upstreamErrors  *prometheus.CounterVec
	reloads         *prometheus.CounterVec
	reloadOK        prometheus.Gauge
	reloadTime      prometheus.Gauge
	revalidated     prometheus.Counter
	actorLookups    *prometheus.CounterVec
	actorLookupTime prometheus.Histogram
	jwksFetches     *prometheus.CounterVec
	jwksLastSuccess *prometheus.GaugeVec
	jwksKeys        *prometheus.GaugeVec
}

type authLabels struct{ issuers, keys set }

// New creates the collectors and registers them on reg.
func New(reg prometheus.Registerer, cfg Config, opts Options) (*Metrics, error) {
	m := &Metrics{
		actors: newSet(cfg.ActorNames),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests by route intent, actor name and status class (1xx: WebSocket upgrades).",
		}, []string{"intent", "actor", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer an HTTP request (WebSockets excluded), by route intent.",
			Buckets: prometheus.DefBuckets,
		}, []string{"intent"}),
		wsDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "websocket_duration_seconds",
			Help:    "Lifetime of proxied WebSockets, by route intent and actor name.",
			Buckets: []float64{1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600},
		}, []string{"intent", "actor"}),
		wsMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "websocket_messages_total",
			Help: "WebSocket messages proxied; direction in is client to engine, out engine to client.",
		}, []string{"direction"}),
		wsBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "websocket_bytes_total",
			Help: "WebSocket payload bytes proxied; direction in is client to engine, out engine to client.",
		}, []string{"direction"}),
		wsCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "websocket_closes_total",
			Help: "Proxied WebSockets by close code (the gateway's, else the client's, else the engine's; none, or other for unregistered codes).",
		}, []string{"code"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "auth_outcomes_total",
			Help: "Authentication decisions by result, reason, method, configured issuer name and API key id.",
		}, []string{"result", "reason", "method", "issuer", "api_key_id"}),
		paramsDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "params_fetch_duration_seconds",
			Help:    "Time to resolve and inject connection params, retries included, by source.",
			Buckets: []float64{.0005, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"source"}),
		paramsFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "params_fetches_total",
			Help: "Connection-params resolutions by source and cause (ok on success).",
		}, []string{"source", "cause"}),
		paramsAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "params_fetch_attempts_total",
			Help: "Requests made to the params service, by source.",
		}, []string{"source"}),
		paramsCacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "params_cache_hits_total",
			Help: "Connection-params resolutions answered from the cache, by source.",
		}, []string{"source"}),
	}
	m.overhead = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "gateway_overhead_seconds",
		Help:    "Time the gateway spends on a request before contacting the engine (CORS, auth, params, proxy set-up), by route intent.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"intent"})
	m.upstreamErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "upstream_errors_total",
		Help: "Requests and WebSocket upgrades the engine failed, by kind (unavailable, timeout, other) and route intent.",
	}, []string{"kind", "intent"})
	m.actorLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "actor_resolutions_total",
		Help: "Actor ids resolved to namespace, name and key before authorization, by result (hit: cache, miss: asked the engine, not_found, error).",
	}, []string{"result"})
	m.actorLookupTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "actor_resolution_duration_seconds",
		Help:    "Time to resolve one actor id that was not in the cache (the engine lookup, or waiting on a shared one).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	m.jwksFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "jwks_fetches_total",
		Help: "Fetches of a JWKS issuer's key set (at start, on refresh), by configured issuer name and result (success, failure).",
	}, []string{"issuer", "result"})
	m.jwksLastSuccess = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "jwks_last_success_timestamp_seconds",
		Help: "When a JWKS issuer's key set was last loaded (Unix seconds), by configured issuer name; absent until the first success.",
	}, []string{"issuer"})
	m.jwksKeys = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Name: "jwks_keys",
		Help: "Keys in a JWKS issuer's last loaded key set, by configured issuer name.",
	}, []string{"issuer"})
	m.SetAuthLabels(opts.IssuerNames, opts.APIKeyIDs)
	m.newReloadCollectors()
	cs := []prometheus.Collector{
		m.requests, m.requestDuration, m.wsDuration, m.wsMessages, m.wsBytes, m.wsCloses,
		m.auth, m.paramsDuration, m.paramsFetches, m.paramsAttempts, m.paramsCacheHits,
		m.overhead, m.upstreamErrors, m.reloads, m.reloadOK, m.reloadTime, m.revalidated,
		m.actorLookups, m.actorLookupTime, m.jwksFetches, m.jwksLastSuccess, m.jwksKeys,
	}
	if f := opts.OpenWebSockets; f != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "websockets_open",
			Help: "Proxied WebSockets currently open.",
		}, func() float64 { return float64(f()) }))
	}
	if opts.Runtime {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Handler serves the metrics gathered by g in the Prometheus text format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// SetAuthLabels sets the values the issuer and api_key_id labels may take:
// the configured issuer names and API key ids (others count as "other").
func (m *Metrics) SetAuthLabels(issuerNames, apiKeyIDs []string) {
	if m == nil {
		return
	}
	m.authLabels.Store(&authLabels{issuers: newSet(issuerNames), keys: newSet(apiKeyIDs)})
}

// ObserveAuth counts one authentication decision (authn.Options.Observe).
func (m *Metrics) ObserveAuth(o authn.Outcome) {
	if m == nil {
		return
	}
	method := o.Method
	if method == "" {
		method = labelNone
	}
	l := m.authLabels.Load()
	m.auth.WithLabelValues(o.Result, orNone(o.Reason), method, l.issuers.label(o.Issuer), l.keys.label(o.APIKeyID)).Inc()
}

// ObserveParams counts one params resolution (params.Options.Observe).
func (m *Metrics) ObserveParams(f params.Fetch) {
	if m == nil {
		return
	}
	cause := f.Cause
	if cause == params.CauseNone {
		cause = "ok"
	}
	m.paramsDuration.WithLabelValues(f.Source).Observe(f.Duration.Seconds())
	m.paramsFetches.WithLabelValues(f.Source, cause).Inc()
	if f.Attempts > 0 {
		m.paramsAttempts.WithLabelValues(f.Source).Add(float64(f.Attempts))
	}
	if f.CacheHit {
		m.paramsCacheHits.WithLabelValues(f.Source).Inc()
	}
}

// ObserveJWKS records one JWKS fetch (authn.Options.ObserveJWKS).
func (m *Metrics) ObserveJWKS(f authn.JWKSFetch) {
	if m == nil {
		return
	}
	// f.Issuer is a configured issuer name (bounded), and the first fetch
	// of a reloaded configuration's issuer comes before SetAuthLabels.
	issuer := f.Issuer
	if !f.OK {
		m.jwksFetches.WithLabelValues(issuer, "failure").Inc()
		return
	}
	m.jwksFetches.WithLabelValues(issuer, "success").Inc()
	m.jwksLastSuccess.WithLabelValues(issuer).Set(float64(f.At.UnixNano()) / 1e9)
	m.jwksKeys.WithLabelValues(issuer).Set(float64(f.Keys))
}

// ObserveActorLookup counts one actor id resolution
// (actors.Options.Observe).
func (m *Metrics) ObserveActorLookup(l actors.Lookup) {
	if m == nil {
		return
	}
	m.actorLookups.WithLabelValues(l.Result).Inc()
	if l.Result != actors.ResultHit {
		m.actorLookupTime.Observe(l.Duration.Seconds())
	}
}

// observeRequest counts one finished HTTP request or WebSocket.
func (m *Metrics) observeRequest(rt *rivet.Route, status int, d time.Duration, ws *proxy.Stats) {
	if m == nil {
		return
	}
	intent, actor := rivet.IntentUnknown.String(), labelNone
	if rt != nil {
		intent = rt.Intent.String()
		if n := rt.ActorLabel(); n != "" {
			actor = m.actors.label(n)
		}
	}
	m.requests.WithLabelValues(intent, actor, statusClass(status)).Inc()
	if ws == nil {
		m.requestDuration.WithLabelValues(intent).Observe(d.Seconds())
		return
	}
	m.wsDuration.WithLabelValues(intent, actor).Observe(ws.Duration.Seconds())
	m.wsMessages.WithLabelValues("in").Add(float64(ws.MessagesIn))
	m.wsMessages.WithLabelValues("out").Add(float64(ws.MessagesOut))
	m.wsBytes.WithLabelValues("in").Add(float64(ws.BytesIn))
	m.wsBytes.WithLabelValues("out").Add(float64(ws.BytesOut))
	m.wsCloses.WithLabelValues(closeLabel(closeCode(ws))).Inc()
}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return labelOther
	}
	return strconv.Itoa(status/100) + "xx"
}

// closeCode is the code that ended ws: the gateway's, else the client's,
// else the engine's; 0 when none was sent.
func closeCode(ws *proxy.Stats) int {
	for _, c := range []int{ws.GatewayCloseCode, ws.ClientCloseCode, ws.UpstreamCloseCode} {
		if c != 0 {
			return c
		}
	}
	return 0
}

func closeLabel(code int) string {
	switch {
	case code == 0:
		return labelNone
	case code >= 1000 && code <= 1015:
		return strconv.Itoa(code)
	}
	return labelOther
}

func orNone(s string) string {
	if s == "" {
		return labelNone
	}
	return s
}

// set bounds a label to configured values.
type set map[string]struct{}

func newSet(vs []string) set {
	s := make(set, len(vs))
	for _, v := range vs {
		s[v] = struct{}{}
	}
	return s
}

// label is v when configured, "none" when empty, "other" otherwise.
func (s set) label(v string) string {
	if v == "" {
		return labelNone
	}
	if _, ok := s[v]; ok {
		return v
	}
	return labelOther
}

// observeUpstream records the gateway's added latency and an upstream
// failure, when the request got that far.
func (m *Metrics) observeUpstream(rec *record, start time.Time) {
	if m == nil || (rec.upstreamAt.IsZero() && rec.upstreamEr == "") {
		return
	}
	intent := rivet.IntentUnknown.String()
	if rec.route != nil {
		intent = rec.route.Intent.String()
	}
	if !rec.upstreamAt.IsZero() {
		m.overhead.WithLabelValues(intent).Observe(rec.upstreamAt.Sub(start).Seconds())
	}
	if rec.upstreamEr != "" {
		m.upstreamErrors.WithLabelValues(rec.upstreamEr, intent).Inc()
	}
}

// upstreamErrorKind bounds the kind label: unavailable (refused, reset,
// DNS, TLS, 5xx), timeout, or other.
func upstreamErrorKind(e *rivet.Error) string {
	switch {
	case e.Status == http.StatusGatewayTimeout:
		return "timeout"
	case e.Group == rivet.ErrUpstreamUnavailable.Group && e.Code == rivet.ErrUpstreamUnavailable.Code:
		return "unavailable"
	default:
		return "other"
	}
}
