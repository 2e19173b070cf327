// Package tracing is the gateway's OpenTelemetry tracing: a span per
// request, with children for the chain's steps (classification, actor
// resolution, authentication, params) and for every call it makes (the
// engine, the params service), W3C trace context taken from the client and
// handed on to those calls. Off by default; exported over OTLP/HTTP.
//
// Attributes hold intents, actor names, namespaces, status codes, reasons
// and configured names only: never a credential, a path (ids and @tokens
// travel in paths), params or a query.
package tracing

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rivet-gateway/rivet-gateway/config"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is the tracing: section.
type Config struct {
	// Enabled turns tracing on. Default false: no spans, and the client's
	// traceparent and tracestate pass through to the engine untouched.
	Enabled bool `yaml:"enabled"`

	// Endpoint is the OTLP/HTTP collector base URL, e.g.
	// "http://otel-collector:4318" (spans go to <Endpoint>/v1/traces).
	// Required when enabled.
	Endpoint string `yaml:"endpoint"`

	// Headers are sent with every export (e.g. an API key of a hosted
	// collector). Write secrets as ${ENV}.
	Headers map[string]string `yaml:"headers"`

	// SampleRatio is the fraction of new traces recorded, 0 to 1; a
	// request that arrives with a sampled traceparent is always recorded
	// (parent-based). Default 1.
	SampleRatio float64 `yaml:"sample_ratio"`

	// ServiceName is the service.name resource attribute. Default
	// "rivet-gateway".
	ServiceName string `yaml:"service_name"`

	// Timeout bounds one export. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns the defaults: tracing off.
func DefaultConfig() Config {
	return Config{SampleRatio: 1, ServiceName: "rivet-gateway", Timeout: 10 * time.Second}
}

// Validate reports every problem, each a *config.PathError under path.
func (c *Config) Validate(path string) error {
	var errs []error
	if c.Enabled {
		u, err := url.Parse(c.Endpoint)
		switch {
		case c.Endpoint == "":
			errs = append(errs, config.Errorf(path+".endpoint", "required when tracing is enabled (e.g. http://otel-collector:4318)"))
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, config.Errorf(path+".endpoint", "want an http(s) URL, got %q", c.Endpoint))
		}
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		errs = append(errs, config.Errorf(path+".sample_ratio", "must be between 0 and 1"))
	}
	if c.ServiceName == "" {
		errs = append(errs, config.Errorf(path+".service_name", "must not be empty"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, config.Errorf(path+".timeout", "must be positive"))
	}
	return errors.Join(errs...)
}

// Tracing holds the tracer provider. A nil *Tracing traces nothing: every
// method is then a no-op (or passes its argument through).
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator

	shutdown    sync.Once
	shutdownErr error
}

// Options are New's optional dependencies.
type Options struct {
	// Exporter replaces the OTLP exporter (tests pass an in-memory one).
	Exporter sdktrace.SpanExporter
	// Version is the service.version resource attribute.
	Version string
}

// New builds the tracer provider for cfg, or returns nil when tracing is
// off. Call Shutdown to flush.
func New(cfg Config, opts Options) (*Tracing, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	exp := opts.Exporter
	if exp == nil {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("tracing.endpoint: %w", err)
		}
		eo := []otlptracehttp.Option{
			otlptracehttp.WithEndpointURL(u.JoinPath("v1", "traces").String()),
			otlptracehttp.WithTimeout(cfg.Timeout),
		}
		if len(cfg.Headers) > 0 {
			eo = append(eo, otlptracehttp.WithHeaders(cfg.Headers))
		}
		if exp, err = otlptracehttp.New(context.Background(), eo...); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(opts.Version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Tracing{
		provider: tp,
		tracer:   tp.Tracer("github.com/rivet-gateway/rivet-gateway"),
		prop:     propagation.TraceContext{},
	}, nil
}

// Shutdown flushes the spans not yet exported and stops the provider (and
// its exporting goroutine). Idempotent.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.shutdown.Do(func() { t.shutdownErr = t.provider.Shutdown(ctx) })
	return t.shutdownErr
}

// Flush exports the spans ended so far.
func (t *Tracing) Flush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Tracer returns the gateway's tracer (a no-op one when t is nil).
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return noop.NewTracerProvider().Tracer("")
	}
	return t.tracer
}

