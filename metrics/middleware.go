package metrics

import (
	"bufio"
	"context"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/clientip"
	"github.com/rivet-gateway/rivet-gateway/proxy"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// record is what the inner layers tell Middleware about a request. The
// chain runs in the request's goroutine, except that a proxied WebSocket
// outlives the handler: its end (NoteWebSocket, and NoteUpstreamError
// before it) comes from the proxy's relay goroutine. So the observation of
// a request is handed off under mu: whichever comes second, the handler's
// return or NoteWebSocket of a socket announced open, makes it.
type record struct {
	route      *rivet.Route
	id         *authn.Identity
	auth       *authn.Outcome // the authentication decision (NoteAuth), nil if none was made
	upstreamAt time.Time      // when the proxy contacted the engine, zero if it did not
	upstreamEr string         // kind of upstream failure, "" if none

	mu     sync.Mutex
	ws     *proxy.Stats
	wsOpen bool         // NoteWebSocketOpen: the socket outlives the handler
	later  *observation // left by the handler's return for NoteWebSocket
}

// observation is what Middleware knows of a request once its handler has
// returned. It keeps no ResponseWriter: after the handler returns, Echo
// and net/http reuse or free theirs.
type observation struct {
	m        *Metrics
	al       *AccessLog
	r        *http.Request
	x        *rivet.Exchange // what the gateway itself answered; nil outside the gateway's chain
	start    time.Time
	status   int
	bytes    int64
	rayID    string // the response's X-Rivet-Ray-Id
	hijacked bool
}

// finish counts the request (or WebSocket) and writes its access-log
// line; the duration runs from the request's start to now, the
// WebSocket's end for an upgraded one.
func (o *observation) finish(rec *record, ws *proxy.Stats) {
	d := time.Since(o.start)
	if ws != nil && !o.hijacked {
		ws = nil // the upgrade failed and was answered over HTTP
	}
	x := o.x
	if ws != nil && ws.GatewayCloseCode == 0 && x != nil && x.CloseCode != 0 {
		// The proxy could not upgrade and refused the socket itself
		// (rivet.RejectWebSocket): that close is how it ended.
		st := *ws
		st.GatewayCloseCode, st.GatewayCloseReason = x.CloseCode, x.CloseReason
		ws = &st
	}
	o.m.observeRequest(rec.route, o.status, d, ws)
	o.m.observeUpstream(rec, o.start)
	logged := ws
	if ws == nil && o.hijacked && x != nil && x.CloseCode != 0 {
		// Refused before the proxy (CORS, classification, authentication,
		// params): accepted only to be closed. Logged as the WebSocket it
		// was, with that close, not as a bare 101.
		logged = &proxy.Stats{Duration: d, GatewayCloseCode: x.CloseCode, GatewayCloseReason: x.CloseReason}
	}
	o.al.write(o, rec, logged, d)
}

type recordKey struct{}

func recordFrom(ctx context.Context) *record {
	rec, _ := ctx.Value(recordKey{}).(*record)
	return rec
}

// Note copies the route (rivet.RouteFrom) and identity
// (authn.IdentityFrom) in the request's context to Middleware, which sits
// outside the layers that set them. Put it after route classification and
// after authentication.
func Note(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec := recordFrom(r.Context()); rec != nil {
			if rt := rivet.RouteFrom(r.Context()); rt != nil {
				rec.route = rt
			}
			if id := authn.IdentityFrom(r.Context()); id != nil {
				rec.id = id
			}
		}
		next.ServeHTTP(w, r)
	})
}

// NoteAuth hands the authentication decision for r to Middleware
// (authn.Options.Observe), so r's access-log line carries the rejection
// reason and, when a credential was verified, whose it was: also on a 403,
// where no Identity reaches the context.
func NoteAuth(r *http.Request, o authn.Outcome) {
	if rec := recordFrom(r.Context()); rec != nil {
		rec.auth = &o
	}
}

// NoteWebSocket hands a finished WebSocket's stats to Middleware
// (proxy.Options.OnWebSocketEnd). For a socket that outlived its handler,
// it is what counts and logs it.
func NoteWebSocket(r *http.Request, st proxy.Stats) {
	rec := recordFrom(r.Context())
	if rec == nil {
		return
	}
	rec.mu.Lock()
	rec.ws = &st
	o := rec.later
	rec.mu.Unlock()
	if o != nil {
		o.finish(rec, &st)
	}
}

