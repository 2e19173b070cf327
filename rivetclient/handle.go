package rivetclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Handle addresses one actor: by name and key ([Client.GetOrCreate],
// [Client.Get]) or by id ([Client.GetForID], [Client.Create]). It is
// cheap, stateless and safe for concurrent use: every method is one or a
// few HTTP requests or one WebSocket. [Handle.Connect] opens a stateful
// connection.
type Handle struct {
	client *Client
	target target
	opts   HandleOptions
}

func (c *Client) newHandle(t target, opts HandleOptions) *Handle {
	return &Handle{client: c, target: t, opts: opts}
}

// WithParams returns a handle to the same actor whose calls and connections
// send params instead of this handle's Params or GetParams: a per-caller
// or per-connection override (h.WithParams(p).Open()). h is unchanged.
func (h *Handle) WithParams(params any) *Handle {
	c := *h
	c.opts.Params, c.opts.GetParams = params, nil
	return &c
}

// WithGetParams is WithParams with a function called for fresh params
// before every call and connection attempt (see HandleOptions.GetParams).
func (h *Handle) WithGetParams(getParams func(ctx context.Context) (any, error)) *Handle {
	c := *h
	c.opts.Params, c.opts.GetParams = nil, getParams
	return &c
}

// Name returns the actor name the handle addresses.
func (h *Handle) Name() string { return h.target.name }

// resolveParams returns the connection params for one request or
// connection attempt: GetParams' result if set, else the static Params.
func (h *Handle) resolveParams(ctx context.Context) (any, error) {
	if h.opts.GetParams == nil {
		return h.opts.Params, nil
	}
	p, err := h.opts.GetParams(ctx)
	if err != nil {
		return nil, getParamsError(err)
	}
	return p, nil
}

// encodeParams returns params as ASCII-only compat JSON, "" for nil. The
// actor reads params the way it reads action arguments (RivetKit's compat
// JSON: measured on engine 2.3.19, ["$x", 1] in the params is answered
// with rivetkit.internal_error, ["$$x", 1] reaches the actor as ["$x", 1]),
// so they are encoded like arguments, not with plain JSON.
func encodeParams(p any) (string, error) {
	if p == nil {
		return "", nil
	}
	raw, err := encodeCompat(p)
	if err != nil {
		return "", fmt.Errorf("rivetclient: encode params: %w", err)
	}
	return string(asciiJSON(raw)), nil
}

// Action calls the actor's action name with args through a stateless HTTP
// request (POST /gateway/<target>/action/<name>, in the client's encoding)
// and decodes its return value into out, a pointer (nil to discard). Numbers keep their
// precision: decode into integer types, *big.Int or json.Number (an `any`
// target gets json.Number). Arguments are marshalled with encoding/json;
// use [BigInt], [Uint8Array], [Set] and [Undefined] for JavaScript values
// JSON cannot express.
//
// Errors from the actor or the engine are *ActorError. As in the JS client,
// lifecycle errors (actor.restarting, retryable guard.* codes) are retried
// a few times, and key handles re-send on stale-actor errors
// (actor.not_found, actor.stopping, …) for a few seconds before failing.
func (h *Handle) Action(ctx context.Context, name string, out any, args ...any) error {
	argsJSON, err := encodeArgs(args)
	if err != nil {
		return err
	}
	cd := h.client.codec
	body, err := cd.httpActionRequest(argsJSON)
	if err != nil {
		return fmt.Errorf("rivetclient: action %q: %w", name, err)
	}
	path := "/action/" + encodeURIComponent(name)
	return h.retrying(ctx, func() error {
		data, err := h.call(ctx, path, body)
		if err != nil {
			return err
		}
		output, err := cd.httpActionResponse(data)
		if err != nil {
			return fmt.Errorf("rivetclient: action %q: decode output: %w", name, err)
		}
		if err := decodeValue(output, out); err != nil {
			return fmt.Errorf("rivetclient: action %q: decode output: %w", name, err)
		}
		return nil
	})
}

// SendOptions configures [Handle.Send].
type SendOptions struct {
	// Wait makes the actor answer only once the message is processed (or
	// Timeout elapses).
	Wait bool
	// Timeout bounds the wait on the actor side; 0 uses the actor's default.
	Timeout time.Duration
}

// SendResult is the actor's answer to a queue message.
type SendResult struct {
	// Status is "completed" or "timedOut" (with Wait).
	Status string
	// Response is the handler's result as JSON when Wait is set, else nil.
	Response json.RawMessage
}

// Decode decodes Response into dst like Action decodes its output.
func (r SendResult) Decode(dst any) error { return decodeValue(r.Response, dst) }

// Send puts a message with body on the actor's queue name
// (POST /gateway/<target>/queue/<name>).
func (h *Handle) Send(ctx context.Context, name string, body any, opts SendOptions) (SendResult, error) {
	bodyJSON, err := encodeCompat(body)
	if err != nil {
		return SendResult{}, fmt.Errorf("rivetclient: encode queue body: %w", err)
	}
	q := queueSend{body: bodyJSON, wait: opts.Wait, name: name}
	if opts.Timeout > 0 {
		ms := opts.Timeout.Milliseconds()
		q.timeoutMs = &ms
	}
	cd := h.client.codec
	payload, err := cd.queueSendRequest(q)
	if err != nil {
		return SendResult{}, fmt.Errorf("rivetclient: queue %q: %w", name, err)
	}
	var res SendResult
	err = h.retrying(ctx, func() error {
		data, err := h.call(ctx, "/queue/"+encodeURIComponent(name), payload)
		if err != nil {
			return err
		}
		if res, err = cd.queueSendResponse(data); err != nil {
			return fmt.Errorf("rivetclient: queue %q: decode response: %w", name, err)
		}
		return nil
	})
	return res, err
}

// call POSTs a body in the client's encoding to an actor path and returns
// the 2xx body.
func (h *Handle) call(ctx context.Context, path string, body []byte) ([]byte, error) {
	cd := h.client.codec
	hdr := http.Header{}
	hdr.Set("x-rivet-encoding", string(cd.encoding()))
	hdr.Set("Content-Type", contentType(cd))
	resp, err := h.gatewayRequest(ctx, http.MethodPost, path, bytes.NewReader(body), hdr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, encodedResponseError(cd, resp.StatusCode, resp.Header, data)
	}
	limit := h.client.maxMessage
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, &transportError{err}
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("rivetclient: %s: response larger than %d bytes (WithMaxMessageSize)", path, limit)
	}
	return data, nil
}

