package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// The Go client (rivetclient) against the real engine through the gateway.
// Every test closes its clients and then checks that no goroutine of
// rivetclient is left (clientLeakCheck).

const (
	// clientWait bounds every wait of these tests.
	clientWait = 20 * time.Second
	// clientBackoff is the reconnect backoff of the tests' clients: short, so
	// the retries are visible within a second instead of the default 250ms
	// doubling to 30s.
	clientBackoff    = 50 * time.Millisecond
	clientBackoffMax = 500 * time.Millisecond

	// The HS256 issuer of the JWT gateways (the secret is written into the
	// gateway's YAML literally).
	clientJWTSecret   = "client-e2e-secret-0123456789abcdef-0123"
	clientJWTIssuer   = "rivet-gateway-client-e2e"
	clientJWTAudience = "rivet"
)

// TestClientThroughGateway runs the Go client through gateways in front of
// one real engine: stateless actions, queue, events, multiplexed actions,
// raw HTTP and WebSocket, GetParams retries, the gateway's own
// client.get_params_failed and a terminal auth.unauthorized.
func TestClientThroughGateway(t *testing.T) {
	up := harness.StartUpstream(t)
	open := harness.StartGateway(t, openConfig(up.URL))
	static := rivetclient.HandleOptions{Params: map[string]string{"token": "static-tok"}}

	t.Run("stateless actions", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, open.URL)
		h := c.GetOrCreate("counter", clientKey(t), static)

		var n int
		if err := h.Action(ctx, "increment", &n, 5); err != nil || n != 5 {
			t.Fatalf("increment(5): got %d, %v; want 5", n, err)
		}
		if err := h.Action(ctx, "increment", &n, 2); err != nil || n != 7 {
			t.Errorf("increment(2): got %d, %v; want 7", n, err)
		}
		if err := h.Action(ctx, "getCount", &n); err != nil || n != 7 {
			t.Errorf("getCount: got %d, %v; want 7", n, err)
		}
		var who clientWhoami
		if err := h.Action(ctx, "whoami", &who); err != nil {
			t.Fatalf("whoami: %v", err)
		}
		who.assertToken(t, "static-tok")

		err := h.Action(ctx, "fail", nil)
		var ae *rivetclient.ActorError
		if !errors.As(err, &ae) || ae.Group != "user" || ae.Code != "custom_fail" {
			t.Fatalf("fail: got %v (%T), want *ActorError user.custom_fail", err, err)
		}
		if !jsonEqual(t, json.RawMessage(ae.Metadata), `{"a":1}`) {
			t.Errorf("fail metadata: got %s, want {\"a\":1}", ae.Metadata)
		}
		if ae.Message != "boom" || ae.StatusCode/100 != 5 || ae.RayID == "" {
			t.Errorf("fail: got message %q, status %d, ray id %q; want boom, 5xx, a ray id", ae.Message, ae.StatusCode, ae.RayID)
		}
		if rivetclient.IsRetryable(err) {
			t.Errorf("IsRetryable(user.custom_fail): got true")
		}

		// Without params onBeforeConnect refuses.
		anon := c.GetOrCreate("counter", clientKey(t), rivetclient.HandleOptions{})
		err = anon.Action(ctx, "getCount", nil)
		if !errors.Is(err, &rivetclient.ActorError{Group: "user", Code: "unauthorized"}) {
			t.Errorf("action without params: got %v, want user.unauthorized", err)
		}
	})

	// The actor reads params as compat JSON, as it reads arguments: a two-element array whose
	// first element starts with "$" must arrive as it was given, over HTTP and connect, straight
	// at the engine and through the gateway.
	t.Run("params in compat JSON", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		params := rivetclient.HandleOptions{Params: map[string]any{"token": "compat-tok", "tags": []any{"$x", 1}}}
		for _, endpoint := range []string{up.URL, open.URL} {
			c := startClient(t, endpoint)
			h := c.GetOrCreate("counter", clientKey(t), params)
			var who clientWhoami
			if err := h.Action(ctx, "whoami", &who); err != nil {
				t.Fatalf("%s: whoami: %v", endpoint, err)
			}
			if got := fmt.Sprint(who.Params["tags"]); got != "[$x 1]" {
				t.Errorf("%s: stateless whoami saw tags %s, want [$x 1]", endpoint, got)
			}
			conn, err := h.Connect(ctx)
			if err != nil {
				t.Fatalf("%s: Connect: %v", endpoint, err)
			}
			if err := conn.Action(ctx, "whoami", &who); err != nil {
				t.Fatalf("%s: whoami over the connection: %v", endpoint, err)
			}
			if got := fmt.Sprint(who.Params["tags"]); got != "[$x 1]" {
				t.Errorf("%s: connection whoami saw tags %s, want [$x 1]", endpoint, got)
			}
			conn.Close()
			c.Close()
		}
	})

	t.Run("queue send", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, open.URL)
		h := c.GetOrCreate("counter", clientKey(t), static)
		if err := h.Action(ctx, "increment", nil, 4); err != nil {
			t.Fatalf("increment: %v", err)
		}
		res, err := h.Send(ctx, "jobs", map[string]any{"job": "j1", "n": 3}, rivetclient.SendOptions{Wait: true, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		var got struct {
			Echo  map[string]any `json:"echo"`
			Count int            `json:"count"`
		}
		if err := res.Decode(&got); err != nil {
			t.Fatalf("decode %s: %v", res.Response, err)
		}
		if res.Status != "completed" || got.Echo["job"] != "j1" || fmt.Sprint(got.Echo["n"]) != "3" || got.Count != 4 {
			t.Errorf("Send: got status %q, response %s; want completed, {echo:{job:j1,n:3},count:4}", res.Status, res.Response)
		}
	})

	t.Run("events over a connection", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, open.URL)
		h := c.GetOrCreate("counter", clientKey(t), static)
		conn, err := h.Connect(ctx)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		if conn.Status() != rivetclient.StatusConnected || conn.ActorID() == "" || conn.ConnectionID() == "" {
			t.Errorf("after Connect: status %v, actor %q, connection %q", conn.Status(), conn.ActorID(), conn.ConnectionID())
		}
		log := watchConn(t, conn, "newCount")

		var who clientWhoami
		if err := conn.Action(ctx, "whoami", &who); err != nil {
			t.Fatalf("whoami over the connection: %v", err)
		}
		who.assertToken(t, "static-tok")
		var n int
		if err := conn.Action(ctx, "increment", &n, 3); err != nil || n != 3 {
			t.Fatalf("increment(3): got %d, %v; want 3", n, err)
		}
		log.waitEvent(t, 3)
		// A stateless call from elsewhere broadcasts to the connection too.
		if err := h.Action(ctx, "increment", &n, 4); err != nil || n != 7 {
			t.Fatalf("stateless increment(4): got %d, %v; want 7", n, err)
		}
		log.waitEvent(t, 7)
		if errs := log.errorList(); len(errs) != 0 {
			t.Errorf("connection errors: got %v, want none", errs)
		}
		c.Close()
		if got := conn.Status(); got != rivetclient.StatusIdle {
			t.Errorf("status after Client.Close: got %v, want idle", got)
		}
		if err := conn.Action(ctx, "getCount", nil); !errors.Is(err, rivetclient.ErrClosed) {
			t.Errorf("action after Close: got %v, want ErrClosed", err)
		}
	})

	t.Run("out-of-order actions on one connection", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		frames := &frameWatch{data: make(chan struct{}, 64)}
		c := startClient(t, open.URL, rivetclient.WithHTTPClient(&http.Client{Transport: frames.transport()}))
		h := c.GetOrCreate("counter", clientKey(t), static)
		conn, err := h.Connect(ctx)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		frames.drain()

		type result struct {
			v   int
			err error
			at  time.Time
		}
		slow := make(chan result, 1)
		go func() {
			var v int
			err := conn.Action(ctx, "slow", &v, 500)
			slow <- result{v, err, time.Now()}
		}()
		// The slow ActionRequest is on the wire before getCount is sent.
		select {
		case <-frames.data:
		case <-time.After(clientWait):
			t.Fatal("slow(500) was never sent")
		}
		sent := time.Now()
		var n int
		if err := conn.Action(ctx, "getCount", &n); err != nil {
			t.Fatalf("getCount: %v", err)
		}
		fast := time.Now()
		select {
		case r := <-slow:
			t.Fatalf("slow(500) finished (%v) before getCount: responses were not multiplexed", r.err)
		default:
		}
		var r result
		select {
		case r = <-slow:
		case <-time.After(clientWait):
			t.Fatal("slow(500) never finished")
		}
		if r.err != nil || r.v != 500 {
			t.Errorf("slow(500): got %d, %v; want 500", r.v, r.err)
		}
		if !r.at.After(fast) {
			t.Errorf("slow finished at %v, getCount at %v: want getCount first", r.at, fast)
		}
		t.Logf("getCount answered after %v while slow(500) was pending; slow answered %v after it was sent",
			fast.Sub(sent).Round(time.Millisecond), r.at.Sub(sent).Round(time.Millisecond))
	})

	t.Run("raw fetch", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, open.URL)
		h := c.GetOrCreate("counter", clientKey(t), static)
		res, err := h.Fetch(ctx, http.MethodGet, "/hello?x=1", nil, http.Header{"X-Custom": {"1"}})
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("Fetch: got %d %s, %v; want 200", res.StatusCode, body, err)
		}
		var echo struct {
			Method, Path, Search string
			Headers              map[string]string
			Count                int
		}
		if err := json.Unmarshal(body, &echo); err != nil {
			t.Fatalf("Fetch body %s: %v", body, err)
		}
		if echo.Method != "GET" || echo.Path != "/hello" || echo.Search != "?x=1" {
			t.Errorf("actor saw %s %s%s, want GET /hello?x=1", echo.Method, echo.Path, echo.Search)
		}
		if got := echo.Headers["x-rivet-conn-params"]; got != `{"token":"static-tok"}` {
			t.Errorf("x-rivet-conn-params at the actor: got %q", got)
		}
		if echo.Headers["x-custom"] != "1" {
			t.Errorf("X-Custom at the actor: got %q, want 1", echo.Headers["x-custom"])
		}
	})

	t.Run("raw websocket", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, open.URL)
		h := c.GetOrCreate("counter", clientKey(t), static)
		if err := h.Action(ctx, "increment", nil, 2); err != nil {
			t.Fatalf("increment: %v", err)
		}
		ws, err := h.WebSocket(ctx, "/raw/path?y=2")
		if err != nil {
			t.Fatalf("WebSocket: %v", err)
		}
		defer ws.Close()
		_ = ws.SetReadDeadline(time.Now().Add(clientWait))
		_, msg, err := ws.ReadMessage()
		if err != nil || !jsonEqual(t, msg, `{"hello":"raw","count":2}`) {
			t.Fatalf("greeting: got %s, %v; want {hello:raw,count:2}", msg, err)
		}
		if err := ws.WriteMessage(rivetclient.TextMessage, []byte("ping")); err != nil {
			t.Fatalf("write: %v", err)
		}
		if _, msg, err = ws.ReadMessage(); err != nil || string(msg) != "echo:ping" {
			t.Errorf("echo: got %q, %v; want echo:ping", msg, err)
		}
	})

	t.Run("GetParams fails twice before the first connection", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, open.URL)
		var mu sync.Mutex
		var calls []time.Time
		key := clientKey(t)
		warmActor(t, open.URL, key[0], static.Params)
		h := c.GetOrCreate("counter", key, rivetclient.HandleOptions{GetParams: func(context.Context) (any, error) {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, time.Now())
			if len(calls) <= 2 {
				return nil, fmt.Errorf("token service down (%d)", len(calls))
			}
			return map[string]string{"token": "gp-" + strconv.Itoa(len(calls))}, nil
		}})
		conn, err := h.Connect(ctx)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		var who clientWhoami
		if err := conn.Action(ctx, "whoami", &who); err != nil {
			t.Fatalf("whoami: %v", err)
		}
		who.assertToken(t, "gp-3")
		mu.Lock()
		defer mu.Unlock()
		if len(calls) != 3 {
			t.Fatalf("GetParams calls: got %d, want 3", len(calls))
		}
		// The pauses between the attempts are jittered from zero up
		// (rivetclient TestBackoffFullJitter): nothing to bound from below.
	})

	jwtGW := harness.StartGateway(t, clientJWTConfig(up.URL, ""))

	t.Run("GetParams fails twice on reconnect", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, jwtGW.URL)
		var calls atomic.Int32
		key := clientKey(t)
		warmActor(t, jwtGW.URL, key[0], map[string]string{"authToken": clientMint(t, "carol", time.Minute), "token": "warm"})
		h := c.GetOrCreate("counter", key, rivetclient.HandleOptions{GetParams: func(context.Context) (any, error) {
			switch n := calls.Add(1); n {
			case 1: // expires soon: the gateway closes the socket with ws.going_away then
				return map[string]string{"authToken": clientMint(t, "carol", 2*time.Second), "token": "tok-1"}, nil
			case 2, 3:
				return nil, fmt.Errorf("token service down (%d)", n)
			default:
				return map[string]string{"authToken": clientMint(t, "carol", time.Minute), "token": "tok-" + strconv.Itoa(int(n))}, nil
			}
		}})
		conn, err := h.Connect(ctx)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		log := watchConn(t, conn, "newCount")
		first := conn.ConnectionID()
		var who clientWhoami
		if err := conn.Action(ctx, "whoami", &who); err != nil {
			t.Fatalf("whoami: %v", err)
		}
		who.assertToken(t, "tok-1")

		log.waitErrors(t, "ws.going_away", "client.get_params_failed", "client.get_params_failed")
		clientWaitFor(t, "reconnected", func() bool {
			return conn.Status() == rivetclient.StatusConnected && conn.ConnectionID() != first
		})
		for _, err := range log.errorList() {
			if errors.Is(err, rivetclient.ErrGetParamsFailed) && !strings.HasPrefix(errors.Unwrap(err).Error(), "token service down") {
				t.Errorf("get_params_failed cause: got %v", errors.Unwrap(err))
			}
			if !rivetclient.IsRetryable(err) {
				t.Errorf("IsRetryable(%v): got false", err)
			}
		}
		if got := log.errorCodes(); !slices.Equal(got, []string{"ws.going_away", "client.get_params_failed", "client.get_params_failed"}) {
			t.Errorf("errors: got %v, want ws.going_away then two client.get_params_failed", got)
		}
		if n := calls.Load(); n != 4 {
			t.Errorf("GetParams calls: got %d, want 4", n)
		}
		if err := conn.Action(ctx, "whoami", &who); err != nil {
			t.Fatalf("whoami after reconnect: %v", err)
		}
		who.assertToken(t, "tok-4")
		var n int
		if err := h.Action(ctx, "increment", &n, 6); err != nil { // stateless: GetParams again
			t.Fatalf("increment: %v", err)
		}
		log.waitEvent(t, n)
		if s := log.statusList(); slices.Contains(s, rivetclient.StatusIdle) {
			t.Errorf("statuses: got %v, want no idle before Close", s)
		}
	})

	t.Run("auth.unauthorized is terminal", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, jwtGW.URL)
		var calls atomic.Int32
		h := c.GetOrCreate("counter", clientKey(t), rivetclient.HandleOptions{GetParams: func(context.Context) (any, error) {
			calls.Add(1)
			return map[string]string{"authToken": "garbage", "token": "t"}, nil
		}})
		start := time.Now()
		conn, err := h.Connect(ctx)
		elapsed := time.Since(start)
		if conn != nil {
			conn.Close()
			t.Fatal("Connect with a garbage token succeeded")
		}
		var ae *rivetclient.ActorError
		if !errors.As(err, &ae) || ae.Group != "auth" || ae.Code != "unauthorized" {
			t.Fatalf("Connect: got %v (%T), want *ActorError auth.unauthorized", err, err)
		}
		if errors.Is(err, context.DeadlineExceeded) || rivetclient.IsRetryable(err) {
			t.Errorf("Connect: got %v, want a terminal error (no retry until the deadline)", err)
		}
		if elapsed > 5*time.Second {
			t.Errorf("Connect took %v, want it to fail promptly", elapsed)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("GetParams calls: got %d, want 1 (no retry)", n)
		}
		// The Conn is gone: no goroutine is left retrying (checked by the
		// leak check below); calls stays 1.

		// A stateless call gets the gateway's HTTP 401 as the same error.
		err = h.Action(ctx, "getCount", nil)
		if !errors.As(err, &ae) || ae.Group != "auth" || ae.Code != "unauthorized" || ae.StatusCode != http.StatusUnauthorized {
			t.Errorf("stateless action: got %v, want auth.unauthorized with status 401", err)
		}
		c.Close()
		assertNoClientGoroutines(t)
		if n := calls.Load(); n != 2 {
			t.Errorf("GetParams calls: got %d, want 2 (one Connect attempt, one action)", n)
		}
	})

	svc := startClientParamsService(t)
	paramsGW := harness.StartGateway(t, clientJWTConfig(up.URL, `
params:
  source: http
  policy: replace
  http:
    url: "`+svc.URL+`"
    timeout: 1s
  retry: {max_attempts: 2, initial_backoff: 20ms, max_backoff: 50ms, budget: 300ms}
`))

	t.Run("gateway client.get_params_failed is retried", func(t *testing.T) {
		clientLeakCheck(t)
		ctx := clientContext(t)
		c := startClient(t, paramsGW.URL)
		var ttl atomic.Int64
		ttl.Store(int64(2 * time.Second))
		key := clientKey(t)
		warmActor(t, paramsGW.URL, key[0], map[string]string{"authToken": clientMint(t, "svc-user", time.Minute)})
		h := c.GetOrCreate("counter", key, rivetclient.HandleOptions{GetParams: func(context.Context) (any, error) {
			return map[string]string{"authToken": clientMint(t, "svc-user", time.Duration(ttl.Load()))}, nil
		}})

		// The first connection waits out the params service's outage.
		svc.failing.Store(true)
		type connected struct {
			conn *rivetclient.Conn
			err  error
		}
		done := make(chan connected, 1)
		go func() {
			conn, err := h.Connect(ctx)
			done <- connected{conn, err}
		}()
		// Two attempts per connection attempt: the client tried at least twice.
		clientWaitFor(t, "the client to retry through the outage", func() bool { return svc.calls.Load() >= 4 })
		svc.failing.Store(false)
		var r connected
		select {
		case r = <-done:
		case <-time.After(clientWait):
			t.Fatal("Connect did not return after the params service recovered")
		}
		if r.err != nil {
			t.Fatalf("Connect: %v", r.err)
		}
		conn := r.conn
		ttl.Store(int64(time.Minute)) // the next tokens outlive the test
		log := watchConn(t, conn, "")
		first := conn.ConnectionID()
		var who clientWhoami
		if err := conn.Action(ctx, "whoami", &who); err != nil {
			t.Fatalf("whoami: %v", err)
		}
		who.assertToken(t, "svc-"+strconv.Itoa(int(svc.calls.Load())))

		// The service fails when the client reconnects (the first token
		// expires): OnError sees the gateway's client.get_params_failed, the
		// Conn keeps retrying and comes back once the service does.
		svc.failing.Store(true)
		clientWaitFor(t, "two client.get_params_failed from the gateway", func() bool {
			return countCode(log.errorCodes(), "client.get_params_failed") >= 2
		})
		svc.failing.Store(false)
		recovered := time.Now()
		clientWaitFor(t, "reconnected", func() bool {
			return conn.Status() == rivetclient.StatusConnected && conn.ConnectionID() != first
		})
		t.Logf("params service outage: back %v after the service recovered", time.Since(recovered).Round(time.Millisecond))
		codes := log.errorCodes()
		if len(codes) == 0 || codes[0] != "ws.going_away" {
			t.Errorf("errors: got %v, want ws.going_away (token expiry) first", codes)
		}
		for _, err := range log.errorList() {
			var ae *rivetclient.ActorError
			// From the gateway's close reason, with the gateway's ray id (the access log's).
			if errors.As(err, &ae) && ae.Code == "get_params_failed" &&
				(ae.Message != "Connection closed: client.get_params_failed#"+ae.RayID || !strings.HasPrefix(ae.RayID, "gw-")) {
				t.Errorf("gateway get_params_failed: got message %q, ray id %q; want it from the close reason, with a gw- ray id", ae.Message, ae.RayID)
			}
		}
		if s := log.statusList(); slices.Contains(s, rivetclient.StatusIdle) {
			t.Errorf("statuses: got %v, want no idle", s)
		}
		if err := conn.Action(ctx, "whoami", &who); err != nil {
			t.Fatalf("whoami after reconnect: %v", err)
		}
		who.assertToken(t, "svc-"+strconv.Itoa(int(svc.calls.Load())))
		t.Logf("params service calls %d, connection errors %s", svc.calls.Load(), compactCodes(codes))
	})
}

