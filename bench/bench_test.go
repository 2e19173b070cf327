package main

import (
	"context"
	"os"
	"os/exec"
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

// TestParseProcStat reads the fields after the command name, which may
// hold spaces and parentheses.
func TestParseProcStat(t *testing.T) {
	line := "4242 (a) b (c) d) S 17 4242 4242 0 -1 4194560 1000 0 0 0 250 31 0 0 20 0 5 0 100 0 0\n"
	ppid, use, err := parseProcStat([]byte(line), 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if ppid != 17 || use.user != 2500*time.Millisecond || use.sys != 310*time.Millisecond {
		t.Errorf("ppid %d, user %v, sys %v; want 17, 2.5s, 310ms", ppid, use.user, use.sys)
	}
	if _, _, err := parseProcStat([]byte("4242 (bench) S 17"), 10*time.Millisecond); err == nil {
		t.Error("a short line parsed")
	}
}

// TestCPUBetween takes the total from the threads' counters while they
// all live, the split from the ticks, and the ticks alone once a thread
// has exited.
func TestCPUBetween(t *testing.T) {
	ms := time.Millisecond
	a := cpuSample{ticks: cpuUse{100 * ms, 100 * ms}, threads: map[int]time.Duration{1: 150 * ms, 2: 55 * ms}}
	b := cpuSample{ticks: cpuUse{130 * ms, 110 * ms}, threads: map[int]time.Duration{1: 180 * ms, 2: 60 * ms, 3: 5 * ms}}
	if got, want := cpuBetween(a, b), (cpuUse{30 * ms, 10 * ms}); got != want {
		t.Errorf("all threads alive: %v, want %v", got, want)
	}
	delete(b.threads, 2)
	if got, want := cpuBetween(a, b), (cpuUse{30 * ms, 10 * ms}); got != want {
		t.Errorf("thread exited: %v, want the ticks' %v", got, want)
	}
	b.threads[2] = 70 * ms
	if got, want := cpuBetween(a, b), (cpuUse{37500 * time.Microsecond, 12500 * time.Microsecond}); got != want {
		t.Errorf("split: %v, want %v", got, want)
	}
}

// TestProcTreesCPU counts a child's child and the CPU it burns.
func TestProcTreesCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	cmd := exec.Command("sh", "-c", "sleep 10 & while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: "sh", cmd: cmd, done: make(chan struct{})}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var pids []int
	for deadline := time.Now().Add(5 * time.Second); len(pids) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var err error
		if pids, err = procTrees(p)(); err != nil {
			t.Fatal(err)
		}
	}
	if len(pids) != 2 || pids[0] != cmd.Process.Pid {
		t.Fatalf("tree %v, want the shell %d and its sleep", pids, cmd.Process.Pid)
	}
	start := time.Now()
	use, err := measureCPU(context.Background(), pids, start, start.Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// The busy loop has at least a share of a core (the test may share it).
	if use.total() < 30*time.Millisecond || use.total() > 400*time.Millisecond {
		t.Errorf("%v of CPU over 300ms of a busy loop", use)
	}
}
