package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
)

// TestMain lets this test binary also serve as the harness's helper
// processes (upstream, params service), which run re-executes with roleEnv.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	harness.Main(m)
}

// TestBenchSmoke runs the whole harness in its tiny mode (every workload
// kind, a few connections, fractions of a second) so `make bench` cannot
// rot silently: it must complete without errors and write its table.
func TestBenchSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := harness.BuildGateway(t)
	out := filepath.Join(t.TempDir(), "smoke.md")
	log := &syncbuf.Buffer{}
	code := run([]string{"-mode", "smoke", "-pin=false", "-nginx=false", "-c", "4", "-mem-conns", "20",
		"-gateway-bin", bin, "-out", out}, log)
	t.Log(log.String())
	if code != 0 {
		t.Fatalf("bench exited %d", code)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	table := string(data)
	for _, want := range []string{
		"| http-ka | rivet-gateway | none |",
		"| http-ka | rivet-gateway | hs256+claims |",
		"| ws-setup | rivet-gateway | hs256+claims |",
		"| ws-rt | rivet-gateway | hs256+claims |",
		"Memory per idle proxied WebSocket",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| workload") && !strings.HasPrefix(line, "| ---") && !strings.HasSuffix(line, "| 0 |") {
			t.Errorf("row with errors: %s", line)
		}
	}
}

// TestSoakCI is the soak at CI size: 500 WebSockets through the gateway
// binary for 20 s with a message on each every ~2 s; no connection may be
// closed unexpectedly and the gateway's heap + stacks must stay flat.
// The full size is `make soak` (10,000 connections for 2 minutes).
func TestSoakCI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes, takes ~25 s")
	}
	bin := harness.BuildGateway(t)
	log := &syncbuf.Buffer{}
	o := options{gatewayBin: bin, soakConns: 500, soakDuration: 20 * time.Second,
		soakInterval: 2 * time.Second, soakSample: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := runSoak(ctx, o, log)
	t.Log(log.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.conns != 500 {
		t.Errorf("soaked %d connections, want 500 (%s)", res.conns, res.note)
	}
	if res.unexpected != 0 {
		t.Errorf("%d unexpected closes (first: %s)", res.unexpected, res.firstUnexpected)
	}
	if res.closeFailures != 0 {
		t.Errorf("%d close handshakes failed at the end", res.closeFailures)
	}
	if !res.flat() {
		t.Errorf("gateway memory grew %.1f MiB over the soak (allowed %.1f MiB)", res.growth()/(1<<20), res.maxGrowth/(1<<20))
	}
	// Every connection exchanged messages: ~10 each.
	if min := int64(res.conns) * 5; res.roundTrips < min {
		t.Errorf("%d round trips, want at least %d", res.roundTrips, min)
	}
}