// TestClientReconnectGatewayRestart stops the gateway under an open
// connection (SIGTERM: 1001 ws.going_away) and starts another on the same
// port: the connection comes back by itself with fresh params, and events
// resume.
func TestClientReconnectGatewayRestart(t *testing.T) {
	up := harness.StartUpstream(t)
	addr := clientFreeAddr(t)
	// harness.StartGateway only substitutes {{LISTEN}}; with a literal
	// address its Gateway.URL names an unused port, so use addr.
	cfg := strings.Replace(openConfig(up.URL), `"{{LISTEN}}"`, `"`+addr+`"`, 1)
	endpoint := "http://" + addr
	gwA := harness.StartGateway(t, cfg)

	clientLeakCheck(t)
	ctx := clientContext(t)
	c, h, conn, log, calls := connectCounting(t, ctx, endpoint)
	first := conn.ConnectionID()
	var n int
	if err := conn.Action(ctx, "increment", &n, 1); err != nil || n != 1 {
		t.Fatalf("increment: got %d, %v; want 1", n, err)
	}
	log.waitEvent(t, 1)

	if err := gwA.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	log.waitErrors(t, "ws.going_away")
	if code, err := gwA.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("gateway A exit: got %d, %v; want 0", code, err)
	}
	// While no gateway listens the attempts fail (connection refused) and
	// are retried; an action issued now waits for the connection or fails
	// with the attempt's error.
	clientWaitFor(t, "a failed attempt", func() bool { return len(log.errorList()) >= 2 })
	if s := conn.Status(); s == rivetclient.StatusConnected || s == rivetclient.StatusIdle {
		t.Errorf("status with no gateway: got %v, want connecting or disconnected", s)
	}

	harness.StartGateway(t, cfg)
	back := time.Now()
	clientWaitFor(t, "reconnected through gateway B", func() bool {
		return conn.Status() == rivetclient.StatusConnected && conn.ConnectionID() != first
	})
	took := time.Since(back)
	if got := calls.Load(); got < 2 {
		t.Errorf("GetParams calls: got %d, want >= 2 (called again on reconnect)", got)
	}
	var who clientWhoami
	if err := conn.Action(ctx, "whoami", &who); err != nil {
		t.Fatalf("whoami after reconnect: %v", err)
	}
	who.assertToken(t, "gp-"+strconv.Itoa(int(calls.Load())))
	// Events resume: the subscription was renewed on the new socket.
	if err := h.Action(ctx, "increment", &n, 2); err != nil || n != 3 {
		t.Fatalf("increment after the restart: got %d, %v; want 3 (the actor kept its state)", n, err)
	}
	log.waitEvent(t, 3)
	for _, err := range log.errorList() {
		if !rivetclient.IsRetryable(err) {
			t.Errorf("connection error %v: want retryable", err)
		}
	}
	if s := log.statusList(); slices.Contains(s, rivetclient.StatusIdle) {
		t.Errorf("statuses: got %v, want no idle", s)
	}
	t.Logf("gateway restart: back %v after gateway B was healthy; GetParams calls %d, errors %s",
		took.Round(time.Millisecond), calls.Load(), compactCodes(log.errorCodes()))
	c.Close()
}

