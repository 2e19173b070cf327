package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http/httpproxy"
)

// engineHost is the name the egress tests give the engine: not loopback,
// which the environment's proxy rules never proxy. testResolver maps it to
// the real address for direct dials; the egress proxies map it themselves.
const engineHost = "engine.test"

// hosts maps "name:port" to the address to dial, for the direct dials of a
// test (Options.DialContext) and for the test's egress proxies.
type hosts map[string]string

func (h hosts) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if a, ok := h[addr]; ok {
		addr = a
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

// egressProxy is an egress proxy for the tests: CONNECT tunnels (the
// HTTPS_PROXY case, and every WebSocket), absolute-form forwarding (plain
// HTTP through HTTP_PROXY), optionally requiring Basic credentials or
// refusing every tunnel. It counts what it carried, by target.
type egressProxy struct {
	*httptest.Server
	hosts  hosts
	auth   string // "user:password" required, "" for none
	refuse int    // when set, answer CONNECT with this status

	mu        sync.Mutex
	tunnels   []string // CONNECT targets
	forwarded []string // absolute-form request URLs
	conns     []net.Conn
}

func startEgressProxy(t *testing.T, h hosts, edit func(*egressProxy)) *egressProxy {
	t.Helper()
	e := &egressProxy{hosts: h}
	if edit != nil {
		edit(e)
	}
	fwd := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL = pr.In.URL },
		Transport: &http.Transport{DialContext: h.dial},
	}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.auth != "" && r.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(e.auth)) {
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		if r.Method != http.MethodConnect {
			e.mu.Lock()
			e.forwarded = append(e.forwarded, r.URL.String())
			e.mu.Unlock()
			fwd.ServeHTTP(w, r)
			return
		}
		e.mu.Lock()
		e.tunnels = append(e.tunnels, r.Host)
		e.mu.Unlock()
		if e.refuse != 0 {
			w.WriteHeader(e.refuse)
			return
		}
		up, err := h.dial(r.Context(), "tcp", r.Host)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		e.splice(c, brw.Reader, up)
	}))
	t.Cleanup(func() {
		e.Close()
		e.closeAll()
		fwd.Transport.(*http.Transport).CloseIdleConnections()
	})
	return e
}

// splice relays between the client connection (and what its reader
// holds) and the upstream one until either side ends.
func (e *egressProxy) splice(c net.Conn, r io.Reader, up net.Conn) {
	e.mu.Lock()
	e.conns = append(e.conns, c, up)
	e.mu.Unlock()
	go func() {
		_, _ = io.Copy(up, r)
		up.Close()
		c.Close()
	}()
	go func() {
		_, _ = io.Copy(c, up)
		c.Close()
		up.Close()
	}()
}

func (e *egressProxy) closeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.conns {
		c.Close()
	}
}

func (e *egressProxy) counts() (tunnels, forwarded []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.tunnels...), append([]string(nil), e.forwarded...)
}

// proxyEnv is what HTTPS_PROXY, HTTP_PROXY and NO_PROXY would say, read
// the way http.ProxyFromEnvironment reads them (which caches the real
// environment once per process, so tests pass it in).
func proxyEnv(c httpproxy.Config) func(*http.Request) (*url.URL, error) {
	f := c.ProxyFunc()
	return func(r *http.Request) (*url.URL, error) { return f(r.URL) }
}

// tlsEngine is an https engine stand-in (HTTP "ok", WebSockets echoed)
// and the CA file trusting it; its certificate is for example.com.
func tlsEngine(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			_, _ = io.WriteString(w, "ok")
			return
		}
		if c := upgradeEngine(t, w, r); c != nil {
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(2 * wait))
			_ = echo(c)
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, ca
}

// roundTrip sends one HTTP action and one WebSocket message through front
// and checks both were answered by the engine.
func roundTrip(t *testing.T, front *httptest.Server) {
	t.Helper()
	res, body := do(t, testClient(t), "POST", front.URL+actorPath+"/action/inc", strings.NewReader("{}"), nil)
	if res.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("HTTP: got %d %q, want 200 ok", res.StatusCode, body)
	}
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	if err := c.WriteMessage(websocket.TextMessage, []byte("via")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo:via" {
		t.Errorf("WebSocket: got %q %v, want echo:via", msg, err)
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
	readClose(t, c)
}

