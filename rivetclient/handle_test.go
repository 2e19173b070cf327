package rivetclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gorillaws "github.com/gorilla/websocket"
)

func TestHandleAction(t *testing.T) { forEachEncoding(t, testHandleAction) }

func testHandleAction(t *testing.T, enc Encoding) {
	f := newFakeEngine(t)
	c := newTestClient(t, f, WithHeader("X-Extra", "1"), WithEncoding(enc))
	ctx := testContext(t)
	var calls atomic.Int32
	h := c.GetOrCreate("counter", []string{"http"}, HandleOptions{
		Params: map[string]string{"token": "static"}, // GetParams wins
		GetParams: func(context.Context) (any, error) {
			calls.Add(1)
			return map[string]string{"token": "héllo 😀"}, nil
		},
	})
	var n int
	if err := h.Action(ctx, "increment", &n, 5); err != nil {
		t.Fatalf("Action: %v", err)
	}
	if n != 5 {
		t.Errorf("increment: got %d, want 5", n)
	}
	req, _ := f.lastRequest("/action/increment")
	if want := "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=http&rvt-crash-policy=sleep"; req.RequestURI != want {
		t.Errorf("URI: got %s, want %s", req.RequestURI, want)
	}
	for k, want := range map[string]string{
		"X-Rivet-Encoding":    string(enc),
		"Content-Type":        contentType(mustCodec(t, enc)),
		"X-Rivet-Conn-Params": `{"token":"h\u00e9llo \ud83d\ude00"}`,
		"X-Extra":             "1",
		"X-Rivet-Token":       "",
	} {
		if got := req.Header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
	if body := decodedBody(t, enc, "HttpActionRequest", req.Body); !sameJSON(body, `{"args":[5]}`) {
		t.Errorf("body: got %s, want {\"args\":[5]}", body)
	}
	if err := h.Action(ctx, "getCount", &n); err != nil || n != 5 {
		t.Errorf("getCount: got %d, %v", n, err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("GetParams calls: got %d, want one per stateless call", got)
	}
	var who struct {
		Params map[string]string `json:"params"`
	}
	if err := c.GetOrCreate("counter", []string{"http"}, HandleOptions{Params: map[string]string{"token": "static"}}).Action(ctx, "whoami", &who); err != nil || who.Params["token"] != "static" {
		t.Errorf("static params: got %v, %v", who.Params, err)
	}
	var out json.RawMessage
	if err := h.Action(ctx, "echo", &out); err != nil || string(out) != "[]" {
		t.Errorf("no args: got %s, %v", out, err)
	}
}

func TestHandleActionErrors(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	h := c.GetOrCreate("counter", []string{"errs"}, HandleOptions{})

	err := h.Action(ctx, "fail", nil)
	var ae *ActorError
	if !errors.As(err, &ae) {
		t.Fatalf("fail: got %v, want *ActorError", err)
	}
	if ae.Group != "user" || ae.Code != "custom_fail" || ae.Message != "boom" || string(ae.Metadata) != `{"a":1}` ||
		ae.RayID != "ray-custom_fail" || ae.StatusCode != 500 {
		t.Errorf("fail: got %+v", ae)
	}
	if IsRetryable(err) {
		t.Errorf("user error: got retryable")
	}

	// GetParams failing: no request is made.
	before := len(f.recorded())
	hp := c.GetOrCreate("counter", []string{"errs"}, HandleOptions{GetParams: func(context.Context) (any, error) {
		return nil, errors.New("boom")
	}})
	if err := hp.Action(ctx, "getCount", nil); !errors.Is(err, ErrGetParamsFailed) {
		t.Errorf("GetParams failure: got %v, want client.get_params_failed", err)
	}
	if after := len(f.recorded()); after != before {
		t.Errorf("requests after a failed GetParams: got %d new, want 0", after-before)
	}

	// Params that cannot be marshalled are a terminal local error.
	bad := c.GetOrCreate("counter", nil, HandleOptions{Params: func() {}})
	if err := bad.Action(ctx, "getCount", nil); err == nil || IsRetryable(err) {
		t.Errorf("bad params: got %v, want a terminal error", err)
	}
	if err := h.Action(ctx, "echo", nil, make(chan int)); err == nil {
		t.Errorf("bad args: got nil error")
	}
}

func TestHandleRetries(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)

	// A key handle re-sends on actor.not_found (24 attempts for get).
	err := c.Get("counter", []string{"missing"}, HandleOptions{}).Action(ctx, "getCount", nil)
	if !errors.Is(err, &ActorError{Group: "actor", Code: "not_found"}) {
		t.Errorf("get missing: got %v, want actor.not_found", err)
	}
	if n := countRequests(f, "rvt-key=missing"); n != 24 {
		t.Errorf("attempts for get: got %d, want 24", n)
	}

	// An id handle does not.
	err = c.GetForID("counter", "nope", HandleOptions{}).Action(ctx, "getCount", nil)
	if !errors.Is(err, &ActorError{Group: "actor", Code: "not_found"}) {
		t.Errorf("missing id: got %v", err)
	}
	if n := countRequests(f, "/gateway/nope/"); n != 1 {
		t.Errorf("attempts for id: got %d, want 1", n)
	}

	// Lifecycle errors are retried a few times.
	var failures atomic.Int32
	f.httpHook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/action/") && failures.Add(1) <= 2 {
			writeJSONError(w, 503, "guard", "service_unavailable", "later", nil)
			return true
		}
		return false
	}
	var n int
	if err := c.GetOrCreate("counter", []string{"lc"}, HandleOptions{}).Action(ctx, "increment", &n, 1); err != nil || n != 1 {
		t.Errorf("after 2 lifecycle errors: got %d, %v", n, err)
	}
	failures.Store(-100)
	err = c.GetForID("counter", "any", HandleOptions{}).Action(ctx, "increment", nil, 1)
	if !errors.Is(err, &ActorError{Group: "guard", Code: "service_unavailable"}) {
		t.Errorf("persistent lifecycle error: got %v", err)
	}
	if got := failures.Load(); got != -95 {
		t.Errorf("lifecycle attempts: got %d, want 5", got+100)
	}
	f.httpHook = nil
}