// TestClientReconnectUpstreamRestart stops the engine and actor server
// under an open connection and starts them again (fresh state): the
// gateway closes the socket with the retryable guard.service_unavailable,
// the client keeps retrying (also through the restarting engine's brief
// actor.no_runner_config_configured), and the connection comes back.
func TestClientReconnectUpstreamRestart(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, openConfig(up.URL))

	clientLeakCheck(t)
	ctx := clientContext(t)
	c, _, conn, log, calls := connectCounting(t, ctx, gw.URL)
	first := conn.ConnectionID()
	if err := conn.Action(ctx, "increment", nil, 5); err != nil {
		t.Fatalf("increment: %v", err)
	}
	log.waitEvent(t, 5)

	up.Stop(t)
	clientWaitFor(t, "the connection to be closed", func() bool { return len(log.errorList()) >= 1 })
	// Attempts while the engine is down: the gateway accepts and closes
	// with guard.service_unavailable.
	clientWaitFor(t, "a refused attempt", func() bool {
		return countCode(log.errorCodes(), "guard.service_unavailable") >= 1
	})
	up.Start(t)
	clientWaitFor(t, "reconnected after the upstream restart", func() bool {
		return conn.Status() == rivetclient.StatusConnected && conn.ConnectionID() != first
	})
	codes := log.errorCodes()
	if codes[0] != "guard.service_unavailable" {
		t.Errorf("errors: got %v, want the gateway's guard.service_unavailable first", codes)
	}
	for _, err := range log.errorList() {
		// A restarting engine answers actor.no_runner_config_configured
		// until the actor server has registered again: terminal for the JS
		// client, retried by a Go Conn that has been connected before.
		if !rivetclient.IsRetryable(err) && !errors.Is(err, &rivetclient.ActorError{Group: "actor", Code: "no_runner_config_configured"}) {
			t.Errorf("connection error %v: want retryable", err)
		}
	}
	assertBackOnFreshEngine(t, ctx, conn, log, calls)
	// The renewed subscription delivers the fresh actor's events.
	log.waitEvent(t, 2)
	t.Logf("upstream restart: GetParams calls %d, errors %s", calls.Load(), compactCodes(codes))
	c.Close()
}

