package metrics

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/clientip"
	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
	"github.com/rivet-gateway/rivet-gateway/proxy"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

const testRay = "gw-00000000000000aa"

// stamped is next behind what the gateway's first layer does: a ray id
// (rivet.Exchange) and the client and peer addresses (clientip).
func stamped(client, peer string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := rivet.WithExchange(r.Context(), &rivet.Exchange{RayID: testRay})
		ctx = clientip.WithAddrs(ctx, netip.MustParseAddr(client), netip.MustParseAddr(peer))
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// jsonAccessLog is an access log writing JSON lines to buf.
func jsonAccessLog(t *testing.T, buf *syncbuf.Buffer) *AccessLog {
	t.Helper()
	al, err := NewAccessLog(DefaultAccessLogConfig(), slog.New(slog.NewJSONHandler(buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return al
}

// oneLine decodes the single line in buf, without the time and level.
func oneLine(t *testing.T, buf *syncbuf.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("access log: got %d lines, want 1:\n%s", len(lines), buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("access log line %q: %v", lines[0], err)
	}
	delete(m, "time")
	delete(m, "level")
	return m
}

// checkDurations checks that each key is a JSON number (milliseconds)
// within [0, max] and removes it, so the rest compares exactly.
func checkDurations(t *testing.T, line map[string]any, max float64, keys ...string) {
	t.Helper()
	for _, k := range keys {
		v, ok := line[k].(float64)
		if !ok || v < 0 || v > max {
			t.Errorf("%s: got %v (%T), want a number of milliseconds in [0, %v]", k, line[k], line[k], max)
		}
		delete(line, k)
	}
	if _, ok := line["duration"]; ok {
		t.Errorf("line has a unitless duration key: %v", line)
	}
}

func TestAccessLogRejections(t *testing.T) {
	route := &rivet.Route{Intent: rivet.IntentAction, ActorName: "counter"}
	tests := []struct {
		name    string
		outcome authn.Outcome
		err     error
		want    map[string]any
	}{
		{
			name:    "403: reason and the verified caller",
			outcome: authn.Outcome{Result: authn.ResultForbidden, Reason: "key_binding", Method: "jwt", Issuer: "auth0", Subject: "alice"},
			err:     authn.ErrForbidden.With("reason", "key_binding"),
			want: map[string]any{"msg": "request", "ray_id": testRay, "client_ip": "198.51.100.7", "peer_ip": "10.0.0.2",
				"intent": "action", "actor": "counter", "method": "POST", "status": 403.0, "error": "auth.forbidden",
				"auth_reason": "key_binding", "bytes_in": 2.0, "auth": "jwt", "subject": "alice", "issuer": "auth0"},
		},
		{
			name:    "403 for an API key: its id",
			outcome: authn.Outcome{Result: authn.ResultForbidden, Reason: "missing_scope", Method: "api_key", APIKeyID: "billing"},
			err:     authn.ErrForbidden.With("reason", "missing_scope"),
			want: map[string]any{"msg": "request", "ray_id": testRay, "client_ip": "198.51.100.7", "peer_ip": "10.0.0.2",
				"intent": "action", "actor": "counter", "method": "POST", "status": 403.0, "error": "auth.forbidden",
				"auth_reason": "missing_scope", "bytes_in": 2.0, "auth": "api_key", "api_key_id": "billing"},
		},
		{
			name:    "401: reason, no caller",
			outcome: authn.Outcome{Result: authn.ResultUnauthorized, Reason: "expired"},
			err:     authn.ErrUnauthorized.With("reason", "expired"),
			want: map[string]any{"msg": "request", "ray_id": testRay, "client_ip": "198.51.100.7", "peer_ip": "10.0.0.2",
				"intent": "action", "actor": "counter", "method": "POST", "status": 401.0, "error": "auth.unauthorized",
				"auth_reason": "expired", "bytes_in": 2.0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			h := stamped("198.51.100.7", "10.0.0.2", Middleware(nil, jsonAccessLog(t, &logs), noteRoute(route, func(w http.ResponseWriter, r *http.Request) {
				Note(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					NoteAuth(r, tt.outcome)
					rivet.WriteError(w, r, tt.err)
				})).ServeHTTP(w, r)
			})))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/gateway/counter/action/x", strings.NewReader("{}")))
			if got := rec.Header().Get(rivet.HeaderRayID); got != testRay {
				t.Errorf("X-Rivet-Ray-Id: got %q, want the logged %s", got, testRay)
			}
			line := oneLine(t, &logs)
			if got := line["bytes_out"]; got != float64(rec.Body.Len()) {
				t.Errorf("bytes_out: got %v, want %d", got, rec.Body.Len())
			}
			delete(line, "bytes_out")
			checkDurations(t, line, 1000, "duration_ms")
			if !reflect.DeepEqual(line, tt.want) {
				t.Errorf("access log line:\ngot  %v\nwant %v", line, tt.want)
			}
		})
	}
}

// noteRoute stores rt in the request's context before calling h, as route
// classification does.
func noteRoute(rt *rivet.Route, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(w, r.WithContext(rivet.WithRoute(r.Context(), rt)))
	})
}

