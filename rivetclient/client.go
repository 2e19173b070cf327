package rivetclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// userAgent is sent with every request unless WithHeader overrides it.
const userAgent = "rivetclient-go"

// Client calls Rivet actors through a RivetKit engine endpoint (or a
// gateway in front of it). It is safe for concurrent use. Create one with
// [New], get [Handle]s from it, and Close it to end the connections opened
// through it.
type Client struct {
	httpClient   *http.Client
	ownTransport bool // httpClient was built by New: Close closes its idle connections
	dialer       *websocket.Dialer
	header       http.Header
	log          *slog.Logger
	poolName     string

	backoffBase, backoffMax time.Duration
	retry                   statelessRetry

	metadataLookup bool
	codec          codec         // encoding of actor messages
	eventBuffer    int           // bound of each Conn's waiting event deliveries
	maxMessage     int64         // bound of a message or response body read from an actor
	metaSem        chan struct{} // one metadata lookup at a time
	mu             sync.Mutex
	ep             endpoint // guarded by mu
	metaDone       bool     // guarded by mu
	conns          map[*Conn]struct{}
	closed         bool
}

// endpoint is where requests go; the metadata lookup may replace it.
type endpoint struct {
	base      *url.URL
	namespace string
	token     string
}

// statelessRetry holds the retry timing of stateless calls, from the JS
// client (retryOnLifecycleBoundary; dynamic-query re-resolution).
type statelessRetry struct {
	lifecycleAttempts int
	lifecycleBase     time.Duration
	lifecycleMax      time.Duration
	staleDelay        time.Duration
}

var defaultStatelessRetry = statelessRetry{
	lifecycleAttempts: 5,
	lifecycleBase:     25 * time.Millisecond,
	lifecycleMax:      200 * time.Millisecond,
	staleDelay:        100 * time.Millisecond,
}

// New returns a client for the engine (or gateway) at endpoint, e.g.
// "http://127.0.0.1:6420". The endpoint may carry a base path, and the
// namespace and token as user info ("https://ns:token@api.example.com"); it
// must not have a query or fragment.
func New(endpointURL string, opts ...Option) (*Client, error) {
	cfg := config{
		header:         http.Header{},
		poolName:       DefaultPoolName,
		backoffBase:    DefaultBackoffBase,
		backoffMax:     DefaultBackoffMax,
		metadataLookup: true,
		codec:          bareCodec{},
		eventBuffer:    DefaultEventBuffer,
		maxMessage:     DefaultMaxMessageSize,
	}
	var errs []error
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	u, err := url.Parse(endpointURL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("rivetclient: endpoint: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("rivetclient: endpoint %q: scheme must be http or https", endpointURL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("rivetclient: endpoint %q: missing host", endpointURL))
	case u.RawQuery != "" || u.ForceQuery:
		errs = append(errs, errors.New("rivetclient: endpoint cannot contain a query string"))
	case u.Fragment != "":
		errs = append(errs, errors.New("rivetclient: endpoint cannot contain a fragment"))
	}
	ep := endpoint{namespace: cfg.namespace, token: cfg.token}
	if err == nil && u.User != nil {
		ns := u.User.Username()
		tok, hasTok := u.User.Password()
		switch {
		case hasTok && tok != "" && ns == "":
			errs = append(errs, errors.New("rivetclient: endpoint cannot have a token without a namespace"))
		case ns != "" && cfg.namespace != "":
			errs = append(errs, errors.New("rivetclient: namespace given both in the endpoint URL and WithNamespace"))
		case tok != "" && cfg.token != "":
			errs = append(errs, errors.New("rivetclient: token given both in the endpoint URL and WithToken"))
		}
		if ns != "" {
			ep.namespace = ns
		}
		if tok != "" {
			ep.token = tok
		}
		u.User = nil
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if ep.namespace == "" {
		ep.namespace = DefaultNamespace
	}
	ep.base = u

	hc, ownTransport := cfg.httpClient, false
	if hc == nil {
		t, _ := http.DefaultTransport.(*http.Transport)
		hc, ownTransport = &http.Client{Transport: t.Clone()}, true
	}
	logger := cfg.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Client{
		httpClient:     hc,
		ownTransport:   ownTransport,
		dialer:         dialerFor(hc),
		header:         cfg.header,
		log:            logger,
		poolName:       cfg.poolName,
		backoffBase:    cfg.backoffBase,
		backoffMax:     cfg.backoffMax,
		retry:          defaultStatelessRetry,
		metadataLookup: cfg.metadataLookup,
		codec:          cfg.codec,
		eventBuffer:    cfg.eventBuffer,
		maxMessage:     cfg.maxMessage,
		metaSem:        make(chan struct{}, 1),
		ep:             ep,
		conns:          map[*Conn]struct{}{},
	}, nil
}

// dialerFor builds the WebSocket dialer, reusing the HTTP transport's
// proxy, dialer and TLS settings when it is an *http.Transport. Its TLS
// config always offers HTTP/1.1 alone: a WebSocket handshake is an
// HTTP/1.1 upgrade (RFC 6455; gorilla does not speak RFC 8441), and a
// transport's config usually offers h2 too (net/http adds it to a cloned or
// used transport), which an HTTP/2-capable server then picks, failing every
// dial (issue 12).
func dialerFor(hc *http.Client) *websocket.Dialer {
	d := &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 45 * time.Second,
		Jar:              hc.Jar,
		TLSClientConfig:  &tls.Config{},
	}
	t, ok := hc.Transport.(*http.Transport)
	if hc.Transport == nil {
		t, ok = http.DefaultTransport.(*http.Transport)
	}
	if ok && t != nil {
		d.Proxy = t.Proxy
		d.NetDialContext = t.DialContext
		if t.TLSClientConfig != nil {
			d.TLSClientConfig = t.TLSClientConfig.Clone()
		}
	}
	d.TLSClientConfig.NextProtos = []string{"http/1.1"}
	return d
}

// Close closes every connection opened through the client and makes later
// Connect calls fail with ErrClosed; when the client built its own HTTP
// transport (no WithHTTPClient), its idle connections are closed too.
// Handles stay usable for stateless calls. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	conns := make([]*Conn, 0, len(c.conns))
	for conn := range c.conns {
		conns = append(conns, conn)
	}
	c.mu.Unlock()
	for _, conn := range conns {
		conn.Close()
	}
	if c.ownTransport {
		c.httpClient.CloseIdleConnections()
	}
	return nil
}