// gatewayRequest sends one HTTP request to actor path p (which starts with
// '/' and may carry a query). Header precedence follows the JS client:
// the request's headers, then x-rivet-conn-params, then the client's
// WithHeader headers, then x-rivet-token.
func (h *Handle) gatewayRequest(ctx context.Context, method, p string, body io.Reader, hdr http.Header) (*http.Response, error) {
	ep := h.client.endpoint(ctx)
	params, err := h.resolveParams(ctx)
	if err != nil {
		return nil, err
	}
	paramsJSON, err := encodeParams(params)
	if err != nil {
		return nil, err
	}
	gp, err := h.gatewayPath(ep, p)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, combineURL(ep.base, gp), body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = append([]string(nil), v...)
	}
	if paramsJSON != "" {
		req.Header.Set("x-rivet-conn-params", paramsJSON)
	}
	for k, v := range h.client.header {
		req.Header[k] = append([]string(nil), v...)
	}
	if ep.token != "" {
		req.Header.Set("x-rivet-token", ep.token)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	h.client.log.Debug("rivetclient: request", "method", method, "target", h.target.String(), "path", p)
	resp, err := h.client.httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &transportError{err}
	}
	return resp, nil
}

// retrying runs a stateless call with the JS client's retries: lifecycle
// boundaries (retryOnLifecycleBoundary: 5 attempts, 25ms doubling to 200ms)
// and, for key handles, stale-actor errors (re-resolve: 60 attempts for
// getOrCreate, 24 for get, 100ms apart).
func (h *Handle) retrying(ctx context.Context, call func() error) error {
	r := h.client.retry
	staleAttempts := 1
	switch h.target.kind {
	case targetGetOrCreate:
		staleAttempts = 60
	case targetGet:
		staleAttempts = 24
	}
	lifecycle, stale := 0, 0
	for {
		err := call()
		var ae *ActorError
		if err == nil || ctx.Err() != nil || !errors.As(err, &ae) {
			return err
		}
		var delay time.Duration
		switch {
		case isRequestRetrySignal(ae) && lifecycle < r.lifecycleAttempts-1:
			delay = min(r.lifecycleBase<<lifecycle, r.lifecycleMax)
			lifecycle++
		case h.target.dynamic() && isStaleActorError(ae) && stale < staleAttempts-1:
			delay = r.staleDelay
			stale++
		default:
			return err
		}
		h.client.log.Debug("rivetclient: retrying request", "target", h.target.String(), "err", err, "delay", delay)
		if err := sleepCtx(ctx, delay); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Fetch sends a raw HTTP request to the actor's onRequest handler
// (/gateway/<target>/request/<path>); path may carry a query. The response
// is returned whatever its status; the caller closes its body. header may
// be nil. Connection params are sent in x-rivet-conn-params. When body is
// nil, a *bytes.Reader, *bytes.Buffer or *strings.Reader, the request is
// re-sent on the same lifecycle and stale-actor errors as Action.
func (h *Handle) Fetch(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	p, q := splitUserPath(path)
	actorPath := "/request/" + p + q
	var payload []byte
	replayable := true
	switch b := body.(type) {
	case nil:
	case *bytes.Reader, *bytes.Buffer, *strings.Reader:
		var err error
		if payload, err = io.ReadAll(b); err != nil {
			return nil, err
		}
	default:
		replayable = false
	}
	if !replayable {
		return h.gatewayRequest(ctx, method, actorPath, body, header)
	}
	var resp *http.Response
	err := h.retrying(ctx, func() error {
		if resp != nil {
			resp.Body.Close() // the previous attempt's error response
			resp = nil
		}
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		r, err := h.gatewayRequest(ctx, method, actorPath, rd, header)
		if err != nil {
			return err
		}
		resp = r
		if r.StatusCode/100 == 2 {
			return nil
		}
		// Peek at the error body to decide on a retry, then put it back.
		peek, _ := io.ReadAll(io.LimitReader(r.Body, maxErrorBody))
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(peek), r.Body), r.Body}
		if ae, ok := parseErrorBody(peek); ok {
			ae.RayID = r.Header.Get("x-rivet-ray-id")
			ae.StatusCode = r.StatusCode
			if isRequestRetrySignal(ae) || (h.target.dynamic() && isStaleActorError(ae)) {
				return &fetchRetry{ae: ae, resp: r}
			}
		}
		return nil
	})
	var fr *fetchRetry
	if errors.As(err, &fr) {
		return fr.resp, nil // retries exhausted: hand back the last response
	}
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	return resp, nil
}

