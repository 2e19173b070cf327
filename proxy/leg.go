package proxy

import (
	"crypto/rand"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// legConn is one leg of a proxied WebSocket: the hijacked client connection
// (server side) or the dialed upstream connection (client side).
//
// During the handshake it is the net.Conn koding/websocketproxy and gorilla
// see: gorilla dials the engine and upgrades the client through it. Once
// the client has been sent its 101 the session is upgraded and both legs
// detach from gorilla: Read fails at once with a quiet close (which
// websocketproxy does not log), Write, Close and the deadline setters do
// nothing. websocketproxy's copiers then relay that close to each other,
// into the void, and end; they never touch the connection again, so the
// relay (relay.go) takes both connections over without waiting for them.
//
// On the relay each leg follows its frames both ways (see frameParser):
// that gives the proxy a read limit checked at each frame header, injected
// closes and keepalive pings written between frames, counts of messages
// and bytes, and the close codes seen.
type legConn struct {
	net.Conn
	sess       *session
	isUpstream bool // the leg to the engine: this gateway is its WebSocket client, so frames it writes are masked

	// pending holds, on the upstream leg, what the engine sent right
	// behind its 101 head (often its first frame): gorilla's reader never
	// sees it; the relay sends it on first.
	pending []byte

	// Relay read side: only the goroutine reading this leg touches these.
	rp     frameParser
	raw    syscall.RawConn // nil when the connection has no descriptor to wait on (TLS)
	pool   *sync.Pool      // read buffers, held only while a read has data
	readFD func(fd uintptr) bool
	rbuf   *[]byte // what readFD read: buffer, length, error
	rn     int
	rerr   error

	lastRead atomic.Int64 // unix nanos

	msgs, bytes atomic.Int64           // data messages and payload bytes read
	closeCode   atomic.Int32           // close code read from the peer
	sentCode    atomic.Int32           // close code written to the peer
	sentReason  atomic.Pointer[string] // its reason; nil until then

	// Write side, under wmu: the relay writing to this leg, pings and
	// injected closes.
	wmu sync.Mutex
	wp  frameParser
}

func newLeg(c net.Conn, s *session, isUpstream bool, readLimit int64) *legConn {
	l := &legConn{Conn: c, sess: s, isUpstream: isUpstream}
	// Both legs start by writing an HTTP head: the upgrade request upstream,
	// the 101 response to the client. Only the upstream leg reads one: the
	// client's request was consumed by net/http before the hijack, so the
	// first byte read from the client is a frame.
	l.wp.handshake = true
	l.rp.handshake = isUpstream
	l.rp.limit = readLimit
	l.rp.strict, l.rp.fromClient = true, !isUpstream
	l.lastRead.Store(time.Now().UnixNano())
	return l
}

// errDetached is what gorilla reads once the relay owns the connection: a
// normal close, which websocketproxy relays without logging it.
var errDetached = &websocket.CloseError{Code: websocket.CloseNormalClosure}

func (l *legConn) detached() bool { return l.sess.upgraded.Load() }

// Read serves gorilla during the handshake. On the upstream leg it returns
// no byte past the end of the HTTP head when the head is a 101: what
// follows is WebSocket stream, kept in pending for the relay, and gorilla
// (which would buffer it) reads nothing more. After a refusal the body
// passes through, for websocketproxy to report.
func (l *legConn) Read(p []byte) (int, error) {
	if l.detached() {
		return 0, errDetached
	}
	if len(l.pending) > 0 {
		n := copy(p, l.pending)
		l.pending = l.pending[n:]
		return n, nil
	}
	n, err := l.Conn.Read(p)
	if l.rp.handshake && n > 0 {
		if k := l.rp.skipHead(p[:n]); k < n {
			l.pending = append([]byte(nil), p[k:n]...)
			return k, nil
		}
	}
	return n, err
}

// Write serves gorilla during the handshake: the upgrade request upstream,
// the 101 to the client. The end of the 101 upgrades the session; from
// then on gorilla's writes (websocketproxy's copiers relaying errDetached)
// are dropped.
func (l *legConn) Write(p []byte) (int, error) {
	if l.detached() {
		return len(p), nil
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	n, err := l.Conn.Write(p)
	inHead := l.wp.handshake
	_, _ = l.wp.feed(p[:n])
	if inHead && !l.wp.handshake && !l.isUpstream {
		l.sess.upgraded.Store(true)
	}
	return n, err
}

// Close closes the connection unless the relay owns it.
func (l *legConn) Close() error {
	if l.detached() {
		return nil
	}
	return l.Conn.Close()
}

// The deadline setters are gorilla's; the relay sets deadlines on l.Conn.

func (l *legConn) SetDeadline(t time.Time) error {
	if l.detached() {
		return nil
	}
	return l.Conn.SetDeadline(t)
}

func (l *legConn) SetReadDeadline(t time.Time) error {
	if l.detached() {
		return nil
	}
	return l.Conn.SetReadDeadline(t)
}

func (l *legConn) SetWriteDeadline(t time.Time) error {
	if l.detached() {
		return nil
	}
	return l.Conn.SetWriteDeadline(t)
}

// startRelay prepares l for the relay: read buffers from pool, and, when
// the connection has a descriptor, reads that wait for readability
// without holding a buffer. It clears the write deadline gorilla's
// upgrade set for the 101 (its reset came after the detach).
func (l *legConn) startRelay(pool *sync.Pool) {
	l.pool = pool
	if sc, ok := l.Conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			l.raw = raw
			l.readFD = l.readReady
		}
	}
	l.wmu.Lock()
	_ = l.Conn.SetWriteDeadline(time.Time{})
	l.wmu.Unlock()
}

