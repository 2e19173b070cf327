package proxy

import (
	"crypto/rand"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// legConn is one leg of a proxied WebSocket: the hijacked client connection
// (server side) or the dialed upstream connection (client side). It sits
// between the raw connection and gorilla's *websocket.Conn that
// koding/websocketproxy copies messages with, and follows the frames both
// ways (see frameParser). That gives the proxy what websocketproxy has no
// hook for:
//
//   - a read limit: a data message larger than the limit is never read into
//     memory; Read fails instead;
//   - injected closes: Read returns a *websocket.CloseError, which
//     websocketproxy relays to the other leg as a close frame with that code
//     and reason (used for shutdown, token expiry, dead peers, limits);
//   - keepalive pings written between frames;
//   - counts of messages and bytes, and the close codes seen;
//   - a close handshake: Close waits (bounded) until a close frame has been
//     written and the peer's close has been read.
type legConn struct {
	net.Conn
	sess       *session
	isUpstream bool // the leg to the engine: this gateway is its WebSocket client, so frames it writes are masked

	// Read side: only the goroutine reading this leg touches rp, until
	// readStopped is closed; then Close may drain the connection itself.
	rp          frameParser
	readStopped chan struct{}
	stopOnce    sync.Once
	lastRead    atomic.Int64 // unix nanos

	msgs, bytes atomic.Int64 // data messages and payload bytes read
	closeCode   atomic.Int32 // close code read from the peer
	sentCode    atomic.Int32 // close code written to the peer

	// Write side, under wmu.
	wmu       sync.Mutex
	wp        frameParser
	closeSent chan struct{}
	sentOnce  sync.Once

	closeRecv chan struct{}
	recvOnce  sync.Once
	closeOnce sync.Once
}

func newLeg(c net.Conn, s *session, isUpstream bool, readLimit int64) *legConn {
	l := &legConn{
		Conn:        c,
		sess:        s,
		isUpstream:  isUpstream,
		readStopped: make(chan struct{}),
		closeSent:   make(chan struct{}),
		closeRecv:   make(chan struct{}),
	}
	// Both legs start by writing an HTTP head: the upgrade request upstream,
	// the 101 response to the client. Only the upstream leg reads one: the
	// client's request was consumed by net/http before the hijack, so the
	// first byte read from the client is a frame.
	l.wp.handshake = true
	l.rp.handshake = isUpstream
	l.rp.limit = readLimit
	l.lastRead.Store(time.Now().UnixNano())
	return l
}

func (l *legConn) Read(p []byte) (int, error) {
	if e := l.injectedClose(); e != nil {
		l.stopReading()
		return 0, e
	}
	n, err := l.Conn.Read(p)
	if n > 0 {
		l.lastRead.Store(time.Now().UnixNano())
	}
	if e := l.injectedClose(); e != nil {
		// The gateway ended the session while this Read waited (unblock
		// woke it, or the peer already answered the close relayed on the
		// other leg): report that, not what the peer sent meanwhile.
		l.follow(p[:n])
		l.stopReading()
		return 0, e
	}
	if n > 0 {
		closedBefore := l.rp.closeSeen
		ok, perr := l.rp.feed(p[:n])
		l.msgs.Store(l.rp.messages)
		l.bytes.Store(l.rp.bytes)
		if perr != nil {
			// Nothing from the offending frame on is relayed or counted:
			// the next Read reports the close tooBig injects. The parser
			// follows the rest of the stream so that Close recognizes the
			// peer's close frame after the rest of the message.
			l.follow(p[l.rp.resume:n])
			l.sess.tooBig(l)
			return ok, nil
		}
		l.sawClose()
		if !closedBefore && l.rp.closeSeen && l.isUpstream && l.rp.switched() && !l.rp.dataSeen && l.sess.engineNotReady(l.rp.closeCode, l.rp.closeReason) {
			// The engine refused the socket while it was opening with an
			// error that only means "not ready yet". Its close frame must
			// not reach gorilla (which would relay it): pass on what came
			// before it (the rest of the 101, control frames); the next
			// Read reports the retryable close instead.
			if at := l.rp.closeStart; at > 0 {
				return at, nil
			}
			l.stopReading()
			if e := l.injectedClose(); e != nil {
				return 0, e
			}
			return 0, closeErr(websocket.CloseInternalServerErr, ReasonServiceUnavailable)
		}
	}
	if err != nil {
		l.stopReading()
		// net.ErrClosed: this side closed the connection (Close after the
		// grace period, forceClose); the peer did not vanish.
		if !l.rp.closeSeen && !errors.Is(err, net.ErrClosed) {
			// The peer vanished without a close frame: tell the other leg
			// with a proper close instead of a Go error string.
			return n, l.sess.lost(l)
		}
	}
	return n, err
}

// injectedClose returns the close this leg's Read reports once the gateway
// has ended the session, or nil. websocketproxy relays what it reads from
// one leg to the other, so the close meant for the client is read from the
// upstream leg, and the other way round.
func (l *legConn) injectedClose() *websocket.CloseError {
	t := l.sess.term.Load()
	switch {
	case t == nil:
		return nil
	case l.isUpstream:
		return t.toClient
	default:
		return t.toUpstream
	}
}

// follow parses p without counting it or enforcing the limit: nothing more
// from this leg is relayed, but Close must still recognize the peer's close.
func (l *legConn) follow(p []byte) {
	l.rp.limit = 0
	_, _ = l.rp.feed(p)
	l.sawClose()
}

// sawClose records the peer's close frame once rp has parsed one.
func (l *legConn) sawClose() {
	if l.rp.closeSeen {
		l.closeCode.Store(int32(l.rp.closeCode))
		l.recvOnce.Do(func() { close(l.closeRecv) })
	}
}

// stopReading records that gorilla will not read this leg again: it has
// been handed an error, which its Conn keeps returning without reading.
func (l *legConn) stopReading() {
	l.stopOnce.Do(func() { close(l.readStopped) })
}

func (l *legConn) Write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	n, err := l.Conn.Write(p)
	inHead := l.wp.handshake
	l.wp.feed(p[:n])
	if inHead && !l.wp.handshake && !l.isUpstream {
		// The client has its 101: websocketproxy relays from now on, and
		// ending either leg takes a close handshake.
		l.sess.upgraded.Store(true)
	}
	if l.wp.closeSeen {
		l.sentCode.Store(int32(l.wp.closeCode))
		l.sentOnce.Do(func() { close(l.closeSent) })
	}
	return n, err
}

