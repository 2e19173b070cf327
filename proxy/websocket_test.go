package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// promptly bounds a close handshake between cooperating peers; testConfig's
// CloseGrace is well above it, so a leg that waits out the grace period
// instead of the peer's close fails the test.
const promptly = 2 * time.Second

// endings collects the Stats of every proxied WebSocket.
func endings() (chan Stats, func(*http.Request, Stats)) {
	ch := make(chan Stats, 16)
	return ch, func(_ *http.Request, st Stats) { ch <- st }
}

// asClose returns err as a close error, or nil.
func asClose(err error) *websocket.CloseError {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

// initMessage is what the engine sends first on /connect.
const initMessage = `{"body":{"tag":"Init","val":{"actorId":"a1","connectionId":"c1"}}}`

func TestWebSocketEcho(t *testing.T) {
	checkGoroutines(t)
	upEnd := make(chan error, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		if err := c.WriteMessage(websocket.TextMessage, []byte(initMessage)); err != nil {
			upEnd <- err
			return
		}
		upEnd <- echo(c)
	})
	ends, onEnd := endings()
	_, front := startProxy(t, testConfig(up.URL), Options{OnWebSocketEnd: onEnd})

	c, resp, err := dialWS(t, front, "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k", nil, rivetProtocols...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "rivet" {
		t.Fatalf("handshake: got %d with subprotocol %q, want 101 with rivet", resp.StatusCode, c.Subprotocol())
	}
	if got := rivet.Subprotocols(up.next(t).Header); !slices.Equal(got, rivetProtocols) {
		t.Errorf("upstream subprotocols: got %q, want %q", got, rivetProtocols)
	}

	mt, msg, err := c.ReadMessage()
	if err != nil || mt != websocket.TextMessage || string(msg) != initMessage {
		t.Fatalf("first message: got %d %q %v, want the text Init", mt, msg, err)
	}
	sent := []struct {
		mt   int
		data []byte
	}{
		{websocket.TextMessage, []byte("hello")},
		{websocket.BinaryMessage, []byte{0, 1, 2, 0xff}},
		{websocket.BinaryMessage, bytes.Repeat([]byte{7}, 70000)},
		{websocket.TextMessage, nil},
	}
	var bytesIn, bytesOut int64 = 0, int64(len(initMessage))
	for _, m := range sent {
		if err := c.WriteMessage(m.mt, m.data); err != nil {
			t.Fatal(err)
		}
		mt, msg, err := c.ReadMessage()
		want := append([]byte("echo:"), m.data...)
		if err != nil || mt != m.mt || !bytes.Equal(msg, want) {
			t.Fatalf("echo: got type %d, %d bytes, %v; want type %d, %d bytes", mt, len(msg), err, m.mt, len(want))
		}
		bytesIn += int64(len(m.data))
		bytesOut += int64(len(want))
	}

	closedAt := time.Now()
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "Disposed"), time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "client", readClose(t, c), 1000, "")
	checkClose(t, "upstream", asClose(recv(t, upEnd, "the upstream to end")), 1000, "Disposed")

	st := recv(t, ends, "OnWebSocketEnd")
	if d := time.Since(closedAt); d > promptly {
		t.Errorf("session ended %v after the client's close, want within %v", d, promptly)
	}
	want := Stats{
		MessagesIn: int64(len(sent)), BytesIn: bytesIn,
		MessagesOut: int64(len(sent) + 1), BytesOut: bytesOut,
		ClientCloseCode: 1000, UpstreamCloseCode: 1000, GatewayCloseCode: 1000,
		Duration: st.Duration,
	}
	if st != want {
		t.Errorf("stats: got %+v, want %+v", st, want)
	}
}