// NoteWebSocketOpen tells Middleware that r's WebSocket stays open after
// the handler returns, so it waits for NoteWebSocket
// (proxy.Options.OnWebSocketOpen).
func NoteWebSocketOpen(r *http.Request) {
	if rec := recordFrom(r.Context()); rec != nil {
		rec.mu.Lock()
		rec.wsOpen = true
		rec.mu.Unlock()
	}
}

// NoteUpstream marks the moment the proxy contacts the engine for r
// (proxy.Options.OnUpstream): the gateway's added latency ends there.
func NoteUpstream(r *http.Request) {
	if rec := recordFrom(r.Context()); rec != nil {
		rec.upstreamAt = time.Now()
	}
}

// NoteUpstreamError records that the engine failed r
// (proxy.Options.OnUpstreamError).
func NoteUpstreamError(r *http.Request, e *rivet.Error) {
	if rec := recordFrom(r.Context()); rec != nil {
		rec.upstreamEr = upstreamErrorKind(e)
	}
}

// AccessLog writes access-log lines. A nil *AccessLog writes none.
type AccessLog struct {
	log    *slog.Logger
	level  slog.Level
	sample float64
}

// NewAccessLog returns the access log configured by cfg, or nil when it is
// disabled.
func NewAccessLog(cfg AccessLogConfig, log *slog.Logger) (*AccessLog, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	level, err := parseLevel(cfg.Level)
	if err != nil {
		return nil, err
	}
	return &AccessLog{log: log, level: level, sample: cfg.Sample}, nil
}

// Middleware wraps the whole chain but the layer that gives each request
// its ray id and client address (rivet.Exchange, clientip): it counts
// every request and WebSocket in m and writes its access-log line to al.
// Either may be nil. Only the ray id, client address, route intent, actor
// name, method, status or close code and reason, the gateway's own error
// and authentication reason, durations, sizes and the caller's subject or
// API key id are logged: never a credential, a query string or params.
func Middleware(m *Metrics, al *AccessLog, next http.Handler) http.Handler {
	if m == nil && al == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &record{}
		rw := &responseRecorder{ResponseWriter: w}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), recordKey{}, rec)))
		o := observation{m: m, al: al, r: r, x: rivet.ExchangeFrom(r.Context()), start: start,
			status: rw.status, bytes: rw.bytes, rayID: rw.rayID, hijacked: rw.hijacked}
		if o.status == 0 {
			o.status = http.StatusOK // nothing written: net/http answers 200
		}
		rec.mu.Lock()
		if rec.wsOpen && rec.ws == nil {
			// The WebSocket is still open: NoteWebSocket finishes. (Only
			// this copy goes to the heap, not every request's.)
			later := o
			rec.later = &later
			rec.mu.Unlock()
			return
		}
		ws := rec.ws
		rec.mu.Unlock()
		o.finish(rec, ws)
	})
}

