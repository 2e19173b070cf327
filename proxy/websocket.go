package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/koding/websocketproxy"
	"github.com/rivet-gateway/rivet-gateway/rivet"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// serveWebSocket proxies a WebSocket upgrade. koding/websocketproxy does
// the handshake: it dials the engine and upgrades the client, through a
// dialer and a hijacker that wrap both raw connections in legConn. When it
// could not upgrade, this function answers in RivetKit's shape (accept,
// then close 1011). Once the client has its 101 the legs detach from
// websocketproxy, whose ServeHTTP then returns at once, and the relay
// (relay.go) carries the socket: this handler returns while the socket is
// open, so net/http's goroutine and buffers are not held for its life.
func (p *Proxy) serveWebSocket(w http.ResponseWriter, r *http.Request, rt *rivet.Route) {
	if r.Header.Get("Sec-WebSocket-Key") == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		rivet.WriteHTTPError(w, r, rivet.ErrInvalidRequest.With("reason", "bad WebSocket handshake"))
		return
	}
	if !p.upgrader.CheckOrigin(r) {
		rivet.WriteError(w, r, rivet.ErrOriginNotAllowed)
		return
	}
	s := &session{p: p, r: r, rt: rt, start: time.Now(), done: make(chan struct{})}
	if x := rivet.ExchangeFrom(r.Context()); x != nil {
		s.rayID = x.RayID
	}
	if !p.sessions.add(s) {
		rivet.WriteError(w, r, rivet.ErrShuttingDown)
		return
	}

	if p.token != "" {
		// The gateway owns the namespace token: the client's never goes on
		// (upstreamURL drops its URL carriers; wsDirector adds the
		// gateway's own subprotocol entry).
		r.Header.Del(rivet.HeaderToken)
		rivet.StripSubprotocols(r.Header, rivet.ProtocolTokenPrefix)
	}
	backend := p.upstreamURL(r, rt)
	switch backend.Scheme {
	case "https":
		backend.Scheme = "wss"
	default:
		backend.Scheme = "ws"
	}

	// gorilla dials through these (ws and wss), and speaks the handshake
	// over the legConn they return: the plaintext connection, direct or
	// through the egress proxy (dialWebSocket), TLS done here.
	var dialErr error
	dialLeg := func(ctx context.Context, addr string, secure bool) (net.Conn, error) {
		c, err := p.dialWebSocket(ctx, addr, secure)
		if err != nil {
			dialErr = err
			return nil, err
		}
		l := newLeg(c, s, true, p.cfg.WebSocket.ReadLimit)
		s.attach(l)
		return l, nil
	}
	dialer := p.dialer
	dialer.NetDialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return dialLeg(ctx, addr, false)
	}
	dialer.NetDialTLSContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return dialLeg(ctx, addr, true)
	}

	hw := &hijackWriter{ResponseWriter: w, s: s}
	wp := websocketproxy.WebsocketProxy{
		Backend:  func(*http.Request) *url.URL { return backend },
		Director: p.wsDirector,
		Upgrader: &p.upgrader,
		Dialer:   &dialer,
	}
	if p.opts.OnUpstream != nil {
		p.opts.OnUpstream(r)
	}
	var span trace.Span
	if p.opts.Tracer != nil {
		var ctx context.Context
		ctx, span = p.opts.Tracer.Start(r.Context(), "upstream.websocket", trace.WithSpanKind(trace.SpanKindClient))
		r = r.WithContext(ctx) // the dial's headers carry this span (wsDirector)
	}
	wp.ServeHTTP(hw, r)
	if span != nil {
		span.SetAttributes(attribute.Bool("rivet.websocket.upgraded", s.upgraded.Load()))
		if !s.upgraded.Load() {
			span.SetStatus(codes.Error, "handshake failed")
		}
		span.End()
	}

	if s.upgraded.Load() {
		// The relay carries the socket from here, and ends the session.
		if p.opts.OnWebSocketOpen != nil {
			p.opts.OnWebSocketOpen(r)
		}
		s.startRelay()
		return
	}
	if !hw.hijacked {
		// websocketproxy answered with an error instead of upgrading.
		e := upgradeFailure(dialErr, hw, p.cfg.WebSocket.TransientErrors)
		if t := s.term.Load(); t != nil {
			// The gateway ended the session during the handshake
			// (shutdown, say), which failed it: tell the client why.
			e = terminationError(t)
		}
		if p.opts.OnUpstreamError != nil && (dialErr != nil || hw.status >= 500 || hw.status == 0 || errors.Is(e, rivet.ErrUpstreamUnavailable)) && s.term.Load() == nil {
			p.opts.OnUpstreamError(r, e)
		}
		upstreamErr, _ := e.Metadata["upstream_error"].(string)
		p.log.Warn("websocket upgrade failed", "intent", rt.Intent.String(), "actor", rt.ActorLabel(),
			"upstream_status", hw.status, "upstream_error", upstreamErr, "upstream_ray_id", hw.Header().Get(rivet.HeaderRayID),
			"error", errText(dialErr))
		rivet.RejectWebSocket(w, r, e)
	}
	// Not upgraded: both connections are closed already.
	s.finish()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// upgradeFailure turns what websocketproxy wrote instead of upgrading into