// fetchRetry carries a retryable error response through retrying; it is
// an *ActorError for the classification and keeps the response to return
// once retries are exhausted.
type fetchRetry struct {
	ae   *ActorError
	resp *http.Response
}

func (f *fetchRetry) Error() string { return f.ae.Error() }

// As lets retrying classify the response's error. Before a retry the
// previous response body is closed.
func (f *fetchRetry) As(target any) bool {
	if t, ok := target.(**ActorError); ok {
		*t = f.ae
		return true
	}
	return false
}

// WebSocket opens a raw WebSocket to the actor's onWebSocket handler
// (/gateway/<target>/websocket/<path>; path may carry a query), offering
// the sub-protocols "rivet", "rivet_encoding.bare" and, when there are
// params, "rivet_conn_params.<url.QueryEscape(JSON)>". GetParams is called
// once. The caller owns and closes the returned connection. A refused
// handshake returns an *ActorError or *HTTPError.
func (h *Handle) WebSocket(ctx context.Context, path string) (*RawWebSocket, error) {
	params, err := h.resolveParams(ctx)
	if err != nil {
		return nil, err
	}
	p, q := splitUserPath(path)
	ws, err := h.dial(ctx, "/websocket/"+p+q, EncodingBARE, params)
	if err != nil {
		return nil, err
	}
	return &RawWebSocket{ws: ws}, nil
}

