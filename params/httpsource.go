package params

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"
)

// errClosed fails fetches started after, or cut short by, Injector.Close.
var errClosed = errors.New("params injector closed")

// httpSource asks a params service, once per upstream connection (or per
// cache key and TTL when the cache is on).
type httpSource struct {
	url     string
	host    string // Host header override from http.headers, if any
	header  http.Header
	client  *http.Client
	ownTr   *http.Transport // closed by close; nil when Options.HTTPClient is used
	timeout time.Duration
	maxBody int64
	forward []string // claim names; nil: none
	all     bool     // forward every claim
	retry   retryPolicy
	log     *slog.Logger

	cache *cache // nil: off, and then no fetch is ever shared
	group singleflight.Group
	now   func() time.Time

	// Shared fetches run on base, not on any one client's context; close
	// cancels it and waits for them.
	base   context.Context
	stop   context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// readHeaderFiles reads the values of http.header_files. The error names
// the header, never the value.
func readHeaderFiles(files map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(files))
	for name, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("params.http.header_files.%s: %w", name, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		switch {
		case v == "":
			return nil, fmt.Errorf("params.http.header_files.%s: %s is empty", name, file)
		case !validHeaderValue(v):
			return nil, fmt.Errorf("params.http.header_files.%s: %s holds control characters or more than one line", name, file)
		}
		out[name] = v
	}
	return out, nil
}