// TestAccessLogRefusedWebSocket: a WebSocket the gateway accepted only to
// close it is logged as a websocket with that close code and reason, the
// rejection and its reason, not as a bare 101; its 101 carries the ray id
// the line carries.
func TestAccessLogRefusedWebSocket(t *testing.T) {
	var logs syncbuf.Buffer
	route := &rivet.Route{Intent: rivet.IntentConnect, ActorName: "counter"}
	done := make(chan struct{}, 1)
	h := stamped("198.51.100.7", "198.51.100.7", Middleware(nil, jsonAccessLog(t, &logs), noteRoute(route, func(w http.ResponseWriter, r *http.Request) {
		Note(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			NoteAuth(r, authn.Outcome{Result: authn.ResultUnauthorized, Reason: "missing"})
			rivet.WriteError(w, r, authn.ErrUnauthorized.With("reason", "missing"))
		})).ServeHTTP(w, r)
	})))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		done <- struct{}{}
	}))
	defer srv.Close()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"rivet"}}
	c, res, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/gateway/counter/connect", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := res.Header.Get(rivet.HeaderRayID); got != testRay {
		t.Errorf("101 X-Rivet-Ray-Id: got %q, want the logged %s", got, testRay)
	}
	_, _, err = c.ReadMessage()
	c.Close()
	// The close carries the ray id, "group.code#rayId" as the engine's do.
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 1011 || ce.Text != "auth.unauthorized#"+testRay {
		t.Fatalf("close: got %v, want 1011 auth.unauthorized#%s", err, testRay)
	}
	<-done
	line := oneLine(t, &logs)
	checkDurations(t, line, 2000, "duration_ms")
	want := map[string]any{"msg": "websocket", "ray_id": testRay, "client_ip": "198.51.100.7",
		"intent": "connect", "actor": "counter", "method": "GET",
		"close_code": 1011.0, "close_reason": "auth.unauthorized", "error": "auth.unauthorized", "auth_reason": "missing",
		"messages_in": 0.0, "messages_out": 0.0, "bytes_in": 0.0, "bytes_out": 0.0}
	if !reflect.DeepEqual(line, want) {
		t.Errorf("access log line:\ngot  %v\nwant %v", line, want)
	}
}

// TestAccessLogProxiedWebSocket: a proxied socket's line has its lifetime,
// the time to contacting the engine, the close the gateway sent with its
// reason, and the verified caller from the identity.
func TestAccessLogProxiedWebSocket(t *testing.T) {
	var logs syncbuf.Buffer
	route := &rivet.Route{Intent: rivet.IntentConnect, ActorName: "counter"}
	st := proxy.Stats{Duration: 90 * time.Minute, MessagesIn: 3, BytesIn: 30, MessagesOut: 4, BytesOut: 40,
		ClientCloseCode: 1000, GatewayCloseCode: 1011, GatewayCloseReason: "auth.unauthorized", Cause: "revalidation_failed"}
	h := stamped("2001:db8::7", "2001:db8::7", Middleware(nil, jsonAccessLog(t, &logs), noteRoute(route, func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(authn.WithIdentity(r.Context(), &authn.Identity{Method: "api_key", APIKeyID: "backend"}))
		Note(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Millisecond)
			NoteUpstream(r)
			if _, _, err := http.NewResponseController(w).Hijack(); err != nil {
				t.Fatal(err)
			}
			NoteWebSocket(r, st)
		})).ServeHTTP(w, r)
	})))
	h.ServeHTTP(hijacker{httptest.NewRecorder()}, httptest.NewRequest(http.MethodGet, "/gateway/counter/connect", nil))
	line := oneLine(t, &logs)
	if got := line["duration_ms"]; got != 5400000.0 {
		t.Errorf("duration_ms: got %v, want 5400000 (90 minutes)", got)
	}
	delete(line, "duration_ms")
	checkDurations(t, line, 1000, "overhead_ms")
	want := map[string]any{"msg": "websocket", "ray_id": testRay, "client_ip": "2001:db8::7",
		"intent": "connect", "actor": "counter", "method": "GET",
		"close_code": 1011.0, "close_reason": "auth.unauthorized",
		"messages_in": 3.0, "messages_out": 4.0, "bytes_in": 30.0, "bytes_out": 40.0, "cause": "revalidation_failed",
		"auth": "api_key", "api_key_id": "backend"}
	if !reflect.DeepEqual(line, want) {
		t.Errorf("access log line:\ngot  %v\nwant %v", line, want)
	}
}

