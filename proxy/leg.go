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

	// Read side: only the goroutine reading this leg touches rp.
	rp       frameParser
	readDone atomic.Bool
	lastRead atomic.Int64 // unix nanos

	msgs, bytes atomic.Int64 // data messages and payload bytes read
	closeCode   atomic.Int32 // close code read from the peer
	sentCode    atomic.Int32 // close code written to the peer

	injected atomic.Pointer[websocket.CloseError]
	pending  error // a too-big error held back until the bytes before it are read

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
		Conn:       c,
		sess:       s,
		isUpstream: isUpstream,
		closeSent:  make(chan struct{}),
		closeRecv:  make(chan struct{}),
	}
	l.rp.handshake, l.wp.handshake = true, true
	l.rp.limit = readLimit
	l.lastRead.Store(time.Now().UnixNano())
	return l
}

func (l *legConn) Read(p []byte) (int, error) {
	if e := l.injected.Load(); e != nil {
		l.readDone.Store(true)
		return 0, e
	}
	if l.pending != nil {
		l.readDone.Store(true)
		return 0, l.pending
	}
	n, err := l.Conn.Read(p)
	if n > 0 {
		l.lastRead.Store(time.Now().UnixNano())
		ok, perr := l.rp.feed(p[:n])
		l.msgs.Store(l.rp.messages)
		l.bytes.Store(l.rp.bytes)
		if l.rp.closeSeen {
			l.closeCode.Store(int32(l.rp.closeCode))
			l.recvOnce.Do(func() { close(l.closeRecv) })
		}
		if perr != nil {
			l.sess.tooBig(l)
			if e := l.injected.Load(); e != nil {
				l.pending = e
			}
			return ok, nil
		}
	}
	if err != nil {
		l.readDone.Store(true)
		if e := l.injected.Load(); e != nil {
			return n, e // unblocked by inject: report the injected close
		}
		if !l.rp.closeSeen {
			// The peer vanished without a close frame: tell the other leg
			// with a proper close instead of a Go error string.
			return n, l.sess.lost(l)
		}
	}
	return n, err
}

func (l *legConn) Write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	n, err := l.Conn.Write(p)
	l.wp.feed(p[:n])
	if l.wp.closeSeen {
		l.sentCode.Store(int32(l.wp.closeCode))
		l.sentOnce.Do(func() { close(l.closeSent) })
	}
	return n, err
}

// inject makes the pending and every later Read return e. It does not
// write anything: websocketproxy's copier relays e to the other leg.
func (l *legConn) inject(e *websocket.CloseError) {
	if l.injected.CompareAndSwap(nil, e) {
		_ = l.Conn.SetReadDeadline(time.Unix(1, 0)) // unblock a Read in progress
	}
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
// then closes the connection.
func (l *legConn) Close() error {
	var err error
	l.closeOnce.Do(func() {
		grace := time.NewTimer(l.sess.p.cfg.WebSocket.CloseGrace)
		defer grace.Stop()
		if !l.sess.isLost(l) {
			select {
			case <-l.closeSent:
				l.awaitPeerClose(grace.C)
			case <-grace.C:
			}
		}
		err = l.Conn.Close()
	})
	return err
}

// awaitPeerClose waits for the peer's close frame: from the copier still
// reading this leg, or, when nobody reads it any more, by draining the
// connection here.
func (l *legConn) awaitPeerClose(grace <-chan time.Time) {
	if !l.readDone.Load() {
		select {
		case <-l.closeRecv:
		case <-grace:
		}
		return
	}
	if l.rp.closeSeen {
		return
	}
	_ = l.Conn.SetReadDeadline(time.Now().Add(l.sess.p.cfg.WebSocket.CloseGrace))
	var buf [512]byte
	for range 64 { // bounded: a few data frames may precede the close
		n, err := l.Conn.Read(buf[:])
		l.rp.feed(buf[:n])
		if err != nil || l.rp.closeSeen {
			return
		}
	}
}

// forceClose closes the connection without a handshake.
func (l *legConn) forceClose() { _ = l.Conn.Close() }

var errLegClosed = errors.New("websocket leg closed")