// unblock wakes a Read in progress, so that it reports injectedClose. It
// writes nothing: websocketproxy's copier relays the close to the other leg.
func (l *legConn) unblock() {
	_ = l.Conn.SetReadDeadline(time.Unix(1, 0))
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
	var key [4]byte
	if l.isUpstream {
		_, _ = rand.Read(key[:])
	}
	var buf [6]byte
	frame := appendControlFrame(buf[:0], opPing, nil, l.isUpstream, key)
	_ = l.Conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := l.Conn.Write(frame)
	_ = l.Conn.SetWriteDeadline(time.Time{})
	return err == nil
}

// Close finishes the close handshake within the session's grace period,
// then closes the connection. Before the client has been upgraded there is
// no WebSocket to close (the dial or a handshake failed): the connection is
// closed at once, as it is when its peer vanished.
func (l *legConn) Close() error {
	var err error
	l.closeOnce.Do(func() {
		if l.sess.upgraded.Load() && !l.sess.isLost(l) {
			grace := l.sess.p.cfg.WebSocket.CloseGrace
			deadline := time.Now().Add(grace)
			timer := time.NewTimer(grace)
			defer timer.Stop()
			select {
			case <-l.closeSent:
				l.awaitPeerClose(timer.C, deadline)
			case <-timer.C:
			}
		}
		err = l.Conn.Close()
	})
	return err
}

// awaitPeerClose waits for the peer's close frame: read by the copier while
// it still reads this leg, or, once it has stopped (possibly while we
// wait), by draining the connection here until the deadline.
func (l *legConn) awaitPeerClose(grace <-chan time.Time, deadline time.Time) {
	select {
	case <-l.closeRecv:
		return
	case <-grace:
		return
	case <-l.readStopped:
	}
	if l.rp.closeSeen {
		return
	}
	_ = l.Conn.SetReadDeadline(deadline)
	var buf [4096]byte
	for {
		// Bounded by the deadline only: the peer may first finish a large
		// message (one over the read limit, say) before it reads our close.
		n, err := l.Conn.Read(buf[:])
		l.follow(buf[:n])
		if err != nil || l.rp.closeSeen {
			return
		}
	}
}

// forceClose closes the connection without a handshake.
func (l *legConn) forceClose() { _ = l.Conn.Close() }
