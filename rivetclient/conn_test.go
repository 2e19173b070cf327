package rivetclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder collects what a Conn reports through its callbacks.
type recorder struct {
	mu       sync.Mutex
	statuses []Status
	errs     []error
	events   []Event
}

func (r *recorder) attach(c *Conn, event string) {
	c.OnStatusChange(func(s Status) { r.mu.Lock(); r.statuses = append(r.statuses, s); r.mu.Unlock() })
	c.OnError(func(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() })
	if event != "" {
		c.On(event, func(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() })
	}
}

func (r *recorder) eventInts(t *testing.T) []int {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, e := range r.events {
		var n int
		if err := e.Decode(&n); err != nil {
			t.Errorf("decode event: %v", err)
		}
		out = append(out, n)
	}
	return out
}

func (r *recorder) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func (r *recorder) statusList() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Status(nil), r.statuses...)
}

func TestConnActionAndEvent(t *testing.T) { forEachEncoding(t, testConnActionAndEvent) }

func testConnActionAndEvent(t *testing.T, enc Encoding) {
	f := newFakeEngine(t)
	c := newTestClient(t, f, WithEncoding(enc))
	ctx := testContext(t)
	h := c.GetOrCreate("counter", []string{"k"}, HandleOptions{Params: map[string]string{"token": "t é"}})

	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()
	if got := conn.Status(); got != StatusConnected {
		t.Errorf("Status: got %v, want connected", got)
	}
	if conn.ActorID() == "" || conn.ConnectionID() == "" {
		t.Errorf("ActorID/ConnectionID: got %q/%q, want both set", conn.ActorID(), conn.ConnectionID())
	}
	var rec recorder
	rec.attach(conn, "newCount")

	var n int
	if err := conn.Action(ctx, "increment", &n, 5); err != nil {
		t.Fatalf("Action: %v", err)
	}
	if n != 5 {
		t.Errorf("increment: got %d, want 5", n)
	}
	waitFor(t, "newCount event", func() bool { return len(rec.eventInts(t)) == 1 })
	if got := rec.eventInts(t); !slices.Equal(got, []int{5}) {
		t.Errorf("events: got %v, want [5]", got)
	}

	var who struct {
		Params map[string]string `json:"params"`
	}
	if err := conn.Action(ctx, "whoami", &who); err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if who.Params["token"] != "t é" {
		t.Errorf("params seen by the actor: got %v", who.Params)
	}

	req, ok := f.lastRequest("/connect")
	if !ok {
		t.Fatal("no /connect request recorded")
	}
	if want := "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k&rvt-crash-policy=sleep"; req.RequestURI != want {
		t.Errorf("connect URI: got %s, want %s", req.RequestURI, want)
	}
	wantProtos := []string{"rivet", "rivet_encoding." + string(enc), "rivet_conn_params.%7B%22token%22%3A%22t+%5Cu00e9%22%7D"}
	if !slices.Equal(req.Subprotocol, wantProtos) {
		t.Errorf("subprotocols: got %q, want %q", req.Subprotocol, wantProtos)
	}
	if got := req.Header.Get("Sec-Websocket-Protocol"); got != "rivet,rivet_encoding."+string(enc)+",rivet_conn_params.%7B%22token%22%3A%22t+%5Cu00e9%22%7D" {
		t.Errorf("Sec-WebSocket-Protocol header: got %q", got)
	}
	if _, ok := f.lastRequest("/metadata?namespace=default"); !ok {
		t.Errorf("no GET /metadata?namespace=default before connecting")
	}
}

func TestConnConcurrentOutOfOrder(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	conn, err := c.GetOrCreate("counter", []string{"ooo"}, HandleOptions{}).Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()

	delays := []int{300, 200, 100, 0, 150, 50}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, d := range delays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprintf("v%d", i)
			var got string
			if err := conn.Action(ctx, "slow", &got, d, want); err != nil {
				t.Errorf("slow %d: %v", i, err)
				return
			}
			if got != want {
				t.Errorf("slow %d: got %q, want %q", i, got, want)
			}
			mu.Lock()
			order = append(order, got)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(order) != len(delays) || order[0] == "v0" {
		t.Errorf("completion order %v: want all %d, not in send order", order, len(delays))
	}
}

