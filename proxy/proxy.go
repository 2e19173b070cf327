// Package proxy forwards every RivetKit client route to one Rivet Engine:
// HTTP through a single httputil.ReverseProxy built at start-up, actions
// over a transport of its own (transport.go), WebSocket upgrades through
// koding/websocketproxy's handshake and then a frame relay of its own (read
// limits, keepalive pings, relayed close codes, shutdown with
// ws.going_away). It is the last link of the chain; the route it acts on
// comes from rivet.RouteFrom, set by the classifier ahead of it.
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/clientip"
	"github.com/rivet-gateway/rivet-gateway/rivet"
	"go.opentelemetry.io/otel/trace"
)

// Options carries what the proxy takes from the rest of the chain.
type Options struct {
	Logger *slog.Logger
	// CheckOrigin is the WebSocket origin check (the CORS policy). Nil
	// allows requests without an Origin header and same-origin ones only.
	CheckOrigin func(*http.Request) bool
	// StripCORS removes CORS headers from upstream responses, so browsers
	// see only the gateway's. Nil removes every Access-Control-* header.
	StripCORS func(http.Header)
	// SessionDeadline, when set and returning a non-zero time, closes a
	// WebSocket at that time with ws.going_away (an expiring credential).
	SessionDeadline func(*http.Request) time.Time
	// OnWebSocketEnd, when set, is called once per proxied WebSocket that
	// got past the origin check: from the handler when the upgrade failed,
	// otherwise (after OnWebSocketOpen) from the relay's goroutine once the
	// socket has closed, when the handler has long returned and the
	// request's context is cancelled (its values are still there).
	OnWebSocketEnd func(*http.Request, Stats)
	// OnWebSocketOpen, when set, is called from the handler when the
	// client has been upgraded, just before the handler returns while the
	// socket stays open: OnWebSocketEnd follows when it closes.
	OnWebSocketOpen func(*http.Request)
	// OnUpstream, when set, is called just before the engine is contacted
	// for r (the request sent, the WebSocket dialled): the end of the
	// gateway's own work on it.
	OnUpstream func(*http.Request)
	// OnUpstreamError, when set, is called when the engine could not be
	// reached or failed r (connection refused, timeout, TLS, 5xx on a
	// WebSocket upgrade), with the error the client is answered with.
	OnUpstreamError func(*http.Request, *rivet.Error)

	// WrapTransport, when set, wraps the transport of HTTP requests to the
	// engine (tracing: a client span each, trace context handed on).
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Tracer, when set, records the WebSocket handshake with the engine as
	// a span.
	Tracer trace.Tracer
	// InjectTrace, when set, replaces the client's trace context headers in
	// what goes to the engine with the request's own (HTTP and the
	// WebSocket dial). Nil: the client's pass through.
	InjectTrace func(context.Context, http.Header)

	// Proxy chooses the egress proxy for a connection to the engine, as
	// http.Transport.Proxy does, for HTTP requests and WebSocket dials
	// alike (a WebSocket asks for its URL with scheme http or https, and
	// tunnels with CONNECT through an http or https proxy, or through a
	// socks5 one). Nil: http.ProxyFromEnvironment, which reads
	// HTTPS_PROXY, HTTP_PROXY and NO_PROXY once per process and never
	// proxies loopback addresses.
	Proxy func(*http.Request) (*url.URL, error)
	// DialContext, when set, opens the TCP connections to the engine and
	// to egress proxies (bounded by upstream.dial_timeout). Nil: a
	// net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Proxy is the reverse proxy to the engine. It is safe for concurrent use.
type Proxy struct {
	cfg      Config
	opts     Options
	log      *slog.Logger
	target   *url.URL
	basePath string // target's escaped path without a trailing slash
	host     string // Host header sent upstream
	token    string

	netDialer    *net.Dialer
	proxy        func(*http.Request) (*url.URL, error) // Options.Proxy or the environment's
	transport    *http.Transport
	sync         *syncTransport    // nil: every request goes by transport
	roundTripper http.RoundTripper // sync or transport, wrapped by Options.WrapTransport
	tlsConfig    *tls.Config
	http         *httputil.ReverseProxy
	upgrader     websocket.Upgrader
	dialer       websocket.Dialer

	sessions registry
}

// New builds the proxy. cfg must have passed Validate.
func New(cfg Config, opts Options) (*Proxy, error) {
	target, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream.url: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StripCORS == nil {
		opts.StripCORS = stripAccessControl
	}
	p := &Proxy{
		cfg:      cfg,
		opts:     opts,
		log:      opts.Logger,
		target:   target,
		basePath: strings.TrimSuffix(target.EscapedPath(), "/"),
		host:     cfg.Host,
		token:    cfg.Token,
	}
	if p.host == "" {
		p.host = target.Host
	}
	if p.token != "" {
		if err := CheckToken(p.token); err != nil {
			return nil, fmt.Errorf("upstream.token: %w", err)
		}
	}
	p.tlsConfig, err = tlsConfig(cfg, target)
	if err != nil {
		return nil, err
	}
	p.netDialer = &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	p.proxy = opts.Proxy
	if p.proxy == nil {
		p.proxy = http.ProxyFromEnvironment
	}
	p.transport = p.newTransport()
	var base http.RoundTripper = p.transport
	if p.sync = p.newSyncTransport(); p.sync != nil {
		base = p.sync
	}
	p.roundTripper = base
	if opts.WrapTransport != nil {
		p.roundTripper = opts.WrapTransport(base)
	}
	p.http = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      p.roundTripper,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	check := opts.CheckOrigin
	if check == nil {
		check = sameOrigin
	}
	// gorilla's connections live for the handshake only (the legs detach
	// from them at the client's 101, see legConn): the upgrader reuses the
	// hijacked reader and both take write buffers from a shared pool, so
	// a handshake allocates little and nothing of it stays.
	wpool := writeBufferPool(cfg.WebSocket.BufferSize)
	p.upgrader = websocket.Upgrader{
		HandshakeTimeout: cfg.WebSocket.HandshakeTimeout,
		ReadBufferSize:   0, // reuse the hijacked bufio.Reader
		WriteBufferSize:  cfg.WebSocket.BufferSize,
		WriteBufferPool:  wpool,
		CheckOrigin:      check,
		// Failures are answered by serveWebSocket, which sees them as an
		// upgrade that did not happen.
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			w.WriteHeader(status)
		},
	}
	p.dialer = websocket.Dialer{
		HandshakeTimeout: cfg.WebSocket.HandshakeTimeout,
		ReadBufferSize:   cfg.WebSocket.BufferSize,
		WriteBufferSize:  cfg.WebSocket.BufferSize,
		WriteBufferPool:  wpool,
		TLSClientConfig:  p.tlsConfig,
	}
	return p, nil
}