// read waits for data on l and returns it in a buffer from the pool, which
// the caller puts back. An idle leg waits in the runtime's poller with no
// buffer; a connection without a descriptor (TLS) waits in Read, holding
// one. Deadlines set on l.Conn apply to both.
func (l *legConn) read() (*[]byte, int, error) {
	var bp *[]byte
	var n int
	var err error
	if l.raw != nil {
		if err := l.raw.Read(l.readFD); err != nil {
			return nil, 0, err
		}
		bp, n, err = l.rbuf, l.rn, l.rerr
		l.rbuf, l.rerr = nil, nil
	} else {
		bp = l.pool.Get().(*[]byte)
		n, err = l.Conn.Read(*bp)
	}
	if n > 0 {
		l.lastRead.Store(time.Now().UnixNano())
	}
	return bp, n, err
}

// readReady is the RawConn.Read callback: it reads what is there into a
// pooled buffer, or, when nothing is (EAGAIN), puts the buffer back and
// has the poller park the goroutine until the socket is readable.
func (l *legConn) readReady(fd uintptr) bool {
	bp := l.pool.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *bp)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			l.pool.Put(bp)
			return false
		case err == nil && n == 0:
			err = io.EOF
		}
		l.rbuf, l.rn, l.rerr = bp, max(n, 0), err
		return true
	}
}

// write sends relayed bytes to l's peer.
func (l *legConn) write(p []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	n, err := l.Conn.Write(p)
	_, _ = l.wp.feed(p[:n])
	l.noteSent(l.wp.closeReason)
	return err
}

// noteSent records the close frame written to l's peer, with reason as
// its reason to log, once the writer has seen it whole. Under wmu.
func (l *legConn) noteSent(reason string) {
	if !l.wp.closeSeen || l.sentReason.Load() != nil {
		return
	}
	l.sentCode.Store(int32(l.wp.closeCode))
	r := reason // escapes here only, not on every relayed write
	l.sentReason.Store(&r)
}

// midFrame reports whether the relay has written part of a frame to l.
func (l *legConn) midFrame() bool {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return !l.wp.atBoundary()
}

// writeClose sends the gateway's close frame to l's peer if the writer is
// between frames and no close has gone to the peer yet; it reports
// whether it did.
func (l *legConn) writeClose(ce *websocket.CloseError, timeout time.Duration) bool {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if !l.wp.atBoundary() || l.wp.closeSeen {
		return false
	}
	text := ce.Text
	if !l.isUpstream {
		text = rivet.WithRayID(text, l.sess.rayID) // as the engine's closes read: "group.code#rayId"
	}
	var buf [2 + 4 + 125]byte
	frame := appendControlFrame(buf[:0], opClose, websocket.FormatCloseMessage(ce.Code, text), l.isUpstream, maskKey(l.isUpstream))
	_ = l.Conn.SetWriteDeadline(time.Now().Add(timeout))
	n, err := l.Conn.Write(frame)
	_ = l.Conn.SetWriteDeadline(time.Time{})
	_, _ = l.wp.feed(frame[:n])
	l.noteSent(ce.Text) // logged without the ray id: the log line has it
	return err == nil
}

// maskKey is a random masking key for frames the gateway writes upstream
// (as the engine's client it must mask them), none toward the client.
func maskKey(masked bool) [4]byte {
	var key [4]byte
	if masked {
		_, _ = rand.Read(key[:])
	}
	return key
}

// follow parses p without counting it or enforcing the limit: nothing more
// from this leg is relayed, but its peer's close must still be seen.
func (l *legConn) follow(p []byte) {
	l.rp.limit = 0
	l.rp.strict = false
	_, _ = l.rp.feed(p)
	l.sawClose()
}

// sawClose records the peer's close code once rp has parsed its close.
func (l *legConn) sawClose() {
	if l.rp.closeSeen {
		l.closeCode.Store(int32(l.rp.closeCode))
	}
}

// unblock wakes a relay read in progress, so that it sees the session's
// termination.
func (l *legConn) unblock() {
	_ = l.Conn.SetReadDeadline(aLongTimeAgo)
}

// ping writes a ping frame if the writer is between frames; it reports
// whether it did.
func (l *legConn) ping(timeout time.Duration) bool {
	if !l.wmu.TryLock() {
		return false
	}
	defer l.wmu.Unlock()
	if !l.wp.atBoundary() || l.wp.closeSeen {
		return false
	}
	var buf [6 + len(keepalivePayload)]byte
	frame := appendControlFrame(buf[:0], opPing, keepalivePayload[:], l.isUpstream, maskKey(l.isUpstream))
	_ = l.Conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := l.Conn.Write(frame)
	_ = l.Conn.SetWriteDeadline(time.Time{})
	return err == nil
}

// keepalivePayload is what the gateway's keepalive pings carry, random
// per process: the relay recognizes the pongs answering them and does not
// pass them on.
var keepalivePayload = func() (b [8]byte) {
	_, _ = rand.Read(b[:])
	return b
}()

// isKeepalivePong reports whether the pong f has just parsed answers a
// keepalive ping.
func isKeepalivePong(f *frameParser) bool {
	return f.ctlN == len(keepalivePayload) && [8]byte(f.ctl[:8]) == keepalivePayload
}

// forceClose closes the connection without a handshake.
func (l *legConn) forceClose() { _ = l.Conn.Close() }