func TestConnActionErrors(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	conn, err := c.GetOrCreate("counter", []string{"err"}, HandleOptions{}).Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()

	err = conn.Action(ctx, "fail", nil)
	var ae *ActorError
	if !errors.As(err, &ae) || ae.Group != "user" || ae.Code != "custom_fail" || ae.Message != "boom" || string(ae.Metadata) != `{"a":1}` {
		t.Errorf("fail: got %#v", err)
	}
	if err := conn.Action(ctx, "nope", nil); !errors.Is(err, &ActorError{Group: "actor", Code: "action_not_found"}) {
		t.Errorf("unknown action: got %v, want actor.action_not_found", err)
	}
	var big BigInt
	if err := conn.Action(ctx, "raw", &big, `["$BigInt","123456789012345678901234567890"]`); err != nil || big != "123456789012345678901234567890" {
		t.Errorf("BigInt output: got %q, %v", big, err)
	}
	var at int64
	if err := conn.Action(ctx, "raw", &at, `1795321053708.0`); err != nil || at != 1795321053708 {
		t.Errorf("float-printed integer: got %d, %v", at, err)
	}
	var echoed []any
	if err := conn.Action(ctx, "echo", &echoed, BigInt("9"), []any{"$x", 1}, Uint8Array{1}); err != nil {
		t.Fatalf("echo: %v", err)
	}
	want := []any{json.Number("9"), []any{"$x", json.Number("1")}, "AQ=="}
	if fmt.Sprint(echoed) != fmt.Sprint(want) {
		t.Errorf("echo: got %#v, want %#v", echoed, want)
	}
	if got := conn.Status(); got != StatusConnected {
		t.Errorf("status after action errors: got %v, want connected", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := conn.Action(cctx, "slow", nil, 50); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled action: got %v, want context.Canceled", err)
	}
}

func TestConnUnsubscribe(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	conn, err := c.GetOrCreate("counter", []string{"unsub"}, HandleOptions{}).Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()
	var got atomic.Int32
	unsub := conn.On("newCount", func(Event) { got.Add(1) })
	if err := conn.Action(ctx, "increment", nil, 1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first event", func() bool { return got.Load() == 1 })
	unsub()
	unsub() // idempotent
	// The unsubscribe request is written before increment's request.
	if err := conn.Action(ctx, "increment", nil, 1); err != nil {
		t.Fatal(err)
	}
	if err := conn.Action(ctx, "slow", nil, 50); err != nil { // let a stray event arrive
		t.Fatal(err)
	}
	if n := got.Load(); n != 1 {
		t.Errorf("events after unsubscribe: got %d, want 1", n)
	}
}

func TestConnReconnectAfterDrop(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	var calls atomic.Int32
	h := c.GetOrCreate("counter", []string{"drop"}, HandleOptions{GetParams: func(context.Context) (any, error) {
		n := calls.Add(1)
		return map[string]any{"token": fmt.Sprintf("jwt-%d", n)}, nil
	}})
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()
	var rec recorder
	rec.attach(conn, "newCount")
	firstConnID := conn.ConnectionID()
	waitFor(t, "subscription", func() bool { return conn.Action(ctx, "slow", nil, 0) == nil })

	f.dropConns()
	waitFor(t, "reconnect", func() bool {
		return conn.Status() == StatusConnected && conn.ConnectionID() != firstConnID
	})
	if n := calls.Load(); n != 2 {
		t.Errorf("GetParams calls: got %d, want 2 (one per WebSocket open)", n)
	}
	// Callbacks run asynchronously, in order.
	waitFor(t, "status callbacks", func() bool {
		st := rec.statusList()
		return len(st) > 0 && st[len(st)-1] == StatusConnected
	})
	if got, want := rec.statusList(), []Status{StatusDisconnected, StatusConnecting, StatusConnected}; !slices.Equal(got, want) {
		t.Errorf("statuses: got %v, want %v", got, want)
	}
	if errs := rec.errors(); len(errs) == 0 || !IsRetryable(errs[0]) {
		t.Errorf("errors: got %v, want the lost connection reported", errs)
	}

	// The event subscription was renewed: a stateless increment reaches us.
	var who struct {
		Params map[string]string `json:"params"`
	}
	if err := conn.Action(ctx, "whoami", &who); err != nil || who.Params["token"] != "jwt-2" {
		t.Errorf("whoami after reconnect: got %v, %v; want jwt-2", who.Params, err)
	}
	if err := h.Action(ctx, "increment", nil, 3); err != nil {
		t.Fatalf("stateless increment: %v", err)
	}
	waitFor(t, "event after reconnect", func() bool { return slices.Contains(rec.eventInts(t), 3) })

	// A server close with a structured lifecycle reason also reconnects.
	secondConnID := conn.ConnectionID()
	f.closeConns(1001, "ws.going_away")
	waitFor(t, "second reconnect", func() bool {
		return conn.Status() == StatusConnected && conn.ConnectionID() != secondConnID
	})
	waitFor(t, "ws.going_away reported", func() bool {
		return slices.ContainsFunc(rec.errors(), func(err error) bool {
			return errors.Is(err, &ActorError{Group: "ws", Code: "going_away"})
		})
	})
}

func TestConnGetParamsFailsThenSucceeds(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f, WithReconnectBackoff(20*time.Millisecond, time.Second))
	ctx := testContext(t)
	var mu sync.Mutex
	var times []time.Time
	const failures = 3
	h := c.GetOrCreate("counter", []string{"gp"}, HandleOptions{GetParams: func(context.Context) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) <= failures {
			return nil, fmt.Errorf("token service unavailable (%d)", len(times))
		}
		return map[string]string{"token": "fresh"}, nil
	}})
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()

	mu.Lock()
	defer mu.Unlock()
	if len(times) != failures+1 {
		t.Fatalf("GetParams calls: got %d, want %d", len(times), failures+1)
	}
	// The delays between the attempts are jittered (TestBackoffFullJitter).
	f.mu.Lock()
	attempts := f.connectAttempts
	f.mu.Unlock()
	if attempts != 1 {
		t.Errorf("WebSocket opens: got %d, want 1 (failed GetParams makes no request)", attempts)
	}
}