func tlsConfig(cfg Config, target *url.URL) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
	if tc.ServerName == "" {
		tc.ServerName = target.Hostname()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream.ca_file: no PEM certificates in %s", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

func (p *Proxy) newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = p.dial
	t.Proxy = p.proxy // the WebSocket dials ask the same (dial.go)
	t.OnProxyConnectResponse = func(_ context.Context, via *url.URL, _ *http.Request, res *http.Response) error {
		// net/http's own error for a refused tunnel is untyped (a 500
		// from AsError); typed, it is a 502 as for the WebSocket dial.
		if err := checkConnect(via, res); err != nil {
			return &net.OpError{Op: "proxyconnect", Net: "tcp", Err: err}
		}
		return nil
	}
	t.TLSClientConfig = p.tlsConfig.Clone()
	t.MaxIdleConns = p.cfg.MaxIdleConns
	t.MaxIdleConnsPerHost = p.cfg.MaxIdleConns
	t.IdleConnTimeout = p.cfg.IdleConnTimeout
	t.ResponseHeaderTimeout = p.cfg.ResponseHeaderTimeout
	// Pass the client's Accept-Encoding through rather than adding our own
	// and decompressing.
	t.DisableCompression = true
	return t
}

// newSyncTransport returns the transport for the requests syncTransport
// takes, or nil when the engine is not plain http reached directly: TLS
// and egress proxies stay with net/http's Transport.
func (p *Proxy) newSyncTransport() *syncTransport {
	if p.target.Scheme != "http" || p.cfg.Transport == TransportNetHTTP {
		return nil
	}
	addr := p.target.Host
	if p.target.Port() == "" {
		addr = net.JoinHostPort(p.target.Hostname(), "80")
	}
	if via, err := p.proxyFor("http", addr); err != nil || via != nil {
		return nil
	}
	return newSyncTransport(addr, p.dial, p.transport, p.cfg)
}

