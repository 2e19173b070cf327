package rivetclient_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// A service opens its connection without blocking, registers what it
// listens to before the first connection, then waits for it where needed.
// Events arrive on a bounded stream; Call decodes into the type it is given.
func ExampleHandle_Open() {
	engine := startExampleEngine()
	defer engine.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	client, err := rivetclient.New(engine.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	conn, err := client.GetOrCreate("counter", []string{"my-counter"}, rivetclient.HandleOptions{}).Open()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.OnError(func(err error) { log.Printf("connection: %v", err) })
	counts, err := conn.Events(ctx, "newCount", 64) // the oldest are dropped if we fall behind
	if err != nil {
		log.Fatal(err)
	}
	if err := conn.WaitConnected(ctx); err != nil {
		log.Fatal(err)
	}

	n, err := rivetclient.Call[int](ctx, conn, "increment", 2)
	if err != nil {
		log.Fatal(err)
	}
	var event int
	if err := (<-counts.C).Decode(&event); err != nil {
		log.Fatal(err)
	}
	fmt.Println("returned:", n, "event:", event)
	// Output: returned: 2 event: 2
}

// Subscribe decodes each event's first argument into a type.
func ExampleSubscribe() {
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
	rivetclient.Subscribe(conn, "newCount", func(n int, err error) {
		if err == nil {
			counts <- n
		}
	})
	if err := conn.Action(ctx, "increment", nil, 7); err != nil {
		log.Fatal(err)
	}
	fmt.Println("newCount:", <-counts)
	// Output: newCount: 7
}

// Each caller's connection carries its own params: WithParams overrides the
// handle's for the handle it returns, which Once listens on.
func ExampleHandle_WithParams() {
	engine := startExampleEngine()
	defer engine.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	client, err := rivetclient.New(engine.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	counter := client.GetOrCreate("counter", []string{"my-counter"}, rivetclient.HandleOptions{
		Params: map[string]string{"token": "service-token"},
	})

	conn, err := counter.WithParams(map[string]string{"token": "alice-token"}).Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	first := make(chan rivetclient.Event, 1)
	conn.Once("newCount", func(e rivetclient.Event) { first <- e })

	who, err := rivetclient.Call[string](ctx, conn, "whoami")
	if err != nil {
		log.Fatal(err)
	}
	stateless, err := rivetclient.Call[string](ctx, counter, "whoami")
	if err != nil {
		log.Fatal(err)
	}
	if err := conn.Action(ctx, "increment", nil, 3); err != nil {
		log.Fatal(err)
	}
	fmt.Println("connection:", who, "handle:", stateless, "first event:", string((<-first).Args[0]))
	// Output: connection: alice-token handle: service-token first event: 3
}

// The encoding is chosen per client; bare (the JS client's default) is the
// default. Values and errors are the same in all three.
func ExampleWithEncoding() {
	engine := startExampleEngine()
	defer engine.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	for _, enc := range []rivetclient.Encoding{rivetclient.EncodingBARE, rivetclient.EncodingCBOR, rivetclient.EncodingJSON} {
		client, err := rivetclient.New(engine.URL, rivetclient.WithEncoding(enc))
		if err != nil {
			log.Fatal(err)
		}
		n, err := rivetclient.Call[int](ctx, client.GetOrCreate("counter", []string{"my-counter"}, rivetclient.HandleOptions{}), "increment", 1)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(enc, n)
		client.Close()
	}
	// Output:
	// bare 1
	// cbor 2
	// json 3
}
