package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
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
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
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
	f, err := followToClose(conn)
	if err != nil {
		t.Fatalf("reading the close: %v", err)
	}
	return f.closeCode, f.closeReason, f.messages
}

// followToClose follows the frames read from conn (for at most wait) until
// a close frame; the error is the read that failed before one came.
func followToClose(conn net.Conn) (*frameParser, error) {
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	var f frameParser
	buf := make([]byte, 4096)
	for !f.closeSeen {
		n, err := conn.Read(buf)
		_, _ = f.feed(buf[:n])
		if err != nil && !f.closeSeen {
			return &f, err
		}
	}
	return &f, nil
}

// TestWebSocketTooBigHeaderSplit: a message over the read limit whose
// frame header arrives in pieces reaches the engine in no part (the
// header is held until complete), so the engine can still be sent a clean
// close.
func TestWebSocketTooBigHeaderSplit(t *testing.T) {
	checkGoroutines(t)
	const limit = 1024
	up, upGot, upEnd := sinkUpstream(t, nil)
	cfg := testConfig(up.URL)
	cfg.WebSocket.ReadLimit = limit
	ends, onEnd := endings()
	_, front := startProxy(t, cfg, Options{OnWebSocketEnd: onEnd})
	conn := rawClientConn(t, front.URL, actorPath+"/connect")
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
	if msg := recv(t, upGot, "the small message upstream"); string(msg) != "small" {
		t.Errorf("upstream got %q, want small", msg)
	}
	checkClientRefused(t, conn, rnd, upGot, upEnd, ends, 1009, ReasonMessageTooBig, "client_message_too_big")
}