func TestWebSocketCloseFromUpstream(t *testing.T) {
	checkGoroutines(t)
	const errMsg = `{"body":{"tag":"Error","val":{"actionId":null,"code":"unauthorized","group":"user","message":"missing token"}}}`
	upEnd := make(chan error, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		_ = c.WriteMessage(websocket.TextMessage, []byte(errMsg))
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1011, "user.unauthorized"), time.Now().Add(wait))
		_, _, err := c.ReadMessage()
		upEnd <- err
	})
	ends, onEnd := endings()
	_, front := startProxy(t, testConfig(up.URL), Options{OnWebSocketEnd: onEnd})
	c := mustDialWS(t, front, "/gateway/counter/connect?rvt-namespace=default&rvt-method=get&rvt-key=k", nil, rivetProtocols...)

	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != errMsg {
		t.Fatalf("message: got %q %v, want the Error message", msg, err)
	}
	closedAt := time.Now()
	checkClose(t, "client", readClose(t, c), 1011, "user.unauthorized")
	if ce := asClose(recv(t, upEnd, "the upstream to end")); ce == nil || ce.Code != 1011 {
		t.Errorf("upstream: got %v, want the close answered with 1011", ce)
	}
	st := recv(t, ends, "OnWebSocketEnd")
	if d := time.Since(closedAt); d > promptly {
		t.Errorf("session ended %v after the close, want within %v", d, promptly)
	}
	if st.MessagesOut != 1 || st.MessagesIn != 0 || st.UpstreamCloseCode != 1011 || st.GatewayCloseCode != 1011 || st.ClientCloseCode != 1011 {
		t.Errorf("stats: got %+v, want 1 message out and close 1011 everywhere", st)
	}
	if st.GatewayCloseReason != "user.unauthorized" {
		t.Errorf("stats: got close reason %q, want the engine's user.unauthorized relayed", st.GatewayCloseReason)
	}
}

func TestWebSocketReadLimit(t *testing.T) {
	const limit = 1024
	tests := []struct {
		name       string
		fromClient int // size the client sends, 0 for none
		fromUp     int // size the upstream sends, 0 for none
		wantClient *websocket.CloseError
		wantUp     *websocket.CloseError
		wantCause  string
	}{
		{"client over the limit", limit + 1, 0,
			&websocket.CloseError{Code: 1009, Text: "ws.message_too_big"}, &websocket.CloseError{Code: 1001, Text: "ws.going_away"}, "client_message_too_big"},
		{"client far over the limit", 4 << 20, 0,
			&websocket.CloseError{Code: 1009, Text: "ws.message_too_big"}, &websocket.CloseError{Code: 1001, Text: "ws.going_away"}, "client_message_too_big"},
		{"upstream over the limit", 0, limit + 1,
			&websocket.CloseError{Code: 1009, Text: "ws.message_too_big"}, &websocket.CloseError{Code: 1009, Text: "ws.message_too_big"}, "upstream_message_too_big"},
		{"both at the limit", limit, limit, nil, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			var hello []byte
			if tc.fromUp > 0 {
				hello = make([]byte, tc.fromUp)
			}
			up, upGot, upEnd := sinkUpstream(t, hello)
			cfg := testConfig(up.URL)
			cfg.WebSocket.ReadLimit = limit
			ends, onEnd := endings()
			_, front := startProxy(t, cfg, Options{OnWebSocketEnd: onEnd})
			c := mustDialWS(t, front, actorPath+"/websocket/", nil, rivetProtocols...)

			if tc.fromClient > 0 {
				// A large message may be cut off by the gateway's close.
				go func() { _ = c.WriteMessage(websocket.BinaryMessage, make([]byte, tc.fromClient)) }()
			}
			if tc.wantClient == nil {
				if n := len(recv(t, upGot, "the client's message upstream")); n != tc.fromClient {
					t.Errorf("upstream got %d bytes, want %d", n, tc.fromClient)
				}
				if _, msg, err := c.ReadMessage(); err != nil || len(msg) != tc.fromUp {
					t.Errorf("client got %d bytes, %v; want %d", len(msg), err, tc.fromUp)
				}
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
				readClose(t, c)
				recv(t, ends, "OnWebSocketEnd")
				return
			}
			checkClose(t, "client", readClose(t, c), tc.wantClient.Code, tc.wantClient.Text)
			checkClose(t, "upstream", asClose(recv(t, upEnd, "the upstream to end")), tc.wantUp.Code, tc.wantUp.Text)
			select {
			case msg := <-upGot:
				t.Errorf("upstream got a %d-byte message, want none", len(msg))
			default:
			}
			st := recv(t, ends, "OnWebSocketEnd")
			if st.Cause != tc.wantCause || st.GatewayCloseCode != 1009 || st.GatewayCloseReason != "ws.message_too_big" {
				t.Errorf("stats: got cause %q, gateway close %d %q; want %q, 1009 ws.message_too_big", st.Cause, st.GatewayCloseCode, st.GatewayCloseReason, tc.wantCause)
			}
		})
	}
}

