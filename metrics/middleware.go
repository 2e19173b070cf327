package metrics

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/rivet-gateway/rivet-gateway/authn"
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
	upstreamAt time.Time // when the proxy contacted the engine, zero if it did not
	upstreamEr string    // kind of upstream failure, "" if none

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
	start    time.Time
	status   int
	bytes    int64
	rayID    string
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
	o.m.observeRequest(rec.route, o.status, d, ws)
	o.m.observeUpstream(rec, o.start)
	o.al.write(o, rec, ws, d)
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

// Middleware wraps the whole chain (outermost): it counts every request
// and WebSocket in m and writes its access-log line to al. Either may be
// nil. Only route intent, actor name (query targets), method, status or
// close code, duration, sizes, ray id and the caller's subject or API key
// id are logged: never a credential, a query string or params.
func Middleware(m *Metrics, al *AccessLog, next http.Handler) http.Handler {
	if m == nil && al == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &record{}
		rw := &responseRecorder{ResponseWriter: w}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), recordKey{}, rec)))
		o := observation{m: m, al: al, r: r, start: start, status: rw.status, bytes: rw.bytes, rayID: rw.rayID, hijacked: rw.hijacked}
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

func (al *AccessLog) write(o *observation, rec *record, ws *proxy.Stats, d time.Duration) {
	r, status := o.r, o.status
	if al == nil || !al.log.Enabled(r.Context(), al.level) {
		return
	}
	ok := status < 400
	if ws != nil {
		switch closeCode(ws) {
		case 1000, 1001, 1005:
		default:
			ok = false
		}
	}
	if ok && al.sample < 1 && mrand.Float64() >= al.sample {
		return
	}
	ray := o.rayID
	if ray == "" {
		ray = newRayID()
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs, slog.String("ray_id", ray))
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
		attrs = append(attrs,
			slog.Int("close_code", closeCode(ws)),
			slog.Duration("duration", ws.Duration),
			slog.Int64("messages_in", ws.MessagesIn), slog.Int64("messages_out", ws.MessagesOut),
			slog.Int64("bytes_in", ws.BytesIn), slog.Int64("bytes_out", ws.BytesOut))
		if ws.Cause != "" {
			attrs = append(attrs, slog.String("cause", ws.Cause))
		}
	} else {
		attrs = append(attrs, slog.Int("status", status), slog.Duration("duration", d),
			slog.Int64("bytes_out", o.bytes))
		if r.ContentLength > 0 {
			attrs = append(attrs, slog.Int64("bytes_in", r.ContentLength))
		}
	}
	if id := rec.id; id != nil {
		attrs = append(attrs, slog.String("auth", id.Method))
		if id.Subject != "" {
			attrs = append(attrs, slog.String("subject", id.Subject))
		}
		if n := id.IssuerName(); n != "" {
			attrs = append(attrs, slog.String("issuer", n))
		}
		if id.APIKeyID != "" {
			attrs = append(attrs, slog.String("api_key_id", id.APIKeyID))
		}
	}
	al.log.LogAttrs(r.Context(), al.level, msg, attrs...)
}

// newRayID is the id logged when the engine sent no X-Rivet-Ray-Id.
func newRayID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "gw-" + hex.EncodeToString(b[:])
}

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
