//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it: `make test` runs these tests in a
// second, race-free pass (go test -run Allocs).

package proxy

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// discardConn is a net.Conn whose writes go nowhere, without allocating.
type discardConn struct {
	net.Conn
	written int
}

func (c *discardConn) Write(p []byte) (int, error)      { c.written += len(p); return len(p), nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error  { return nil }

// TestAllocsPerRelayedMessage is a regression guard on the relay's cost per
// message: parsing a read chunk frame by frame (limits, counters, control
// frames) and writing it on must not allocate, in either direction, for a
// whole message in one read or one cut across two. Raise the ceiling only
// with the reason in the commit.
func TestAllocsPerRelayedMessage(t *testing.T) {
	const ceiling = 0
	cfg := testConfig("http://127.0.0.1:1")
	for _, fromEngine := range []bool{false, true} {
		s := &session{p: &Proxy{cfg: cfg, log: slog.New(slog.DiscardHandler)}, start: time.Now(), done: make(chan struct{})}
		out := &discardConn{}
		src := newLeg(&discardConn{}, s, fromEngine, 1<<20)
		dst := newLeg(out, s, !fromEngine, 0)
		src.rp.handshake, dst.wp.handshake = false, false
		p := &pump{s: s, src: src, dst: dst}
		p.hold = p.holdBuf[:0]
		msg := appendFrame(nil, frameSpec{op: opText, fin: true, payload: make([]byte, 64), masked: !fromEngine}, rand.New(rand.NewPCG(1, 2)))
		for _, tc := range []struct {
			name string
			cut  int
		}{{"whole", len(msg)}, {"cut in the header", 1}, {"cut in the payload", len(msg) / 2}} {
			before := out.written
			allocs := testing.AllocsPerRun(1000, func() {
				p.chunk(msg[:tc.cut])
				p.chunk(msg[tc.cut:])
			})
			if p.state != relaying || out.written-before != 1001*len(msg) {
				t.Fatalf("engine %v, %s: state %v, relayed %d bytes, want %d", fromEngine, tc.name, p.state, out.written-before, 1001*len(msg))
			}
			if allocs > ceiling {
				t.Errorf("engine %v, %s: %.1f allocations per relayed message, ceiling %d", fromEngine, tc.name, allocs, ceiling)
			}
		}
		s.end()
	}
}

// TestAllocsPerWebSocketSetup is a regression guard on the handshake: the
// allocations of opening (and closing) a WebSocket through the proxy, less
// those of opening one straight at the same upstream, counted across the
// whole process (the client's and the upstream's own are the same in
// both). Measured 216 (2026-12-06): the client-side upgrade and the
// upstream dial (gorilla's, through websocketproxy), the session, its legs
// and the relay. Raise the ceiling only with the reason in the commit.
func TestAllocsPerWebSocketSetup(t *testing.T) {
	const ceiling = 225
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		_, _, _ = c.ReadMessage() // until the client's close
	})
	_, front := startProxy(t, testConfig(up.URL), Options{})
	setup := func(srv *httptest.Server) func() {
		return func() {
			c := mustDialWS(t, srv, actorPath+"/connect", nil, rivetProtocols...)
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					break
				}
			}
			c.Close()
		}
	}
	const runs = 200
	direct := testing.AllocsPerRun(runs, setup(up.Server))
	proxied := testing.AllocsPerRun(runs, setup(front))
	t.Logf("allocations per WebSocket setup: direct %.0f, proxied %.0f, the proxy's %.0f", direct, proxied, proxied-direct)
	if proxied-direct > ceiling {
		t.Errorf("the proxy's allocations per WebSocket setup: %.0f, ceiling %d", proxied-direct, ceiling)
	}
}

// cannedEngine answers every request read on its one connection with
// answer, without allocating: a request ends at its blank line (the guard's
// requests have no body), which may come cut across reads.
func cannedEngine(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conn := make(chan net.Conn, 1)
	t.Cleanup(func() {
		ln.Close()
		select {
		case c := <-conn:
			c.Close()
		default:
		}
		<-done
	})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conn <- c
		buf, out := make([]byte, 64<<10), []byte(answer)
		var tail uint32 // the last four bytes read
		for {
			n, err := c.Read(buf)
			for _, b := range buf[:n] {
				if tail = tail<<8 | uint32(b); tail == 0x0d0a0d0a {
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return ln.Addr().String()
}

// TestAllocsPerDirectRoundTrip is a regression guard on the direct
// transport's cost per request over a kept connection: serializing the
// request, reading the answer's head with net/http, the cancellation watch
// and the pooled connection's reuse (22 when written, 2026-12-06, go1.26.8).
// Raise the ceiling only with the reason in the commit.
func TestAllocsPerDirectRoundTrip(t *testing.T) {
	const ceiling = 24
	addr := cannedEngine(t, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"output\":1}")
	cfg := testConfig("http://" + addr)
	p, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	req := httptest.NewRequest(http.MethodGet, "http://"+addr+"/actors?actor_ids=x", nil)
	req.RequestURI = ""
	req.Header.Set("Accept", "application/json")
	buf := make([]byte, 64)
	direct := func() {
		res, err := p.sync.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, err = res.Body.Read(buf)
		}
		res.Body.Close()
	}
	direct() // dial, fill the pools
	got := testing.AllocsPerRun(200, direct)
	t.Logf("direct transport: %.0f allocations per round trip", got)
	if got > ceiling {
		t.Errorf("direct transport: %.0f allocations per round trip, ceiling %d", got, ceiling)
	}
	if idle := idleConns(p.sync); idle != 1 {
		t.Errorf("%d idle connections after the round trips, want the one kept", idle)
	}
}
