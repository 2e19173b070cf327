package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string // "" valid
	}{
		{"defaults (off)", func(*Config) {}, ""},
		{"on with an endpoint", func(c *Config) { c.Enabled, c.Endpoint = true, "http://collector:4318" }, ""},
		{"on without an endpoint", func(c *Config) { c.Enabled = true }, "tracing.endpoint: required"},
		{"endpoint not http", func(c *Config) { c.Enabled, c.Endpoint = true, "grpc://x:4317" }, "tracing.endpoint: want an http(s) URL"},
		{"ratio over 1", func(c *Config) { c.SampleRatio = 1.5 }, "tracing.sample_ratio"},
		{"no service name", func(c *Config) { c.ServiceName = "" }, "tracing.service_name"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate("tracing")
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate: got %v, want %q", err, tt.want)
			}
		})
	}
}

// TestOff: tracing off is a nil *Tracing whose every method passes through.
func TestOff(t *testing.T) {
	tr, err := New(DefaultConfig(), Options{})
	if err != nil || tr != nil {
		t.Fatalf("New(off) = %v, %v; want nil, nil", tr, err)
	}
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	rec := httptest.NewRecorder()
	tr.Middleware(next).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 299 {
		t.Errorf("Middleware(off): got %d, want the handler's 299", rec.Code)
	}
	if rt := tr.Transport(http.DefaultTransport); rt != http.DefaultTransport {
		t.Errorf("Transport(off) wrapped the transport")
	}
	h := http.Header{"Traceparent": {"client's"}}
	tr.Inject(context.Background(), h)
	if h.Get("Traceparent") != "client's" {
		t.Errorf("Inject(off) changed the client's traceparent")
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestTransportOnlyInTraces: calls made outside a traced request (the
// readiness check) make no span and keep their headers.
func TestTransportOnlyInTraces(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	c := DefaultConfig()
	c.Enabled, c.Endpoint = true, "http://127.0.0.1:1"
	tr, err := New(c, Options{Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Get("Traceparent") }))
	defer srv.Close()
	client := &http.Client{Transport: tr.Transport(http.DefaultTransport)}
	res, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	_ = tr.Flush(context.Background())
	if got != "" || len(exp.GetSpans()) != 0 {
		t.Errorf("untraced call: traceparent %q, %d spans; want none", got, len(exp.GetSpans()))
	}
	var _ sdktrace.SpanExporter = exp
}