// TestEgressProxy: with HTTPS_PROXY (or HTTP_PROXY) set, HTTP requests
// and WebSocket dials to the engine both go through the proxy, in a
// CONNECT tunnel (wss: TLS to the engine inside it, with the engine's SNI
// and CA); NO_PROXY naming the engine sends both directly.
func TestEgressProxy(t *testing.T) {
	checkGoroutines(t)
	engine, ca := tlsEngine(t)
	port := engine.Listener.Addr().(*net.TCPAddr).Port
	target := net.JoinHostPort(engineHost, strconv.Itoa(port))
	h := hosts{target: engine.Listener.Addr().String()}
	egress := startEgressProxy(t, h, nil)

	for _, tc := range []struct {
		name    string
		env     httpproxy.Config
		tunnels int
	}{
		{"HTTPS_PROXY", httpproxy.Config{HTTPSProxy: egress.URL}, 2},
		{"HTTPS_PROXY and NO_PROXY naming the engine", httpproxy.Config{HTTPSProxy: egress.URL, NoProxy: "localhost," + engineHost}, 0},
		{"HTTPS_PROXY and NO_PROXY naming its domain", httpproxy.Config{HTTPSProxy: egress.URL, NoProxy: ".test"}, 0},
		{"HTTP_PROXY only", httpproxy.Config{HTTPProxy: egress.URL}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := egress.counts()
			cfg := testConfig("https://" + target)
			cfg.CAFile, cfg.ServerName = ca, "example.com"
			_, front := startProxy(t, cfg, Options{Proxy: proxyEnv(tc.env), DialContext: h.dial})
			roundTrip(t, front)
			after, _ := egress.counts()
			got := after[len(before):]
			if len(got) != tc.tunnels {
				t.Fatalf("tunnels: got %q, want %d", got, tc.tunnels)
			}
			for _, to := range got {
				if to != target {
					t.Errorf("tunnel to %q, want %q", to, target)
				}
			}
		})
	}
}

// TestEgressProxyPlainEngine: for an http engine HTTP_PROXY applies; HTTP
// requests are forwarded in absolute form (as net/http does) and the
// WebSocket dial tunnels with CONNECT (as gorilla and browsers do).
func TestEgressProxyPlainEngine(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !websocket.IsWebSocketUpgrade(r) {
			_, _ = io.WriteString(w, "ok")
			return
		}
		if c := upgradeEngine(t, w, r); c != nil {
			defer c.Close()
			_ = echo(c)
		}
	})
	port := up.Listener.Addr().(*net.TCPAddr).Port
	target := net.JoinHostPort(engineHost, strconv.Itoa(port))
	h := hosts{target: up.Listener.Addr().String()}
	egress := startEgressProxy(t, h, nil)
	_, front := startProxy(t, testConfig("http://"+target), Options{Proxy: proxyEnv(httpproxy.Config{HTTPProxy: egress.URL}), DialContext: h.dial})
	roundTrip(t, front)
	tunnels, forwarded := egress.counts()
	if len(tunnels) != 1 || tunnels[0] != target {
		t.Errorf("tunnels: got %q, want one to %s (the WebSocket)", tunnels, target)
	}
	if len(forwarded) != 1 || !strings.HasPrefix(forwarded[0], "http://"+target+actorPath) {
		t.Errorf("forwarded: got %q, want the HTTP action", forwarded)
	}
	if seen := up.next(t); seen.Host != target {
		t.Errorf("engine Host through the proxy: got %q, want %q", seen.Host, target)
	}
}