// pingCounter counts the pings a socket receives and answers them.
func pingCounter(c *websocket.Conn, pings chan<- struct{}) {
	c.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(wait))
	})
}

func TestWebSocketKeepalive(t *testing.T) {
	checkGoroutines(t)
	upPings := make(chan struct{}, 100)
	upEnd := make(chan error, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		pingCounter(c, upPings)
		upEnd <- echo(c)
	})
	cfg := testConfig(up.URL)
	cfg.WebSocket.PingInterval = 50 * time.Millisecond
	cfg.WebSocket.PongTimeout = 100 * time.Millisecond
	ends, onEnd := endings()
	_, front := startProxy(t, cfg, Options{OnWebSocketEnd: onEnd})
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)

	clientPings := make(chan struct{}, 100)
	pingCounter(c, clientPings)
	msgs := make(chan []byte, 1)
	clientEnd := make(chan error, 1)
	go func() {
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				clientEnd <- err
				return
			}
			msgs <- msg
		}
	}()
	// Five pings each: longer than PingInterval+PongTimeout, so the healthy
	// peers have outlived the dead-peer check several times.
	for i := range 5 {
		recv(t, clientPings, "ping "+strconv.Itoa(i+1)+" to the client")
		recv(t, upPings, "ping "+strconv.Itoa(i+1)+" to the upstream")
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, msgs, "the echo"); string(got) != "echo:still here" {
		t.Errorf("echo: got %q", got)
	}
	if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "Disposed"), time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	checkClose(t, "client", asClose(recv(t, clientEnd, "the client to end")), 1000, "")
	checkClose(t, "upstream", asClose(recv(t, upEnd, "the upstream to end")), 1000, "Disposed")
	if st := recv(t, ends, "OnWebSocketEnd"); st.Cause != "" || st.MessagesIn != 1 || st.MessagesOut != 1 {
		t.Errorf("stats: got %+v, want no cause and one message each way (pings not counted)", st)
	}
}

// acceptKey is the Sec-WebSocket-Accept value for key (RFC 6455 §4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// rawUpstream is a TCP server standing in for an engine that misbehaves:
// for each connection it reads the handshake request and calls serve, which
// may hold the connection until done closes (at the end of the test).
func rawUpstream(t *testing.T, serve func(conn net.Conn, req *http.Request, done <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	accepted := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		<-accepted
	})
	go func() {
		defer close(accepted)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if req, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
					serve(conn, req, done)
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// deadUpstream accepts WebSocket handshakes and then neither reads nor
// writes: a hung engine. Connections are held until the test ends.
func deadUpstream(t *testing.T) string {
	t.Helper()
	return rawUpstream(t, func(conn net.Conn, req *http.Request, done <-chan struct{}) {
		_, _ = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+acceptKey(req.Header.Get("Sec-WebSocket-Key"))+"\r\nSec-WebSocket-Protocol: rivet\r\n\r\n")
		<-done
	})
}

