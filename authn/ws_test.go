package authn

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// wsBackend stands in for the proxy: it accepts the upgrade the way the
// engine does (answering "rivet") and sends back what it was given.
type wsBackend struct {
	protocols chan []string
	ids       chan *Identity
}

func (b *wsBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.protocols <- rivet.Subprotocols(r.Header)
	b.ids <- IdentityFrom(r.Context())
	up := websocket.Upgrader{Subprotocols: []string{rivet.ProtocolRivet}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	_ = conn.WriteMessage(websocket.TextMessage, []byte("hello from the actor"))
	rivet.CloseWebSocket(conn, websocket.CloseNormalClosure, "done")
}

func newWSGateway(t *testing.T, a *Authenticator) (*httptest.Server, *wsBackend) {
	t.Helper()
	b := &wsBackend{protocols: make(chan []string, 1), ids: make(chan *Identity, 1)}
	srv := httptest.NewServer(routeMiddleware(a.Middleware(b)))
	t.Cleanup(srv.Close)
	return srv, b
}

// dialRivet dials like the RivetKit client: rivet, rivet_encoding.json,
// rivet_conn_params.<QueryEscape(JSON)>.
func dialRivet(t *testing.T, srv *httptest.Server, path string, params any) (*websocket.Conn, *http.Response) {
	t.Helper()
	protos := []string{rivet.ProtocolRivet, rivet.ProtocolEncodingPrefix + "json"}
	if params != nil {
		protos = append(protos, paramsProtocol(t, params))
	}
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+path, nil)
	if err != nil {
		t.Fatalf("dial: %v (a rejection must still complete the handshake)", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, resp
}

func TestWebSocketRejections(t *testing.T) {
	a := newAuth(t, hsConfig())
	srv, _ := newWSGateway(t, a)
	tests := []struct {
		name       string
		path       string
		params     any
		wantReason string
	}{
		{"bad token in conn params", connectAlice, map[string]any{"authToken": "bad"}, "auth.unauthorized"},
		{"expired token", connectAlice, map[string]any{"authToken": hsToken(t, "alice", "exp", 1)}, "auth.unauthorized"},
		{"no params", connectAlice, nil, "auth.unauthorized"},
		{"params without the field", connectAlice, map[string]any{"room": "lobby"}, "auth.unauthorized"},
		{"inspector", inspector, map[string]any{"authToken": hsToken(t, "alice")}, "auth.forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, resp := dialRivet(t, srv, tc.path, tc.params)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("handshake: got %d, want 101", resp.StatusCode)
			}
			if got := conn.Subprotocol(); got != rivet.ProtocolRivet {
				t.Errorf("subprotocol: got %q, want rivet", got)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err := conn.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("read: got %v, want a close frame", err)
			}
			if ce.Code != websocket.CloseInternalServerErr || ce.Text != tc.wantReason {
				t.Errorf("close: got %d %q, want 1011 %q", ce.Code, ce.Text, tc.wantReason)
			}
		})
	}
}

func TestWebSocketForbiddenByKeyBinding(t *testing.T) {
	cfg := hsConfig()
	cfg.Rules = []Rule{{Match: Match{Intents: []string{"connect"}}, KeyBinding: &KeyBinding{Claim: "sub"}}}
	a := newAuth(t, cfg)
	srv, _ := newWSGateway(t, a)
	conn, _ := dialRivet(t, srv, connectAlice, map[string]any{"authToken": hsToken(t, "bob")})
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr || ce.Text != "auth.forbidden" {
		t.Fatalf("close: got %v, want 1011 auth.forbidden", err)
	}
}

func TestWebSocketTokenInConnParams(t *testing.T) {
	a := newAuth(t, hsConfig())
	srv, b := newWSGateway(t, a)
	tok := hsToken(t, "alice")
	conn, _ := dialRivet(t, srv, connectAlice, map[string]any{"authToken": tok, "room": "lobby"})

	protos := <-b.protocols
	want := []string{"rivet", "rivet_encoding.json", "rivet_conn_params." + url.QueryEscape(`{"room":"lobby"}`)}
	if strings.Join(protos, " | ") != strings.Join(want, " | ") {
		t.Errorf("forwarded subprotocols:\ngot  %q\nwant %q", protos, want)
	}
	if strings.Contains(strings.Join(protos, ","), tok) {
		t.Errorf("token forwarded to the actor")
	}
	if id := <-b.ids; id == nil || id.Subject != "alice" {
		t.Errorf("identity: got %+v, want alice", id)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, msg, err := conn.ReadMessage()
	if err != nil || typ != websocket.TextMessage || string(msg) != "hello from the actor" {
		t.Fatalf("read: got %d %q %v, want the backend's greeting", typ, msg, err)
	}
}

func TestWebSocketParamsBecomeEmptyObject(t *testing.T) {
	a := newAuth(t, hsConfig())
	srv, b := newWSGateway(t, a)
	dialRivet(t, srv, connectAlice, map[string]any{"authToken": hsToken(t, "alice")})
	protos := <-b.protocols
	<-b.ids
	if got, want := protos[len(protos)-1], "rivet_conn_params."+url.QueryEscape("{}"); got != want {
		t.Errorf("params entry: got %q, want %q", got, want)
	}
}