func newHTTPSource(c Config, opts Options, log *slog.Logger) (*httpSource, error) {
	s := &httpSource{
		url:     c.HTTP.URL,
		header:  make(http.Header, len(c.HTTP.Headers)+3),
		timeout: c.HTTP.Timeout,
		maxBody: c.HTTP.MaxResponseBytes,
		retry: retryPolicy{
			attempts: c.Retry.MaxAttempts,
			initial:  c.Retry.InitialBackoff,
			maxCap:   c.Retry.MaxBackoff,
			budget:   c.Retry.Budget,
		},
		log: log,
		now: time.Now,
	}
	s.header.Set("Content-Type", "application/json")
	s.header.Set("Accept", "application/json")
	s.header.Set("User-Agent", "rivet-gateway")
	headers, err := readHeaderFiles(c.HTTP.HeaderFiles)
	if err != nil {
		return nil, err
	}
	maps.Copy(headers, c.HTTP.Headers)
	for k, v := range headers {
		if strings.EqualFold(k, "Host") {
			s.host = v
			continue
		}
		s.header.Set(k, v)
	}
	for _, name := range c.HTTP.ForwardClaims {
		if name == ForwardAllClaims {
			s.all = true
		}
	}
	if !s.all && len(c.HTTP.ForwardClaims) > 0 {
		s.forward = append([]string(nil), c.HTTP.ForwardClaims...)
	}
	if c.Cache.TTL > 0 {
		s.cache = newCache(c.Cache.TTL, c.Cache.MaxEntries)
	}

	if opts.HTTPClient != nil {
		if c.HTTP.CAFile != "" || c.HTTP.CertFile != "" {
			return nil, errors.New("params.http: ca_file and cert_file cannot apply to Options.HTTPClient; configure its transport instead")
		}
		cl := *opts.HTTPClient // a copy: the caller's client is not changed
		cl.CheckRedirect = noRedirect
		if opts.WrapTransport != nil {
			base := cl.Transport
			if base == nil {
				base = http.DefaultTransport
			}
			cl.Transport = opts.WrapTransport(base)
		}
		s.client = &cl
	} else {
		tr, err := newTransport(c.HTTP)
		if err != nil {
			return nil, err
		}
		s.ownTr = tr
		var rt http.RoundTripper = tr
		if opts.WrapTransport != nil {
			rt = opts.WrapTransport(tr)
		}
		s.client = &http.Client{Transport: rt, CheckRedirect: noRedirect}
	}
	s.base, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// noRedirect keeps the request, its secrets and the caller's identity on
// the configured URL: a 3xx is answered as is (status_4xx, not retried).
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newTransport clones http.DefaultTransport (never mutating it) with room
// for many idle keep-alive connections to the one params service.
func newTransport(c HTTPConfig) (*http.Transport, error) {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 128
	if c.CAFile == "" && c.CertFile == "" {
		return tr, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("params.http.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("params.http.ca_file: no PEM certificates in %s", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("params.http.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr.TLSClientConfig = tc
	return tr, nil
}

func (s *httpSource) name() string { return SourceHTTP }

// close cancels shared fetches, waits for them, and closes idle
// connections of the source's own transport.
func (s *httpSource) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	if s.ownTr != nil {
		s.ownTr.CloseIdleConnections()
	}
}

// The request body: see the package doc for the schema.
type callerJSON struct {
	Method   string         `json:"method"`
	Subject  string         `json:"subject"`
	Issuer   string         `json:"issuer"`
	APIKeyID string         `json:"api_key_id"`
	Scopes   []string       `json:"scopes"`
	Claims   map[string]any `json:"claims"`
}

type routeJSON struct {
	Intent    string   `json:"intent"`
	WebSocket bool     `json:"websocket"`
	ActorID   string   `json:"actor_id"`
	ActorName string   `json:"actor_name"`
	Method    string   `json:"method"`
	Key       []string `json:"key"`
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
}

type descriptionJSON struct {
	Caller       *callerJSON `json:"caller"`
	Route        routeJSON   `json:"route"`
	ClientParams object      `json:"client_params,omitempty"`
}

// describe encodes everything the service is told except the request id:
// also the cache key, so two requests share an answer only when the service
// would have been asked exactly the same question.
func (s *httpSource) describe(q *query) ([]byte, error) {
	d := descriptionJSON{ClientParams: q.client}
	if c := q.caller; c != nil {
		cj := &callerJSON{
			Method: c.Method, Subject: c.Subject, Issuer: c.Issuer, APIKeyID: c.APIKeyID,
			Scopes: c.Scopes, Claims: map[string]any{},
		}
		if cj.Scopes == nil {
			cj.Scopes = []string{}
		}
		switch {
		case s.all && c.Claims != nil:
			cj.Claims = c.Claims
		case len(s.forward) > 0:
			for _, name := range s.forward {
				if v, ok := c.Claims[name]; ok {
					cj.Claims[name] = v
				}
			}
		}
		d.Caller = cj
	}
	if rt := q.route; rt != nil {
		d.Route = routeJSON{
			Intent: rt.Intent.String(), WebSocket: q.ws,
			ActorID: rt.ActorID, ActorName: rt.ActorName, Method: rt.Method,
			Key: rt.Key, Namespace: rt.Namespace, Name: rt.Name,
		}
	}
	return json.Marshal(d)
}

// withRequestID turns a description into the request body,
// {"request_id":…, "caller":…, …}.
func withRequestID(desc []byte, rid string) ([]byte, error) {
	id, err := json.Marshal(rid)
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, len(`{"request_id":,`)+len(id)+len(desc))
	body = append(body, `{"request_id":`...)
	body = append(body, id...)
	body = append(body, ',')
	return append(body, desc[1:]...), nil
}

// flight is the result of a shared fetch.
type flight struct {
	obj      object
	attempts int
}

func (s *httpSource) resolve(ctx context.Context, q *query) (object, stats, error) {
	if s.base.Err() != nil {
		return nil, stats{}, &failure{cause: CauseCanceled, err: errClosed}
	}
	desc, err := s.describe(q)
	if err != nil {
		return nil, stats{}, &failure{cause: CauseInternal, err: err}
	}
	if s.cache == nil {
		// Never shared: each upstream connection gets its own fetch, bound
		// to its client's context.
		body, err := withRequestID(desc, q.requestID)
		if err != nil {
			return nil, stats{}, &failure{cause: CauseInternal, err: err}
		}
		obj, n, err := s.fetch(ctx, body, q.requestID)
		return obj, stats{attempts: n}, err
	}

	sum := sha256.Sum256(desc)
	key := string(sum[:])
	if obj, ok := s.cache.get(key, s.now()); ok {
		return obj, stats{cacheHit: true}, nil
	}
	ch := s.group.DoChan(key, func() (any, error) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, &failure{cause: CauseCanceled, attempts: 0, err: errClosed}
		}
		s.wg.Add(1)
		s.mu.Unlock()
		defer s.wg.Done()
		if obj, ok := s.cache.get(key, s.now()); ok { // filled while we queued
			return flight{obj: obj}, nil
		}
		body, err := withRequestID(desc, q.requestID)
		if err != nil {
			return nil, &failure{cause: CauseInternal, err: err}
		}
		// The fetch is shared, so no single client's leaving cancels it;
		// the budget bounds it and Close cuts it short. It belongs to the
		// trace of the request that started it.
		obj, n, err := s.fetch(trace.ContextWithSpanContext(s.base, trace.SpanContextFromContext(ctx)), body, q.requestID)
		if err != nil {
			if s.base.Err() != nil {
				err = &failure{cause: CauseCanceled, attempts: n, err: errClosed}
			}
			return nil, err
		}
		s.cache.put(key, obj, s.now())
		return flight{obj: obj, attempts: n}, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, stats{attempts: attemptsOf(res.Err), shared: res.Shared}, res.Err
		}
		fl := res.Val.(flight)
		return fl.obj, stats{attempts: fl.attempts, shared: res.Shared}, nil
	case <-ctx.Done():
		return nil, stats{}, &failure{cause: CauseCanceled, err: context.Cause(ctx)}
	}
}