func TestWebSocketDeadUpstream(t *testing.T) {
	checkGoroutines(t)
	cfg := testConfig(deadUpstream(t))
	cfg.WebSocket.PingInterval = 50 * time.Millisecond
	cfg.WebSocket.PongTimeout = 100 * time.Millisecond
	ends, onEnd := endings()
	_, front := startProxy(t, cfg, Options{OnWebSocketEnd: onEnd})
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	start := time.Now()
	checkClose(t, "client", readClose(t, c), 1011, "guard.service_unavailable")
	silent := cfg.WebSocket.PingInterval + cfg.WebSocket.PongTimeout
	if d := time.Since(start); d < cfg.WebSocket.PongTimeout || d > silent+cfg.WebSocket.PingInterval+time.Second {
		t.Errorf("closed after %v, want about %v", d, silent+cfg.WebSocket.PingInterval)
	}
	st := recv(t, ends, "OnWebSocketEnd")
	if d := time.Since(start); d > promptly {
		t.Errorf("session ended %v after start, want within %v", d, promptly)
	}
	if st.Cause != "keepalive_timeout" || st.GatewayCloseCode != 1011 {
		t.Errorf("stats: got cause %q, gateway close %d; want keepalive_timeout, 1011", st.Cause, st.GatewayCloseCode)
	}
}

func TestWebSocketUpstreamVanishes(t *testing.T) {
	checkGoroutines(t)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		_ = c.WriteMessage(websocket.TextMessage, []byte("bye"))
		c.NetConn().Close() // no close frame
	})
	ends, onEnd := endings()
	_, front := startProxy(t, testConfig(up.URL), Options{OnWebSocketEnd: onEnd})
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "bye" {
		t.Fatalf("message: got %q %v, want bye", msg, err)
	}
	start := time.Now()
	checkClose(t, "client", readClose(t, c), 1011, "guard.service_unavailable")
	st := recv(t, ends, "OnWebSocketEnd")
	if d := time.Since(start); d > promptly {
		t.Errorf("session ended %v after the close, want within %v", d, promptly)
	}
	if st.Cause != "peer_lost" || st.UpstreamCloseCode != 0 || st.GatewayCloseCode != 1011 {
		t.Errorf("stats: got %+v, want cause peer_lost, no upstream close, gateway close 1011", st)
	}
}

func TestWebSocketClientVanishes(t *testing.T) {
	checkGoroutines(t)
	upEnd := make(chan error, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { upEnd <- echo(c) })
	ends, onEnd := endings()
	_, front := startProxy(t, testConfig(up.URL), Options{OnWebSocketEnd: onEnd})
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo:hi" {
		t.Fatalf("echo: got %q %v", msg, err)
	}
	start := time.Now()
	c.NetConn().Close() // no close frame
	checkClose(t, "upstream", asClose(recv(t, upEnd, "the upstream to end")), 1001, "ws.going_away")
	st := recv(t, ends, "OnWebSocketEnd")
	if d := time.Since(start); d > promptly {
		t.Errorf("session ended %v after the client vanished, want within %v", d, promptly)
	}
	if st.Cause != "peer_lost" || st.ClientCloseCode != 0 || st.UpstreamCloseCode != 1001 {
		t.Errorf("stats: got %+v, want cause peer_lost, no client close, upstream close 1001", st)
	}
}

