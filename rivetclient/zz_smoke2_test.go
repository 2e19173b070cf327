package rivetclient

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"
)

func TestRealEngineReconnect(t *testing.T) {
	ep := os.Getenv("RIVET_SMOKE_ENDPOINT")
	if ep == "" {
		t.Skip("no RIVET_SMOKE_ENDPOINT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := New(ep, WithNamespace("default"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var calls atomic.Int32
	h := c.GetOrCreate("counter", []string{fmt.Sprint("rc-", time.Now().UnixNano())}, HandleOptions{GetParams: func(context.Context) (any, error) {
		n := calls.Add(1)
		return map[string]any{"token": fmt.Sprintf("jwt-%d", n)}, nil
	}})
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.OnError(func(err error) { t.Logf("+%v OnError: %v (retryable %t)", time.Since(start).Round(time.Millisecond), err, IsRetryable(err)) })
	conn.OnStatusChange(func(s Status) { t.Logf("+%v status: %v", time.Since(start).Round(time.Millisecond), s) })
	events := make(chan int, 10)
	conn.On("newCount", func(e Event) { var v int; e.Decode(&v); events <- v })
	var n int
	if err := conn.Action(ctx, "increment", &n, 1); err != nil {
		t.Fatal(err)
	}
	<-events
	out, err := exec.Command("bash", "-c", os.Getenv("RIVET_SMOKE_RESTART")).CombinedOutput()
	t.Logf("restart: %s %v", out, err)
	time.Sleep(3 * time.Second)
	actx, acancel := context.WithTimeout(ctx, 20*time.Second)
	err = conn.Action(actx, "increment", &n, 1)
	acancel()
	t.Logf("conn action after restart: %d %v status %v calls %d", n, err, conn.Status(), calls.Load())
	var who map[string]any
	if err := conn.Action(ctx, "whoami", &who); err != nil {
		t.Fatal(err)
	}
	t.Logf("after reconnect whoami %v, GetParams calls %d", who["params"], calls.Load())
	if err := h.Action(ctx, "increment", &n, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-events:
		t.Logf("event after reconnect: %d", v)
	case <-time.After(10 * time.Second):
		t.Fatal("no event after reconnect")
	}
}