// dial opens a WebSocket to actor path p with RivetKit's sub-protocols.
func (h *Handle) dial(ctx context.Context, p string, encoding Encoding, params any) (*websocket.Conn, error) {
	ep := h.client.endpoint(ctx)
	paramsJSON, err := encodeParams(params)
	if err != nil {
		return nil, err
	}
	gp, err := h.gatewayPath(ep, p)
	if err != nil {
		return nil, err
	}
	protocols := []string{"rivet", "rivet_encoding." + string(encoding)}
	if paramsJSON != "" {
		protocols = append(protocols, "rivet_conn_params."+url.QueryEscape(paramsJSON))
	}
	hdr := http.Header{}
	for k, v := range h.client.header {
		switch http.CanonicalHeaderKey(k) {
		case "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
			"Sec-Websocket-Extensions", "Sec-Websocket-Protocol":
			continue // owned by the WebSocket handshake
		}
		hdr[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
	}
	// Joined with "," exactly like the JS client (gorilla would use ", ").
	hdr.Set("Sec-WebSocket-Protocol", strings.Join(protocols, ","))
	if hdr.Get("User-Agent") == "" {
		hdr.Set("User-Agent", userAgent)
	}
	u := wsURL(combineURL(ep.base, gp))
	h.client.log.Debug("rivetclient: dialing", "target", h.target.String(), "path", p)
	ws, resp, err := h.client.dialer.DialContext(ctx, u, hdr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			cd, _ := codecFor(encoding)
			return nil, encodedResponseError(cd, resp.StatusCode, resp.Header, body)
		}
		return nil, &transportError{fmt.Errorf("rivetclient: dial: %w", err)}
	}
	ws.SetReadLimit(h.client.maxMessage)
	return ws, nil
}

// Resolve returns the actor's id. Id handles return their id; key handles
// ask the engine API: GET /actors?name=&key= for Get (actor.not_found if
// there is none), PUT /actors (get-or-create) for GetOrCreate. The id is
// not cached: the actor behind a key may change.
func (h *Handle) Resolve(ctx context.Context) (string, error) {
	t := h.target
	switch t.kind {
	case targetID:
		return t.id, nil
	case targetGet:
		return h.lookupKey(ctx)
	}
	body, err := h.client.createRequest(t.name, t.key, h.opts.CreateWithInput, h.opts.CreateWithInput != nil, h.opts.CreateInRegion, h.opts.PoolName)
	if err != nil {
		return "", err
	}
	var resp struct {
		Actor apiActor `json:"actor"`
	}
	err = h.client.apiCall(ctx, http.MethodPut, "/actors", "", body, &resp)
	var ae *ActorError
	if errors.As(err, &ae) && ae.Group == "actor" && ae.Code == "key_reserved_in_different_datacenter" {
		// The actor exists in another datacenter: get-by-key forwards there.
		return h.lookupKey(ctx)
	}
	if err != nil {
		return "", err
	}
	if resp.Actor.ActorID == "" {
		return "", errors.New("rivetclient: resolve: response has no actor id")
	}
	return resp.Actor.ActorID, nil
}

func (h *Handle) lookupKey(ctx context.Context) (string, error) {
	t := h.target
	var resp struct {
		Actors []apiActor `json:"actors"`
	}
	q := "name=" + encodeURIComponent(t.name) + "&key=" + encodeURIComponent(serializeActorKey(t.key))
	if err := h.client.apiCall(ctx, http.MethodGet, "/actors", q, nil, &resp); err != nil {
		return "", err
	}
	if len(resp.Actors) == 0 || resp.Actors[0].ActorID == "" {
		keyJSON, _ := json.Marshal(t.key)
		return "", &ActorError{Group: "actor", Code: "not_found", Message: fmt.Sprintf("Actor not found: %s:%s", t.name, keyJSON)}
	}
	return resp.Actors[0].ActorID, nil
}