func TestWebSocketShutdown(t *testing.T) {
	checkGoroutines(t)
	upEnd := make(chan error, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { upEnd <- echo(c) })
	ends, onEnd := endings()
	p, front := startProxy(t, testConfig(up.URL), Options{OnWebSocketEnd: onEnd})
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	up.next(t)
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo:hi" {
		t.Fatalf("echo: got %q %v", msg, err)
	}
	if n := p.OpenWebSockets(); n != 1 {
		t.Errorf("OpenWebSockets: got %d, want 1", n)
	}

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
		defer cancel()
		shutdown <- p.Shutdown(ctx)
	}()
	// The upstream hears of the shutdown first; the client has not read yet.
	checkClose(t, "upstream", asClose(recv(t, upEnd, "the upstream to end")), 1001, "ws.going_away")

	// A new upgrade is accepted, then closed with the retryable ws.going_away.
	c2, resp, err := dialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || c2.Subprotocol() != "rivet" {
		t.Fatalf("dial during shutdown: got %v, want 101 with rivet", err)
	}
	checkClose(t, "client during shutdown", readClose(t, c2), 1011, "ws.going_away")
	select {
	case r := <-up.reqs:
		t.Errorf("upstream: dialed %s during shutdown", r.URI)
	default:
	}

	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v before the client answered the close", err)
	default:
	}
	checkClose(t, "client", readClose(t, c), 1001, "ws.going_away")
	if err := recv(t, shutdown, "Shutdown to return"); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
	if n := p.OpenWebSockets(); n != 0 {
		t.Errorf("OpenWebSockets after Shutdown: got %d, want 0", n)
	}
	var st Stats
	select {
	case st = <-ends:
	default:
		t.Fatal("Shutdown returned before OnWebSocketEnd was called")
	}
	if st.Cause != "shutdown" || st.GatewayCloseCode != 1001 || st.GatewayCloseReason != "ws.going_away" || st.UpstreamCloseCode != 1001 {
		t.Errorf("stats: got %+v, want cause shutdown, 1001 ws.going_away to the client and 1001 from the engine", st)
	}
}

func TestWebSocketShutdownDeadline(t *testing.T) {
	checkGoroutines(t)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { _ = echo(c) })
	p, front := startProxy(t, testConfig(up.URL), Options{})
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	_ = c.WriteMessage(websocket.TextMessage, []byte("hi"))
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	// The client never answers the close: Shutdown gives up at its deadline
	// and cuts the connection.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > promptly {
		t.Errorf("Shutdown took %v, want about its deadline", d)
	}
}

func TestWebSocketSessionDeadline(t *testing.T) {
	checkGoroutines(t)
	upEnd := make(chan error, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { upEnd <- echo(c) })
	const ttl = 200 * time.Millisecond
	ends, onEnd := endings()
	_, front := startProxy(t, testConfig(up.URL), Options{
		OnWebSocketEnd:  onEnd,
		SessionDeadline: func(*http.Request) time.Time { return time.Now().Add(ttl) },
	})
	start := time.Now()
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	checkClose(t, "client", readClose(t, c), 1001, "ws.going_away")
	if d := time.Since(start); d < ttl-20*time.Millisecond || d > ttl+time.Second {
		t.Errorf("closed after %v, want about %v", d, ttl)
	}
	checkClose(t, "upstream", asClose(recv(t, upEnd, "the upstream to end")), 1001, "ws.going_away")
	if st := recv(t, ends, "OnWebSocketEnd"); st.Cause != "credential_expired" {
		t.Errorf("stats: got cause %q, want credential_expired", st.Cause)
	}
}

func TestWebSocketUpstreamUnreachable(t *testing.T) {
	checkGoroutines(t)
	ends, onEnd := endings()
	_, front := startProxy(t, testConfig("http://"+closedAddr(t)), Options{OnWebSocketEnd: onEnd})
	c, resp, err := dialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "rivet" {
		t.Fatalf("dial: got %v, want 101 with rivet", err)
	}
	checkClose(t, "client", readClose(t, c), 1011, "guard.service_unavailable")
	recv(t, ends, "OnWebSocketEnd")
}

func TestWebSocketUpstreamRefuses(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantReason  string
	}{
		{"engine error", http.StatusNotFound, "application/json", `{"group":"guard","code":"no_route","message":"No route."}`, "guard.no_route"},
		{"engine auth error", http.StatusForbidden, "application/json", `{"group":"auth","code":"forbidden","message":"no","metadata":{"a":1}}`, "auth.forbidden"},
		{"server error without a body we know", http.StatusBadGateway, "text/html", "<h1>bad gateway</h1>", "guard.service_unavailable"},
		{"client error without a body we know", http.StatusBadRequest, "text/plain", "bad", "gateway.invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			ends, onEnd := endings()
			_, front := startProxy(t, testConfig(up.URL), Options{OnWebSocketEnd: onEnd})
			start := time.Now()
			c, resp, err := dialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "rivet" {
				t.Fatalf("dial: got %v, want 101 with rivet", err)
			}
			checkClose(t, "client", readClose(t, c), 1011, tc.wantReason)
			if d := time.Since(start); d > promptly {
				t.Errorf("rejected after %v, want within %v", d, promptly)
			}
			recv(t, ends, "OnWebSocketEnd")
		})
	}
}

