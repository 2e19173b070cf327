package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// traceHeaders records the traceparent each request a server got carried.
type traceHeaders struct {
	mu   sync.Mutex
	seen []string
}

func (h *traceHeaders) record(r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, r.Header.Get("Traceparent"))
}

func (h *traceHeaders) last(t *testing.T) string {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		t.Fatal("no request arrived")
	}
	return h.seen[len(h.seen)-1]
}

// tracedGateway serves a gateway with tracing into exp, an API key, params
// from a params service, in front of an engine that records traceparents.
func tracedGateway(t *testing.T, exp sdktrace.SpanExporter, enabled bool) (front *httptest.Server, g *Gateway, engine, params *traceHeaders) {
	t.Helper()
	engine, params = &traceHeaders{}, &traceHeaders{}
	up := websocket.Upgrader{Subprotocols: []string{"rivet"}}
	eng := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		engine.record(r)
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, nil)
			if err == nil {
				_ = c.WriteMessage(websocket.TextMessage, []byte(`{"hello":1}`))
				c.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"output":1}`)
	}))
	t.Cleanup(eng.Close)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params.record(r)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token":"from-service"}`)
	}))
	t.Cleanup(ps.Close)
	cfg := DefaultConfig()
	cfg.Server.Listen, cfg.Admin.Listen, cfg.Upstream.URL = "127.0.0.1:0", "127.0.0.1:1", eng.URL
	sum := sha256.Sum256([]byte(testAPIKey))
	cfg.Auth.APIKeys.Keys = []authn.APIKey{{ID: "backend", SHA256: hex.EncodeToString(sum[:])}}
	cfg.Params.Source, cfg.Params.HTTP.URL = "http", ps.URL
	cfg.Tracing.Enabled, cfg.Tracing.Endpoint = enabled, "http://127.0.0.1:1"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, slog.New(slog.DiscardHandler), Options{SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	front = httptest.NewServer(g.echo)
	t.Cleanup(func() { front.Close(); g.Close() })
	return front, g, engine, params
}

const (
	clientTrace  = "0af7651916cd43dd8448eb211c80319c"
	clientParent = "b7ad6b7169203331"
	tracedAction = "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get&rvt-key=secret-key-part&rvt-token=secret-rvt-token"
)