func TestConnGetParamsFailureAfterConnect(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f, WithReconnectBackoff(30*time.Millisecond, 30*time.Millisecond))
	ctx := testContext(t)
	var failing atomic.Bool
	h := c.GetOrCreate("counter", []string{"gp2"}, HandleOptions{GetParams: func(ctx context.Context) (any, error) {
		if failing.Load() {
			return nil, errors.New("refresh token expired")
		}
		return "ok", nil
	}})
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()
	var rec recorder
	rec.attach(conn, "")

	failing.Store(true)
	f.dropConns()
	waitFor(t, "get_params_failed reported", func() bool {
		for _, err := range rec.errors() {
			if errors.Is(err, ErrGetParamsFailed) {
				return true
			}
		}
		return false
	})
	// An action issued while reconnecting fails with the attempt's error.
	err = conn.Action(ctx, "getCount", nil)
	var ae *ActorError
	if !errors.As(err, &ae) || ae.Code != "get_params_failed" || ae.Group != "client" {
		t.Errorf("pending action: got %v, want client.get_params_failed", err)
	}
	for _, err := range rec.errors() {
		if errors.Is(err, ErrGetParamsFailed) && errors.Unwrap(err).Error() != "refresh token expired" {
			t.Errorf("cause: got %v", errors.Unwrap(err))
		}
	}
	failing.Store(false)
	waitFor(t, "recovery", func() bool { return conn.Status() == StatusConnected })
	if err := conn.Action(ctx, "getCount", nil); err != nil {
		t.Errorf("action after recovery: %v", err)
	}
}