// ServeHTTP forwards r to the engine.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := rivet.RouteFrom(r.Context())
	if rt == nil {
		parsed, err := rivet.ParseRequest(r)
		if err != nil {
			rivet.WriteError(w, r, err)
			return
		}
		rt = &parsed
		r = r.WithContext(rivet.WithRoute(r.Context(), rt))
	}
	if err := CheckNamespace(rt, p.cfg.Namespace); err != nil {
		// PinNamespace ran before resolution; the resolved actors are
		// checked here, where the gateway's token would be attached.
		rivet.WriteError(w, r, err)
		return
	}
	if rivet.IsUpgrade(r) {
		p.serveWebSocket(w, r, rt)
		return
	}
	if p.cfg.MaxRequestBodyBytes > 0 && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > p.cfg.MaxRequestBodyBytes {
			rivet.WriteError(w, r, rivet.ErrRequestTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxRequestBodyBytes)
	}
	if r.ContentLength > 0 && r.ContentLength <= smallBodyBytes && r.Body != nil {
		// A small body of known length (an action's arguments) is read
		// first: net/http's transport then writes head and body upstream in
		// one write, where for a streamed body it flushes the head first,
		// a second syscall on every request.
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			// The client stopped sending: nothing reached the engine.
			r.Body.Close()
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				rivet.WriteError(w, r, rivet.ErrRequestTooLarge.Wrap(err))
			} else {
				rivet.WriteError(w, r, rivet.ErrClientClosed.Wrap(err))
			}
			return
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.http.ServeHTTP(w, r)
}

// smallBodyBytes bounds the request bodies ServeHTTP reads before
// forwarding; larger ones are streamed.
const smallBodyBytes = 16 << 10

// inMemoryBody is the type of the bodies ServeHTTP (and the actors
// middleware) read ahead: io.NopCloser over a *bytes.Reader, which
// net/http's transport recognizes as in memory and writes with the head.
var inMemoryBody = reflect.TypeOf(io.NopCloser(&bytes.Reader{}))

// upstreamURL returns the engine URL for r: the base URL plus the path the
// route was read from (byte for byte: what the gateway classified is what
// the engine reads) and r's query (which authentication may have stripped a
// credential from). When the gateway owns the namespace token, the client's
// URL carriers (@token, rvt-token) are removed and none is added: the
// engine reads a URL token before any other (guard's
// read_gateway_token_for_path_based), so a client's would beat the
// gateway's, and the gateway's own goes in a header or subprotocol
// (rewrite, wsDirector), never where access logs keep URLs.
func (p *Proxy) upstreamURL(r *http.Request, rt *rivet.Route) *url.URL {
	u := *p.target
	path, query := rt.RawPath, r.URL.RawQuery
	if path == "" {
		path = r.URL.EscapedPath()
	}
	if p.token != "" && isGatewayPath(rt) {
		query = rivet.RemoveQueryParam(query, "rvt-token")
		path = rt.Path()
	}
	escaped := p.basePath + path
	u.Path, _ = url.PathUnescape(escaped)
	u.RawPath = escaped
	u.RawQuery = query
	return &u
}

// isGatewayPath reports whether rt is a /gateway/<target>/... path, whatever
// its intent: a tail the route parser does not know (IntentUnknown) still
// carries the client's @token or rvt-token, which must not reach the engine
// when the gateway owns the token.
func isGatewayPath(rt *rivet.Route) bool { return rt.Intent.Gateway() || rt.Target != "" }