// --- helpers ---

// startClient returns a client for endpoint with the tests' short backoff;
// a t.Cleanup closes it.
// connectCounting connects to a fresh counter through endpoint, with a
// GetParams that hands out the tokens gp-1, gp-2, … and counts its calls,
// and watches the connection's errors, statuses and newCount events.
// TestClientReconnectEngineRestart: a Conn straight at the engine (no gateway to turn the
// restarting engine's answers into guard.service_unavailable) rides out an engine restart: the
// engine refuses the first reconnects (the socket drops, then namespace.not_found while its
// default namespace is created anew, actor.no_runner_config_configured until the actor server
// has registered, guard.* while the actor starts), all retried by a Conn that has been
// connected, and the connection comes back with fresh params on a fresh actor.
func TestClientReconnectEngineRestart(t *testing.T) {
	up := harness.StartUpstream(t)
	clientLeakCheck(t)
	ctx := clientContext(t)
	_, _, conn, log, calls := connectCounting(t, ctx, up.URL)
	first := conn.ConnectionID()
	if err := conn.Action(ctx, "increment", nil, 5); err != nil {
		t.Fatalf("increment: %v", err)
	}

	up.Stop(t)
	up.Start(t)
	back := time.Now()
	clientWaitFor(t, "reconnected after the engine restart", func() bool {
		return conn.Status() == rivetclient.StatusConnected && conn.ConnectionID() != first
	})
	took := time.Since(back)
	assertBackOnFreshEngine(t, ctx, conn, log, calls)
	t.Logf("engine restart, straight at the engine: back %v after the engine was ready; GetParams calls %d; errors %s",
		took.Round(time.Millisecond), calls.Load(), compactCodes(log.errorCodes()))
}

