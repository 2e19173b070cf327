package rivetclient

import (
	"slices"
	"sync"
	"testing"
)

// A handler that falls behind costs the oldest waiting events, not memory;
// status changes queued behind it are all delivered.
func TestSlowHandlerDropsOldestEvents(t *testing.T) {
	f := newFakeEngine(t)
	check := checkLeaks(t)
	c := newTestClient(t, f, WithEventBuffer(4))
	ctx := testContext(t)
	h := c.GetOrCreate("counter", []string{"slow-handler"}, HandleOptions{})
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()

	var mu sync.Mutex
	var got []int
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	conn.On("newCount", func(ev Event) {
		var n int
		if err := ev.Decode(&n); err != nil {
			t.Errorf("decode: %v", err)
		}
		once.Do(func() { close(entered); <-release })
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	})
	var statuses []Status
	conn.OnStatusChange(func(s Status) {
		mu.Lock()
		statuses = append(statuses, s)
		mu.Unlock()
	})

	if err := conn.Action(ctx, "increment", nil, 1); err != nil {
		t.Fatalf("increment: %v", err)
	}
	<-entered // the handler is stuck in the first event
	for range 19 {
		if err := conn.Action(ctx, "increment", nil, 1); err != nil {
			t.Fatalf("increment: %v", err)
		}
	}
	// 19 more events for a buffer of 4: 15 are dropped, oldest first.
	waitFor(t, "15 dropped events", func() bool { return conn.DroppedEvents() == 15 })
	// A reconnect while the events wait: its status changes are kept.
	f.dropConns()
	waitFor(t, "the reconnect", func() bool { return f.connCount() == 1 && conn.Status() == StatusConnected })
	close(release)
	waitFor(t, "the waiting events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 5 && len(statuses) >= 2 && statuses[len(statuses)-1] == StatusConnected
	})
	mu.Lock()
	delivered, seen := slices.Clone(got), slices.Clone(statuses)
	mu.Unlock()
	if want := []int{1, 17, 18, 19, 20}; !slices.Equal(delivered, want) {
		t.Errorf("delivered %v, want %v (the first, then the newest four)", delivered, want)
	}
	if seen[0] != StatusDisconnected {
		t.Errorf("statuses %v, want disconnected … connected", seen)
	}
	if n := conn.DroppedEvents(); n != 15 {
		t.Errorf("DroppedEvents: %d, want 15", n)
	}
	conn.Close()
	c.Close()
	check()
}

func TestEventBufferOption(t *testing.T) {
	if _, err := New("http://127.0.0.1:1", WithEventBuffer(0)); err == nil {
		t.Errorf("WithEventBuffer(0): got no error")
	}
	if _, err := New("http://127.0.0.1:1", WithEncoding("msgpack")); err == nil {
		t.Errorf("WithEncoding(msgpack): got no error")
	}
}
