package params

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Caller is who the params service is told about, and what claims
// templates read. The lead fills it from authn.IdentityFrom(ctx).
type Caller struct {
	Method   string // how the caller was identified, e.g. "jwt" or "api_key"
	Subject  string
	Issuer   string
	APIKeyID string
	Scopes   []string
	Claims   map[string]any // the verified claims, as decoded from JSON
}

// Options are the injector's collaborators.
type Options struct {
	// Logger receives failures (never params, tokens or header values).
	// Nil: discard.
	Logger *slog.Logger
	// Caller returns the verified caller of r. Nil, or returning nil, means
	// anonymous.
	Caller func(*http.Request) *Caller
	// ConsumedFields returns the top-level client params fields authn read
	// credentials from; policy merge never keeps them. May be nil.
	ConsumedFields func(*http.Request) []string
	// HTTPClient is used for source http instead of the injector's own
	// client (whose transport is a clone of http.DefaultTransport with a
	// large keep-alive pool). It is copied, not changed; redirects are never
	// followed. It cannot be combined with http.ca_file or http.cert_file.
	HTTPClient *http.Client
	// Observe, if set, is called once per request that carries params,
	// after the params were resolved and injected or the request rejected.
	Observe func(Fetch)
	// WrapTransport, if set, wraps the params service client's transport
	// (tracing: a client span per attempt, trace context handed on).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Fetch describes how one request's params were resolved, for metrics.
type Fetch struct {
	// Source is "static", "claims" or "http".
	Source string
	// Duration is the time spent resolving and injecting params, retries
	// and backoff included.
	Duration time.Duration
	// Attempts is the number of requests made to the params service by the
	// fetch this request used: 0 on a cache hit, 1 for static and claims.
	Attempts int
	// Cause is CauseNone on success, otherwise why the request was refused
	// (one of the Cause constants).
	Cause string
	// CacheHit reports an answer served from the cache.
	CacheHit bool
	// Shared reports that the fetch was shared with concurrent requests
	// (singleflight; only with the cache on). Every request sharing it
	// reports its Attempts.
	Shared bool
}

// The rejections the injector answers itself, as RivetKit clients see them.
var (
	// ErrGetParamsFailed: the params service could not be reached or gave
	// no usable answer within the retry budget. HTTP 503 with Retry-After;
	// a WebSocket is accepted and closed 1011 "client.get_params_failed",
	// which RivetKit clients retry with backoff. Metadata: attempts, reason
	// (the cause).
	ErrGetParamsFailed = &rivet.Error{
		Status: http.StatusServiceUnavailable, Group: "client", Code: "get_params_failed",
		Message: "Failed to resolve connection params.", RetryAfter: time.Second, Retryable: true,
	}
	// ErrTooLarge: the params do not fit their carrier (or the service's
	// answer exceeds http.max_response_bytes). The same group and code as
	// ErrGetParamsFailed, so the client behaves as if its own getParams had
	// thrown, but status 500 and no Retry-After: waiting does not help.
	// Metadata: reason "too_large".
	ErrTooLarge = &rivet.Error{
		Status: http.StatusInternalServerError, Group: "client", Code: "get_params_failed",
		Message: "Connection params are too large.", Retryable: true,
	}
	// ErrForbidden: the params service answered 401 or 403, or a claims
	// template had no value with missing_claim deny. Not retried by the
	// gateway nor by RivetKit clients. Metadata: reason.
	ErrForbidden = &rivet.Error{
		Status: http.StatusForbidden, Group: "auth", Code: "forbidden", Message: "Access denied.",
	}
)

// Injector resolves connection params server-side for every upstream
// connection and writes them where the engine reads them.
type Injector struct {
	src       source // nil: the layer is off
	merge     bool
	dialect   rivet.Dialect
	maxHeader int
	log       *slog.Logger
	caller    func(*http.Request) *Caller
	consumed  func(*http.Request) []string
	observe   func(Fetch)
	closeOnce sync.Once
}

// source resolves the server's params object for one request. Returned
// objects may be shared and must not be modified.
type source interface {
	name() string
	resolve(ctx context.Context, q *query) (object, stats, error)
}

// encodingSource is a source that can answer with the params already
// encoded as rivet.MarshalASCII would (policy replace).
type encodingSource interface {
	resolveEncoded(ctx context.Context, q *query) ([]byte, stats, error)
}

type stats struct {
	attempts int
	cacheHit bool
	shared   bool
}

// query is what a source knows about the request it resolves params for.
type query struct {
	route     *rivet.Route
	ws        bool
	caller    *Caller
	requestID string
	client    object // policy merge: the client's params minus consumed fields
}

// New validates cfg and builds an injector. For source http it builds the
// client (reading http.ca_file and the client certificate); Close releases
// it.
func New(cfg Config, opts Options) (*Injector, error) {
	if err := cfg.Validate("params"); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	dialect, err := rivet.ParseDialect(c.Dialect)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	i := &Injector{
		merge:     c.Policy == PolicyMerge,
		dialect:   dialect,
		maxHeader: c.MaxHeaderBytes,
		log:       log.With("component", "params"),
		caller:    opts.Caller,
		consumed:  opts.ConsumedFields,
		observe:   opts.Observe,
	}
	if c.Policy == PolicyPassthrough {
		return i, nil
	}
	switch c.Source {
	case SourceStatic:
		i.src, err = newStaticSource(c.Static)
	case SourceClaims:
		i.src, err = newClaimsSource(c.Claims, c.MissingClaim, "params.claims")
	case SourceHTTP:
		i.src, err = newHTTPSource(c, opts, i.log)
	}
	if err != nil {
		return nil, err
	}
	return i, nil
}

// Close stops shared fetches (waiting for them) and closes idle connections
// to the params service. It is idempotent. Fetches bound to a client's
// request run to the end of their budget; requests that need the params
// service after Close are refused as ws.going_away (503, retryable).
func (i *Injector) Close() {
	i.closeOnce.Do(func() {
		if h, ok := i.src.(*httpSource); ok {
			h.close()
		}
	})
}

// Middleware injects params into every request whose route carries them
// (rivet.Intent.CarriesParams: action, queue, request, connect, websocket)
// and passes it to next; others pass untouched. With source none or policy
// passthrough it returns next itself. It needs the route in the context
// (rivet.WithRoute) and answers 500 without one rather than pass client
// params through unchecked.
func (i *Injector) Middleware(next http.Handler) http.Handler {
	if i.src == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := rivet.RouteFrom(r.Context())
		if rt == nil {
			i.log.Error("no route in request context: route classification must run before params injection")
			rivet.WriteError(w, r, rivet.ErrInternal)
			return
		}
		if !rt.Intent.CarriesParams() {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		h, f, rid, err := i.inject(r, rt)
		f.Duration = time.Since(start)
		if i.observe != nil {
			i.observe(f)
		}
		if err != nil {
			i.reject(w, r, rt, f, rid, err)
			return
		}
		r2 := r.WithContext(r.Context()) // a shallow copy; the original keeps the client's headers
		r2.Header = h
		next.ServeHTTP(w, r2)
	})
}

