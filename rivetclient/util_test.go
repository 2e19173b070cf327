package rivetclient

import (
	"context"
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds every wait in the tests.
const testTimeout = 5 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newTestClient returns a client for the fake engine with fast retries.
func newTestClient(t *testing.T, f *fakeEngine, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithReconnectBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)
	c, err := New(f.URL(), opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.retry = statelessRetry{lifecycleAttempts: 5, lifecycleBase: time.Millisecond, lifecycleMax: 4 * time.Millisecond, staleDelay: time.Millisecond}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds or the test timeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// connGoroutines returns the stacks of goroutines owned by a Conn.
func connGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var owned []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "rivetclient.(*Conn).") || strings.Contains(g, "rivetclient.(*dispatcher).") {
			owned = append(owned, g)
		}
	}
	return owned
}

// checkLeaks records the goroutine count; the returned function fails the
// test unless, after the code under test has closed everything, no Conn
// goroutine is left and the count is back to the baseline within a
// bounded wait (HTTP keep-alive and server goroutines wind down
// asynchronously).
func checkLeaks(t *testing.T) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		// Close returns once the Conn goroutines have finished their work;
		// give them a moment to return from their last frame.
		deadline := time.Now().Add(time.Second)
		for owned := connGoroutines(); len(owned) > 0; owned = connGoroutines() {
			if time.Now().After(deadline) {
				t.Errorf("Conn goroutines still running after Close:\n%s", strings.Join(owned, "\n\n"))
				break
			}
			time.Sleep(time.Millisecond)
		}
		deadline = time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: got %d, want <= %d\n%s", runtime.NumGoroutine(), before, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// encodings are the client's encodings, the default first.
var encodings = []Encoding{EncodingBARE, EncodingCBOR, EncodingJSON}

// forEachEncoding runs test as one subtest per encoding.
func forEachEncoding(t *testing.T, test func(*testing.T, Encoding)) {
	for _, enc := range encodings {
		t.Run(string(enc), func(t *testing.T) { test(t, enc) })
	}
}

func mustCodec(t *testing.T, enc Encoding) codec {
	t.Helper()
	c, ok := codecFor(enc)
	if !ok {
		t.Fatalf("no codec for %q", enc)
	}
	return c
}

// decodedBody is a request body the client sent in enc, in the JSON shape.
func decodedBody(t *testing.T, enc Encoding, kind, body string) string {
	t.Helper()
	j, err := serverDecode(enc, kind, []byte(body))
	if err != nil {
		t.Fatalf("decode %s %s body %x: %v", enc, kind, body, err)
	}
	return string(j)
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