// TestTracing: a request's spans (the request, its steps, the calls to the
// params service and the engine) form one trace under the client's
// traceparent; the engine and the params service get the trace context of
// the spans that called them; no attribute holds a credential, a path or a
// query.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	front, g, engine, params := tracedGateway(t, exp, true)

	req, _ := http.NewRequest(http.MethodPost, front.URL+tracedAction, strings.NewReader(`{"args":[]}`))
	req.Header.Set("X-API-Key", testAPIKey)
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientParent+"-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", res.StatusCode)
	}
	if err := g.tracing.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = append(byName[s.Name], s)
		if s.SpanContext.TraceID().String() != clientTrace {
			t.Errorf("span %q in trace %s, want the client's %s", s.Name, s.SpanContext.TraceID(), clientTrace)
		}
		for _, a := range append(s.Attributes, s.Resource.Attributes()...) {
			v := a.Value.Emit()
			if strings.Contains(v, "secret") || strings.Contains(v, testAPIKey) || strings.Contains(v, "/gateway") || strings.Contains(v, "rvt-") {
				t.Errorf("span %q attribute %s = %q leaks a path, query or credential", s.Name, a.Key, v)
			}
		}
	}
	root := one(t, byName, "rivet-gateway action")
	if root.Parent.SpanID().String() != clientParent || root.SpanKind != trace.SpanKindServer {
		t.Errorf("request span: parent %s kind %v, want the client's %s, server", root.Parent.SpanID(), root.SpanKind, clientParent)
	}
	if !hasAttr(root.Attributes, "rivet.intent", "action") || !hasAttr(root.Attributes, "rivet.actor.name", "counter") ||
		!hasAttr(root.Attributes, "http.response.status_code", "200") {
		t.Errorf("request span attributes %v: want intent action, actor counter, status 200", root.Attributes)
	}
	for _, step := range []string{"classify", "actors.resolve", "authn", "params"} {
		if s := one(t, byName, step); s.Parent.SpanID() != root.SpanContext.SpanID() {
			t.Errorf("step %q: parent %s, want the request span %s", step, s.Parent.SpanID(), root.SpanContext.SpanID())
		}
	}
	if a := one(t, byName, "authn"); !hasAttr(a.Attributes, "rivet.auth.method", "api_key") || !hasAttr(a.Attributes, "rivet.auth.api_key_id", "backend") {
		t.Errorf("authn span attributes %v: want method api_key, key backend", a.Attributes)
	}
	calls := byName["HTTP POST"]
	if len(calls) != 2 {
		t.Fatalf("client spans: got %d, want 2 (params service, engine)", len(calls))
	}
	paramsStep := one(t, byName, "params")
	var toParams, toEngine tracetest.SpanStub
	for _, c := range calls {
		if c.Parent.SpanID() == paramsStep.SpanContext.SpanID() {
			toParams = c
		} else if c.Parent.SpanID() == root.SpanContext.SpanID() {
			toEngine = c
		}
	}
	if !toParams.SpanContext.IsValid() || !toEngine.SpanContext.IsValid() {
		t.Fatalf("client spans %v: want one under params, one under the request", calls)
	}
	if want := "00-" + clientTrace + "-" + toEngine.SpanContext.SpanID().String() + "-01"; engine.last(t) != want {
		t.Errorf("engine traceparent: got %q, want %q (its client span)", engine.last(t), want)
	}
	if want := "00-" + clientTrace + "-" + toParams.SpanContext.SpanID().String() + "-01"; params.last(t) != want {
		t.Errorf("params service traceparent: got %q, want %q", params.last(t), want)
	}

	// A rejection ends in the authn span, marked as an error; nothing is called.
	exp.Reset()
	req, _ = http.NewRequest(http.MethodPost, front.URL+tracedAction, strings.NewReader(`{"args":[]}`))
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	_ = g.tracing.Flush(context.Background())
	byName = map[string][]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byName[s.Name] = append(byName[s.Name], s)
	}
	if a := one(t, byName, "authn"); a.Status.Code != codes.Error || !hasAttr(a.Attributes, "http.response.status_code", "401") {
		t.Errorf("authn span of a rejection: status %v attributes %v, want an error with 401", a.Status, a.Attributes)
	}
	if len(byName["HTTP POST"]) != 0 || len(byName["params"]) != 0 {
		t.Errorf("a rejected request called out: %v", byName)
	}

	// A WebSocket: the handshake with the engine is a span, whose context the dial carries.
	exp.Reset()
	d := websocket.Dialer{Subprotocols: []string{"rivet"}, HandshakeTimeout: 5 * time.Second}
	h := http.Header{"X-Api-Key": {testAPIKey}}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(front.URL, "http")+strings.Replace(tracedAction, "/action/increment", "/connect", 1), h)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _ = conn.ReadMessage()
	conn.Close()
	_ = g.tracing.Flush(context.Background())
	byName = map[string][]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byName[s.Name] = append(byName[s.Name], s)
	}
	ws := one(t, byName, "upstream.websocket")
	if !hasAttr(ws.Attributes, "rivet.websocket.upgraded", "true") {
		t.Errorf("upstream.websocket attributes %v, want upgraded", ws.Attributes)
	}
	if want := ws.SpanContext.SpanID().String(); !strings.Contains(engine.last(t), want) {
		t.Errorf("engine traceparent on the WebSocket dial: %q, want span %s", engine.last(t), want)
	}
}

// TestTracingOffPassesTraceparent: with tracing off the client's trace
// context reaches the engine unchanged.
func TestTracingOffPassesTraceparent(t *testing.T) {
	front, _, engine, _ := tracedGateway(t, nil, false)
	req, _ := http.NewRequest(http.MethodPost, front.URL+tracedAction, strings.NewReader(`{"args":[]}`))
	req.Header.Set("X-API-Key", testAPIKey)
	tp := "00-" + clientTrace + "-" + clientParent + "-01"
	req.Header.Set("Traceparent", tp)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := engine.last(t); got != tp {
		t.Errorf("engine traceparent: got %q, want the client's %q", got, tp)
	}
}

func one(t *testing.T, byName map[string][]tracetest.SpanStub, name string) tracetest.SpanStub {
	t.Helper()
	if len(byName[name]) != 1 {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		t.Fatalf("spans named %q: got %d, want 1 (spans: %q)", name, len(byName[name]), names)
	}
	return byName[name][0]
}

func hasAttr(attrs []attribute.KeyValue, key, value string) bool {
	for _, a := range attrs {
		if string(a.Key) == key && a.Value.Emit() == value {
			return true
		}
	}
	return false
}
