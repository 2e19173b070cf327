package proxy

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Close codes and reasons the gateway uses on proxied WebSockets. The
// reasons follow RivetKit's "group.code" convention; ws.going_away and
// guard.service_unavailable are ones the RivetKit client retries.
const (
	ReasonGoingAway          = "ws.going_away"
	ReasonServiceUnavailable = "guard.service_unavailable"
	ReasonMessageTooBig      = "ws.message_too_big"
	ReasonTimeout            = "ws.timeout"
	ReasonProtocolError      = "ws.protocol_error"
)

func closeErr(code int, reason string) *websocket.CloseError {
	return &websocket.CloseError{Code: code, Text: reason}
}

// session is one proxied WebSocket: its two legs, its timers and how it
// ended. Its methods may be called from any goroutine.
type session struct {
	p     *Proxy
	r     *http.Request // the upgrade request; its context is cancelled once the handler has returned: only its values are used
	rt    *rivet.Route
	start time.Time
	rayID string // the upgrade request's, appended to the gateway's own closes to the client

	mu       sync.Mutex
	client   *legConn
	upstream *legConn
	ended    bool
	lostLeg  *legConn
	cause    string
	timers   []*time.Timer
	closeAt  time.Time // close deadline: set once the session starts closing

	// notReady is the engine's transient error ("group.code") that
	// engineNotReady turned into the retryable close, and notReadyRay its
	// ray id; empty otherwise.
	notReady, notReadyRay string

	// term holds the closes the gateway sends when it ends the session;
	// nil until then.
	term atomic.Pointer[termination]

	// upgraded is set once the client has been sent its 101: from then on
	// the relay owns both connections (see legConn).
	upgraded atomic.Bool

	pumps atomic.Int32 // relay directions still running

	done chan struct{} // closed once the session is over and forgotten
}

// attach records a leg; a session already ended gets the leg ended too.
func (s *session) attach(l *legConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.isUpstream {
		s.upstream = l
	} else {
		s.client = l
	}
	if s.term.Load() != nil {
		l.unblock()
	}
	if s.client != nil && s.upstream != nil && !s.ended {
		s.armLocked()
	}
}

// armLocked starts the keepalive and expiry timers once both legs exist.
func (s *session) armLocked() {
	ws := s.p.cfg.WebSocket
	if ws.PingInterval > 0 {
		var t *time.Timer
		t = time.AfterFunc(ws.PingInterval, func() {
			if s.keepalive() {
				t.Reset(ws.PingInterval)
			}
		})
		s.timers = append(s.timers, t)
	}
	if s.p.opts.SessionDeadline != nil {
		if dl := s.p.opts.SessionDeadline(s.r); !dl.IsZero() {
			s.timers = append(s.timers, time.AfterFunc(time.Until(dl), func() {
				s.terminate("credential_expired", closeErr(websocket.CloseGoingAway, ReasonGoingAway), closeErr(websocket.CloseGoingAway, ReasonGoingAway))
			}))
		}
	}
}

// keepalive pings both legs and ends the session when a leg has been
// silent (no frame, not even a pong) for PingInterval + PongTimeout. It
// reports whether the session is still alive.
func (s *session) keepalive() bool {
	s.mu.Lock()
	c, u, ended := s.client, s.upstream, s.ended
	s.mu.Unlock()
	if ended {
		return false
	}
	ws := s.p.cfg.WebSocket
	silent := ws.PingInterval + ws.PongTimeout
	now := time.Now().UnixNano()
	for _, l := range []*legConn{c, u} {
		if time.Duration(now-l.lastRead.Load()) > silent {
			s.lose(l, "keepalive_timeout")
			return false
		}
	}
	c.ping(ws.WriteTimeout)
	u.ping(ws.WriteTimeout)
	return true
}

// termination is how the gateway ends a session: the close frame the client
// is sent and the one the upstream is sent.
type termination struct {
	toClient, toUpstream *websocket.CloseError
}

