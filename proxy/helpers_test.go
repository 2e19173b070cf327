package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/clientip"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// koding/websocketproxy logs through the standard logger.
	if !testing.Verbose() {
		log.SetOutput(io.Discard)
	}
	os.Exit(m.Run())
}

// wait bounds every blocking step of a test.
const wait = 5 * time.Second

// actorID is a real Rivet actor id (30 base36 digits, version 1): a
// /gateway/ target without rvt-* parameters must be one, or the route is
// refused before anything is forwarded. actorPath is its gateway path.
const (
	actorID   = "hwzdj7sr4l7y4lxlvc506jrjwtal00"
	actorPath = "/gateway/" + actorID
)

// testConfig is DefaultConfig pointed at url, with pings off and a long
// CloseGrace: a close handshake that waits for the grace period instead of
// the peer's answer makes a test slow enough to notice.
func testConfig(url string) Config {
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.DialTimeout = 2 * time.Second
	cfg.ResponseHeaderTimeout = 5 * time.Second
	cfg.WebSocket.HandshakeTimeout = 5 * time.Second
	cfg.WebSocket.PingInterval = 0
	cfg.WebSocket.WriteTimeout = 2 * time.Second
	cfg.WebSocket.CloseGrace = 5 * time.Second
	return cfg
}

// startProxy serves a Proxy built from cfg on a local front server.
func startProxy(t testing.TB, cfg Config, opts Options) (*Proxy, *httptest.Server) {
	t.Helper()
	if err := cfg.Validate("upstream"); err != nil {
		t.Fatalf("config: %v", err)
	}
	p, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(func() {
		front.Close()
		p.Close()
	})
	return p, front
}

// startProxyWithClient is startProxy (default options) behind a layer
// that stores client as the request's resolved client address
// (clientip.WithAddrs), as the gateway's chain does; "" stores none.
func startProxyWithClient(t testing.TB, cfg Config, client string) *httptest.Server {
	t.Helper()
	if client == "" {
		_, front := startProxy(t, cfg, Options{})
		return front
	}
	a := netip.MustParseAddr(client)
	return startProxyBehind(t, cfg, func(ctx context.Context) context.Context {
		return clientip.WithAddrs(ctx, a, netip.MustParseAddr("127.0.0.1"))
	})
}

// startProxyBehind is startProxy (default options) behind a layer that
// sets each request's context to with(its context).
func startProxyBehind(t testing.TB, cfg Config, with func(context.Context) context.Context) *httptest.Server {
	t.Helper()
	p, err := New(cfg, Options{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.ServeHTTP(w, r.WithContext(with(r.Context())))
	}))
	t.Cleanup(func() {
		front.Close()
		p.Close()
	})
	return front
}

// seenRequest is what an upstream received.
type seenRequest struct {
	Method     string
	URI        string // RequestURI, exactly as sent
	Host       string
	Header     http.Header
	Body       []byte
	TLS        *tls.ConnectionState
	RemoteAddr string
}

// upstream is an httptest engine that records every request.
type upstream struct {
	*httptest.Server
	reqs chan seenRequest
}

func record(reqs chan<- seenRequest, r *http.Request, body []byte) {
	select {
	case reqs <- seenRequest{r.Method, r.RequestURI, r.Host, r.Header.Clone(), body, r.TLS, r.RemoteAddr}:
	default:
	}
}

// newUpstream starts an engine stand-in; h answers after the request (and
// for non-upgrades its body) is recorded.
func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{reqs: make(chan seenRequest, 64)}
	u.Server = httptest.NewServer(u.wrap(h))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) wrap(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if !websocket.IsWebSocketUpgrade(r) {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		record(u.reqs, r, body)
		if h != nil {
			h(w, r)
		}
	}
}

// next returns the next recorded request.
func (u *upstream) next(t testing.TB) seenRequest {
	t.Helper()
	select {
	case r := <-u.reqs:
		return r
	case <-time.After(wait):
		t.Fatal("upstream: no request arrived")
		return seenRequest{}
	}
}