// assertBackOnFreshEngine checks a Conn of connectCounting after an engine restart: it never
// gave up, its actor saw the params of the latest GetParams call, and the actor is a fresh one
// (increment(2) answers 2).
func assertBackOnFreshEngine(t *testing.T, ctx context.Context, conn *rivetclient.Conn, log *connLog, calls *atomic.Int32) {
	t.Helper()
	if s := log.statusList(); slices.Contains(s, rivetclient.StatusIdle) {
		t.Errorf("statuses: got %v, want no idle (the client must not give up)", s)
	}
	var who clientWhoami
	if err := conn.Action(ctx, "whoami", &who); err != nil {
		t.Fatalf("whoami after reconnect: %v", err)
	}
	who.assertToken(t, "gp-"+strconv.Itoa(int(calls.Load())))
	var n int
	if err := conn.Action(ctx, "increment", &n, 2); err != nil || n != 2 {
		t.Fatalf("increment after the restart: got %d, %v; want 2 (fresh actor)", n, err)
	}
}

func connectCounting(t *testing.T, ctx context.Context, endpoint string) (*rivetclient.Client, *rivetclient.Handle, *rivetclient.Conn, *connLog, *atomic.Int32) {
	t.Helper()
	c := startClient(t, endpoint)
	calls := new(atomic.Int32)
	h := c.GetOrCreate("counter", clientKey(t), rivetclient.HandleOptions{GetParams: func(context.Context) (any, error) {
		return map[string]string{"token": "gp-" + strconv.Itoa(int(calls.Add(1)))}, nil
	}})
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, h, conn, watchConn(t, conn, "newCount"), calls
}