func TestConnActionWaitsForReconnect(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	gate := make(chan struct{}, 1)
	gate <- struct{}{} // the first connect passes
	h := c.GetOrCreate("counter", []string{"queue"}, HandleOptions{GetParams: func(ctx context.Context) (any, error) {
		select {
		case <-gate:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}})
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()
	f.dropConns()
	waitFor(t, "reconnecting", func() bool { return conn.Status() == StatusConnecting })
	done := make(chan error, 1)
	var n int
	go func() { done <- conn.Action(ctx, "increment", &n, 2) }()
	time.Sleep(20 * time.Millisecond) // the action is queued
	gate <- struct{}{}
	select {
	case err := <-done:
		if err != nil || n != 2 {
			t.Errorf("queued action: got %d, %v; want 2", n, err)
		}
	case <-ctx.Done():
		t.Fatal("queued action never completed")
	}
}

func TestConnCloseReasons(t *testing.T) {
	tests := []struct {
		reason    string
		errMsg    map[string]any
		retryable bool
	}{
		{reason: "client.get_params_failed", retryable: true},
		{reason: "ws.going_away", retryable: true},
		{reason: "guard.service_unavailable#ray1", retryable: true},
		{reason: "guard.actor_wake_retries_exceeded", retryable: true},
		{reason: "actor.restarting", retryable: true},
		{reason: "actor.stopped", retryable: true},
		{reason: "actor.not_found#ray2", retryable: true}, // stale actor behind a key
		{reason: "auth.unauthorized"},
		{reason: "auth.forbidden"},
		{reason: "user.unauthorized", errMsg: map[string]any{"actionId": nil, "group": "user", "code": "unauthorized", "message": "missing token"}},
		{reason: "core.internal_error#ray3"},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			f := newFakeEngine(t)
			f.connectHook = func(attempt int, _ *http.Request) *rejection {
				if attempt <= 2 {
					return &rejection{reason: tt.reason, errMsg: tt.errMsg}
				}
				return nil
			}
			c := newTestClient(t, f)
			var calls atomic.Int32
			h := c.GetOrCreate("counter", []string{"r"}, HandleOptions{GetParams: func(context.Context) (any, error) {
				calls.Add(1)
				return map[string]string{"token": "x"}, nil
			}})
			conn, err := h.Connect(testContext(t))
			if tt.retryable {
				if err != nil {
					t.Fatalf("Connect: got %v, want success after retries", err)
				}
				conn.Close()
				if n := calls.Load(); n != 3 {
					t.Errorf("GetParams calls: got %d, want 3", n)
				}
				return
			}
			if err == nil {
				conn.Close()
				t.Fatalf("Connect: got success, want terminal error %s", tt.reason)
			}
			group, code, _, _ := parseCloseReason(tt.reason)
			var ae *ActorError
			if !errors.As(err, &ae) || ae.Group != group || ae.Code != code {
				t.Errorf("Connect: got %v, want %s.%s", err, group, code)
			}
			if tt.errMsg != nil && ae.Message != "missing token" {
				t.Errorf("message: got %q, want the Error message's", ae.Message)
			}
			if IsRetryable(err) {
				t.Errorf("IsRetryable(%v): got true", err)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("GetParams calls: got %d, want 1 (no retry)", n)
			}
		})
	}
}

func TestConnTerminalAfterConnected(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	f.connectHook = func(attempt int, _ *http.Request) *rejection {
		if attempt > 1 {
			return &rejection{reason: "auth.unauthorized"}
		}
		return nil
	}
	conn, err := c.GetForID("counter", "unused", HandleOptions{}).Connect(ctx)
	if err == nil {
		conn.Close()
		t.Fatal("Connect to a missing id: got success, want actor.not_found")
	}
	var ae *ActorError
	if !errors.As(err, &ae) || ae.Code != "not_found" || ae.RayID != "ray-ws" {
		t.Errorf("missing id: got %v, want actor.not_found with ray id (not retried for id targets)", err)
	}

	conn, err = c.GetOrCreate("counter", []string{"term"}, HandleOptions{}).Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()
	var rec recorder
	rec.attach(conn, "")
	f.dropConns()
	waitFor(t, "idle after terminal error", func() bool { return conn.Status() == StatusIdle })
	waitFor(t, "auth.unauthorized reported", func() bool {
		errs := rec.errors()
		return len(errs) > 0 && errors.Is(errs[len(errs)-1], &ActorError{Group: "auth", Code: "unauthorized"})
	})
	if err := conn.Action(ctx, "getCount", nil); !errors.Is(err, &ActorError{Group: "auth"}) {
		t.Errorf("action after terminal error: got %v, want auth.unauthorized", err)
	}
	waitFor(t, "no reconnect", func() bool { return len(connGoroutines()) == 0 })
}

