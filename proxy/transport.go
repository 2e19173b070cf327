package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"sync"
	"syscall"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// syncTransport carries the common HTTP request, an action with its
// arguments in memory, to a plain-http engine without an egress proxy on
// the caller's goroutine: the request is written in one write over an idle
// connection from its pool and the response read back on the same
// goroutine. net/http's Transport hands every request to a connection's
// write loop and its response back from the read loop, two goroutine
// wake-ups per request; with the gateway's CPU shared with other work they
// are a measurable part of an action's cost (bench/README.md).
//
// It writes and parses HTTP with net/http itself (Request.Write,
// ReadResponse): what it adds is only the connection's reuse. Every other
// request (a streamed or unknown-length body, Expect, an upgrade) goes to
// the fallback, net/http's Transport, as does everything when the engine
// is https or behind an egress proxy (newSyncTransport is not used).
type syncTransport struct {
	addr          string // host:port dialled
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	fallback      http.RoundTripper
	maxIdle       int
	idleTimeout   time.Duration // 0: idle connections are kept until used or closed
	headerTimeout time.Duration // 0: no bound on the wait for the response head

	mu      sync.Mutex
	idle    []*syncConn // most recently used last
	closed  bool
	sweepAt *time.Timer // runs sweep while idle connections may expire
}

// syncConn is one upstream connection.
type syncConn struct {
	net.Conn
	br        *bufio.Reader
	raw       syscall.RawConn // nil when the connection has no descriptor
	idleSince time.Time
}

// maxInformational bounds the 1xx answers read before the final one, as
// net/http's Transport does.
const maxInformational = 5

func newSyncTransport(addr string, dial func(context.Context, string, string) (net.Conn, error), fallback http.RoundTripper, cfg Config) *syncTransport {
	maxIdle := cfg.MaxIdleConns
	if maxIdle == 0 {
		maxIdle = http.DefaultMaxIdleConnsPerHost // as net/http's Transport does with 0
	}
	return &syncTransport{addr: addr, dial: dial, fallback: fallback, maxIdle: maxIdle,
		idleTimeout: cfg.IdleConnTimeout, headerTimeout: cfg.ResponseHeaderTimeout}
}

// takes reports whether t carries req itself: a body absent or in memory
// (inMemoryBody, read ahead by ServeHTTP), no Expect: 100-continue
// handshake and no protocol switch.
func (t *syncTransport) takes(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && reflect.TypeOf(req.Body) != inMemoryBody {
		return false
	}
	h := req.Header
	return len(h["Expect"]) == 0 && len(h["Upgrade"]) == 0 && req.URL.Scheme == "http" && !req.Close
}

// wireBuffers hold a serialized request while it is sent (and re-sent).
var wireBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (t *syncTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.takes(req) {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Serialized once (head and body: one write), sent again as it is when
	// a reused connection turns out to be closed.
	wire := wireBuffers.Get().(*bytes.Buffer)
	defer func() {
		if wire.Cap() <= 64<<10 {
			wire.Reset()
			wireBuffers.Put(wire)
		}
	}()
	if err := req.Write(wire); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(ctx)
		if err != nil {
			return nil, err
		}
		res, sent, err := t.exchange(ctx, c, req, wire.Bytes())
		if err == nil {
			return res, nil
		}
		c.Close()
		// A kept connection the engine closed while it was idle: what was
		// not sent at all can go again on a new one, and what the engine
		// never answered when the request may be replayed (net/http's
		// Transport retries the same cases).
		if ctx.Err() == nil && reused && attempt == 0 && (!sent || replayable(req)) && closedUnanswered(err) {
			continue
		}
		return nil, ctxErr(ctx, err)
	}
}

// replayable reports whether req may be sent twice: idempotent by its
// method or by an idempotency key, as net/http's Transport has it.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0
}

// closedUnanswered reports whether err is a connection's end before any
// byte of an answer.
func closedUnanswered(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exchange sends wire over c and reads the answer's head. sent reports
// whether any byte of wire was written.
func (t *syncTransport) exchange(ctx context.Context, c *syncConn, req *http.Request, wire []byte) (*http.Response, bool, error) {
	// A cancelled request (the client went away) unblocks the connection;
	// the body's Close stops the watch once the answer is read.
	stop := unblockWhenDone(ctx, c)
	if t.headerTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(t.headerTimeout))
	}
	n, err := c.Write(wire)
	if err != nil {
		stop()
		return nil, n > 0, err
	}
	// The first byte apart: an end before it is a connection closed
	// unanswered (ReadResponse reports it as an unexpected EOF, like an
	// answer cut short).
	_, err = c.br.Peek(1)
	var res *http.Response
	if err == nil {
		res, err = readFinalResponse(c.br, req)
	}
	if err != nil {
		stop()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			return nil, true, &net.OpError{Op: "read", Net: "tcp", Err: errHeaderTimeout}
		}
		if !closedUnanswered(err) && !errors.As(err, &ne) && !errors.Is(err, io.ErrUnexpectedEOF) {
			// Not HTTP: a bad gateway, not the gateway's own fault.
			err = rivet.ErrUpstreamUnavailable.Wrap(fmt.Errorf("malformed answer from the engine: %w", err))
		}
		return nil, true, err
	}
	if t.headerTimeout > 0 {
		_ = c.SetReadDeadline(time.Time{})
		if ctx.Err() != nil {
			_ = c.SetDeadline(aLongTimeAgo) // cancelled meanwhile: the clear above undid it
		}
	}
	b := &syncBody{t: t, c: c, body: res.Body, stop: stop, keep: !res.Close}
	if res.Body == http.NoBody {
		b.eof = true
	}
	res.Body = b
	return res, true, nil
}