// TestWebSocketInvalidRoute checks upgrades the route parser refuses are
// accepted and closed with the refusal's reason, and never dialled upstream.
func TestWebSocketInvalidRoute(t *testing.T) {
	checkGoroutines(t)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { _ = echo(c) })
	_, front := startProxy(t, testConfig(up.URL), Options{})
	for _, tc := range []struct{ name, path, reason string }{
		{"not an actor id", "/gateway/abc/connect", "guard.query_invalid_params"},
		{"no WebSocket route", actorPath + "/request/x", "guard.no_route"},
		{"escaped slash", actorPath + "/websocket%2Fx", "gateway.invalid_path"},
		{"off the gateway", "/actors?namespace=default", "guard.no_route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp, err := dialWS(t, front, tc.path, nil, rivetProtocols...)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "rivet" {
				t.Fatalf("dial: got %v, want 101 with rivet", err)
			}
			checkClose(t, "client", readClose(t, c), 1011, tc.reason)
			select {
			case r := <-up.reqs:
				t.Errorf("upstream was dialed: %s", r.URI)
			default:
			}
		})
	}
}

func TestWebSocketOrigin(t *testing.T) {
	checkGoroutines(t)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { _ = echo(c) })
	allowed := "https://app.example"
	_, front := startProxy(t, testConfig(up.URL), Options{
		CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") == allowed },
	})
	_, defFront := startProxy(t, testConfig(up.URL), Options{})

	tests := []struct {
		name   string
		front  string
		origin string
		ok     bool
	}{
		{"allowed by CheckOrigin", "custom", allowed, true},
		{"refused by CheckOrigin", "custom", "https://evil.example", false},
		{"same origin by default", "default", defFront.URL, true},
		{"no origin by default", "default", "", true},
		{"cross origin by default", "default", "https://evil.example", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := front
			if tc.front == "default" {
				f = defFront
			}
			hdr := http.Header{}
			if tc.origin != "" {
				hdr.Set("Origin", tc.origin)
			}
			c, resp, err := dialWS(t, f, actorPath+"/connect", hdr, rivetProtocols...)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("dial: got %v, want 101", err)
			}
			if !tc.ok {
				checkClose(t, "client", readClose(t, c), 1011, "cors.origin_not_allowed")
				select {
				case r := <-up.reqs:
					t.Errorf("upstream was dialed: %s", r.URI)
				default:
				}
				return
			}
			if got := up.next(t).Header.Get("Origin"); got != tc.origin {
				t.Errorf("upstream Origin: got %q, want %q", got, tc.origin)
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte("x"))
			if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo:x" {
				t.Errorf("echo: got %q %v", msg, err)
			}
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
			readClose(t, c)
		})
	}
}

