package params

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// wsUpstream stands in for the engine: it accepts with "rivet" (as the
// engine always does) and sends back the subprotocol header it received.
func wsUpstream(t testing.TB) http.Handler {
	up := websocket.Upgrader{Subprotocols: []string{"rivet"}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Sec-WebSocket-Protocol")
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upstream upgrade: %v", err)
			return
		}
		defer c.Close()
		_ = c.WriteMessage(websocket.TextMessage, []byte(got))
		_, _, _ = c.ReadMessage() // until the client closes
	})
}

// dialRivet dials like the RivetKit client, offering rivet and
// rivet_encoding.json (and any extra entries).
func dialRivet(t testing.TB, srv *httptest.Server, path string, extra ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{
		Subprotocols:     append([]string{"rivet", "rivet_encoding.json"}, extra...),
		HandshakeTimeout: 5 * time.Second,
	}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+path, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "rivet" {
		t.Fatalf("got status %d subprotocol %q, want 101 and rivet", resp.StatusCode, c.Subprotocol())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wantClose reads until the server closes and checks code and reason.
func wantClose(t testing.TB, c *websocket.Conn, code int, reason string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("got message %q, error %v; want a close frame", msg, err)
	}
	if ce.Code != code || ce.Text != reason {
		t.Errorf("got close %d %q, want %d %q", ce.Code, ce.Text, code, reason)
	}
}

func TestWebSocketExhaustedBudgetClosesRetryable(t *testing.T) {
	svc := newService(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(503) })
	cfg := httpConfig(svc.URL)
	cfg.Retry.MaxAttempts = 2
	inj := mustNew(t, cfg, Options{})
	srv := httptest.NewServer(withRoute(inj.Middleware(wsUpstream(t))))
	defer srv.Close()

	c := dialRivet(t, srv, connectPath)
	wantClose(t, c, websocket.CloseInternalServerErr, "client.get_params_failed")
	if !rivet.RetryableReason("client.get_params_failed") {
		t.Error("RivetKit would not retry client.get_params_failed")
	}
	if got := svc.hits.Load(); got != 2 {
		t.Errorf("service got %d requests, want 2", got)
	}
}

func TestWebSocketDeniedClosesForbidden(t *testing.T) {
	svc := newService(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(403) })
	inj := mustNew(t, httpConfig(svc.URL), Options{})
	srv := httptest.NewServer(withRoute(inj.Middleware(wsUpstream(t))))
	defer srv.Close()

	c := dialRivet(t, srv, rawWSPath)
	wantClose(t, c, websocket.CloseInternalServerErr, "auth.forbidden")
	if got := svc.hits.Load(); got != 1 {
		t.Errorf("service got %d requests, want 1: a denial is not retried", got)
	}
}

func TestWebSocketOversizeCloses(t *testing.T) {
	inj := mustNew(t, staticConfig(map[string]any{"v": strings.Repeat("é", 1000)}), Options{})
	srv := httptest.NewServer(withRoute(inj.Middleware(wsUpstream(t))))
	defer srv.Close()
	c := dialRivet(t, srv, connectPath)
	wantClose(t, c, websocket.CloseInternalServerErr, "client.get_params_failed")
}

func TestWebSocketInjectsOverRealSocket(t *testing.T) {
	svc := newService(t, answer(`{"token":"fresh 1+1","who":"Zoë"}`))
	inj := mustNew(t, httpConfig(svc.URL), Options{})
	srv := httptest.NewServer(withRoute(inj.Middleware(wsUpstream(t))))
	defer srv.Close()

	spoof := "rivet_conn_params." + url.QueryEscape(`{"token":"spoofed"}`)
	c := dialRivet(t, srv, connectPath, spoof)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	h := http.Header{"Sec-Websocket-Protocol": {string(msg)}}
	ps := rivet.Subprotocols(h)
	if len(ps) != 3 || ps[0] != "rivet" || ps[1] != "rivet_encoding.json" {
		t.Fatalf("upstream got subprotocols %q, want rivet, rivet_encoding.json, params", ps)
	}
	want := map[string]any{"token": "fresh 1+1", "who": "Zoë"}
	if got := engineProtocolParams(t, h); !reflect.DeepEqual(got, want) {
		t.Errorf("engine decodes %#v, want %#v", got, want)
	}
	_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
}
