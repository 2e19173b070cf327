package proxy

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebSocketHandlerReturns: once the client is upgraded the handler
// returns and the socket is carried by the relay alone: two goroutines,
// none of net/http's or websocketproxy's, which is what an idle socket's
// memory comes down to.
func TestWebSocketHandlerReturns(t *testing.T) {
	checkGoroutines(t)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { _ = echo(c) })
	opened := make(chan struct{}, 1)
	ends, onEnd := endings()
	_, front := startProxy(t, testConfig(up.URL), Options{
		OnWebSocketOpen: func(*http.Request) { opened <- struct{}{} },
		OnWebSocketEnd:  onEnd,
	})
	c := mustDialWS(t, front, "/gateway/a/connect", nil, rivetProtocols...)
	recv(t, opened, "OnWebSocketOpen")
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo:hi" {
		t.Fatalf("echo: got %q %v", msg, err)
	}
	var relays, others int
	deadline := time.Now().Add(wait)
	for {
		relays, others = 0, 0
		for _, g := range strings.Split(allStacks(), "\n\n") {
			switch {
			case strings.Contains(g, "proxy.(*session).run"):
				relays++
			case strings.Contains(g, "websocketproxy") || strings.Contains(g, "proxy.(*Proxy).serveWebSocket"):
				others++
			}
		}
		if (relays == 2 && others == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if relays != 2 || others != 0 {
		t.Errorf("goroutines: %d relaying, %d in the handler or websocketproxy; want 2 and 0\n%s", relays, others, ownStacks())
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
	checkClose(t, "client", readClose(t, c), 1000, "")
	recv(t, ends, "OnWebSocketEnd")
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// rawClientConn opens a WebSocket through front by hand, so a test can
// write frames byte by byte; it returns once the 101 head has been read.
func rawClientConn(t *testing.T, front string, path string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	_, err = conn.Write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: rivet\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	f := frameParser{handshake: true}
	var b [1]byte
	for f.handshake {
		if _, err := conn.Read(b[:]); err != nil {
			t.Fatalf("reading the 101: %v", err)
		}
		f.feed(b[:])
	}
	if !f.switched() {
		t.Fatal("no 101")
	}
	return conn
}

// readRawClose reads server frames from conn until a close frame and
// returns its code and reason.
func readRawClose(t *testing.T, conn net.Conn) (int, string, int64) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	var f frameParser
	buf := make([]byte, 4096)
	for !f.closeSeen {
		n, err := conn.Read(buf)
		_, _ = f.feed(buf[:n])
		if err != nil && !f.closeSeen {
			t.Fatalf("reading the close: %v", err)
		}
	}
	return f.closeCode, f.closeReason, f.messages
}

// TestWebSocketTooBigHeaderSplit: a message over the read limit whose
// frame header arrives in pieces reaches the engine in no part (the
// header is held until complete), so the engine can still be sent a clean
// close.
func TestWebSocketTooBigHeaderSplit(t *testing.T) {
	checkGoroutines(t)
	const limit = 1024
	upEnd := make(chan error, 1)
	upGot := make(chan int, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				upEnd <- err
				return
			}
			upGot <- len(msg)
		}
	})
	cfg := testConfig(up.URL)
	cfg.WebSocket.ReadLimit = limit
	ends, onEnd := endings()
	_, front := startProxy(t, cfg, Options{OnWebSocketEnd: onEnd})
	conn := rawClientConn(t, front.URL, "/gateway/a/connect")
	rnd := rand.New(rand.NewPCG(3, 4))
	ok := appendFrame(nil, frameSpec{op: opText, fin: true, payload: []byte("small"), masked: true}, rnd)
	big := appendFrame(nil, frameSpec{op: opBinary, fin: true, payload: make([]byte, limit+1), masked: true}, rnd)
	// The small message and the first byte of the big one's header, then
	// the rest of the header, then its payload.
	for _, chunk := range [][]byte{append(ok, big[0]), big[1:3], big[3:]} {
		if _, err := conn.Write(chunk); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	if n := recv(t, upGot, "the small message upstream"); n != 5 {
		t.Errorf("upstream got %d bytes, want 5", n)
	}
	code, reason, _ := readRawClose(t, conn)
	if code != 1009 || reason != ReasonMessageTooBig {
		t.Errorf("client: got close %d %q, want 1009 %s", code, reason, ReasonMessageTooBig)
	}
	_, _ = conn.Write(appendFrame(nil, frameSpec{op: opClose, fin: true, payload: closePayload(1009, ""), masked: true}, rnd))
	checkClose(t, "upstream", asClose(recv(t, upEnd, "the upstream to end")), 1001, ReasonGoingAway)
	select {
	case n := <-upGot:
		t.Errorf("upstream got a %d-byte message, want none", n)
	default:
	}
	if st := recv(t, ends, "OnWebSocketEnd"); st.Cause != "client_message_too_big" || st.MessagesIn != 1 || st.GatewayCloseCode != 1009 {
		t.Errorf("stats: got %+v, want cause client_message_too_big, 1 message in, gateway close 1009", st)
	}
}

// TestWebSocketCloseAfterFrameInFlight: when the gateway ends a session
// while a frame is half relayed, the rest of that frame is relayed first,
// then the close: the client gets the whole message, then ws.going_away.
func TestWebSocketCloseAfterFrameInFlight(t *testing.T) {
	checkGoroutines(t)
	msg := bytes.Repeat([]byte("m"), 3000)
	const gap = 150 * time.Millisecond
	u, engineGot := scriptedEngine(t, gap, func(h []byte) [][]byte {
		f := frame(opBinary, msg)
		return [][]byte{h, f[:1000], f[1000:]}
	})
	ends, onEnd := endings()
	p, front := startProxy(t, testConfig(u), Options{OnWebSocketEnd: onEnd})
	c := mustDialWS(t, front, "/gateway/a/connect", nil, rivetProtocols...)
	time.Sleep(gap + gap/2) // the first part of the frame has been relayed
	shutdown := make(chan error, 1)
	go func() { shutdown <- p.Shutdown(context.Background()) }()
	mt, got, err := c.ReadMessage()
	if err != nil || mt != websocket.BinaryMessage || !bytes.Equal(got, msg) {
		t.Fatalf("message: got type %d, %d bytes, %v; want the whole %d-byte message", mt, len(got), err, len(msg))
	}
	checkClose(t, "client", readClose(t, c), 1001, ReasonGoingAway)
	if eg := recv(t, engineGot, "the engine to read the gateway's close"); !eg.seen || eg.code != 1001 {
		t.Errorf("engine: got %+v, want 1001", eg)
	}
	if err := recv(t, shutdown, "Shutdown"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if st := recv(t, ends, "OnWebSocketEnd"); st.Cause != "shutdown" || st.MessagesOut != 1 || st.GatewayCloseCode != 1001 {
		t.Errorf("stats: got %+v, want cause shutdown, 1 message out, gateway close 1001", st)
	}
}

// TestWebSocketFrameBehindThe101: what the engine sends in the same write
// as its 101 is relayed, not lost in gorilla's handshake reader.
func TestWebSocketFrameBehindThe101(t *testing.T) {
	checkGoroutines(t)
	u, _ := scriptedEngine(t, 0, func(h []byte) [][]byte {
		return [][]byte{append(append(h, frame(opText, []byte(initMessage))...), frame(opPing, []byte("p"))...)}
	})
	_, front := startProxy(t, testConfig(u), Options{})
	c := mustDialWS(t, front, "/gateway/a/connect", nil, rivetProtocols...)
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != initMessage {
		t.Fatalf("first message: got %q %v, want the Init", msg, err)
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
}
