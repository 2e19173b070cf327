package integration

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// clientBenchInFlight is how many actions BenchmarkClientActions keeps in
// flight on its one connection.
var clientBenchInFlight = flag.Int("client-bench-inflight", 16,
	"BenchmarkClientActions: actions in flight on the one connection (1 = strictly sequential round trips)")

// BenchmarkClientActions measures actions per second over one Conn,
// straight to the engine and through the gateway, side by side in one run
// against the same engine:
//
//	go test -run=NONE -bench=BenchmarkClientActions -benchtime=2000x ./integration
//
// Each iteration is one action (getCount) on the connection; 16 of them are
// in flight at a time (-args -client-bench-inflight=N to change it).
// Sequential round trips (N=1) are dominated by the upstream itself: engine
// 2.3.19 with the RivetKit actor server answers every other action ~45ms
// late (a delayed-ACK stall between them; the JS client sees the same),
// which hides anything the gateway adds and makes 2000 actions take a
// minute per path.
//
// Both connections are opened and warmed up before either is measured; the
// sub-benchmarks run one after the other (direct, then gateway) and the
// ratio gateway/direct is printed at the end. Use -count to repeat the pair
// (each repetition starts a fresh engine and gateway).
func BenchmarkClientActions(b *testing.B) {
	up := harness.StartUpstream(b)
	gw := harness.StartGateway(b, `
server:
  listen: "{{LISTEN}}"
  shutdown_timeout: 5s
admin:
  listen: "{{ADMIN}}"
log:
  level: info
upstream:
  url: "`+up.URL+`"
auth:
  api_keys:
    keys:
      - id: bench
        sha256: "`+sha256Hex("bench-key")+`"
  rules:
    - match: {intents: [action, queue, request, connect, websocket]}
      allow: anonymous
`)
	inFlight := max(1, *clientBenchInFlight)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)

	paths := []struct {
		name, endpoint string
		conn           *rivetclient.Conn
		rate           float64
	}{
		{name: "direct", endpoint: up.URL},
		{name: "gateway", endpoint: gw.URL},
	}
	for i := range paths {
		p := &paths[i]
		c, err := rivetclient.New(p.endpoint)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		// One actor per path, so neither measurement waits on the other's.
		h := c.GetOrCreate("counter", []string{"bench-" + p.name}, rivetclient.HandleOptions{Params: map[string]string{"token": "bench"}})
		if p.conn, err = h.Connect(ctx); err != nil {
			b.Fatalf("%s: Connect: %v", p.name, err)
		}
		// Warm-up: actor started, sockets and code paths hot.
		if err := clientBenchActions(ctx, p.conn, 200, inFlight); err != nil {
			b.Fatalf("%s: warm-up: %v", p.name, err)
		}
	}

	for i := range paths {
		p := &paths[i]
		b.Run(p.name, func(b *testing.B) {
			b.ResetTimer()
			if err := clientBenchActions(ctx, p.conn, b.N, inFlight); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			p.rate = float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(p.rate, "actions/s")
		})
	}
	if paths[0].rate > 0 && paths[1].rate > 0 {
		// Printed, not logged: b.Logf of a parent benchmark shows only with -v.
		fmt.Printf("BenchmarkClientActions: actions/s over one connection, %d in flight: direct %.0f, gateway %.0f, gateway/direct = %.2f\n",
			inFlight, paths[0].rate, paths[1].rate, paths[1].rate/paths[0].rate)
	}
}

// clientBenchActions calls getCount n times on conn with inFlight calls at a time
// and returns the first error.
func clientBenchActions(ctx context.Context, conn *rivetclient.Conn, n, inFlight int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	for range min(inFlight, n) {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := conn.Action(ctx, "getCount", nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}