func startClient(t *testing.T, endpoint string, opts ...rivetclient.Option) *rivetclient.Client {
	t.Helper()
	opts = append([]rivetclient.Option{rivetclient.WithReconnectBackoff(clientBackoff, clientBackoffMax)}, opts...)
	c, err := rivetclient.New(endpoint, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// clientContext bounds a test's calls.
func clientContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// clientKey is an actor key of its own for the test (concurrent first
// getOrCreate calls for one key make engine 2.3.19 answer
// actor.destroyed_during_creation).
func clientKey(t *testing.T) []string {
	name := strings.NewReplacer("/", "-", " ", "-", ".", "-").Replace(t.Name())
	return []string{fmt.Sprintf("%s-%d", name, time.Now().UnixNano())}
}

// clientWaitFor polls cond until it holds, failing the test after clientWait.
func clientWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(clientWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", clientWait, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clientLeakCheck registers, as the test's last cleanup, a check that no
// goroutine of rivetclient is left once every client has been closed.
func clientLeakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { assertNoClientGoroutines(t) })
}

// assertNoClientGoroutines fails the test if goroutines running rivetclient
// code (or started by it) are still there after a bounded wait.
func assertNoClientGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := clientGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%d rivetclient goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clientGoroutines returns the stacks of the goroutines with a rivetclient
// frame (including "created by").
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "/rivet-gateway/rivetclient.") {
			out = append(out, g)
		}
	}
	return out
}