// TestEgressProxyFailures: a proxy that wants credentials gets them from
// its URL; one that refuses the tunnel fails the request like an
// unreachable engine (HTTP 502, WebSocket accepted and closed with the
// retryable guard.service_unavailable), and no answer or log names the
// proxy's password.
func TestEgressProxyFailures(t *testing.T) {
	checkGoroutines(t)
	engine, ca := tlsEngine(t)
	target := net.JoinHostPort(engineHost, strconv.Itoa(engine.Listener.Addr().(*net.TCPAddr).Port))
	h := hosts{target: engine.Listener.Addr().String()}
	start := func(t *testing.T, proxyURL string) *httptest.Server {
		cfg := testConfig("https://" + target)
		cfg.CAFile, cfg.ServerName = ca, "example.com"
		logs := &lockedBuffer{}
		_, front := startProxy(t, cfg, Options{
			Proxy: proxyEnv(httpproxy.Config{HTTPSProxy: proxyURL}), DialContext: h.dial,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		t.Cleanup(func() {
			if s := logs.String(); strings.Contains(s, "s3cr3t") {
				t.Errorf("the log names the proxy's password:\n%s", s)
			}
		})
		return front
	}

	t.Run("credentials", func(t *testing.T) {
		egress := startEgressProxy(t, h, func(e *egressProxy) { e.auth = "gw:s3cr3t" })
		u, _ := url.Parse(egress.URL)
		u.User = url.UserPassword("gw", "s3cr3t")
		roundTrip(t, start(t, u.String()))
		if tunnels, _ := egress.counts(); len(tunnels) != 2 {
			t.Errorf("tunnels: got %q, want 2", tunnels)
		}
	})

	for name, edit := range map[string]func(*egressProxy){
		"wrong credentials": func(e *egressProxy) { e.auth = "gw:other" },
		"tunnel refused":    func(e *egressProxy) { e.refuse = http.StatusForbidden },
	} {
		t.Run(name, func(t *testing.T) {
			egress := startEgressProxy(t, h, edit)
			u, _ := url.Parse(egress.URL)
			u.User = url.UserPassword("gw", "s3cr3t")
			front := start(t, u.String())
			res, body := do(t, testClient(t), "POST", front.URL+actorPath+"/action/inc", strings.NewReader("{}"), nil)
			if res.StatusCode != http.StatusBadGateway || strings.Contains(string(body), "s3cr3t") {
				t.Errorf("HTTP: got %d %s, want 502 without the password", res.StatusCode, body)
			}
			c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
			checkClose(t, "WebSocket", readClose(t, c), 1011, "guard.service_unavailable")
		})
	}
}

// TestEgressSOCKS5: a socks5 proxy in HTTPS_PROXY carries WebSockets as
// net/http carries HTTP requests through it.
func TestEgressSOCKS5(t *testing.T) {
	checkGoroutines(t)
	engine, ca := tlsEngine(t)
	target := net.JoinHostPort(engineHost, strconv.Itoa(engine.Listener.Addr().(*net.TCPAddr).Port))
	h := hosts{target: engine.Listener.Addr().String()}
	socks := startSOCKS5(t, h)
	cfg := testConfig("https://" + target)
	cfg.CAFile, cfg.ServerName = ca, "example.com"
	_, front := startProxy(t, cfg, Options{Proxy: proxyEnv(httpproxy.Config{HTTPSProxy: "socks5://" + socks.addr}), DialContext: h.dial})
	roundTrip(t, front)
	if got := socks.targets(); len(got) != 2 || got[0] != target || got[1] != target {
		t.Errorf("socks connections: got %q, want two to %s", got, target)
	}
}

// socks5Server is a minimal SOCKS5 proxy (RFC 1928: no authentication,
// CONNECT to a domain name or IPv4 address) recording its targets.
type socks5Server struct {
	addr string
	mu   sync.Mutex
	seen []string
}

func startSOCKS5(t *testing.T, h hosts) *socks5Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &socks5Server{addr: ln.Addr().String()}
	e := &egressProxy{}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		e.closeAll()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				target, ok := socksHandshake(c)
				if !ok {
					c.Close()
					return
				}
				s.mu.Lock()
				s.seen = append(s.seen, target)
				s.mu.Unlock()
				up, err := h.dial(context.Background(), "tcp", target)
				if err != nil {
					_, _ = c.Write([]byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0})
					c.Close()
					return
				}
				_, _ = c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
				e.splice(c, c, up)
			})
		}
	})
	return s
}

// socksHandshake reads a SOCKS5 greeting and CONNECT request from c and
// returns the target "host:port".
func socksHandshake(c net.Conn) (string, bool) {
	_ = c.SetDeadline(time.Now().Add(wait))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	r := bufio.NewReader(c)
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(r, hdr); err != nil || hdr[0] != 5 {
		return "", false
	}
	if _, err := io.ReadFull(r, make([]byte, hdr[1])); err != nil {
		return "", false
	}
	if _, err := c.Write([]byte{5, 0}); err != nil {
		return "", false
	}
	req := make([]byte, 4)
	if _, err := io.ReadFull(r, req); err != nil || req[0] != 5 || req[1] != 1 {
		return "", false
	}
	var host string
	switch req[3] {
	case 1:
		ip := make([]byte, 4)
		if _, err := io.ReadFull(r, ip); err != nil {
			return "", false
		}
		host = net.IP(ip).String()
	case 3:
		n, err := r.ReadByte()
		if err != nil {
			return "", false
		}
		name := make([]byte, n)
		if _, err := io.ReadFull(r, name); err != nil {
			return "", false
		}
		host = string(name)
	default:
		return "", false
	}
	port := make([]byte, 2)
	if _, err := io.ReadFull(r, port); err != nil || r.Buffered() > 0 {
		return "", false
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port)))), true
}

func (s *socks5Server) targets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