// TestAccessLogProxiedHTTP: a proxied answer keeps the engine's ray id
// and splits the duration into the gateway's part and the engine's.
func TestAccessLogProxiedHTTP(t *testing.T) {
	var logs syncbuf.Buffer
	h := stamped("198.51.100.7", "198.51.100.7", Middleware(nil, jsonAccessLog(t, &logs), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		NoteUpstream(r)
		time.Sleep(2 * time.Millisecond)
		w.Header().Set(rivet.HeaderRayID, "engine-ray")
		_, _ = w.Write([]byte("ok"))
	})))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/health", nil))
	line := oneLine(t, &logs)
	d, o, u := line["duration_ms"].(float64), line["overhead_ms"].(float64), line["upstream_ms"].(float64)
	if u < 2 || o < 0 || d < u || d-o-u > 0.0015 || d-o-u < -0.0015 {
		t.Errorf("durations: got duration %v = overhead %v + upstream %v, want the engine's ≥ 2 ms and the sum to hold", d, o, u)
	}
	checkDurations(t, line, 1000, "duration_ms", "overhead_ms", "upstream_ms")
	want := map[string]any{"msg": "request", "ray_id": "engine-ray", "client_ip": "198.51.100.7",
		"intent": "unknown", "method": "GET", "status": 200.0, "bytes_out": 2.0}
	if !reflect.DeepEqual(line, want) {
		t.Errorf("access log line:\ngot  %v\nwant %v", line, want)
	}
}

// TestAccessLogWithoutStamp: outside the gateway's chain (no Exchange, no
// resolved address) the line still has a ray id and the peer's address.
func TestAccessLogWithoutStamp(t *testing.T) {
	var logs syncbuf.Buffer
	h := Middleware(nil, jsonAccessLog(t, &logs), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/health", nil))
	line := oneLine(t, &logs)
	if ray, _ := line["ray_id"].(string); !strings.HasPrefix(ray, "gw-") || line["client_ip"] != "192.0.2.1" {
		t.Errorf("got ray_id %v client_ip %v, want a gw- ray id and httptest's peer 192.0.2.1", line["ray_id"], line["client_ip"])
	}
}

func TestMillis(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                              "0.000",
		412 * time.Microsecond:         "0.412",
		1500 * time.Nanosecond:         "0.002",
		12*time.Millisecond + 345*1000: "12.345",
		time.Hour:                      "3600000.000",
	} {
		b, _ := millis(d).MarshalText()
		j, _ := millis(d).MarshalJSON()
		if string(b) != want || string(j) != want {
			t.Errorf("millis(%v): got text %s, JSON %s, want %s", d, b, j, want)
		}
	}
	// Both slog formats print a number with the unit in the key.
	var text, js strings.Builder
	slog.New(slog.NewTextHandler(&text, nil)).Info("x", "duration_ms", millis(time.Hour))
	slog.New(slog.NewJSONHandler(&js, nil)).Info("x", "duration_ms", millis(time.Hour))
	if !strings.Contains(text.String(), " duration_ms=3600000.000") || !strings.Contains(js.String(), `"duration_ms":3600000.000`) {
		t.Errorf("got text %q and JSON %q, want duration_ms=3600000.000 in both", text.String(), js.String())
	}
}