func TestConnCloseNoLeak(t *testing.T) {
	f := newFakeEngine(t)
	check := checkLeaks(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	conn, err := c.GetOrCreate("counter", []string{"leak"}, HandleOptions{}).Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	var rec recorder
	rec.attach(conn, "newCount")
	if err := conn.Action(ctx, "increment", nil, 1); err != nil {
		t.Fatal(err)
	}
	pending := make(chan error, 1)
	go func() { pending <- conn.Action(ctx, "slow", nil, 500) }()
	time.Sleep(30 * time.Millisecond)

	start := time.Now()
	if err := conn.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > 2*closeGrace {
		t.Errorf("Close took %v", d)
	}
	if err := <-pending; !errors.Is(err, ErrClosed) {
		t.Errorf("pending action: got %v, want ErrClosed", err)
	}
	if got := rec.statusList(); got[len(got)-1] != StatusIdle {
		t.Errorf("final status: got %v, want idle", got)
	}
	if err := conn.Action(ctx, "getCount", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("action after Close: got %v, want ErrClosed", err)
	}
	conn.Close() // idempotent
	waitFor(t, "server saw the close", func() bool { return f.connCount() == 0 })
	c.Close()
	check()
}

func TestConnCloseWhileRetrying(t *testing.T) {
	f := newFakeEngine(t)
	check := checkLeaks(t)
	c := newTestClient(t, f, WithReconnectBackoff(time.Hour, time.Hour))
	var calls atomic.Int32
	h := c.GetOrCreate("counter", []string{"retry"}, HandleOptions{GetParams: func(context.Context) (any, error) {
		calls.Add(1)
		return nil, errors.New("no token yet")
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.Connect(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrGetParamsFailed) {
		t.Errorf("Connect: got %v, want DeadlineExceeded and get_params_failed", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Connect returned after %v, want about 100ms", d)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("GetParams calls: got %d, want 1", n)
	}

	// Client.Close ends connections in any state.
	blocked := c.GetOrCreate("counter", []string{"blocked"}, HandleOptions{GetParams: func(ctx context.Context) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	done := make(chan error, 1)
	go func() {
		_, err := blocked.Connect(context.Background())
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Connect during Client.Close: got %v, want ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Connect did not return after Client.Close")
	}
	if _, err := blocked.Connect(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Client.Close: got %v, want ErrClosed", err)
	}
	check()
}

func TestConnCloseFromCallback(t *testing.T) {
	f := newFakeEngine(t)
	check := checkLeaks(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	conn, err := c.GetOrCreate("counter", []string{"cb"}, HandleOptions{}).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	conn.On("newCount", func(e Event) {
		// Callbacks may call back into the Conn, including Close.
		var n int
		if err := conn.Action(ctx, "getCount", &n); err != nil || n != 1 {
			t.Errorf("action from callback: got %d, %v", n, err)
		}
		conn.Close()
		close(closed)
	})
	// The fake runs actions concurrently: the callback may close the Conn
	// before increment's own response arrives.
	if err := conn.Action(ctx, "increment", nil, 1); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("callback did not run")
	}
	waitFor(t, "callback goroutine to end", func() bool { return len(connGoroutines()) == 0 })
	c.Close()
	check()
}

// TestConnRestartSignals: what a restarting engine answers
// (namespace.not_found, actor.no_runner_config_configured, any guard.*
// code, pegboard's route timeouts) is terminal for the first connection (a
// misconfigured namespace or pool fails at once, as in the JS client) but
// retried once the Conn has been connected; codes that are final
// (auth.forbidden) stay final.
func TestConnRestartSignals(t *testing.T) {
	for _, tc := range []struct {
		group, code string
		retried     bool
	}{
		{"namespace", "not_found", true},
		{"actor", "no_runner_config_configured", true},
		{"guard", "route_resolve_query_timeout", true},
		{"guard", "actor_ready_timeout", true},
		{"pegboard", "route_resolve_query_timeout", true},
		{"pegboard", "route_wake_signal_timeout", true},
		{"pegboard", "actor_not_found", false},
		{"auth", "forbidden", false},
	} {
		t.Run(tc.group+"."+tc.code, func(t *testing.T) {
			testRestartSignal(t, tc.group, tc.code, tc.retried)
		})
	}
}

func testRestartSignal(t *testing.T, group, code string, retried bool) {
	want := &ActorError{Group: group, Code: code}
	f := newFakeEngine(t)
	f.connectHook = func(attempt int, _ *http.Request) *rejection {
		if attempt == 1 {
			return &rejection{reason: group + "." + code + "#ray1"}
		}
		return nil
	}
	c := newTestClient(t, f)
	h := c.GetOrCreate("counter", []string{"restart"}, HandleOptions{Params: map[string]string{"token": "x"}})
	_, err := h.Connect(testContext(t))
	if !errors.Is(err, want) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first Connect: got %v, want terminal %s.%s", err, group, code)
	}

	f.mu.Lock()
	f.connectHook = func(attempt int, _ *http.Request) *rejection {
		if attempt == 3 || attempt == 4 { // the reconnect after the drop, twice
			return &rejection{reason: group + "." + code + "#ray2"}
		}
		return nil
	}
	f.mu.Unlock()
	conn, err := h.Connect(testContext(t))
	if err != nil {
		t.Fatalf("second Connect: %v", err)
	}
	defer conn.Close()
	var rec recorder
	rec.attach(conn, "")
	first := conn.ConnectionID()
	f.dropConns()
	if !retried {
		waitFor(t, "the connection to give up", func() bool { return conn.Status() == StatusIdle })
		// The engine's side of the refused socket closes on its own time.
		waitFor(t, "no open socket after giving up", func() bool { return f.connCount() == 0 })
		return
	}
	waitFor(t, "reconnected past "+group+"."+code, func() bool {
		return conn.Status() == StatusConnected && conn.ConnectionID() != first
	})
	n := 0
	for _, err := range rec.errors() {
		if errors.Is(err, want) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%s.%s reported %d times, want 2 (errors %v)", group, code, n, rec.errors())
	}
	if slices.Contains(rec.statusList(), StatusIdle) {
		t.Errorf("statuses: got %v, want no idle", rec.statusList())
	}
}

// TestBackoffFullJitter: attempt n waits uniformly between zero and
// min(max, base·2ⁿ), so clients cut off together spread their reconnects.
func TestBackoffFullJitter(t *testing.T) {
	const base, limit = 20 * time.Millisecond, time.Second
	for n, ceiling := range []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 160 * time.Millisecond,
		320 * time.Millisecond, 640 * time.Millisecond, time.Second, time.Second} {
		if got := backoffCeiling(base, limit, n); got != ceiling {
			t.Errorf("ceiling of attempt %d: got %v, want %v", n, got, ceiling)
		}
		lo, hi := ceiling, time.Duration(0)
		for range 1000 {
			d := fullJitter(ceiling)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", n, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// 1,000 uniform draws all in one quarter: probability 0.75^1000.
		if lo > ceiling/4 || hi < ceiling*3/4 {
			t.Errorf("attempt %d: delays spread over [%v, %v] of [0, %v], want the whole range", n, lo, hi, ceiling)
		}
	}
	if got := backoffCeiling(base, limit, 64); got != limit {
		t.Errorf("ceiling of attempt 64: got %v, want the cap %v", got, limit)
	}
}