func TestWebSocketTokenOwnership(t *testing.T) {
	checkGoroutines(t)
	cases := []tokenCase{
		{
			name: "id target", path: actorPath + "@client-tok/connect",
			hdr:           http.Header{rivet.HeaderToken: {"client-tok"}, "Authorization": {"Bearer user"}},
			protocols:     []string{"rivet", "rivet_encoding.json", "rivet_token.client-tok", "rivet_conn_params.%7B%7D"},
			wantURI:       actorPath + "/connect",
			wantHeader:    map[string]string{rivet.HeaderToken: "", "Authorization": "Bearer user"},
			wantProtocols: []string{"rivet", "rivet_encoding.json", "rivet_conn_params.%7B%7D", "rivet_token." + gwToken},
		},
		{
			name: "query target", path: "/gateway/counter/websocket/raw/path?y=2&rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k&rvt-token=client-tok",
			hdr:           http.Header{rivet.HeaderToken: {"client-tok"}},
			protocols:     []string{"rivet", "rivet_token.client-tok", "rivet_encoding.bare"},
			wantURI:       "/gateway/counter/websocket/raw/path?y=2&rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k",
			wantHeader:    map[string]string{rivet.HeaderToken: ""},
			wantProtocols: []string{"rivet", "rivet_encoding.bare", "rivet_token." + gwToken},
		},
		{
			name: "no subprotocols offered", path: actorPath + "/websocket/",
			wantURI:       actorPath + "/websocket/",
			wantHeader:    map[string]string{rivet.HeaderToken: ""},
			wantProtocols: []string{"rivet_token." + gwToken},
		},
	}
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { _ = echo(c) })
	for _, owned := range []bool{true, false} {
		cfg := testConfig(up.URL)
		if owned {
			cfg.Token = gwToken
		}
		_, front := startProxy(t, cfg, Options{})
		for _, tc := range cases {
			t.Run(tc.name+" owned="+strconv.FormatBool(owned), func(t *testing.T) {
				c := mustDialWS(t, front, tc.path, tc.hdr, tc.protocols...)
				checkTokenCase(t, up.next(t), tc, owned)
				if got := c.Subprotocol(); got != "rivet" {
					t.Errorf("client subprotocol: got %q, want rivet (the engine's answer; never a token)", got)
				}
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
				readClose(t, c)
			})
		}
	}
}

func TestWebSocketForwardedHeaders(t *testing.T) {
	checkGoroutines(t)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { _ = echo(c) })
	upHost := strings.TrimPrefix(up.URL, "http://")
	for _, tc := range []struct{ name, host, wantHost, client, wantXFF string }{
		{"default host", "", upHost, "", "127.0.0.1"},
		{"host override", "engine.internal", "engine.internal", "", "127.0.0.1"},
		{"client resolved through trusted proxies", "", upHost, "198.51.100.7", "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(up.URL)
			cfg.Host = tc.host
			front := startProxyWithClient(t, cfg, tc.client)
			hdr := http.Header{
				"X-Forwarded-For":   {"6.6.6.6"},
				"X-Forwarded-Host":  {"evil.example"},
				"X-Forwarded-Proto": {"https"},
				"Forwarded":         {"for=6.6.6.6"},
				"Cookie":            {"a=b"},
				"X-Custom":          {"kept"},
			}
			c := mustDialWS(t, front, actorPath+"/connect", hdr, rivetProtocols...)
			seen := up.next(t)
			if seen.Host != tc.wantHost {
				t.Errorf("upstream Host: got %q, want %q", seen.Host, tc.wantHost)
			}
			for k, want := range map[string]string{
				"X-Forwarded-For":   tc.wantXFF,
				"X-Forwarded-Host":  strings.TrimPrefix(front.URL, "http://"),
				"X-Forwarded-Proto": "http",
				"Forwarded":         "",
				"Cookie":            "a=b",
				"X-Custom":          "kept",
			} {
				if got := strings.Join(seen.Header.Values(k), ","); got != want {
					t.Errorf("upstream %s: got %q, want %q", k, got, want)
				}
			}
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
			readClose(t, c)
		})
	}
}

