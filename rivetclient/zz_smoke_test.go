package rivetclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestRealEngineSmoke(t *testing.T) {
	ep := os.Getenv("RIVET_SMOKE_ENDPOINT")
	if ep == "" {
		t.Skip("no RIVET_SMOKE_ENDPOINT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := New(ep, WithNamespace("default"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := fmt.Sprintf("smoke-%d", time.Now().UnixNano())
	var calls atomic.Int32
	h := c.GetOrCreate("counter", []string{key, "part 2/é"}, HandleOptions{GetParams: func(context.Context) (any, error) {
		n := calls.Add(1)
		if n == 2 {
			return nil, errors.New("transient")
		}
		return map[string]any{"token": fmt.Sprintf("jwt-%d-é", n)}, nil
	}})
	var n int
	if err := h.Action(ctx, "increment", &n, 2); err != nil {
		t.Fatalf("stateless increment: %v", err)
	}
	t.Logf("increment -> %d", n)
	var who map[string]any
	err = h.Action(ctx, "whoami", &who)
	t.Logf("whoami with failing GetParams -> %v %v", who, err)
	if err := h.Action(ctx, "whoami", &who); err != nil {
		t.Fatal(err)
	}
	t.Logf("whoami -> %v", who)
	err = h.Action(ctx, "fail", nil)
	var ae *ActorError
	t.Logf("fail -> %#v", err)
	if !errors.As(err, &ae) || ae.Code != "custom_fail" {
		t.Errorf("fail: %v", err)
	}
	conn, err := h.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	defer conn.Close()
	events := make(chan int, 10)
	conn.On("newCount", func(e Event) { var v int; e.Decode(&v); events <- v })
	conn.OnError(func(err error) { t.Logf("OnError: %v (retryable %t)", err, IsRetryable(err)) })
	conn.OnStatusChange(func(s Status) { t.Logf("status: %v", s) })
	if err := conn.Action(ctx, "whoami", &who); err != nil {
		t.Fatal(err)
	}
	t.Logf("conn whoami -> %v", who)
	done := make(chan string, 3)
	for _, ms := range []int{300, 100, 0} {
		go func() { var r int; err := conn.Action(ctx, "slow", &r, ms); done <- fmt.Sprint(r, err) }()
	}
	for range 3 {
		t.Logf("slow done: %s", <-done)
	}
	if err := conn.Action(ctx, "increment", &n, 3); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-events:
		t.Logf("event newCount %d (action %d)", v, n)
	case <-ctx.Done():
		t.Fatal("no event")
	}
	res, err := h.Send(ctx, "jobs", map[string]any{"x": BigInt("12345678901234567890")}, SendOptions{Wait: true, Timeout: 5 * time.Second})
	t.Logf("send -> %+v %s %v", res, res.Response, err)
	resp, err := h.Fetch(ctx, http.MethodGet, "/hello/world?x=1", nil, http.Header{"X-Custom": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("fetch -> %d %.300s", resp.StatusCode, body)
	ws, err := h.WebSocket(ctx, "raw/path?y=2")
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := ws.ReadMessage()
	t.Logf("raw ws -> %s %v", m, err)
	ws.Close()
	id, err := h.Resolve(ctx)
	t.Logf("resolve -> %s %v (conn actor %s)", id, err, conn.ActorID())
	byID := c.GetForID("counter", id, HandleOptions{Params: map[string]string{"token": "x"}})
	if err := byID.Action(ctx, "getCount", &n); err != nil {
		t.Fatal(err)
	}
	t.Logf("by id getCount -> %d", n)
	got, err := c.Get("counter", []string{key, "part 2/é"}, HandleOptions{}).Resolve(ctx)
	t.Logf("get resolve -> %s %v", got, err)
	created, err := c.Create(ctx, "counter", []string{key + "-created"}, map[string]int{"a": 1}, HandleOptions{Params: map[string]string{"token": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := created.Action(ctx, "increment", &n, 7); err != nil {
		t.Fatal(err)
	}
	t.Logf("created -> %d", n)
	noTok := c.GetOrCreate("counter", []string{key}, HandleOptions{})
	_, err = noTok.Connect(ctx)
	t.Logf("connect without token -> %v (retryable %t)", err, IsRetryable(err))
	cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
	defer ccancel()
	_, err = c.Get("counter", []string{key + "-missing"}, HandleOptions{Params: map[string]string{"token": "x"}}).Connect(cctx)
	t.Logf("connect get missing -> %v", err)
	err = c.Get("counter", []string{key + "-missing"}, HandleOptions{Params: map[string]string{"token": "x"}}).Action(ctx, "getCount", nil)
	t.Logf("action get missing -> %v", err)
}