func countRequests(f *fakeEngine, part string) int {
	n := 0
	for _, r := range f.recorded() {
		if strings.Contains(r.RequestURI, part) {
			n++
		}
	}
	return n
}

func TestHandleTokenAndCreate(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f, WithToken("secret-tok"), WithPoolName("pool-a"))
	ctx := testContext(t)

	h, err := c.Create(ctx, "counter", []string{"c1", "a/b"}, map[string]int{"start": 1}, HandleOptions{CreateInRegion: "dc1"})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	req, _ := f.lastRequest("/actors?")
	if req.Method != http.MethodPost || req.RequestURI != "/actors?namespace=default" || req.Header.Get("Authorization") != "Bearer secret-tok" {
		t.Errorf("create request: %s %s auth %q", req.Method, req.RequestURI, req.Header.Get("Authorization"))
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(req.Body), &body); err != nil {
		t.Fatal(err)
	}
	// input = base64(CBOR {"start": 1}) = a1 65 "start" 01
	want := map[string]any{"name": "counter", "key": `c1/a\/b`, "runner_name_selector": "pool-a", "crash_policy": "sleep", "datacenter": "dc1", "input": "oWVzdGFydAE="}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("create body %s: got %v, want %v", k, body[k], v)
		}
	}
	id, err := h.Resolve(ctx)
	if err != nil || id != "actor0001" {
		t.Errorf("Resolve of created handle: got %q, %v", id, err)
	}
	if err := h.Action(ctx, "increment", nil, 1); err != nil {
		t.Fatalf("Action on created actor: %v", err)
	}
	req, _ = f.lastRequest("/action/increment")
	if req.RequestURI != "/gateway/actor0001@secret-tok/action/increment" || req.Header.Get("X-Rivet-Token") != "secret-tok" {
		t.Errorf("id request: %s token header %q", req.RequestURI, req.Header.Get("X-Rivet-Token"))
	}

	if err := c.Get("counter", []string{"k"}, HandleOptions{}).Action(ctx, "getCount", nil); err == nil {
		t.Errorf("get of missing actor: got nil error")
	}
	req, _ = f.lastRequest("rvt-key=k")
	if !strings.HasSuffix(req.RequestURI, "&rvt-method=get&rvt-key=k&rvt-token=secret-tok") {
		t.Errorf("key request: %s", req.RequestURI)
	}

	// Resolve: get-or-create via PUT, get via GET.
	goc := c.GetOrCreate("counter", []string{"r"}, HandleOptions{})
	id1, err := goc.Resolve(ctx)
	if err != nil {
		t.Fatalf("Resolve getOrCreate: %v", err)
	}
	req, _ = f.lastRequest("/actors?")
	if req.Method != http.MethodPut {
		t.Errorf("getOrCreate resolve: method %s, want PUT", req.Method)
	}
	id2, err := c.Get("counter", []string{"r"}, HandleOptions{}).Resolve(ctx)
	if err != nil || id2 != id1 {
		t.Errorf("Resolve get: got %q, %v; want %q", id2, err, id1)
	}
	req, _ = f.lastRequest("/actors?")
	if req.Method != http.MethodGet || req.RequestURI != "/actors?name=counter&key=r&namespace=default" {
		t.Errorf("get resolve: %s %s", req.Method, req.RequestURI)
	}
	if _, err := c.Get("counter", []string{"none"}, HandleOptions{}).Resolve(ctx); !errors.Is(err, &ActorError{Group: "actor", Code: "not_found"}) {
		t.Errorf("Resolve missing: got %v, want actor.not_found", err)
	}
	if _, err := c.Create(ctx, "counter", []string{"c1", "a/b"}, nil, HandleOptions{}); !errors.Is(err, &ActorError{Group: "actor", Code: "duplicate_key"}) {
		t.Errorf("Create duplicate: got %v", err)
	}
}