// rewrite builds the outbound request. Rewrite (not Director) means the
// client's X-Forwarded-* headers are dropped before we set our own.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	rt := rivet.RouteFrom(pr.In.Context())
	if p.opts.OnUpstream != nil {
		p.opts.OnUpstream(pr.In)
	}
	pr.Out.URL = p.upstreamURL(pr.In, rt)
	pr.Out.Host = p.host
	if pr.Out.Body != nil && reflect.TypeOf(pr.In.Body) == inMemoryBody {
		// ReverseProxy (go1.26) hides every body behind a reader of its own
		// whose Close does nothing, so the transport no longer sees it is in
		// memory and flushes the head in a write of its own: a second
		// syscall on every request. An in-memory body needs no such guard
		// (closing it closes nothing of the client's), so it goes as it is.
		pr.Out.Body = pr.In.Body
	}
	pr.SetXForwarded()
	h := pr.Out.Header
	if ip := forwardedFor(pr.In); ip != "" {
		h.Set("X-Forwarded-For", ip)
	}
	if p.opts.InjectTrace != nil {
		p.opts.InjectTrace(pr.In.Context(), h)
	}
	if p.token != "" {
		// The carriers engine 2.3.19 reads without a URL token: the
		// management API only Authorization (api-public's auth_middleware),
		// /gateway/ HTTP x-rivet-token (read_gateway_token_for_path_based).
		h.Del(rivet.HeaderToken)
		switch {
		case rt.Intent.API() || rt.Intent == rivet.IntentMetadata:
			h.Set("Authorization", "Bearer "+p.token)
		case isGatewayPath(rt):
			h.Set(rivet.HeaderToken, p.token)
		}
	}
	if rt.Intent == rivet.IntentMetadata {
		// The metadata body is rewritten: ask for it uncompressed.
		h.Del("Accept-Encoding")
	}
}

func (p *Proxy) modifyResponse(res *http.Response) error {
	p.opts.StripCORS(res.Header)
	if res.Header.Get(rivet.HeaderRayID) == "" {
		// The engine names its answers; when it did not, the gateway's ray
		// id (the one its access log line carries) does.
		if x := rivet.ExchangeFrom(res.Request.Context()); x != nil && x.RayID != "" {
			res.Header.Set(rivet.HeaderRayID, x.RayID)
		}
	}
	if rt := rivet.RouteFrom(res.Request.Context()); rt != nil && rt.Intent == rivet.IntentMetadata {
		return rewriteMetadata(res)
	}
	return nil
}

// metadataBypassKeys are the /metadata fields that make a RivetKit client
// switch to another endpoint (and namespace and token): removed so clients
// keep talking through the gateway and never learn a token.
var metadataBypassKeys = []string{"clientEndpoint", "clientNamespace", "clientToken"}

const maxMetadataBytes = 1 << 20

// rewriteMetadata removes metadataBypassKeys from a /metadata answer,
// whatever its status and content type (the RivetKit client parses the body
// as JSON regardless). A body that is not a JSON object cannot be checked
// and is refused: the client would otherwise follow whatever it says.
// Answers without a body (HEAD, 204, 304) pass as they are.
func rewriteMetadata(res *http.Response) error {
	if res.Request != nil && res.Request.Method == http.MethodHead || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified {
		return nil // no body: nothing to follow
	}
	if ce := res.Header.Get("Content-Encoding"); ce != "" && ce != "identity" {
		return fmt.Errorf("metadata response is %s-encoded; cannot strip endpoint fields", ce)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxMetadataBytes+1))
	res.Body.Close()
	if err != nil {
		return err
	}
	if len(body) > maxMetadataBytes {
		return errors.New("metadata response too large")
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil || doc == nil {
		return rivet.ErrUpstreamUnavailable.With("reason", "metadata response is not a JSON object")
	}
	changed := false
	for _, k := range metadataBypassKeys {
		if _, ok := doc[k]; ok {
			delete(doc, k)
			changed = true
		}
	}
	if changed {
		if body, err = json.Marshal(doc); err != nil {
			return err
		}
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", fmt.Sprint(len(body)))
	return nil
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = rivet.ErrRequestTooLarge.Wrap(err)
	}
	e := rivet.AsError(err)
	if e.Status != rivet.StatusClientClosedRequest && e.Status != http.StatusRequestEntityTooLarge && p.opts.OnUpstreamError != nil {
		p.opts.OnUpstreamError(r, e)
	}
	if e.Status != rivet.StatusClientClosedRequest {
		p.log.Warn("upstream request failed", "method", r.Method, "intent", rivet.RouteFrom(r.Context()).Intent.String(),
			"status", e.Status, "error", errorCause(err))
	}
	rivet.WriteError(w, r, e)
}

