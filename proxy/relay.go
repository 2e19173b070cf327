package proxy

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// The relay carries an upgraded WebSocket once serveWebSocket has returned
// (freeing net/http's goroutine and buffers, and gorilla's): one goroutine
// per direction copies raw frame bytes from one leg to the other, so client
// frames go upstream still masked with the client's key and the engine's
// go to the client unmasked. An idle direction waits in the runtime's
// poller without a buffer (legConn.read), on a shallow stack. A peer's
// ping goes through and is answered by the other peer; the pongs answering
// the gateway's own keepalive pings stop at the gateway.
//
// Each direction ends once its source has sent a close frame (relayed, and
// answered by the other peer through the other direction), vanished, or,
// when the gateway ended the session (session.terminate), once it has
// written the gateway's close to its destination at a frame boundary and
// read the source peer's answer. The other direction then has until the
// session's close deadline (CloseGrace); when both are done the
// connections are closed and the session ends.

// pumpState is where a direction stands.
type pumpState int

const (
	relaying  pumpState = iota // frames go from src to dst
	finishing                  // the session is terminated; the frame dst is in the middle of is completed first
	draining                   // src is read (not relayed) until its peer's close
	pumpDone
)

// pump is one direction of a session's relay.
type pump struct {
	s        *session
	src, dst *legConn
	state    pumpState

	// hold is the start of a frame read from src but not yet relayed: a
	// header not yet complete (so that a frame refused at its header, over
	// the read limit, never reaches dst in part), or a control frame not
	// yet complete (so that the relay can keep it back: an engine's
	// not-ready close, a pong answering the gateway's ping).
	hold    []byte
	holdBuf [holdMax]byte
}

// holdMax bounds hold: a control frame, header included.
const holdMax = 14 + 125

// relayBuffers are the relay's read buffers, one pool per buffer size,
// shared by every Proxy.
var relayBuffers sync.Map // int → *sync.Pool

func relayBufferPool(size int) *sync.Pool {
	if p, ok := relayBuffers.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := relayBuffers.LoadOrStore(size, &sync.Pool{New: func() any { b := make([]byte, size); return &b }})
	return p.(*sync.Pool)
}

// startRelay hands both legs of an upgraded session to the relay.
func (s *session) startRelay() {
	pool := relayBufferPool(s.p.cfg.WebSocket.BufferSize)
	s.client.startRelay(pool)
	s.upstream.startRelay(pool)
	s.pumps.Store(2)
	go s.run(s.upstream, s.client)
	go s.run(s.client, s.upstream)
}

// run relays src to dst until this direction is done.
func (s *session) run(src, dst *legConn) {
	p := &pump{s: s, src: src, dst: dst}
	p.hold = p.holdBuf[:0]
	if b := src.pending; len(b) > 0 {
		src.pending = nil
		p.chunk(b)
	}
	for p.state != pumpDone {
		if p.state == relaying && s.term.Load() != nil {
			p.terminate()
			continue
		}
		bp, n, err := src.read()
		if n > 0 {
			p.chunk((*bp)[:n])
		}
		if bp != nil {
			src.pool.Put(bp)
		}
		if err != nil && p.state != pumpDone {
			p.readError(err)
		}
	}
	s.pumpEnded(dst)
}

// chunk handles bytes read from src.
func (p *pump) chunk(b []byte) {
	switch p.state {
	case relaying:
		if p.s.term.Load() != nil {
			p.terminate()
			p.chunk(b)
			return
		}
		p.relay(b)
	case finishing:
		// Complete the frame dst is in the middle of, then close.
		k := min(uint64(len(b)), p.src.rp.remain)
		p.forward(b[:k])
		if p.state == finishing && !p.src.rp.inPayload {
			p.closeDst()
			p.drain(b[k:])
		}
	case draining:
		p.drain(b)
	}
}

