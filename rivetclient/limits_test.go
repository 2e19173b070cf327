package rivetclient

import (
	"strings"
	"testing"
)

// What the client reads from an actor is bounded: a response body over
// WithMaxMessageSize fails the call, a message over it ends the socket,
// and the Conn comes back.
func TestMaxMessageSize(t *testing.T) {
	f := newFakeEngine(t)
	check := checkLeaks(t)
	c := newTestClient(t, f, WithMaxMessageSize(1024))
	ctx := testContext(t)
	h := c.GetOrCreate("counter", []string{"max-message"}, HandleOptions{})
	big := `"` + strings.Repeat("x", 2000) + `"`
	var s string
	if err := h.Action(ctx, "raw", &s, `"small"`); err != nil || s != "small" {
		t.Fatalf("small output: got %q, %v", s, err)
	}
	if err := h.Action(ctx, "raw", &s, big); err == nil || !strings.Contains(err.Error(), "larger than 1024 bytes") {
		t.Errorf("stateless action with a 2 KB output: got %v, want a size error", err)
	}

	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	first := conn.ConnectionID()
	if err := conn.Action(ctx, "raw", &s, big); err == nil {
		t.Errorf("connection action with a 2 KB output: got no error")
	}
	waitFor(t, "the reconnect", func() bool {
		return conn.Status() == StatusConnected && conn.ConnectionID() != first
	})
	if err := conn.Action(ctx, "raw", &s, `"small"`); err != nil || s != "small" {
		t.Errorf("after the reconnect: got %q, %v", s, err)
	}
	conn.Close()
	c.Close()
	check()

	if _, err := New("http://127.0.0.1:1", WithMaxMessageSize(0)); err == nil {
		t.Errorf("WithMaxMessageSize(0): got no error")
	}
}