// inject resolves the params of r and returns the headers to send upstream.
func (i *Injector) inject(r *http.Request, rt *rivet.Route) (http.Header, Fetch, string, error) {
	f := Fetch{Source: i.src.name()}
	ws := rivet.IsUpgrade(r)
	q := &query{route: rt, ws: ws}
	static, isStatic := i.src.(*staticSource)
	if !isStatic {
		if cs, ok := i.src.(*claimsSource); !ok || cs.usesRequestID {
			q.requestID = requestID(r)
		}
		if i.caller != nil {
			q.caller = i.caller(r)
		}
	}
	if i.merge {
		client, err := i.clientParams(r, ws)
		if err != nil {
			f.Cause = CauseClientParams
			return nil, f, q.requestID, err
		}
		q.client = client
	}

	var (
		obj  object
		st   stats
		body []byte
		err  error
	)
	enc, isEnc := i.src.(encodingSource)
	switch {
	case isStatic && !i.merge:
		body, st = static.encoded, stats{attempts: 1}
	case isEnc && !i.merge:
		body, st, err = enc.resolveEncoded(r.Context(), q)
	default:
		obj, st, err = i.src.resolve(r.Context(), q)
	}
	f.Attempts, f.CacheHit, f.Shared = st.attempts, st.cacheHit, st.shared
	if err != nil {
		f.Cause = causeOf(err)
		return nil, f, q.requestID, err
	}

	// Every source delivers compat JSON (escapeCompat); a client's own
	// params are compat JSON already.
	switch {
	case body != nil:
	case !i.merge:
		body, err = rivet.MarshalASCII(obj)
	default:
		// Server keys win: a client can never set a key the server injects.
		merged := make(object, len(q.client)+len(obj))
		for k, v := range q.client {
			merged[k] = v
		}
		for k, v := range obj {
			merged[k] = v
		}
		body, err = rivet.MarshalASCII(merged)
	}
	if err != nil {
		f.Cause = CauseInternal
		return nil, f, q.requestID, err
	}
	h := r.Header.Clone()
	if err := rivet.SetConnParams(h, ws, body, i.dialect, i.maxHeader); err != nil {
		f.Cause = CauseTooLarge
		return nil, f, q.requestID, &failure{cause: CauseTooLarge, attempts: f.Attempts, err: err}
	}
	return h, f, q.requestID, nil
}