// errHeaderTimeout is the error of a response head that did not come within
// upstream.response_header_timeout (a timeout: 504).
var errHeaderTimeout = timeoutError("timeout awaiting response headers")

type timeoutError string

func (e timeoutError) Error() string { return string(e) }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// readFinalResponse reads the answer to req, passing 1xx answers (other than
// 101) to the request's trace, as net/http's Transport does (ReverseProxy
// relays them to the client).
func readFinalResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for i := 0; ; i++ {
		res, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		switch {
		case res.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("101 Switching Protocols to a request that asked for no upgrade")
		case res.StatusCode >= 200 || res.StatusCode < 100:
			return res, nil
		case i == maxInformational:
			return nil, errors.New("too many 1xx answers")
		}
		if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// syncBody is an answer's body: once read to its end and closed, its
// connection goes back to the pool; closed early, the connection is closed
// (what is left of the body is not read).
type syncBody struct {
	t    *syncTransport
	c    *syncConn
	body io.ReadCloser
	stop func() bool // ends the request's cancellation watch
	keep bool        // the engine did not ask to close
	eof  bool
	done bool
}

func (b *syncBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("read on a closed body")
	}
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *syncBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	watched := b.stop() // false: the request was cancelled, the deadline is set
	if !b.eof || !watched || !b.keep {
		// Closed first: Close of a body not read to its end would read
		// the rest.
		b.c.Close()
		_ = b.body.Close()
		return nil
	}
	_ = b.body.Close()
	b.t.put(b.c)
	return nil
}

// get returns an idle connection that is still open, or a new one.
func (t *syncTransport) get(ctx context.Context) (*syncConn, bool, error) {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		c := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if c.usable(t.idleTimeout) {
			return c, true, nil
		}
		c.Close()
	}
	nc, err := t.dial(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	c := &syncConn{Conn: nc, br: bufio.NewReaderSize(nc, 4096)}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	return c, false, nil
}

// usable reports whether an idle connection can carry a request: not idle
// for longer than idleTimeout, nothing left unread, and not closed by the
// engine meanwhile (a peek that finds neither an end nor stray bytes).
func (c *syncConn) usable(idleTimeout time.Duration) bool {
	if idleTimeout > 0 && time.Since(c.idleSince) > idleTimeout || c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	open := false
	var one [1]byte
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			_, _, err := syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if err == syscall.EINTR {
				continue
			}
			open = err == syscall.EAGAIN // nothing to read: neither an end nor stray bytes
			return true
		}
	})
	return err == nil && open
}

// put keeps c for the next request, or closes it when the pool is full or
// closed.
func (t *syncTransport) put(c *syncConn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	if t.closed || len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		c.Close()
		return
	}
	t.idle = append(t.idle, c)
	if t.idleTimeout > 0 && t.sweepAt == nil {
		t.sweepAt = time.AfterFunc(t.idleTimeout, t.sweep)
	}
	t.mu.Unlock()
}

// sweep closes the connections idle for longer than idleTimeout, and runs
// again while some are left.
func (t *syncTransport) sweep() {
	now := time.Now()
	var expired []*syncConn
	t.mu.Lock()
	keep := t.idle[:0]
	for _, c := range t.idle {
		if now.Sub(c.idleSince) >= t.idleTimeout {
			expired = append(expired, c)
		} else {
			keep = append(keep, c)
		}
	}
	clear(t.idle[len(keep):])
	t.idle = keep
	t.sweepAt = nil
	if len(t.idle) > 0 && !t.closed {
		t.sweepAt = time.AfterFunc(t.idleTimeout-now.Sub(t.idle[0].idleSince), t.sweep)
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.Close()
	}
}

// CloseIdleConnections closes the idle connections of t and of its
// fallback; connections in use close when their answer is done.
func (t *syncTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	if t.sweepAt != nil {
		t.sweepAt.Stop()
		t.sweepAt = nil
	}
	t.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// close closes the idle connections and keeps none from now on.
func (t *syncTransport) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.CloseIdleConnections()
}