// clientWhoami is what the actor's whoami action returns.
type clientWhoami struct {
	Params    map[string]any `json:"params"`
	ConnState map[string]any `json:"connState"`
}

func (w clientWhoami) assertToken(t *testing.T, want string) {
	t.Helper()
	if got := w.Params["token"]; got != want {
		t.Errorf("actor saw params %v, want token %q", w.Params, want)
	}
	if _, ok := w.Params["authToken"]; ok {
		t.Errorf("actor saw params %v: the gateway should have removed authToken", w.Params)
	}
}

// connLog records what a Conn reports through its callbacks.
type connLog struct {
	mu       sync.Mutex
	statuses []rivetclient.Status
	errs     []error
	events   []int
}

// watchConn records conn's status changes, errors and the integer events
// named event ("" for none); if the test fails, they are logged.
func watchConn(t *testing.T, conn *rivetclient.Conn, event string) *connLog {
	l := &connLog{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("connection: statuses %v, errors %q", l.statusList(), l.errorCodes())
		}
	})
	conn.OnStatusChange(func(s rivetclient.Status) {
		l.mu.Lock()
		l.statuses = append(l.statuses, s)
		l.mu.Unlock()
	})
	conn.OnError(func(err error) {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	})
	if event != "" {
		conn.On(event, func(e rivetclient.Event) {
			var n int
			if err := e.Decode(&n); err != nil {
				n = -1
			}
			l.mu.Lock()
			l.events = append(l.events, n)
			l.mu.Unlock()
		})
	}
	return l
}