func attemptsOf(err error) int {
	var f *failure
	if errors.As(err, &f) {
		return f.attempts
	}
	return 0
}

// fetch asks the service within the retry budget and returns the answer
// and the number of attempts made.
func (s *httpSource) fetch(ctx context.Context, body []byte, rid string) (object, int, error) {
	return s.retry.run(ctx, func(actx context.Context) (object, error) {
		return s.once(actx, body, rid)
	})
}

// once is one attempt: POST the body, read a bounded answer, keep it if it
// is a JSON object.
func (s *httpSource) once(ctx context.Context, body []byte, rid string) (object, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return nil, &failure{cause: CauseInternal, err: err}
	}
	for k, v := range s.header {
		req.Header[k] = v
	}
	req.Header.Set("X-Request-Id", rid)
	if s.host != "" {
		req.Host = s.host
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, transportFailure(err)
	}
	defer resp.Body.Close()

	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		drain(resp.Body)
		return nil, &failure{cause: CauseDenied, err: fmt.Errorf("params service answered %d", code)}
	case code >= 500:
		drain(resp.Body)
		return nil, &failure{cause: CauseStatus5xx, retry: true, err: fmt.Errorf("params service answered %d", code)}
	case code < 200 || code > 299:
		drain(resp.Body)
		retry := code == http.StatusRequestTimeout || code == http.StatusTooManyRequests
		return nil, &failure{cause: CauseStatus4xx, retry: retry, err: fmt.Errorf("params service answered %d", code)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, s.maxBody+1))
	if err != nil {
		return nil, transportFailure(err)
	}
	if int64(len(data)) > s.maxBody {
		return nil, &failure{cause: CauseTooLarge, err: fmt.Errorf("params service answer exceeds %d bytes", s.maxBody)}
	}
	obj, err := parseObject(data)
	if err != nil {
		return nil, err
	}
	// Once per answer (answers are cached), never per request.
	return escapeCompatValues(obj)
}

// parseObject accepts exactly a JSON object. Its values are kept as raw
// JSON: the gateway never needs to look inside them.
func parseObject(data []byte) (object, error) {
	var obj object
	err := json.Unmarshal(data, &obj)
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te):
		return nil, &failure{cause: CauseNotObject, retry: true, err: errors.New("params service answer is not a JSON object")}
	case err != nil:
		return nil, &failure{cause: CauseInvalidJSON, retry: true, err: errors.New("params service answer is not JSON")}
	case obj == nil: // null
		return nil, &failure{cause: CauseNotObject, retry: true, err: errors.New("params service answer is null")}
	}
	return obj, nil
}

// drain reads a little of an unwanted body so the connection can be reused.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, 4<<10)) }

// transportFailure classifies a failure to get an answer. The URL is cut
// from the error: it may carry a secret and errors are logged.
func transportFailure(err error) *failure {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return &failure{cause: CauseCanceled, err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return &failure{cause: CauseTimeout, retry: true, err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &failure{cause: CauseRefused, retry: true, err: err}
	}
	return &failure{cause: CauseUnreachable, retry: true, err: err}
}