func TestHandleSendFetchWebSocket(t *testing.T) { forEachEncoding(t, testHandleSendFetchWebSocket) }

func testHandleSendFetchWebSocket(t *testing.T, enc Encoding) {
	f := newFakeEngine(t)
	c := newTestClient(t, f, WithEncoding(enc))
	ctx := testContext(t)
	h := c.GetOrCreate("counter", []string{"raw"}, HandleOptions{Params: map[string]string{"token": "p"}})

	res, err := h.Send(ctx, "jobs", map[string]any{"n": BigInt("5")}, SendOptions{Wait: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	var job struct{ N int64 }
	if res.Status != "completed" || res.Decode(&job) != nil || job.N != 5 {
		t.Errorf("Send: got %+v (%+v)", res, job)
	}
	req, _ := f.lastRequest("/queue/jobs")
	want := `{"body":{"n":["$BigInt","5"]},"wait":true,"timeout":2000,"name":"jobs"}`
	if body := decodedBody(t, enc, "HttpQueueSendRequest", req.Body); !sameJSON(body, want) {
		t.Errorf("queue body: got %s, want %s", body, want)
	}
	if res, err := h.Send(ctx, "jobs", 1, SendOptions{}); err != nil || res.Response != nil {
		t.Errorf("Send without wait: got %+v, %v", res, err)
	}

	resp, err := h.Fetch(ctx, http.MethodPost, "/hello/world?x=1", strings.NewReader("payload"), http.Header{"X-Custom": {"1"}})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var echo map[string]string
	if err := json.Unmarshal(data, &echo); err != nil {
		t.Fatalf("Fetch body %s: %v", data, err)
	}
	if echo["method"] != "POST" || echo["path"] != "/hello/world" || echo["custom"] != "1" || echo["params"] != `{"token":"p"}` || echo["body"] != "payload" ||
		!strings.HasPrefix(echo["query"], "x=1&rvt-namespace=default") {
		t.Errorf("Fetch echo: %v", echo)
	}
	// A non-2xx answer is returned as is.
	f.httpHook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/request/teapot") {
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, "short and stout")
			return true
		}
		return false
	}
	resp, err = h.Fetch(ctx, http.MethodGet, "teapot", nil, nil)
	if err != nil {
		t.Fatalf("Fetch teapot: %v", err)
	}
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(data) != "short and stout" {
		t.Errorf("Fetch teapot: got %d %q", resp.StatusCode, data)
	}
	f.httpHook = nil

	ws, err := h.WebSocket(ctx, "/raw/path?y=2")
	if err != nil {
		t.Fatalf("WebSocket: %v", err)
	}
	defer ws.Close()
	_, hello, err := ws.ReadMessage()
	if err != nil || string(hello) != `{"hello":"raw","path":"/raw/path","params":{"token":"p"}}` {
		t.Errorf("hello: got %s, %v", hello, err)
	}
	if err := ws.WriteMessage(TextMessage, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || string(msg) != "echo:ping" {
		t.Errorf("echo: got %s, %v", msg, err)
	}
	req, _ = f.lastRequest("/websocket/")
	if !strings.HasPrefix(req.RequestURI, "/gateway/counter/websocket/raw/path?y=2&rvt-namespace=default&") {
		t.Errorf("raw WebSocket URI: %s", req.RequestURI)
	}
	if want := []string{"rivet", "rivet_encoding.bare", "rivet_conn_params.%7B%22token%22%3A%22p%22%7D"}; !slices.Equal(req.Subprotocol, want) {
		t.Errorf("raw WebSocket subprotocols: got %q, want %q", req.Subprotocol, want)
	}

	// A refused upgrade surfaces the gateway's JSON error.
	f.httpHook = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/websocket/denied") {
			writeJSONError(w, 401, "auth", "unauthorized", "no", nil)
			return true
		}
		return false
	}
	if _, err := h.WebSocket(ctx, "denied"); !errors.Is(err, &ActorError{Group: "auth", Code: "unauthorized"}) {
		t.Errorf("refused upgrade: got %v, want auth.unauthorized", err)
	}
	f.httpHook = nil
}