// Middleware starts the request's server span, a child of the client's
// traceparent when it sent one. The span is named for the intent once the
// route is known (SetRoute); it records the status the request got.
func (t *Tracing) Middleware(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, "rivet-gateway", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.code()))
		if sw.code() >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code()))
		}
	})
}

// Step wraps one layer of the chain (a func(next) handler) so that the
// time it spends before it hands on, or answers by itself, is a child
// span named name. attrs, when set, reads attributes off the request as
// the layer hands it on (e.g. what it decided).
func (t *Tracing) Step(name string, layer func(http.Handler) http.Handler, next http.Handler, attrs func(*http.Request) []attribute.KeyValue) http.Handler {
	if t == nil {
		return layer(next)
	}
	inner := layer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, _ := r.Context().Value(stepKey{}).(*stepState)
		if st == nil || st.name != name {
			next.ServeHTTP(w, r)
			return
		}
		if attrs != nil {
			st.span.SetAttributes(attrs(r)...)
		}
		st.end()
		// The steps after this one are children of the request's span,
		// not of this step's.
		ctx := context.WithValue(trace.ContextWithSpan(r.Context(), st.parent), stepKey{}, st.outer)
		next.ServeHTTP(w, r.WithContext(ctx))
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parent := trace.SpanFromContext(r.Context())
		ctx, span := t.tracer.Start(r.Context(), name)
		outer, _ := r.Context().Value(stepKey{}).(*stepState)
		st := &stepState{name: name, span: span, parent: parent, outer: outer}
		sw := &statusWriter{ResponseWriter: w}
		inner.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, stepKey{}, st)))
		if !st.ended() {
			// The layer answered by itself: a rejection.
			span.SetAttributes(semconv.HTTPResponseStatusCode(sw.code()))
			if sw.code() >= 400 {
				span.SetStatus(codes.Error, "rejected")
			}
			st.end()
		}
	})
}

type stepKey struct{}

type stepState struct {
	name   string
	span   trace.Span
	parent trace.Span
	outer  *stepState
	once   sync.Once
	done   bool
}

func (s *stepState) end() {
	s.once.Do(func() {
		s.done = true
		s.span.End()
	})
}

func (s *stepState) ended() bool { return s.done }

// SetRoute names the request's span for its intent and records the actor
// it reaches (names only).
func SetRoute(ctx context.Context, intent, actor, namespace string) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetName("rivet-gateway " + intent)
	span.SetAttributes(attribute.String("rivet.intent", intent))
	if actor != "" {
		span.SetAttributes(attribute.String("rivet.actor.name", actor))
	}
	if namespace != "" {
		span.SetAttributes(attribute.String("rivet.namespace", namespace))
	}
}

// Transport wraps rt so that every request it sends for a traced request
// is a client span, a child of the request's, carrying the trace context
// (traceparent) to the other side in place of whatever the client sent.
// The span records the method, the server's host and the status only: not
// otelhttp's url.full, since paths carry actor ids and @tokens and queries
// rvt-token. Requests made outside a trace (readiness checks) are not
// recorded.
func (t *Tracing) Transport(rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	return &transport{base: rt, t: t}
}

type transport struct {
	base http.RoundTripper
	t    *Tracing
}

func (tr *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		return tr.base.RoundTrip(r)
	}
	ctx, span := tr.t.tracer.Start(r.Context(), "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.ServerAddress(r.URL.Hostname())))
	r = r.Clone(ctx) // RoundTrippers must not change the caller's request
	tr.t.Inject(ctx, r.Header)
	res, err := tr.base.RoundTrip(r)
	if err != nil {
		span.SetStatus(codes.Error, "request failed")
		span.End()
		return nil, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(res.StatusCode))
	if res.StatusCode >= 500 {
		span.SetStatus(codes.Error, http.StatusText(res.StatusCode))
	}
	span.End()
	return res, nil
}

// Inject writes the trace context of ctx into h (for the WebSocket dial,
// which does not go through Transport), replacing the client's.
func (t *Tracing) Inject(ctx context.Context, h http.Header) {
	if t == nil {
		return
	}
	h.Del("Traceparent")
	h.Del("Tracestate")
	t.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// statusWriter records the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Hijack implements http.Hijacker (WebSocket upgrades type-assert it); a
// hijacked request counts as 101.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return c, brw, err
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