func (l *connLog) errorList() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func (l *connLog) statusList() []rivetclient.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.statuses)
}

// errorCodes returns "group.code" for each *ActorError, the text of other
// errors.
func (l *connLog) errorCodes() []string {
	var out []string
	for _, err := range l.errorList() {
		var ae *rivetclient.ActorError
		if errors.As(err, &ae) {
			out = append(out, ae.Group+"."+ae.Code)
		} else {
			out = append(out, err.Error())
		}
	}
	return out
}

// waitErrors waits until the errors reported start with codes.
func (l *connLog) waitErrors(t *testing.T, codes ...string) {
	t.Helper()
	deadline := time.Now().Add(clientWait)
	for {
		got := l.errorCodes()
		if len(got) >= len(codes) {
			if !slices.Equal(got[:len(codes)], codes) {
				t.Fatalf("connection errors: got %v, want %v first", got, codes)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection errors: got %v after %v, want %v", got, clientWait, codes)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEvent waits for the event carrying n.
func (l *connLog) waitEvent(t *testing.T, n int) {
	t.Helper()
	clientWaitFor(t, fmt.Sprintf("event %d", n), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return slices.Contains(l.events, n)
	})
}

// compactCodes joins codes, runs of one code written once with a count.
func compactCodes(codes []string) string {
	var parts []string
	for i := 0; i < len(codes); {
		j := i
		for j < len(codes) && codes[j] == codes[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%s ×%d", codes[i], j-i))
		} else {
			parts = append(parts, codes[i])
		}
		i = j
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func countCode(codes []string, code string) int {
	n := 0
	for _, c := range codes {
		if c == code {
			n++
		}
	}
	return n
}

// frameWatch reports every client data frame written on the connections of
// the transport it builds: a WebSocket text or binary frame from a client
// starts with 0x81 or 0x82 (FIN, opcode 1 or 2), which no HTTP request and
// no control frame does.
type frameWatch struct {
	data chan struct{} // a data frame (text or binary) was written
}

func (f *frameWatch) transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &watchedConn{Conn: conn, f: f}, nil
	}
	return tr
}

func (f *frameWatch) drain() {
	for {
		select {
		case <-f.data:
		default:
			return
		}
	}
}

type watchedConn struct {
	net.Conn
	f *frameWatch
}

func (c *watchedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 && (p[0] == 0x81 || p[0] == 0x82) { // FIN + text or binary
		select {
		case c.f.data <- struct{}{}:
		default:
		}
	}
	return n, err
}

// clientFreeAddr returns a loopback address whose port is free now, from
// the harness's port range (below the ephemeral range, so no outgoing
// connection takes it between two gateways).
func clientFreeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := "127.0.0.1:" + strconv.Itoa(20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free loopback port")
	return ""
}

// clientJWTConfig is a gateway accepting HS256 JWTs from the authToken
// field of the connection params (the field is removed before the engine),
// closing WebSockets when their token expires (ws.going_away), with extra
// YAML appended (e.g. a params section).
func clientJWTConfig(upstream, extra string) string {
	return baseConfig(upstream) + `auth:
  credentials: [bearer, conn_params]
  close_on_expiry: true
  jwt:
    leeway: 0s
    issuers:
      - name: client-e2e
        issuer: ` + clientJWTIssuer + `
        audiences: [` + clientJWTAudience + `]
        algorithms: [HS256]
        secret: "` + clientJWTSecret + `"
        required_claims: [sub]
  rules:
    - match: {actors: [counter]}
      allow: authenticated
` + extra
}

// clientMint returns a token of the tests' HS256 issuer for sub, valid for
// ttl (exp is whole seconds, so up to 1s less).
func clientMint(t *testing.T, sub string, ttl time.Duration) string {
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": clientJWTIssuer, "aud": clientJWTAudience, "sub": sub,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}).SignedString([]byte(clientJWTSecret))
	if err != nil {
		t.Errorf("sign token: %v", err) // called from the client's goroutines: no Fatal
	}
	return tok
}

// clientParamsService is a params service (params.source http) answering
// {"token":"svc-<n>"} for its n-th call, or 500 while failing is set.
type clientParamsService struct {
	URL     string
	failing atomic.Bool
	calls   atomic.Int32
}

func startClientParamsService(t *testing.T) *clientParamsService {
	t.Helper()
	s := &clientParamsService{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.calls.Add(1)
		if s.failing.Load() {
			http.Error(w, "params backend down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"token":"svc-%d"}`, n)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/params"
	return s
}