func TestTLSUpstream(t *testing.T) {
	checkGoroutines(t)
	var seen atomic.Pointer[seenRequest]
	tlsUp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seenRequest{Host: r.Host, TLS: r.TLS}
		seen.Store(&s)
		if !websocket.IsWebSocketUpgrade(r) {
			_, _ = io.WriteString(w, "ok")
			return
		}
		c := upgradeEngine(t, w, r)
		if c != nil {
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(2 * wait))
			_ = echo(c)
		}
	}))
	tlsUp.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case fails handshakes on purpose
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsUp.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	upHost := strings.TrimPrefix(tlsUp.URL, "https://")

	for _, tc := range []struct{ name, serverName, host, wantSNI, wantHost string }{
		{"ip address", "", "", "", upHost},
		{"server name and host", "example.com", "engine.example.com", "example.com", "engine.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tlsUp.URL)
			cfg.CAFile, cfg.ServerName, cfg.Host = caFile, tc.serverName, tc.host
			_, front := startProxy(t, cfg, Options{})
			check := func(what string) {
				s := seen.Load()
				if s == nil || s.TLS == nil {
					t.Fatalf("%s: upstream saw no TLS request", what)
				}
				if s.TLS.ServerName != tc.wantSNI || s.Host != tc.wantHost {
					t.Errorf("%s: upstream got SNI %q, Host %q; want %q, %q", what, s.TLS.ServerName, s.Host, tc.wantSNI, tc.wantHost)
				}
				seen.Store(nil)
			}

			res, body := do(t, testClient(t), "GET", front.URL+actorPath+"/request/x", nil, nil)
			if res.StatusCode != http.StatusOK || string(body) != "ok" {
				t.Fatalf("HTTP: got %d %q, want 200 ok", res.StatusCode, body)
			}
			check("HTTP")

			c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
			if err := c.WriteMessage(websocket.TextMessage, []byte("tls")); err != nil {
				t.Fatal(err)
			}
			if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo:tls" {
				t.Fatalf("WebSocket echo: got %q %v", msg, err)
			}
			check("WebSocket")
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
			readClose(t, c)
		})
	}

	t.Run("untrusted certificate", func(t *testing.T) {
		_, front := startProxy(t, testConfig(tlsUp.URL), Options{})
		c, resp, err := dialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("dial: got %v, want 101", err)
		}
		if ce := readClose(t, c); ce.Code != 1011 {
			t.Errorf("client: got close %d %q, want 1011", ce.Code, ce.Text)
		}
	})
}

// hangingUpstream reads WebSocket handshakes and never answers them; each
// request is reported on the returned channel.
func hangingUpstream(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	got := make(chan struct{}, 8)
	url := rawUpstream(t, func(_ net.Conn, _ *http.Request, done <-chan struct{}) {
		got <- struct{}{}
		<-done
	})
	return url, got
}

func TestWebSocketShutdownDuringHandshake(t *testing.T) {
	checkGoroutines(t)
	url, got := hangingUpstream(t)
	ends, onEnd := endings()
	p, front := startProxy(t, testConfig(url), Options{OnWebSocketEnd: onEnd})
	type dialed struct {
		c    *websocket.Conn
		resp *http.Response
		err  error
	}
	dials := make(chan dialed, 1)
	go func() {
		d := websocket.Dialer{HandshakeTimeout: 2 * wait, Subprotocols: rivetProtocols}
		c, resp, err := d.Dial(wsURL(front, actorPath+"/connect"), nil)
		dials <- dialed{c, resp, err}
	}()
	recv(t, got, "the upstream handshake")
	start := time.Now()
	shutdown := make(chan error, 1)
	go func() { shutdown <- p.Shutdown(context.Background()) }()

	d := recv(t, dials, "the client's handshake")
	if d.err != nil || d.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("dial: got %v, want 101", d.err)
	}
	defer d.c.Close()
	checkClose(t, "client", readClose(t, d.c), 1011, "ws.going_away")
	if err := recv(t, shutdown, "Shutdown to return"); err != nil {
		t.Errorf("Shutdown: got %v", err)
	}
	if dt := time.Since(start); dt > promptly {
		t.Errorf("Shutdown took %v, want within %v", dt, promptly)
	}
	if st := recv(t, ends, "OnWebSocketEnd"); st.Cause != "shutdown" {
		t.Errorf("stats: got cause %q, want shutdown", st.Cause)
	}
}