func (c *Client) addConn(conn *Conn) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.conns[conn] = struct{}{}
	return nil
}

func (c *Client) removeConn(conn *Conn) {
	c.mu.Lock()
	delete(c.conns, conn)
	c.mu.Unlock()
}

// metadataResponse is the part of GET /metadata the client uses.
type metadataResponse struct {
	ClientEndpoint  string `json:"clientEndpoint"`
	ClientNamespace string `json:"clientNamespace"`
	ClientToken     string `json:"clientToken"`
}

// endpoint returns where to send requests, doing the metadata lookup first
// when it has not succeeded yet. The lookup is bounded by ctx and never
// fails the call.
func (c *Client) endpoint(ctx context.Context) endpoint {
	c.mu.Lock()
	ep, done := c.ep, c.metaDone || !c.metadataLookup
	c.mu.Unlock()
	if done {
		return ep
	}
	select {
	case c.metaSem <- struct{}{}:
	case <-ctx.Done():
		return ep
	}
	defer func() { <-c.metaSem }()
	c.mu.Lock()
	ep, done = c.ep, c.metaDone
	c.mu.Unlock()
	if done {
		return ep
	}
	md, err := c.fetchMetadata(ctx, ep)
	var he *HTTPError
	var ae *ActorError
	if (errors.As(err, &he) && he.StatusCode/100 == 4) || (errors.As(err, &ae) && ae.StatusCode/100 == 4) {
		// The endpoint answers but has no metadata (e.g. a proxy that does
		// not forward /metadata): do not ask again.
		c.log.Warn("rivetclient: no metadata at the endpoint; using it as configured", "err", err)
		c.mu.Lock()
		c.metaDone = true
		c.mu.Unlock()
		return ep
	}
	if err != nil {
		c.log.Warn("rivetclient: metadata lookup failed; using the configured endpoint", "err", err)
		return ep
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.metaDone = true
	if md.ClientEndpoint != "" {
		u, err := url.Parse(md.ClientEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.log.Warn("rivetclient: ignoring invalid clientEndpoint from metadata", "clientEndpoint", md.ClientEndpoint)
			return c.ep
		}
		u.User, u.RawQuery, u.Fragment = nil, "", ""
		c.ep.base = u
		if md.ClientNamespace != "" {
			c.ep.namespace = md.ClientNamespace
		}
		if md.ClientToken != "" {
			c.ep.token = md.ClientToken
		}
		c.log.Info("rivetclient: metadata overrides the client endpoint", "endpoint", u.Redacted(), "namespace", c.ep.namespace)
	}
	return c.ep
}

func (c *Client) fetchMetadata(ctx context.Context, ep endpoint) (metadataResponse, error) {
	var md metadataResponse
	req, err := c.apiRequest(ctx, ep, http.MethodGet, "/metadata", "", nil)
	if err != nil {
		return md, err
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return md, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return md, err
	}
	if resp.StatusCode/100 != 2 {
		return md, responseError(resp.StatusCode, resp.Header, body)
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return md, fmt.Errorf("rivetclient: metadata: %w", err)
	}
	return md, nil
}

// combineURL appends path (which may carry a query) to the endpoint's base
// path the way RivetKit's combineUrlPath does: one '/' between them,
// doubled slashes collapsed.
func combineURL(base *url.URL, path string) string {
	p, query, hasQuery := strings.Cut(path, "?")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	full := strings.TrimSuffix(base.EscapedPath(), "/") + p
	for strings.Contains(full, "//") {
		full = strings.ReplaceAll(full, "//", "/")
	}
	s := base.Scheme + "://" + base.Host + full
	if hasQuery && query != "" {
		s += "?" + query
	}
	return s
}

// apiRequest builds a request to the engine API (/actors, /metadata):
// namespace query parameter, bearer token, client headers.
func (c *Client) apiRequest(ctx context.Context, ep endpoint, method, path, query string, body []byte) (*http.Request, error) {
	q := "namespace=" + encodeURIComponent(ep.namespace)
	if query != "" {
		q = query + "&" + q
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, combineURL(ep.base, path+"?"+q), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", userAgent)
	for k, v := range c.header {
		req.Header[k] = append([]string(nil), v...)
	}
	if ep.token != "" {
		req.Header.Set("Authorization", "Bearer "+ep.token)
	}
	return req, nil
}

// apiCall sends an engine API request and decodes a JSON answer into out.
func (c *Client) apiCall(ctx context.Context, method, path, query string, in, out any) error {
	ep := c.endpoint(ctx)
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := c.apiRequest(ctx, ep, method, path, query, body)
	if err != nil {
		return err
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return &transportError{err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return &transportError{err}
	}
	if resp.StatusCode/100 != 2 {
		return responseError(resp.StatusCode, resp.Header, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("rivetclient: %s %s: decode response: %w", method, path, err)
	}
	return nil
}

// apiActor is the part of the engine API's actor object the client uses.
type apiActor struct {
	ActorID string `json:"actor_id"`
	Name    string `json:"name"`
}

// apiCreateRequest is the body of POST/PUT /actors.
type apiCreateRequest struct {
	Datacenter         string `json:"datacenter,omitempty"`
	Name               string `json:"name"`
	RunnerNameSelector string `json:"runner_name_selector"`
	Key                string `json:"key"`
	Input              string `json:"input,omitempty"`
	CrashPolicy        string `json:"crash_policy"`
}

func (c *Client) createRequest(name string, key []string, input any, hasInput bool, region, pool string) (apiCreateRequest, error) {
	req := apiCreateRequest{
		Datacenter:         region,
		Name:               name,
		RunnerNameSelector: pool,
		Key:                serializeActorKey(key),
		CrashPolicy:        "sleep",
	}
	if req.RunnerNameSelector == "" {
		req.RunnerNameSelector = c.poolName
	}
	if hasInput {
		enc, err := encodeInputCBOR(input)
		if err != nil {
			return req, err
		}
		req.Input = base64.StdEncoding.EncodeToString(enc)
	}
	return req, nil
}

// Create creates a new actor named name with key and input (nil for none)
// through the engine API (POST /actors) and returns a handle addressing it
// by id. It fails if an actor with that key exists. opts.CreateInRegion and
// opts.PoolName select where it runs; opts.CreateWithInput is ignored.
func (c *Client) Create(ctx context.Context, name string, key []string, input any, opts HandleOptions) (*Handle, error) {
	if name == "" {
		return nil, errors.New("rivetclient: Create: empty actor name")
	}
	body, err := c.createRequest(name, key, input, input != nil, opts.CreateInRegion, opts.PoolName)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Actor apiActor `json:"actor"`
	}
	if err := c.apiCall(ctx, http.MethodPost, "/actors", "", body, &resp); err != nil {
		return nil, err
	}
	if resp.Actor.ActorID == "" {
		return nil, errors.New("rivetclient: Create: response has no actor id")
	}
	c.log.Debug("rivetclient: actor created", "name", name, "actor_id", resp.Actor.ActorID)
	return c.GetForID(name, resp.Actor.ActorID, opts), nil
}

// GetOrCreate returns a handle to the actor named name with key, created on
// first use if it does not exist (with opts.CreateWithInput). Every call
// addresses the actor by name and key through the gateway
// (/gateway/<name>/…?rvt-method=getOrCreate&…), so the handle follows the
// actor if it is destroyed and re-created.
func (c *Client) GetOrCreate(name string, key []string, opts HandleOptions) *Handle {
	return c.newHandle(target{kind: targetGetOrCreate, name: name, key: cloneKey(key)}, opts)
}

// Get returns a handle to the existing actor named name with key. Calls
// fail with actor.not_found when there is none (after the JS client's
// re-resolution retries).
func (c *Client) Get(name string, key []string, opts HandleOptions) *Handle {
	return c.newHandle(target{kind: targetGet, name: name, key: cloneKey(key)}, opts)
}

// GetForID returns a handle to the actor with the given id
// (/gateway/<id>/…). name is the actor's name, used by Resolve and logs.
func (c *Client) GetForID(name, actorID string, opts HandleOptions) *Handle {
	return c.newHandle(target{kind: targetID, name: name, id: actorID}, opts)
}

func cloneKey(key []string) []string {
	if key == nil {
		return []string{}
	}
	return append([]string(nil), key...)
}