// terminate ends the session from the gateway's side: the client is sent
// toClient and the upstream toUpstream. Only the first call has an effect.
func (s *session) terminate(cause string, toClient, toUpstream *websocket.CloseError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || !s.term.CompareAndSwap(nil, &termination{toClient, toUpstream}) {
		return
	}
	s.cause = cause
	s.closeDeadlineLocked()
	for _, l := range []*legConn{s.client, s.upstream} {
		if l != nil {
			l.unblock()
		}
	}
}

// closeDeadlineLocked returns the close deadline, setting it CloseGrace
// from now if the session was not closing yet: the gateway ended it, or
// one direction of the relay is over and the other has until then to
// carry the other peer's close.
func (s *session) closeDeadlineLocked() time.Time {
	if s.closeAt.IsZero() {
		ws := s.p.cfg.WebSocket
		s.closeAt = time.Now().Add(ws.CloseGrace)
		if !s.ended {
			// Backstop: a peer that never reads (a write to it blocks)
			// cannot hold the session open.
			s.timers = append(s.timers, time.AfterFunc(2*ws.CloseGrace+ws.WriteTimeout, s.forceClose))
		}
	}
	return s.closeAt
}

// closeBy returns the close deadline, zero if the session is not closing.
func (s *session) closeBy() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeAt
}

// awaitClose bounds reads of l by the close deadline, setting it if need
// be.
func (s *session) awaitClose(l *legConn) {
	s.mu.Lock()
	by := s.closeDeadlineLocked()
	s.mu.Unlock()
	_ = l.Conn.SetReadDeadline(by)
}

// pumpEnded is called as a relay direction ends; other is the leg the
// other direction reads. The first to end gives the other until the close
// deadline; the last closes both connections and ends the session.
func (s *session) pumpEnded(other *legConn) {
	if s.pumps.Add(-1) > 0 {
		s.awaitClose(other)
		return
	}
	s.client.forceClose()
	s.upstream.forceClose()
	s.finish()
}

// finish reports the end of the session: the engine-not-ready warning,
// OnWebSocketEnd, and the registry, in that order.
func (s *session) finish() {
	p := s.p
	if code, ray := s.engineError(); code != "" {
		// The engine closed the opening socket with a transient error,
		// which the client got as guard.service_unavailable.
		if p.opts.OnUpstreamError != nil {
			p.opts.OnUpstreamError(s.r, rivet.ErrUpstreamUnavailable.With("upstream_error", code))
		}
		p.log.Warn("engine not ready: websocket closed with a retryable reason", "intent", s.rt.Intent.String(),
			"actor", s.rt.ActorLabel(), "upstream_error", code, "upstream_ray_id", ray)
	}
	st := s.stats()
	s.end()
	if p.opts.OnWebSocketEnd != nil {
		p.opts.OnWebSocketEnd(s.r, st)
	}
	p.sessions.remove(s)
}

// engineNotReady is called by the relay when the engine closes the
// socket before it has sent any data frame: the socket is still opening.
// A reason ("group.code" or "group.code#rayId") in the transient list means
// the engine is not ready yet (it is restarting): the session is ended with
// the retryable guard.service_unavailable for the client, keeping the
// engine's ray id, and the engine's close answered with its own code. It
// reports whether it did so; then the relay must not pass the engine's
// close on.
func (s *session) engineNotReady(code int, reason string) bool {
	gc, ray := rivet.SplitRayID(reason)
	if !slices.Contains(s.p.cfg.WebSocket.TransientErrors, gc) {
		return false
	}
	toClient := ReasonServiceUnavailable
	if ray != "" && validErrorPart(ray) && len(toClient)+1+len(ray) <= 123 {
		toClient += "#" + ray
	} else {
		ray = ""
	}
	s.mu.Lock()
	if s.notReady == "" {
		s.notReady, s.notReadyRay = gc, ray
	}
	s.mu.Unlock()
	if code < 1000 || code == websocket.CloseNoStatusReceived || code == websocket.CloseAbnormalClosure || code == websocket.CloseTLSHandshake {
		code = websocket.CloseNormalClosure
	}
	s.terminate("upstream_not_ready", closeErr(websocket.CloseInternalServerErr, toClient), closeErr(code, ""))
	return true
}

// engineError returns what engineNotReady recorded: the engine's error and
// its ray id, or empty strings.
func (s *session) engineError() (string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notReady, s.notReadyRay
}