// checkClientRefused checks how a session ends after the gateway refused a
// frame of the raw client conn (after one message went through): the
// client is sent code and reason and answers it, the engine is sent 1001
// ws.going_away and no further message, and the stats name cause.
func checkClientRefused(t *testing.T, conn net.Conn, rnd *rand.Rand, upGot <-chan []byte, upEnd <-chan error, ends <-chan Stats,
	code int, reason, cause string) {
	t.Helper()
	gotCode, gotReason, _ := readRawClose(t, conn)
	if gotCode != code || gotReason != reason {
		t.Errorf("client: got close %d %q, want %d %s", gotCode, gotReason, code, reason)
	}
	_, _ = conn.Write(appendFrame(nil, frameSpec{op: opClose, fin: true, payload: closePayload(code, ""), masked: true}, rnd))
	checkClose(t, "upstream", asClose(recv(t, upEnd, "the upstream to end")), 1001, ReasonGoingAway)
	select {
	case msg := <-upGot:
		t.Errorf("upstream got %q after the refused frame, want nothing", msg)
	default:
	}
	if st := recv(t, ends, "OnWebSocketEnd"); st.Cause != cause || st.MessagesIn != 1 || st.GatewayCloseCode != code {
		t.Errorf("stats: got %+v, want cause %s, 1 message in, gateway close %d", st, cause, code)
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
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
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
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != initMessage {
		t.Fatalf("first message: got %q %v, want the Init", msg, err)
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
}

// recordingConn is a net.Conn that records what is written to it.
type recordingConn struct {
	net.Conn
	out    bytes.Buffer
	writes int
	last   int // length of the last write
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes++
	c.last = len(p)
	return c.out.Write(p)
}
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }
func (c *recordingConn) SetReadDeadline(time.Time) error  { return nil }

// relayChunks feeds data, cut at cuts, through one relay direction from
// src (the engine's leg when fromEngine) and returns what reached dst.
func relayChunks(t testing.TB, data []byte, cuts []int, fromEngine bool, limit int64) ([]byte, *pump) {
	t.Helper()
	cfg := testConfig("http://127.0.0.1:1")
	s := &session{p: &Proxy{cfg: cfg, log: slog.New(slog.DiscardHandler)}, start: time.Now(), done: make(chan struct{})}
	out := &recordingConn{}
	src := newLeg(&recordingConn{}, s, fromEngine, limit)
	dst := newLeg(out, s, !fromEngine, 0)
	src.rp.handshake, dst.wp.handshake = false, false
	p := &pump{s: s, src: src, dst: dst}
	p.hold = p.holdBuf[:0]
	t.Cleanup(s.end) // the backstop timer of a terminated session
	start := 0
	for _, end := range cuts {
		if p.state == pumpDone {
			break
		}
		p.chunk(data[start:end])
		start = end
	}
	return out.out.Bytes(), p
}

// TestRelayPassesStreams: whatever the chunking, the relay writes exactly
// the frames it read, no byte more or less, in order: data frames at once,
// and, from an engine whose socket is still opening, each control frame
// once it is complete.
func TestRelayPassesStreams(t *testing.T) {
	big := bytes.Repeat([]byte("b"), 70000)
	for _, tc := range []struct {
		name   string
		frames []frameSpec
	}{
		{"pings then data", []frameSpec{{op: opPing, fin: true, payload: []byte("p")}, {op: opPong, fin: true}, {op: opText, fin: true, payload: []byte("init")}, {op: opBinary, fin: true, payload: big}}},
		{"fragments and control between", []frameSpec{{op: opText, payload: []byte("he")}, {op: opPing, fin: true, payload: bytes.Repeat([]byte("x"), 125)}, {op: opContinuation, fin: true, payload: []byte("llo")}}},
		{"16-bit lengths", []frameSpec{{op: opBinary, fin: true, payload: bytes.Repeat([]byte("z"), 300)}, {op: opText, fin: true}}},
		{"close last", []frameSpec{{op: opPong, fin: true, payload: []byte("q")}, {op: opText, fin: true, payload: []byte("bye")}, {op: opClose, fin: true, payload: closePayload(1000, "done")}}},
	} {
		for _, fromEngine := range []bool{true, false} {
			frames := slices.Clone(tc.frames)
			for i := range frames {
				frames[i].masked = !fromEngine
			}
			st := buildStream("", frames, 5)
			for how, cuts := range chunkings(len(st.data), 9) {
				got, p := relayChunks(t, st.data, cuts, fromEngine, 0)
				if !bytes.Equal(got, st.data) {
					t.Fatalf("%s (engine %v) %s: relayed %d bytes, want the %d read", tc.name, fromEngine, how, len(got), len(st.data))
				}
				if len(p.hold) != 0 || p.dst.midFrame() {
					t.Fatalf("%s (engine %v) %s: %d bytes held, dst mid-frame %v", tc.name, fromEngine, how, len(p.hold), p.dst.midFrame())
				}
			}
		}
	}
}

// FuzzRelay: whatever bytes a peer sends, in whatever chunks, the relay
// never panics, holds back at most one control frame, and writes to the
// other peer only a prefix of what it read, followed at most by the
// gateway's own close frame (after a refused message or an engine that
// was not ready).
func FuzzRelay(f *testing.F) {
	rnd := rand.New(rand.NewPCG(1, 2))
	f.Add(appendFrame(nil, frameSpec{op: opText, fin: true, payload: []byte("hi")}, rnd), uint64(1), true, int64(0))
	f.Add(slices.Concat(frame(opPing, []byte("p")), closeFrame(1011, noRunner+"#"+ray)), uint64(2), true, int64(0))
	f.Add(appendFrame(nil, frameSpec{op: opBinary, fin: true, payload: make([]byte, 300), masked: true}, rnd), uint64(3), false, int64(100))
	f.Add([]byte{0x89, 0xfe, 0x01, 0x00, 0x01}, uint64(4), true, int64(0))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64, fromEngine bool, limit int64) {
		if limit < 0 {
			limit = -limit
		}
		var cuts []int
		r := rand.New(rand.NewPCG(seed, 3))
		for at := 0; at < len(data); {
			at = min(len(data), at+1+r.IntN(8))
			cuts = append(cuts, at)
		}
		got, p := relayChunks(t, data, cuts, fromEngine, limit)
		if len(p.hold) > holdMax {
			t.Fatalf("holding %d bytes", len(p.hold))
		}
		rec := p.dst.Conn.(*recordingConn)
		if p.s.term.Load() != nil && p.dst.sentCode.Load() != 0 && rec.writes > 0 {
			got = got[:len(got)-rec.last] // the gateway's close
		}
		if !bytes.HasPrefix(data, got) {
			t.Fatalf("relayed %x, not a prefix of %x", got, data)
		}
	})
}

// TestWebSocketPingsAndPongs: the pongs answering the gateway's keepalive
// pings stop at the gateway; a peer's own ping goes through and the other
// peer's pong comes back to it.
func TestWebSocketPingsAndPongs(t *testing.T) {
	checkGoroutines(t)
	upPings := make(chan struct{}, 100)
	upPongs := make(chan string, 100)
	upEnd := make(chan error, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		pingCounter(c, upPings)
		c.SetPongHandler(func(data string) error { upPongs <- data; return nil })
		upEnd <- echo(c)
	})
	cfg := testConfig(up.URL)
	cfg.WebSocket.PingInterval = 30 * time.Millisecond
	cfg.WebSocket.PongTimeout = 200 * time.Millisecond
	_, front := startProxy(t, cfg, Options{})
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	clientPings := make(chan struct{}, 100)
	clientPongs := make(chan string, 100)
	pingCounter(c, clientPings)
	c.SetPongHandler(func(data string) error { clientPongs <- data; return nil })
	msgs := make(chan []byte, 1)
	go func() {
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			msgs <- msg
		}
	}()
	for i := range 3 {
		recv(t, clientPings, "keepalive ping "+strconv.Itoa(i+1)+" to the client")
		recv(t, upPings, "keepalive ping "+strconv.Itoa(i+1)+" to the upstream")
	}
	if err := c.WriteControl(websocket.PingMessage, []byte("client's"), time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, clientPongs, "the pong to the client's ping"); got != "client's" {
		t.Errorf("client got pong %q, want its own ping's", got)
	}
	// A message round trip after the keepalive pongs: any leaked pong
	// would have arrived before the echo.
	if err := c.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
		t.Fatal(err)
	}
	recv(t, msgs, "the echo")
	select {
	case p := <-clientPongs:
		t.Errorf("client got a pong it did not ask for: %q", p)
	case p := <-upPongs:
		t.Errorf("upstream got a pong it did not ask for: %q", p)
	default:
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
	recv(t, upEnd, "the upstream to end")
}