// engineUpgrader answers like the engine: subprotocol "rivet" whatever the
// client offered.
var engineUpgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func upgradeEngine(t testing.TB, w http.ResponseWriter, r *http.Request) *websocket.Conn {
	c, err := engineUpgrader.Upgrade(w, r, http.Header{"Sec-Websocket-Protocol": {"rivet"}})
	if err != nil {
		t.Errorf("upstream upgrade: %v", err)
		return nil
	}
	return c
}

// newWSUpstream starts an engine stand-in that upgrades every request and
// hands the socket to h, closing it when h returns.
func newWSUpstream(t testing.TB, h func(c *websocket.Conn, r *http.Request)) *upstream {
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		c := upgradeEngine(t, w, r)
		if c == nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(2 * wait))
		h(c, r)
	})
}

// sinkUpstream is an engine that first sends hello as a binary message
// (when not nil), then reads: it reports each message it reads on got, and
// the error that ended the socket on end.
func sinkUpstream(t testing.TB, hello []byte) (up *upstream, got <-chan []byte, end <-chan error) {
	msgs, ended := make(chan []byte, 4), make(chan error, 1)
	up = newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		if hello != nil {
			_ = c.WriteMessage(websocket.BinaryMessage, hello)
		}
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				ended <- err
				return
			}
			msgs <- msg
		}
	})
	return up, msgs, ended
}

// echo sends every message back, prefixed with "echo:"; it returns the
// error that ended the socket.
func echo(c *websocket.Conn) error {
	for {
		mt, msg, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if err := c.WriteMessage(mt, append([]byte("echo:"), msg...)); err != nil {
			return err
		}
	}
}

// rivetProtocols is what a RivetKit client offers (json encoding, empty params).
var rivetProtocols = []string{"rivet", "rivet_encoding.json", "rivet_conn_params.%7B%7D"}

func wsURL(front *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(front.URL, "http") + path
}

// dialWS opens a client WebSocket through front; the socket is closed at
// the end of the test.
func dialWS(t testing.TB, front *httptest.Server, path string, hdr http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: wait, Subprotocols: protocols}
	c, resp, err := d.Dial(wsURL(front, path), hdr)
	if c != nil {
		t.Cleanup(func() { c.Close() })
		_ = c.SetReadDeadline(time.Now().Add(2 * wait))
	}
	return c, resp, err
}

func mustDialWS(t testing.TB, front *httptest.Server, path string, hdr http.Header, protocols ...string) *websocket.Conn {
	t.Helper()
	c, resp, err := dialWS(t, front, path, hdr, protocols...)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	return c
}

// readClose reads c until it fails and returns the close it got.
func readClose(t *testing.T, c *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read: got %v, want a close frame", err)
		}
		return ce
	}
}

func checkClose(t *testing.T, what string, got *websocket.CloseError, code int, reason string) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got no close, want %d %q", what, code, reason)
	}
	if got.Code != code || got.Text != reason {
		t.Errorf("%s: got close %d %q, want %d %q", what, got.Code, got.Text, code, reason)
	}
}

// recv returns the next value from ch, failing the test after wait.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// checkGoroutines fails the test when, once every later cleanup has run,
// the goroutine count does not come back to what it was at the call (within
// wait). Call it first so its cleanup runs last. Tests in this package do
// not run in parallel, so the count is this test's.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(wait)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines: got %d, want at most %d\n%s", n, base, ownStacks())
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// ownStacks returns the stacks of goroutines running this package's,
// websocketproxy's or net/http's code.
func ownStacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "rivet-gateway/proxy.") || strings.Contains(g, "websocketproxy") || strings.Contains(g, "net/http.") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// closedAddr returns a local address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testClient is an HTTP client with its own connections, closed at the end
// of the test so they do not count as leaked goroutines.
func testClient(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: wait}
}
