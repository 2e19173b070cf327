package cors

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// engineCORS are the headers the engine adds to every response (observed,
// rivet-protocol.md §5).
func engineCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Expose-Headers", "*")
	h.Set("Vary", "Origin, Accept-Encoding")
}

// fakeEngine is an httptest upstream answering HTTP and WebSocket requests
// with the engine's own CORS headers; hits counts requests.
func fakeEngine(t *testing.T, hits *atomic.Int32) *httptest.Server {
	up := websocket.Upgrader{Subprotocols: []string{"rivet"}, CheckOrigin: func(*http.Request) bool { return true }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if websocket.IsWebSocketUpgrade(r) {
			h := http.Header{}
			engineCORS(h)
			conn, err := up.Upgrade(w, r, h)
			if err != nil {
				return
			}
			defer conn.Close()
			for {
				mt, msg, err := conn.ReadMessage()
				if err != nil {
					return
				}
				if err := conn.WriteMessage(mt, append([]byte("echo:"), msg...)); err != nil {
					return
				}
			}
		}
		engineCORS(w.Header())
		w.Header().Set("X-Rivet-Ray-Id", "ray-1")
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = io.WriteString(w, "out")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// gateway is the chain under test: the policy's Middleware in front of a
// ReverseProxy whose ModifyResponse calls StripUpstream.
func gateway(t *testing.T, p *Policy, upstream string) *httptest.Server {
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		ModifyResponse: func(res *http.Response) error {
			StripUpstream(res.Header)
			return nil
		},
	}
	srv := httptest.NewServer(p.Middleware(proxy))
	t.Cleanup(srv.Close)
	return srv
}

func testPolicy(t *testing.T) *Policy {
	cfg := DefaultConfig()
	cfg.AllowedOrigins = []string{"https://app.example.com", "https://*.preview.example.com"}
	return mustNew(t, cfg)
}

func TestProxyOneSetOfHeaders(t *testing.T) {
	var hits atomic.Int32
	gw := gateway(t, testPolicy(t), fakeEngine(t, &hits).URL)

	do := func(method, origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, gw.URL+"/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get", strings.NewReader("x"))
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}

	for _, origin := range []string{"https://app.example.com", "https://pr-7.preview.example.com"} {
		res := do("POST", origin)
		if res.StatusCode != 200 {
			t.Fatalf("%s: status got %d, want 200", origin, res.StatusCode)
		}
		checkOneSet(t, res.Header, origin, true)
		if res.Header.Get("X-Rivet-Ray-Id") != "ray-1" {
			t.Errorf("%s: upstream header X-Rivet-Ray-Id lost", origin)
		}
	}

	res := do("POST", "")
	if c := corsHeaders(res.Header); len(c) != 0 {
		t.Errorf("no Origin: got CORS headers %v, want the upstream's stripped and none added", c)
	}

	before := hits.Load()
	for _, origin := range []string{"https://evil.com", "https://a.b.preview.example.com", "null"} {
		res := do("POST", origin)
		if res.StatusCode != http.StatusForbidden || res.Header.Get("X-Rivet-Error") != "cors.origin_not_allowed" {
			t.Errorf("%s: got %d %q, want 403 cors.origin_not_allowed", origin, res.StatusCode, res.Header.Get("X-Rivet-Error"))
		}
	}
	req, _ := http.NewRequest("OPTIONS", gw.URL+"/gateway/counter/action/increment", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if pre.StatusCode != http.StatusNoContent {
		t.Errorf("preflight: got %d, want 204", pre.StatusCode)
	}
	if n := hits.Load() - before; n != 0 {
		t.Errorf("upstream hit %d times by rejected requests and a preflight, want 0", n)
	}
}

func wsURL(httpURL, path string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http") + path
}

func TestProxyWebSocket(t *testing.T) {
	var hits atomic.Int32
	gw := gateway(t, testPolicy(t), fakeEngine(t, &hits).URL)
	d := websocket.Dialer{Subprotocols: []string{"rivet", "rivet_encoding.json"}, HandshakeTimeout: 5 * time.Second}
	path := "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k"

	t.Run("allowed origin is proxied through the wrapper's Hijack", func(t *testing.T) {
		conn, res, err := d.Dial(wsURL(gw.URL, path), http.Header{"Origin": {"https://app.example.com"}})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer conn.Close()
		if conn.Subprotocol() != "rivet" {
			t.Errorf("subprotocol: got %q, want rivet", conn.Subprotocol())
		}
		checkOneSet(t, res.Header, "https://app.example.com", true)
		if err := conn.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := conn.ReadMessage()
		if err != nil || string(msg) != "echo:ping" {
			t.Errorf("echo: got %q, %v; want echo:ping", msg, err)
		}
	})

	t.Run("no origin", func(t *testing.T) {
		conn, _, err := d.Dial(wsURL(gw.URL, path), nil)
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		conn.Close()
	})

	t.Run("disallowed origin is closed 1011 and not forwarded", func(t *testing.T) {
		before := hits.Load()
		conn, res, err := d.Dial(wsURL(gw.URL, path), http.Header{"Origin": {"https://evil.com"}})
		if err != nil {
			t.Fatalf("Dial: got %v, want the handshake to complete", err)
		}
		defer conn.Close()
		if res.StatusCode != http.StatusSwitchingProtocols || conn.Subprotocol() != "rivet" {
			t.Errorf("handshake: got %d %q, want 101 rivet", res.StatusCode, conn.Subprotocol())
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err = conn.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseInternalServerErr || ce.Text != "cors.origin_not_allowed" {
			t.Errorf("close: got %v, want 1011 cors.origin_not_allowed", err)
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("upstream hit %d times, want 0", n)
		}
	})
}

// TestHijackThroughWrapper runs a WebSocket endpoint behind the Middleware
// itself: gorilla's Upgrader needs http.Hijacker from the wrapper.
func TestHijackThroughWrapper(t *testing.T) {
	p := testPolicy(t)
	up := websocket.Upgrader{CheckOrigin: p.CheckOrigin}
	srv := httptest.NewServer(p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); !ok {
			t.Errorf("ResponseWriter %T is not an http.Hijacker", w)
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.WriteMessage(websocket.TextMessage, []byte("hello"))
		_, _, _ = conn.ReadMessage()
	})))
	defer srv.Close()
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv.URL, "/ws"), http.Header{"Origin": {"https://app.example.com"}})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "hello" {
		t.Errorf("read: got %q, %v; want hello", msg, err)
	}
}

func TestWrapperUnwrap(t *testing.T) {
	p := testPolicy(t)
	var got http.ResponseWriter
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://gw/x", nil)
	r.Header.Set("Origin", "https://app.example.com")
	p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			t.Fatalf("ResponseWriter %T has no Unwrap", w)
		}
		got = u.Unwrap()
		// Deadlines are reached through Unwrap; the recorder does not
		// support them, which ResponseController reports.
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now()); !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("SetWriteDeadline on a recorder: got %v, want ErrNotSupported", err)
		}
	})).ServeHTTP(rec, r)
	if got != rec {
		t.Errorf("Unwrap: got %T %p, want the recorder %p", got, got, rec)
	}
}