func TestMetadata(t *testing.T) {
	f := newFakeEngine(t)
	target := newFakeEngine(t)
	f.metadata = `{"runtime":"rivetkit","clientEndpoint":"` + target.URL() + `","clientNamespace":"other-ns","clientToken":"tok2"}`
	c := newTestClient(t, f)
	ctx := testContext(t)
	if err := c.GetOrCreate("counter", []string{"m"}, HandleOptions{}).Action(ctx, "getCount", nil); err != nil {
		t.Fatalf("Action: %v", err)
	}
	req, ok := target.lastRequest("/action/getCount")
	if !ok || !strings.Contains(req.RequestURI, "rvt-namespace=other-ns") || !strings.Contains(req.RequestURI, "rvt-token=tok2") {
		t.Errorf("request after clientEndpoint override: %+v (found %t)", req.RequestURI, ok)
	}
	if _, ok := f.lastRequest("/gateway/"); ok {
		t.Errorf("gateway request went to the original endpoint")
	}
	if n := countRequests(f, "/metadata"); n != 1 {
		t.Errorf("metadata lookups: got %d, want 1", n)
	}

	// Pinned endpoint: no lookup at all.
	pinned := newTestClient(t, f, WithMetadataLookup(false))
	if err := pinned.GetOrCreate("counter", []string{"m"}, HandleOptions{}).Action(ctx, "getCount", nil); err != nil {
		t.Fatal(err)
	}
	if n := countRequests(f, "/metadata"); n != 1 {
		t.Errorf("metadata lookups with lookup disabled: got %d, want still 1", n)
	}

	// A failing lookup does not fail calls; it is tried again after a 5xx,
	// not after a 4xx.
	for _, tt := range []struct {
		status, lookups int
	}{{http.StatusNotFound, 1}, {http.StatusServiceUnavailable, 3}} {
		broken := newFakeEngine(t)
		broken.httpHook = func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path == "/metadata" {
				w.WriteHeader(tt.status)
				return true
			}
			return false
		}
		bc := newTestClient(t, broken)
		for range 3 {
			if err := bc.GetOrCreate("counter", []string{"m"}, HandleOptions{}).Action(ctx, "getCount", nil); err != nil {
				t.Fatalf("Action with metadata answering %d: %v", tt.status, err)
			}
		}
		if n := countRequests(broken, "/metadata"); n != tt.lookups {
			t.Errorf("metadata lookups while it answers %d: got %d, want %d", tt.status, n, tt.lookups)
		}
	}
}

func TestStatelessNoLeak(t *testing.T) {
	f := newFakeEngine(t)
	check := checkLeaks(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	h := c.GetOrCreate("counter", []string{"sl"}, HandleOptions{})
	for range 3 {
		if err := h.Action(ctx, "increment", nil, 1); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	check()
}

// TestRawWebSocketCloses: a raw WebSocket reports the peer's close as an
// *ActorError when the reason is a RivetKit error, as a *CloseError with
// the code and reason otherwise.
func TestRawWebSocketCloses(t *testing.T) {
	for _, tc := range []struct {
		code   int
		reason string
		want   error
	}{
		{4000, "bye", &CloseError{Code: 4000, Reason: "bye"}},
		{1011, "actor.stopped#ray", &ActorError{Group: "actor", Code: "stopped"}},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := (&gorillaws.Upgrader{}).Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.WriteControl(gorillaws.CloseMessage, gorillaws.FormatCloseMessage(tc.code, tc.reason), time.Now().Add(time.Second))
			_, _, _ = c.ReadMessage() // until the client's close
		}))
		ws, _, err := gorillaws.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		if err != nil {
			t.Fatal(err)
		}
		raw := &RawWebSocket{ws: ws}
		_, _, err = raw.ReadMessage()
		var ce *CloseError
		switch want := tc.want.(type) {
		case *CloseError:
			if !errors.As(err, &ce) || *ce != *want {
				t.Errorf("close %d %q: got %v, want %v", tc.code, tc.reason, err, want)
			}
		default:
			if !errors.Is(err, want) {
				t.Errorf("close %d %q: got %v, want %v", tc.code, tc.reason, err, want)
			}
		}
		raw.Close()
		srv.Close()
	}
}