// errorCause is err's text for logs. Upstream errors can quote the URL,
// which may carry a namespace token: url.Error is reduced to its cause.
func errorCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

// forwardedFor is the X-Forwarded-For sent to the engine: one address,
// the client the gateway resolved (clientip.From: the TCP peer, or what
// the configured trusted proxies reported), else the TCP peer; "" when
// neither is known. Never the list the request arrived with, nor the
// proxies' addresses: the engine and the actors behind it have the
// gateway as their only proxy, so the header they get is one they can
// believe whole, whichever end of it they read, and the address in it is
// the one the access log names.
func forwardedFor(r *http.Request) string {
	if a := clientip.From(r.Context()); a.IsValid() {
		return a.String()
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	return ""
}

func stripAccessControl(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			delete(h, k)
		}
	}
}

func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// CheckToken reports whether token can be sent as the engine reads it
// without a URL: whole in the x-rivet-token header and in one entry of a
// comma-separated Sec-WebSocket-Protocol list (rivet_token.<token>, read
// as is, not decoded). So every byte must be printable ASCII other than a
// space or a comma. The error never quotes the token.
func CheckToken(token string) error {
	if token == "" {
		return errors.New("is empty")
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f || c == ',' {
			return fmt.Errorf("byte %d is not printable ASCII or is a space or comma: the token is sent in the x-rivet-token header and a rivet_token. WebSocket subprotocol", i+1)
		}
	}
	return nil
}

// OpenWebSockets returns the number of proxied WebSockets in progress.
func (p *Proxy) OpenWebSockets() int { return int(p.sessions.open.Load()) }

// Shutdown closes every proxied WebSocket with 1001 ws.going_away (the
// RivetKit client reconnects on that reason) and refuses new ones, then
// waits for them to end or for ctx, after which the rest are cut.
func (p *Proxy) Shutdown(ctx context.Context) error {
	sessions := p.sessions.snapshot(true)
	for _, s := range sessions {
		s.terminate("shutdown", closeErr(websocket.CloseGoingAway, ReasonGoingAway), closeErr(websocket.CloseGoingAway, ReasonGoingAway))
	}
	for _, s := range sessions {
		select {
		case <-s.done:
		case <-ctx.Done():
			for _, s := range sessions {
				s.forceClose()
			}
			return ctx.Err()
		}
	}
	return nil
}

// Close releases idle upstream connections.
func (p *Proxy) Close() {
	if p.sync != nil {
		p.sync.close() // and, as its fallback, transport's
		return
	}
	p.transport.CloseIdleConnections()
}

// bufferPool shares copy buffers across requests.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// wsBufferPools are the WebSocket write buffer pools, one per buffer size,
// shared by every Proxy (a reload builds a new Proxy; buffers carry over).
var wsBufferPools sync.Map // int → *sync.Pool

func writeBufferPool(size int) websocket.BufferPool {
	if size <= 0 {
		size = 4096
	}
	p, _ := wsBufferPools.LoadOrStore(size, &sync.Pool{})
	return p.(*sync.Pool)
}

// StdLogWriter adapts a slog logger for the standard log package, which
// koding/websocketproxy writes to. Its messages carry no URLs or tokens.
func StdLogWriter(l *slog.Logger) io.Writer { return stdLogWriter{l} }

type stdLogWriter struct{ l *slog.Logger }

func (w stdLogWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)), "source", "websocketproxy")
	return len(p), nil
}

// Get sends GET path?rawQuery to the engine's management API on the
// proxy's own transport, with the engine's Host and, when the gateway owns
// the namespace token, that token (never a client's). Errors carry no URL.
func (p *Proxy) Get(ctx context.Context, path, rawQuery string) (*http.Response, error) {
	u := *p.target
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = rawQuery
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Host = p.host
	req.Header.Set("Accept", "application/json")
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	res, err := p.roundTripper.RoundTrip(req)
	if err != nil {
		return nil, errors.New(errorCause(err))
	}
	return res, nil
}

// CheckHealth asks the engine's /health; any 2xx answer is healthy.
func (p *Proxy) CheckHealth(ctx context.Context) error {
	res, err := p.Get(ctx, "/health", "")
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("upstream /health answered %d", res.StatusCode)
	}
	return nil
}
