package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/authn"
)

// Bad input against the whole chain in-process, in front of an engine that records what reaches
// it: malformed /gateway/ routes and rvt-* queries are answered by the gateway in RivetKit's
// shape and never forwarded, and the gateway keeps serving. The real binary, server limits and
// the real engine are covered by integration/badinput_test.go.

// recordingEngine answers HTTP with 200 (and a ray id) and echoes WebSocket messages, recording
// every request.
type recordingEngine struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
}

func startRecordingEngine(t *testing.T) *recordingEngine {
	e := &recordingEngine{}
	e.Server = httptest.NewServer(e.handler())
	t.Cleanup(e.Close)
	return e
}

// handler is the engine: it records r, echoes WebSocket messages and
// answers actions with {"output":1}.
func (e *recordingEngine) handler() http.Handler {
	up := websocket.Upgrader{Subprotocols: []string{"rivet"}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.reqs = append(e.reqs, r.Clone(r.Context()))
		e.mu.Unlock()
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil || c.WriteMessage(mt, msg) != nil {
					return
				}
			}
		}
		w.Header().Set("X-Rivet-Ray-Id", "ray-from-engine")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"output":1}`)
	})
}

// received returns the requests the engine got so far.
func (e *recordingEngine) received() []*http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*http.Request(nil), e.reqs...)
}

// openGateway serves a gateway in front of engine whose rules let anyone reach every actor
// route, after mutate has adjusted the configuration.
func openGateway(t *testing.T, engine string, mutate func(*Config)) *httptest.Server {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Server.Listen, cfg.Admin.Listen, cfg.Upstream.URL = "127.0.0.1:0", "127.0.0.1:1", engine
	// One API key, because some credential must be possible; every rule lets anyone through.
	cfg.Auth.APIKeys.Keys = []authn.APIKey{{ID: "unused", SHA256: strings.Repeat("0", 64)}}
	cfg.Auth.Rules = []authn.Rule{{Allow: authn.AllowAnonymous}}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	g, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(g.echo)
	t.Cleanup(func() { front.Close(); g.Close() })
	return front
}

const badQuery = "?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k&rvt-crash-policy=sleep"

func TestBadRoutesNeverReachTheEngine(t *testing.T) {
	engine := startRecordingEngine(t)
	front := openGateway(t, engine.URL, nil)
	const id = "hwzdj7sr4l7y4lxlvc506jrjwtal00"
	for _, tc := range []struct {
		name, path  string
		status      int
		group, code string
		// wsCode, when set, is the close reason of the same path as a
		// WebSocket upgrade (default: group.code).
		wsCode string
	}{
		{"empty target", "/gateway/", 400, "guard", "query_invalid_params", ""},
		{"empty target segment", "/gateway//action/x" + badQuery, 400, "gateway", "invalid_path", ""},
		{"empty target before @token", "/gateway/@tok/action/x", 400, "guard", "query_invalid_params", ""},
		{"query target with @token", "/gateway/counter@tok/action/x" + badQuery, 400, "guard", "query_invalid_params", ""},
		{"rvt-method without rvt-namespace", "/gateway/counter/action/x?rvt-method=get", 400, "guard", "query_invalid_params", ""},
		{"rvt-* without rvt-method", "/gateway/counter/action/x?rvt-namespace=default&rvt-key=k", 400, "guard", "query_invalid_params", ""},
		{"unknown rvt-method", "/gateway/counter/action/x?rvt-namespace=default&rvt-method=create", 400, "guard", "query_invalid_params", ""},
		{"repeated rvt-method", "/gateway/counter/action/x" + badQuery + "&rvt-method=get", 400, "guard", "query_invalid_params", ""},
		{"repeated rvt-namespace, empty", "/gateway/counter/action/x" + badQuery + "&rvt-namespace=", 400, "guard", "query_invalid_params", ""},
		{"bad escape in rvt-key", "/gateway/counter/action/x?rvt-namespace=default&rvt-method=get&rvt-key=%zz", 400, "gateway", "invalid_path", ""},
		{"invalid UTF-8 in rvt-namespace", "/gateway/counter/action/x?rvt-namespace=%ff&rvt-method=get", 400, "guard", "query_invalid_params", ""},
		{"not an actor id", "/gateway/not-an-id/action/x", 400, "guard", "query_invalid_params", ""},
		{"dot segment", "/gateway/" + id + "/request/x/../inspector/state", 400, "gateway", "invalid_path", ""},
		{"escaped slash", "/gateway/" + id + "/request/inspector%2Fstate", 400, "gateway", "invalid_path", ""},
		{"engine administration", "/namespaces", 403, "auth", "forbidden", "auth.forbidden"},
		{"not a RivetKit route", "/runners/connect", 404, "guard", "no_route", ""},
		{"unknown gateway tail", "/gateway/counter/nope" + badQuery, 404, "guard", "no_route", ""},
		{"overlong target", "/gateway/" + strings.Repeat("%41", 8<<10) + "@/action/x" + badQuery, 400, "guard", "query_invalid_params", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(engine.received())
			res, err := http.Post(front.URL+tc.path, "application/json", strings.NewReader(`{"args":[]}`))
			if err != nil {
				t.Fatal(err)
			}
			assertShaped(t, res, tc.status, tc.group, tc.code)
			// The same path as a WebSocket upgrade: accepted, then closed
			// with a reason (no WebSocket route is there, or the same one).
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"rivet", "rivet_encoding.json"}}
			conn, _, err := d.Dial("ws"+strings.TrimPrefix(front.URL, "http")+tc.path, nil)
			if err != nil {
				t.Fatalf("websocket: %v, want accepted then closed", err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err = conn.ReadMessage()
			conn.Close()
			ce, ok := err.(*websocket.CloseError)
			if !ok || ce.Code != websocket.CloseInternalServerErr || !strings.HasPrefix(ce.Text, "g") && ce.Text != tc.wsCode {
				t.Errorf("websocket: %v, want close 1011 with a gateway or guard reason", err)
			}
			if n := len(engine.received()); n != before {
				t.Errorf("the engine got %d requests, want none", n-before)
			}
		})
	}
	// Nothing else was disturbed, and bytes the gateway does not own reach the engine as sent.
	good := "/gateway/counter/request/%C3%A9/a~!$'()*,;=:@" + badQuery + "&user=%20+x"
	res, err := http.Post(front.URL+good, "application/json", strings.NewReader(`{"args":[]}`))
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("good request: %v %v", res, err)
	}
	res.Body.Close()
	reqs := engine.received()
	if len(reqs) != 1 || reqs[0].RequestURI != good {
		t.Errorf("the engine got %d requests, last %v; want exactly the good one, byte for byte", len(reqs), reqs)
	}
}

// assertShaped checks a RivetKit-shaped JSON error answer.
func assertShaped(t *testing.T, res *http.Response, status int, group, code string) {
	t.Helper()
	defer res.Body.Close()
	var body struct{ Group, Code, Message string }
	err := json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != status || err != nil || body.Group != group || body.Code != code || body.Message == "" ||
		res.Header.Get("Content-Type") != "application/json" || res.Header.Get("X-Rivet-Error") != group+"."+code {
		t.Errorf("got %d %+v (%v, %q), want %d %s.%s", res.StatusCode, body, err, res.Header.Get("Content-Type"), status, group, code)
	}
}

// TestMalformedConnParamsNeverReachEngine: with the default configuration
// (params.source none) a WebSocket whose rivet_conn_params entry does not
// decode, is not JSON, or comes twice is refused by the gateway. Forwarded,
// the real engine 2.3.19 leaves such a socket open ~20 s and closes it with
// guard.websocket_closed_before_open, which the RivetKit client does not
// retry. Likewise two x-rivet-conn-params headers: the gateway (authn,
// params merge) would read the first, the engine the last.
func TestMalformedConnParamsNeverReachEngine(t *testing.T) {
	engine := startRecordingEngine(t)
	front := openGateway(t, engine.URL, nil)
	ws := "ws" + strings.TrimPrefix(front.URL, "http") + "/gateway/counter/connect" + badQuery
	p := func(s string) string { return "rivet_conn_params." + url.QueryEscape(s) }
	for name, list := range map[string][]string{
		"bad escape":  {"rivet", "rivet_encoding.json", "rivet_conn_params.%zz"},
		"not JSON":    {"rivet", "rivet_encoding.json", p("notjson")},
		"two entries": {"rivet", "rivet_encoding.json", p(`{"token":"a"}`), p(`{"token":"b"}`)},
	} {
		before := len(engine.received())
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: list}
		conn, _, err := d.Dial(ws, nil)
		if err != nil {
			t.Fatalf("%s: dial: %v, want accepted then closed", name, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_ = conn.WriteMessage(websocket.TextMessage, []byte("ping"))
		_, _, err = conn.ReadMessage()
		conn.Close()
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseInternalServerErr || withoutRayID(t, ce).Text != "gateway.invalid_request" {
			t.Errorf("%s: got %v, want close 1011 gateway.invalid_request at once", name, err)
		}
		if n := len(engine.received()); n != before {
			t.Errorf("%s: forwarded to the engine", name)
		}
	}

	before := len(engine.received())
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/gateway/counter/action/whoami"+badQuery, strings.NewReader(`{"args":[]}`))
	req.Header.Add("X-Rivet-Conn-Params", `{"token":"a"}`)
	req.Header.Add("X-Rivet-Conn-Params", `{"token":"b"}`)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	assertShaped(t, res, http.StatusBadRequest, "gateway", "invalid_request")
	if reqs := engine.received(); len(reqs) != before {
		t.Errorf("two x-rivet-conn-params headers forwarded: the engine got %q", reqs[len(reqs)-1].Header.Values("X-Rivet-Conn-Params"))
	}
}