// write writes one access-log line: "websocket" for a socket that was
// upgraded (ws: its stats, or the close it was refused with), "request"
// otherwise. Fields are in a fixed order, optional ones left out:
//
//	ray_id client_ip [peer_ip] intent [actor] method
//	request:   status [error] [auth_reason] duration_ms [overhead_ms upstream_ms] bytes_out [bytes_in]
//	websocket: close_code [close_reason] [error] [auth_reason] duration_ms [overhead_ms]
//	           messages_in messages_out bytes_in bytes_out [cause]
//	[auth [subject] [issuer] [api_key_id]]
//
// peer_ip is there when the client address came from trusted proxies;
// error is the gateway's own rejection ("auth.forbidden"), auth_reason
// authn's reason ("key_binding"), also when an anonymous route ignored a
// bad credential; overhead_ms is the time to contacting the engine and
// upstream_ms the rest of an HTTP request.
func (al *AccessLog) write(o *observation, rec *record, ws *proxy.Stats, d time.Duration) {
	r, status := o.r, o.status
	if al == nil || !al.log.Enabled(r.Context(), al.level) {
		return
	}
	code := 0
	ok := status < 400
	if ws != nil {
		code = closeCode(ws)
		switch code {
		case 1000, 1001, 1005:
		default:
			ok = false
		}
	}
	if ok && al.sample < 1 && mrand.Float64() >= al.sample {
		return
	}
	x := o.x
	ray := o.rayID
	if ray == "" && x != nil {
		ray = x.RayID
	}
	if ray == "" {
		ray = rivet.NewRayID()
	}
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs, slog.String("ray_id", ray))
	if c := clientip.From(r.Context()); c.IsValid() {
		attrs = append(attrs, slog.String("client_ip", c.String()))
		if p := clientip.PeerFrom(r.Context()); p.IsValid() && p != c {
			attrs = append(attrs, slog.String("peer_ip", p.String()))
		}
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, slog.String("client_ip", host))
	}
	if rec.route != nil {
		attrs = append(attrs, slog.String("intent", rec.route.Intent.String()))
		if n := rec.route.ActorLabel(); n != "" {
			attrs = append(attrs, slog.String("actor", n))
		}
	} else {
		attrs = append(attrs, slog.String("intent", rivet.IntentUnknown.String()))
	}
	attrs = append(attrs, slog.String("method", r.Method))
	msg := "request"
	if ws != nil {
		msg = "websocket"
		attrs = append(attrs, slog.Int("close_code", code))
		if code != 0 && code == ws.GatewayCloseCode && ws.GatewayCloseReason != "" {
			attrs = append(attrs, slog.String("close_reason", ws.GatewayCloseReason))
		}
	} else {
		attrs = append(attrs, slog.Int("status", status))
	}
	if x != nil && x.Rejection != nil {
		attrs = append(attrs, slog.String("error", x.Rejection.Group+"."+x.Rejection.Code))
	}
	if a := rec.auth; a != nil && a.Reason != "" {
		attrs = append(attrs, slog.String("auth_reason", a.Reason))
	}
	var overhead time.Duration
	if !rec.upstreamAt.IsZero() {
		overhead = rec.upstreamAt.Sub(o.start)
	}
	if ws != nil {
		attrs = append(attrs, slog.Any("duration_ms", millis(ws.Duration)))
		if overhead > 0 {
			attrs = append(attrs, slog.Any("overhead_ms", millis(overhead)))
		}
		attrs = append(attrs,
			slog.Int64("messages_in", ws.MessagesIn), slog.Int64("messages_out", ws.MessagesOut),
			slog.Int64("bytes_in", ws.BytesIn), slog.Int64("bytes_out", ws.BytesOut))
		if ws.Cause != "" {
			attrs = append(attrs, slog.String("cause", ws.Cause))
		}
	} else {
		attrs = append(attrs, slog.Any("duration_ms", millis(d)))
		if overhead > 0 {
			attrs = append(attrs, slog.Any("overhead_ms", millis(overhead)), slog.Any("upstream_ms", millis(d-overhead)))
		}
		attrs = append(attrs, slog.Int64("bytes_out", o.bytes))
		if r.ContentLength > 0 {
			attrs = append(attrs, slog.Int64("bytes_in", r.ContentLength))
		}
	}
	attrs = appendCaller(attrs, rec)
	al.log.LogAttrs(r.Context(), al.level, msg, attrs...)
}

// appendCaller appends who the caller was: the method of the credential
// verified and its subject, issuer name or API key id, from the
// authentication decision (which knows them on a 403 too) or else the
// identity in the context. Never the credential.
func appendCaller(attrs []slog.Attr, rec *record) []slog.Attr {
	var method, subject, issuer, keyID string
	switch {
	case rec.auth != nil:
		a := rec.auth
		method, subject, issuer, keyID = a.Method, a.Subject, a.Issuer, a.APIKeyID
	case rec.id != nil:
		id := rec.id
		method, subject, issuer, keyID = id.Method, id.Subject, id.IssuerName(), id.APIKeyID
	}
	if method == "" {
		return attrs
	}
	attrs = append(attrs, slog.String("auth", method))
	if subject != "" {
		attrs = append(attrs, slog.String("subject", subject))
	}
	if issuer != "" {
		attrs = append(attrs, slog.String("issuer", issuer))
	}
	if keyID != "" {
		attrs = append(attrs, slog.String("api_key_id", keyID))
	}
	return attrs
}

// millis logs a duration in milliseconds with microsecond precision, as a
// number in both slog formats: "0.412", "3600000.000". (slog's own floats
// turn a WebSocket's hour into 3.6e+06 in the text format.)
type millis time.Duration

// MarshalText is used by slog's text handler.
func (d millis) MarshalText() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(d)/float64(time.Millisecond), 'f', 3, 64), nil
}

// MarshalJSON is used by slog's JSON handler: a JSON number.
func (d millis) MarshalJSON() ([]byte, error) { return d.MarshalText() }

// responseRecorder notes the status, body size and ray id of a response.
// It implements Flusher and Hijacker itself (so it sees the hijack) and
// Unwrap for http.ResponseController.
type responseRecorder struct {
	http.ResponseWriter
	status   int
	bytes    int64
	rayID    string
	hijacked bool
}

func (w *responseRecorder) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
		w.rayID = w.Header().Get(rivet.HeaderRayID)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *responseRecorder) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *responseRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
	}
	return c, brw, err
}

func (w *responseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