// lost records that l's peer vanished (no close frame) and returns the
// close the other leg is sent.
func (s *session) lost(l *legConn) *websocket.CloseError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lostLeg == nil {
		s.lostLeg = l
		if s.cause == "" {
			s.cause = "peer_lost"
		}
	}
	if l.isUpstream { // the upstream vanished: the client may retry
		return closeErr(websocket.CloseInternalServerErr, ReasonServiceUnavailable)
	}
	return closeErr(websocket.CloseGoingAway, ReasonGoingAway)
}

// lose ends the session because l's peer stopped answering.
func (s *session) lose(l *legConn, cause string) {
	s.mu.Lock()
	s.lostLeg = l
	s.mu.Unlock()
	if l.isUpstream {
		s.terminate(cause, closeErr(websocket.CloseInternalServerErr, ReasonServiceUnavailable), closeErr(websocket.CloseGoingAway, ReasonGoingAway))
	} else {
		s.terminate(cause, closeErr(websocket.CloseGoingAway, ReasonGoingAway), closeErr(websocket.CloseGoingAway, ReasonGoingAway))
	}
}

func (s *session) isLost(l *legConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lostLeg == l
}

// protocolError ends the session because l's peer sent a frame that breaks
// RFC 6455 (errProtocol): that peer is sent 1002 ws.protocol_error, the
// other one what it gets when the offender vanishes (see lost).
func (s *session) protocolError(l *legConn) {
	bad := closeErr(websocket.CloseProtocolError, ReasonProtocolError)
	if l.isUpstream {
		s.terminate("upstream_protocol_error", closeErr(websocket.CloseInternalServerErr, ReasonServiceUnavailable), bad)
		return
	}
	s.terminate("client_protocol_error", bad, closeErr(websocket.CloseGoingAway, ReasonGoingAway))
}

// tooBig ends the session because l read a message over the limit.
func (s *session) tooBig(l *legConn) {
	tooBig := closeErr(websocket.CloseMessageTooBig, ReasonMessageTooBig)
	if l.isUpstream { // the upstream sent it
		s.terminate("upstream_message_too_big", tooBig, tooBig)
		return
	}
	s.terminate("client_message_too_big", tooBig, closeErr(websocket.CloseGoingAway, ReasonGoingAway))
}

func (s *session) forceClose() {
	s.mu.Lock()
	c, u := s.client, s.upstream
	s.mu.Unlock()
	if c != nil {
		c.forceClose()
	}
	if u != nil {
		u.forceClose()
	}
}

// end stops the timers and marks the session over.
func (s *session) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	for _, t := range s.timers {
		t.Stop()
	}
}

// Stats describes a proxied WebSocket once it has ended.
type Stats struct {
	Duration              time.Duration
	MessagesIn, BytesIn   int64 // client → upstream
	MessagesOut, BytesOut int64 // upstream → client
	ClientCloseCode       int   // close code the client sent, 0 if none
	UpstreamCloseCode     int   // close code the upstream sent, 0 if none
	GatewayCloseCode      int   // close code the gateway sent the client, 0 if none
	// GatewayCloseReason is the reason of that close: the gateway's own
	// ("ws.going_away", "auth.unauthorized") or the engine's it relayed.
	GatewayCloseReason string
	Cause              string
}

// registry tracks live sessions so shutdown can close them: hijacked
// connections are invisible to http.Server.Shutdown.
type registry struct {
	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool
	open     atomic.Int64
}

func (g *registry) add(s *session) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	if g.sessions == nil {
		g.sessions = make(map[*session]struct{})
	}
	g.sessions[s] = struct{}{}
	g.open.Add(1)
	return true
}

// remove forgets s and closes s.done: the last step of a session, after
// OnWebSocketEnd, so a Shutdown that waited for it leaves nothing behind.
func (g *registry) remove(s *session) {
	g.mu.Lock()
	delete(g.sessions, s)
	g.mu.Unlock()
	g.open.Add(-1)
	close(s.done)
}

func (g *registry) snapshot(closing bool) []*session {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closing = g.closing || closing
	out := make([]*session, 0, len(g.sessions))
	for s := range g.sessions {
		out = append(out, s)
	}
	return out
}