// relay parses b frame by frame and sends it on, in one write when it
// can. What is not passed on: a header not yet complete and a control
// frame not yet complete (both held until they are, see hold), a message
// over the read limit, the pongs answering the gateway's own keepalive
// pings (they concern the gateway alone), and an engine's not-ready close.
func (p *pump) relay(b []byte) {
	src := p.src
	run, i := 0, 0 // b[run:i] is passed on at the next write
	for i < len(b) && p.state == relaying {
		n, err := src.rp.feedFrame(b[i:])
		src.msgs.Store(src.rp.messages)
		src.bytes.Store(src.rp.bytes)
		if err != nil {
			// Over the read limit, or breaking the framing rules: nothing
			// from the offending frame on (it began at b[i], or in hold)
			// is relayed or counted; the parser follows the rest of the
			// stream to see the peer's close.
			p.flush(b[run:i])
			p.hold = p.hold[:0]
			src.follow(b[i+src.rp.resume:])
			if errors.Is(err, errProtocol) {
				p.s.protocolError(src)
			} else {
				p.s.tooBig(src)
			}
			p.terminate()
			return
		}
		seg := b[i : i+n]
		i += n
		// A whole control frame (at most 125 bytes of payload) is held
		// until complete, and so is a header.
		held := !src.rp.inPayload || isControl(src.rp.opcode) && src.rp.plen <= 125
		if !src.rp.atBoundary() {
			// The frame goes on in the next chunk: seg ends b.
			if held {
				p.flush(b[run : i-n])
				p.hold = append(p.hold, seg...)
				run = i
			}
			break
		}
		switch {
		case src.rp.opcode == opClose:
			src.sawClose()
			if src.isUpstream && src.rp.switched() && !src.rp.dataSeen && src.rp.plen <= 125 &&
				p.s.engineNotReady(src.rp.closeCode, src.rp.closeReason) {
				// The engine refused the socket while it was opening with
				// an error that only means "not ready yet": its close is
				// held back, what came before it passed on, and the
				// client gets the retryable close instead.
				p.flush(b[run : i-n])
				p.hold = p.hold[:0]
				p.terminate()
				return
			}
			// The peer closed: relay its close (nothing after it); the
			// other peer answers through the other direction.
			p.flush(b[run:i])
			if p.state == relaying {
				p.state = pumpDone
			}
			return
		case src.rp.opcode == opPong && isKeepalivePong(&src.rp):
			p.flush(b[run : i-n])
			p.hold = p.hold[:0]
			run = i
		}
	}
	if p.state == relaying {
		p.flush(b[run:i])
	}
	if p.state == draining {
		p.drain(b[i:]) // dst failed: src is followed until its close
	}
}

// flush writes hold, then b, to dst, when b is not empty: b holds whole
// frames but for its first, whose start hold is (if not empty), and its
// last, which may go on. With b empty, hold stays: it is a frame not yet
// complete, or one the caller drops.
func (p *pump) flush(b []byte) {
	switch {
	case len(b) == 0:
	case len(p.hold) == 0:
		p.send(b)
	case len(p.hold)+len(b) <= holdMax:
		p.hold = append(p.hold, b...)
		p.send(p.hold)
		p.hold = p.hold[:0]
	default:
		if p.send(p.hold) {
			p.send(b)
		}
		p.hold = p.hold[:0]
	}
}

// forward relays b, part of the frame in progress, counting it.
func (p *pump) forward(b []byte) {
	_, _ = p.src.rp.feed(b)
	p.src.msgs.Store(p.src.rp.messages)
	p.src.bytes.Store(p.src.rp.bytes)
	p.send(b)
}

// send writes b to dst. When dst fails its peer is gone: the other
// direction will read that and close src; this one reads src until then.
func (p *pump) send(b []byte) bool {
	if err := p.dst.write(b); err != nil {
		p.hold = p.hold[:0]
		p.state = draining
		p.s.awaitClose(p.src)
		if p.src.rp.closeSeen {
			p.state = pumpDone
		}
		return false
	}
	return true
}

// terminate moves this direction to the gateway's close: dst gets it at
// its next frame boundary, then src is read until its peer's answer.
func (p *pump) terminate() {
	p.hold = p.hold[:0]
	p.s.awaitClose(p.src)
	if p.src.rp.inPayload && p.dst.midFrame() && !p.s.isLost(p.src) {
		p.state = finishing
		return
	}
	p.closeDst()
	p.drain(nil)
}

// closeDst writes the gateway's close for dst.
func (p *pump) closeDst() {
	t := p.s.term.Load()
	ce := t.toUpstream
	if !p.dst.isUpstream {
		ce = t.toClient
	}
	p.dst.writeClose(ce, p.s.p.cfg.WebSocket.WriteTimeout)
}

// drain follows b from src, ending the direction once src's peer has sent
// its close (or is known to be gone).
func (p *pump) drain(b []byte) {
	p.state = draining
	if len(b) > 0 {
		p.src.follow(b)
	}
	if p.src.rp.closeSeen || p.s.isLost(p.src) {
		p.state = pumpDone
	}
}

// readError handles a failed read of src.
func (p *pump) readError(err error) {
	s := p.s
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if p.state == relaying && s.term.Load() != nil {
			return // terminated: unblock woke the read
		}
		if by := s.closeBy(); !by.IsZero() {
			if time.Now().Before(by) {
				_ = p.src.Conn.SetReadDeadline(by) // woken early: wait on
				return
			}
			p.state = pumpDone // the close handshake's time is up
			return
		}
		// No deadline is set on a relayed leg but the two above: handled
		// as the failure it is, below.
	}
	if p.state == relaying && !errors.Is(err, net.ErrClosed) {
		// The peer vanished without a close frame: tell the other peer
		// with a proper close. (net.ErrClosed: this side closed the
		// connection, after the close grace or forceClose.)
		p.hold = p.hold[:0]
		p.dst.writeClose(s.lost(p.src), s.p.cfg.WebSocket.WriteTimeout)
	}
	p.state = pumpDone
}
