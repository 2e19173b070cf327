package rivetclient_test

import (
	"context"
	"fmt"
	"log"
	"sync/atomic"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// Call an action with a stateless request.
func ExampleHandle_Action() {
	engine := startExampleEngine() // stands in for http://127.0.0.1:6420
	defer engine.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	client, err := rivetclient.New(engine.URL, rivetclient.WithNamespace("default"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	counter := client.GetOrCreate("counter", []string{"my-counter"}, rivetclient.HandleOptions{
		Params: map[string]string{"token": "static-token"},
	})
	var count int
	if err := counter.Action(ctx, "increment", &count, 5); err != nil {
		log.Fatal(err)
	}
	fmt.Println("count:", count)
	// Output: count: 5
}

// Open a connection, subscribe to an event and call an action over it.
func ExampleHandle_Connect() {
	engine := startExampleEngine()
	defer engine.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	client, err := rivetclient.New(engine.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	conn, err := client.GetOrCreate("counter", []string{"my-counter"}, rivetclient.HandleOptions{}).Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	counts := make(chan int, 1)
	unsubscribe := conn.On("newCount", func(e rivetclient.Event) {
		var n int
		if err := e.Decode(&n); err == nil {
			counts <- n
		}
	})
	defer unsubscribe()

	var count int
	if err := conn.Action(ctx, "increment", &count, 3); err != nil {
		log.Fatal(err)
	}
	fmt.Println("increment returned", count)
	fmt.Println("newCount event:", <-counts)
	// Output:
	// increment returned 3
	// newCount event: 3
}

// Refresh a JWT before every connection attempt: GetParams runs before the
// first connect and again before each reconnect (and before each stateless
// call), so the actor always sees a fresh token.
func ExampleHandleOptions_getParams() {
	engine := startExampleEngine()
	defer engine.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	client, err := rivetclient.New(engine.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	var issued atomic.Int32
	refreshJWT := func(ctx context.Context) (any, error) {
		// A real implementation asks its identity provider, with ctx.
		return map[string]string{"token": fmt.Sprintf("jwt-%d", issued.Add(1))}, nil
	}
	h := client.GetOrCreate("counter", []string{"my-counter"}, rivetclient.HandleOptions{GetParams: refreshJWT})

	conn, err := h.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var token string
	if err := conn.Action(ctx, "whoami", &token); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected with", token)

	reconnected := make(chan struct{})
	conn.OnStatusChange(func(s rivetclient.Status) {
		if s == rivetclient.StatusConnected {
			close(reconnected)
		}
	})
	conn.OnError(func(err error) {
		fmt.Println("connection error:", err, "- retryable:", rivetclient.IsRetryable(err))
	})
	engine.DropConnections() // e.g. the gateway restarts
	<-reconnected
	if err := conn.Action(ctx, "whoami", &token); err != nil {
		log.Fatal(err)
	}
	fmt.Println("reconnected with", token)
	// Output:
	// connected with jwt-1
	// connection error: ws.going_away: Connection closed: ws.going_away - retryable: true
	// reconnected with jwt-2
}