// escapeCompat is rivet.EscapeCompat for an encoded object, ASCII-only as
// it came. The sources apply it (and escapeCompatValues) to what they
// build from plain JSON (claims, the config, the params service's answer),
// so that what reaches the actor reads back as that JSON.
func escapeCompat(body []byte) ([]byte, error) {
	esc, err := rivet.EscapeCompat(body)
	if err != nil {
		return nil, err
	}
	return rivet.ASCIIJSON(esc), nil
}

// escapeCompatValues returns obj with its values in compat JSON, obj itself
// when none needed it (obj may be shared: the static object, a cached
// answer of the params service).
func escapeCompatValues(obj object) (object, error) {
	var out object
	for k, v := range obj {
		esc, err := rivet.EscapeCompat(v)
		if err != nil {
			return nil, err
		}
		if len(esc) == len(v) && (len(v) == 0 || &esc[0] == &v[0]) {
			continue // EscapeCompat returned v itself: nothing to escape
		}
		if out == nil {
			out = make(object, len(obj))
			for k2, v2 := range obj {
				out[k2] = v2
			}
		}
		out[k] = esc
	}
	if out == nil {
		return obj, nil
	}
	return out, nil
}

// errClientParams is a client params carrier policy merge cannot use.
var errClientParams = errors.New("client connection params must be a JSON object")

// clientParams reads the params the client sent, for policy merge, without
// the fields authn consumed. Absent or null params are nil.
func (i *Injector) clientParams(r *http.Request, ws bool) (object, error) {
	raw, found, err := rivet.ConnParams(r, ws)
	if err != nil {
		return nil, errors.Join(errClientParams, err)
	}
	raw = bytes.TrimSpace(raw)
	if !found || len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var obj object
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, errClientParams
	}
	if i.consumed != nil {
		for _, k := range i.consumed(r) {
			delete(obj, k)
		}
	}
	return obj, nil
}

// reject answers a request whose params could not be resolved, and logs
// why: the cause and error, never params or credentials.
func (i *Injector) reject(w http.ResponseWriter, r *http.Request, rt *rivet.Route, f Fetch, rid string, err error) {
	var e *rivet.Error
	level := slog.LevelWarn
	switch f.Cause {
	case CauseCanceled:
		level = slog.LevelDebug
		e = rivet.ErrClientClosed.Wrap(err)
		if errors.Is(err, errClosed) {
			e = rivet.ErrShuttingDown.Wrap(err)
		}
	case CauseDenied, CauseMissingClaim:
		level = slog.LevelInfo
		e = ErrForbidden.With("reason", f.Cause).Wrap(err)
	case CauseClientParams:
		level = slog.LevelInfo
		e = rivet.ErrInvalidRequest.With("reason", errClientParams.Error()).Wrap(err)
	case CauseTooLarge:
		e = ErrTooLarge.With("reason", CauseTooLarge).Wrap(err)
	default:
		e = ErrGetParamsFailed.With("reason", f.Cause).With("attempts", f.Attempts).Wrap(err)
	}
	if rid == "" {
		rid = requestID(r)
	}
	i.log.Log(r.Context(), level, "connection params not resolved",
		"request_id", rid, "intent", rt.Intent.String(), "source", f.Source,
		"cause", f.Cause, "attempts", f.Attempts, "duration", f.Duration, "error", err)
	rivet.WriteError(w, r, e)
}

// requestID is the client's X-Request-Id when it is a sane one, else a new
// random id.
func requestID(r *http.Request) string {
	if v := r.Header.Get("X-Request-Id"); v != "" && len(v) <= 128 && printable(v) {
		return v
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
