package rivetclient

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
)

// TestOpenRegistersBeforeConnecting: Open returns at once; handlers
// registered then see the first attempts' errors and the first events, and
// WaitConnected returns once the connection is up.
func TestOpenRegistersBeforeConnecting(t *testing.T) {
	f := newFakeEngine(t)
	f.connectHook = func(attempt int, _ *http.Request) *rejection {
		if attempt <= 2 {
			return &rejection{reason: "guard.service_unavailable#ray"}
		}
		return nil
	}
	c := newTestClient(t, f)
	ctx := testContext(t)
	conn, err := c.GetOrCreate("counter", []string{"open"}, HandleOptions{Params: map[string]string{"token": "x"}}).Open()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var errs []error
	conn.OnError(func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() })
	first, err := conn.Events(ctx, "newCount", 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.WaitConnected(ctx); err != nil {
		t.Fatalf("WaitConnected: %v", err)
	}
	if err := conn.WaitConnected(ctx); err != nil || conn.Status() != StatusConnected {
		t.Fatalf("WaitConnected when connected: %v, status %v", err, conn.Status())
	}
	n, err := Call[int](ctx, conn, "increment", 3)
	if err != nil || n != 3 {
		t.Fatalf("Call[int](increment, 3): %d, %v", n, err)
	}
	var got int
	if err := (<-first.C).Decode(&got); err != nil || got != 3 {
		t.Errorf("first event: %d, %v; want 3", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) < 2 || !errors.Is(errs[0], &ActorError{Group: "guard", Code: "service_unavailable"}) {
		t.Errorf("errors seen by a handler registered at Open: %v, want the two refused attempts", errs)
	}
}

// TestWaitConnectedTerminal: WaitConnected returns the terminal error of a
// Conn that gave up, and ErrClosed for a closed one.
func TestWaitConnectedTerminal(t *testing.T) {
	f := newFakeEngine(t)
	f.connectHook = func(int, *http.Request) *rejection { return &rejection{reason: "auth.forbidden#ray"} }
	c := newTestClient(t, f)
	conn, err := c.GetOrCreate("counter", []string{"denied"}, HandleOptions{}).Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.WaitConnected(testContext(t)); !errors.Is(err, &ActorError{Group: "auth", Code: "forbidden"}) {
		t.Errorf("WaitConnected: %v, want auth.forbidden", err)
	}
	conn.Close()

	f.mu.Lock()
	f.connectHook = nil
	f.mu.Unlock()
	conn, err = c.GetOrCreate("counter", []string{"closed"}, HandleOptions{Params: map[string]string{"token": "x"}}).Open()
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := conn.WaitConnected(testContext(t)); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitConnected after Close: %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	conn, _ = c.GetOrCreate("counter", []string{"late"}, HandleOptions{Params: map[string]string{"token": "x"}}).Open()
	defer conn.Close()
	if err := conn.WaitConnected(ctx); conn.Status() != StatusConnected && !errors.Is(err, context.Canceled) {
		t.Errorf("WaitConnected with an ended context: %v, want context.Canceled", err)
	}
}

// TestOnceAndSubscribe: Once fires for one event only; Subscribe decodes
// each event's first argument into its type.
func TestOnceAndSubscribe(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	conn, err := c.GetOrCreate("counter", []string{"once"}, HandleOptions{Params: map[string]string{"token": "x"}}).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	var once, typed []int
	conn.Once("newCount", func(e Event) {
		var n int
		_ = e.Decode(&n)
		mu.Lock()
		once = append(once, n)
		mu.Unlock()
	})
	Subscribe(conn, "newCount", func(n int, err error) {
		if err != nil {
			t.Errorf("Subscribe: %v", err)
		}
		mu.Lock()
		typed = append(typed, n)
		mu.Unlock()
	})
	for _, d := range []int{1, 2, 3} {
		if err := conn.Action(ctx, "increment", nil, d); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three typed events", func() bool { mu.Lock(); defer mu.Unlock(); return len(typed) == 3 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(once, []int{1}) || !slices.Equal(typed, []int{1, 3, 6}) {
		t.Errorf("Once saw %v, want [1]; Subscribe saw %v, want [1 3 6]", once, typed)
	}
}

// TestEventsDropsOldest: a reader that falls behind loses the oldest
// events, never the newest, and the stream ends with its context.
func TestEventsDropsOldest(t *testing.T) {
	f := newFakeEngine(t)
	check := checkLeaks(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	conn, err := c.GetOrCreate("counter", []string{"stream"}, HandleOptions{Params: map[string]string{"token": "x"}}).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	s, err := conn.Events(sctx, "newCount", 2)
	if err != nil {
		t.Fatal(err)
	}
	var all []int // what every event said, in order, from a second subscriber
	var mu sync.Mutex
	conn.On("newCount", func(e Event) { var n int; _ = e.Decode(&n); mu.Lock(); all = append(all, n); mu.Unlock() })
	for range 5 {
		if err := conn.Action(ctx, "increment", nil, 1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "five events delivered", func() bool { mu.Lock(); defer mu.Unlock(); return len(all) == 5 })
	var got []int
	for range 2 {
		var n int
		if err := (<-s.C).Decode(&n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if !slices.Equal(got, []int{4, 5}) || s.Dropped() != 3 {
		t.Errorf("read %v with %d dropped, want [4 5] and 3 dropped", got, s.Dropped())
	}
	cancel()
	waitFor(t, "the stream to close with its context", func() bool {
		select {
		case _, ok := <-s.C:
			return !ok
		default:
			return false
		}
	})
	if _, err := conn.Events(ctx, "x", 0); err == nil {
		t.Error("Events with buffer 0: no error")
	}
	// A stream left open ends with its Conn, its goroutine with it.
	open, err := conn.Events(ctx, "newCount", 1)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	waitFor(t, "the stream to close with its Conn", func() bool {
		select {
		case _, ok := <-open.C:
			return !ok
		default:
			return false
		}
	})
	c.Close()
	check()
}

// TestWithParams: a derived handle sends its own params, on stateless
// calls and connections, and leaves the original's alone.
func TestWithParams(t *testing.T) {
	f := newFakeEngine(t)
	c := newTestClient(t, f)
	ctx := testContext(t)
	base := c.GetOrCreate("counter", []string{"override"}, HandleOptions{Params: map[string]string{"token": "base"}})
	type who struct {
		Params map[string]string `json:"params"`
	}
	for _, tc := range []struct {
		h    *Handle
		want string
	}{
		{base.WithParams(map[string]string{"token": "alice"}), "alice"},
		{base.WithGetParams(func(context.Context) (any, error) { return map[string]string{"token": "fresh"}, nil }), "fresh"},
		{base, "base"},
	} {
		got, err := Call[who](ctx, tc.h, "whoami")
		if err != nil || got.Params["token"] != tc.want {
			t.Errorf("stateless whoami: %v, %v; want token %q", got.Params, err, tc.want)
		}
		conn, err := tc.h.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, err = Call[who](ctx, conn, "whoami"); err != nil || got.Params["token"] != tc.want {
			t.Errorf("connection whoami: %v, %v; want token %q", got.Params, err, tc.want)
		}
		conn.Close()
	}
}