// a RivetKit error: the engine's own error body when it sent one (an error
// in transient, which only means the engine is not ready yet, becomes the
// retryable guard.service_unavailable with the engine's code in metadata
// upstream_error), otherwise the cause of the failed dial. The result
// always has a group, a code and an error status (>= 400).
func upgradeFailure(dialErr error, hw *hijackWriter, transient []string) *rivet.Error {
	var body struct{ Group, Code, Message string }
	if hw.status != 0 && hw.body.Len() > 0 && json.Unmarshal(hw.body.Bytes(), &body) == nil &&
		validErrorPart(body.Group) && validErrorPart(body.Code) {
		if gc := body.Group + "." + body.Code; slices.Contains(transient, gc) {
			return rivet.ErrUpstreamUnavailable.With("upstream_error", gc).With("upstream_status", hw.status)
		}
		status := hw.status
		if status < 400 || status > 599 {
			// An error body with a success status: the engine misbehaved.
			status = http.StatusBadGateway
		}
		return &rivet.Error{Status: status, Group: body.Group, Code: body.Code, Message: body.Message}
	}
	if dialErr != nil {
		return rivet.AsError(dialErr)
	}
	if hw.status >= 500 || hw.status == 0 {
		return rivet.ErrUpstreamUnavailable.With("upstream_status", hw.status)
	}
	return rivet.ErrInvalidRequest.With("upstream_status", hw.status)
}

// terminationError is the rejection for a session the gateway ended before
// the client was upgraded: the reason it would have closed the socket with.
func terminationError(t *termination) *rivet.Error {
	reason, _ := rivet.SplitRayID(t.toClient.Text)
	group, code, _ := strings.Cut(reason, ".")
	return &rivet.Error{Status: http.StatusServiceUnavailable, Group: group, Code: code, Message: "Gateway closed the connection."}
}

// hopHeaders are not forwarded on the WebSocket dial: hop-by-hop headers,
// the handshake headers gorilla sets itself, and what websocketproxy
// already copies (Origin, Cookie, subprotocols) or we set (Host,
// X-Forwarded-*).
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Sec-Websocket-Key": true, "Sec-Websocket-Version": true, "Sec-Websocket-Extensions": true,
	"Sec-Websocket-Protocol": true, "Host": true, "Origin": true, "Cookie": true, "Content-Length": true,
	"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true, "Forwarded": true,
}

// wsDirector completes the upstream handshake headers: the engine's own
// Host (hosted engines route on it), end-to-end headers such as the legacy
// conn-params header and traceparent, X-Forwarded-For with only the
// client address the gateway resolved, as for HTTP (forwardedFor;
// websocketproxy would trust the client's list), and the gateway's
// namespace token as a rivet_token. subprotocol entry, the one carrier
// besides the URL that engine 2.3.19 reads on a /gateway/ WebSocket
// (read_gateway_token_for_path_based; x-rivet-token is not read there).
// The engine answers the upgrade with "rivet" whatever was offered, so the
// entry never reaches the client.
func (p *Proxy) wsDirector(in *http.Request, out http.Header) {
	out.Set("Host", p.host)
	for k, vv := range in.Header {
		if hopHeaders[k] {
			continue
		}
		out[k] = append([]string(nil), vv...)
	}
	if p.opts.InjectTrace != nil {
		p.opts.InjectTrace(in.Context(), out)
	}
	if ip := forwardedFor(in); ip != "" {
		out.Set("X-Forwarded-For", ip)
	} else {
		out.Del("X-Forwarded-For")
	}
	out.Set("X-Forwarded-Host", in.Host)
	if p.token != "" {
		// websocketproxy copied the client's list, which serveWebSocket
		// has stripped of client tokens.
		rivet.SetSubprotocols(out, append(rivet.Subprotocols(out), rivet.ProtocolTokenPrefix+p.token))
	}
}

// hijackWriter is the ResponseWriter websocketproxy sees. Hijack wraps the
// client connection in a legConn. Anything written without hijacking (an
// error websocketproxy reports) is captured, not sent, so serveWebSocket
// can answer in RivetKit's shape instead.
type hijackWriter struct {
	http.ResponseWriter
	s        *session
	hijacked bool
	scratch  http.Header
	status   int
	body     bytes.Buffer
}

func (h *hijackWriter) Header() http.Header {
	if h.scratch == nil {
		h.scratch = make(http.Header)
	}
	return h.scratch
}

func (h *hijackWriter) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *hijackWriter) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	if room := 4096 - h.body.Len(); room > 0 {
		h.body.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.hijacked = true
	l := newLeg(c, h.s, false, h.s.p.cfg.WebSocket.ReadLimit)
	h.s.attach(l)
	// Nothing the client sent can be lost to the relay: gorilla refuses a
	// hijacked reader holding bytes (a client may not send frames before
	// its 101), and resets the reader onto l before using it.
	return l, bufio.NewReadWriter(brw.Reader, bufio.NewWriterSize(l, 64)), nil
}

// stats snapshots the session's counters.
func (s *session) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Duration: time.Since(s.start), Cause: s.cause}
	if c := s.client; c != nil {
		st.MessagesIn, st.BytesIn = c.msgs.Load(), c.bytes.Load()
		st.ClientCloseCode = int(c.closeCode.Load())
		st.GatewayCloseCode = int(c.sentCode.Load())
		if r := c.sentReason.Load(); r != nil {
			st.GatewayCloseReason = *r
		}
	}
	if u := s.upstream; u != nil {
		st.MessagesOut, st.BytesOut = u.msgs.Load(), u.bytes.Load()
		st.UpstreamCloseCode = int(u.closeCode.Load())
	}
	return st
}