// TestWebSocketClientProtocolErrors: a client frame RFC 6455 tells the
// server to fail the connection for is not relayed: the client gets 1002
// ws.protocol_error, the engine 1001 ws.going_away, and what came before
// the frame still went through.
func TestWebSocketClientProtocolErrors(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	masked := func(s frameSpec) []byte { s.masked = true; return appendFrame(nil, s, rnd) }
	rsv := masked(frameSpec{op: opText, fin: true, payload: []byte("x")})
	rsv[0] |= 0x40
	for _, tt := range []struct {
		name  string
		frame []byte
	}{
		{"not masked", appendFrame(nil, frameSpec{op: opText, fin: true, payload: []byte("x")}, rnd)},
		{"reserved bit", rsv},
		{"unknown opcode", masked(frameSpec{op: 0x3, fin: true, payload: []byte("x")})},
		{"unknown control opcode", masked(frameSpec{op: 0xB, fin: true})},
		{"fragmented ping", masked(frameSpec{op: opPing, payload: []byte("x")})},
		{"control frame over 125 bytes", masked(frameSpec{op: opPing, fin: true, payload: fill(126, 'p')})},
		{"continuation without a message", masked(frameSpec{op: opContinuation, fin: true, payload: []byte("x")})},
		{"new message inside a fragmented one", append(masked(frameSpec{op: opText, payload: []byte("a")}),
			masked(frameSpec{op: opText, fin: true, payload: []byte("b")})...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			up, upGot, upEnd := sinkUpstream(t, nil)
			ends, onEnd := endings()
			_, front := startProxy(t, testConfig(up.URL), Options{OnWebSocketEnd: onEnd})
			conn := rawClientConn(t, front.URL, actorPath+"/connect")
			ok := masked(frameSpec{op: opText, fin: true, payload: []byte("fine")})
			if _, err := conn.Write(append(ok, tt.frame...)); err != nil {
				t.Fatal(err)
			}
			if msg := recv(t, upGot, "the message before the bad frame"); string(msg) != "fine" {
				t.Errorf("upstream got %q, want fine", msg)
			}
			checkClientRefused(t, conn, rnd, upGot, upEnd, ends, websocket.CloseProtocolError, ReasonProtocolError, "client_protocol_error")
		})
	}
}

// TestWebSocketEngineProtocolError: an engine frame that breaks RFC 6455
// (here: masked) is not relayed; the engine gets 1002 ws.protocol_error,
// the client the retryable close of an engine gone wrong.
func TestWebSocketEngineProtocolError(t *testing.T) {
	checkGoroutines(t)
	bad := appendFrame(nil, frameSpec{op: opText, fin: true, payload: []byte("masked"), masked: true}, rand.New(rand.NewPCG(7, 8)))
	u, engineGot := scriptedEngine(t, 50*time.Millisecond, func(h []byte) [][]byte {
		return [][]byte{h, frame(opText, []byte(initMessage)), bad}
	})
	ends, onEnd := endings()
	_, front := startProxy(t, testConfig(u), Options{OnWebSocketEnd: onEnd})
	c := mustDialWS(t, front, actorPath+"/connect", nil, rivetProtocols...)
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != initMessage {
		t.Fatalf("first message: got %q %v, want the Init", msg, err)
	}
	checkClose(t, "client", readClose(t, c), 1011, ReasonServiceUnavailable)
	if eg := recv(t, engineGot, "the engine to read the gateway's close"); !eg.seen || eg.code != 1002 {
		t.Errorf("engine: got %+v, want 1002", eg)
	}
	if st := recv(t, ends, "OnWebSocketEnd"); st.Cause != "upstream_protocol_error" || st.MessagesOut != 1 {
		t.Errorf("stats: got %+v, want cause upstream_protocol_error, 1 message out", st)
	}
}
