package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// upstreamReadyTimeout bounds start.sh: engine healthy plus actor server READY
	// (measured: ~0.7 s on an idle machine).
	upstreamReadyTimeout = 60 * time.Second
	// upstreamStopTimeout bounds stop.sh (which itself gives each process 10 s before SIGKILL).
	upstreamStopTimeout = 30 * time.Second
	// upstreamPortAttempts is how often StartUpstream tries a new port group when the chosen one
	// turns out to be taken.
	upstreamPortAttempts = 3
	// logTailLines is how many lines of each log a failure message quotes.
	logTailLines = 40
)

// errPortInUse reports that start.sh found one of the engine's ports taken (its exit status 3).
var errPortInUse = errors.New("port in use")

// ServerlessPool is the serverless runner pool of StartServerlessUpstream: clients select it
// with rvt-runner (JS createClient({poolName}) or RIVET_POOL, rivetclient.WithPoolName).
const ServerlessPool = "serverless"

// Upstream is a real RivetKit stack: the Rivet Engine binary from npm and the actor "counter"
// (integration/upstream/counter.mjs), hosted by integration/upstream/server.mjs (StartUpstream)
// or by RivetKit's serverless handler in workerd (StartServerlessUpstream). Its methods are not
// safe for concurrent use.
type Upstream struct {
	// URL is the endpoint clients and the gateway talk to: http://127.0.0.1:Port.
	URL string
	// Port is the engine's public (guard) port. The engine also binds Port+1 (api-peer) and
	// Port+10 (metrics), all on 127.0.0.1.
	Port int
	// Pool is the runner pool whose actors clients reach: "default" (server.mjs's envoy), or
	// ServerlessPool.
	Pool string
	// WorkerURL is the serverless worker's RivetKit endpoint, http://127.0.0.1:Port+2/api/rivet,
	// which only the engine calls ("" without one). Clients never need it: its /metadata sends
	// them to PublicAddr, as a Worker's publicEndpoint does.
	WorkerURL string
	// PublicAddr is where the serverless worker's publicEndpoint points clients
	// (http://PublicAddr): 127.0.0.1:Port+3, free when the upstream started, for the gateway in
	// front of it to listen on ("" without a worker).
	PublicAddr string

	dir     string // integration/upstream
	opts    UpstreamOptions
	script  string   // scripts/start.sh or scripts/start-serverless.sh
	offsets []int    // the ports it binds, from Port
	logs    []string // its log files in runDir
	running bool     // the start script ran since the last stop.sh: processes may exist
}

// UpstreamOptions configures StartUpstreamWith.
type UpstreamOptions struct {
	// AdminToken, when set, is required by the engine (its auth.admin_token)
	// as a hosted engine requires its namespace token: engine 2.3.19 then
	// refuses its management API (/actors...) without "Authorization: Bearer
	// <AdminToken>" (403 api.forbidden), while /health, /metadata and the
	// /gateway/... routes stay open. The actor server presents it when it
	// connects. Empty (default): the engine requires no token.
	AdminToken string
}

// StartUpstream starts a fresh upstream (empty engine state) on a free loopback port group and
// registers a t.Cleanup that stops it. It fails the test, quoting the engine and server logs,
// when the stack is not ready within 60 s. When the test failed, the logs are kept in
// integration/upstream/.run/PORT/ and their tail is logged; otherwise that directory is removed.
func StartUpstream(t testing.TB) *Upstream {
	t.Helper()
	return StartUpstreamWith(t, UpstreamOptions{})
}

// StartUpstreamWith is StartUpstream with options; a restart (Start) keeps them.
func StartUpstreamWith(t testing.TB, opts UpstreamOptions) *Upstream {
	t.Helper()
	return startUpstream(t, &Upstream{
		opts:    opts,
		Pool:    "default",
		script:  "start.sh",
		offsets: []int{0, 1, 10},
		logs:    []string{"engine.log", "server.log"},
	})
}

// StartServerlessUpstream is StartUpstream with serverless actors, as on Cloudflare Workers:
// scripts/start-serverless.sh starts the engine, then workerd on Port+2 serving RivetKit's
// registry.handler(request) (integration/upstream/serverless/worker.mjs), registers the
// serverless runner pool ServerlessPool with the engine and waits until an actor of that pool
// answers from workerd. Clients must select the pool (Pool).
func StartServerlessUpstream(t testing.TB) *Upstream {
	t.Helper()
	u := startUpstream(t, &Upstream{
		Pool:    ServerlessPool,
		script:  "start-serverless.sh",
		offsets: []int{0, 1, 2, 3, 10},
		logs:    []string{"engine.log", "worker.log"},
	})
	u.WorkerURL = "http://127.0.0.1:" + strconv.Itoa(u.Port+2) + "/api/rivet"
	u.PublicAddr = "127.0.0.1:" + strconv.Itoa(u.Port+3)
	return u
}

// startUpstream starts u on a free port group, retrying with others when one is taken.
func startUpstream(t testing.TB, u *Upstream) *Upstream {
	t.Helper()
	u.dir = UpstreamDir(t)
	t.Cleanup(func() { u.cleanup(t) })
	for attempt := 1; ; attempt++ {
		port, err := reservePorts(u.offsets...)
		if err != nil {
			t.Fatal(err)
		}
		u.Port = port
		u.URL = "http://127.0.0.1:" + strconv.Itoa(port)
		start := time.Now()
		err = u.start()
		if err == nil {
			t.Logf("harness: upstream (pool %s) ready on %s in %v", u.Pool, u.URL, time.Since(start).Round(time.Millisecond))
			return u
		}
		if errors.Is(err, errPortInUse) && attempt < upstreamPortAttempts {
			t.Logf("harness: upstream port group %d taken, picking another: %v", port, err)
			os.RemoveAll(u.runDir())
			continue
		}
		t.Fatalf("harness: upstream on port %d did not start: %v\n%s", port, err, u.logTail())
	}
}

// Start restarts a stopped upstream on the same port, with fresh engine state. It fails the
// test if the stack does not become ready (60 s bound).
func (u *Upstream) Start(t testing.TB) {
	t.Helper()
	if u.running {
		t.Fatalf("harness: upstream on port %d is running: Stop it before Start", u.Port)
	}
	start := time.Now()
	if err := u.start(); err != nil {
		if stopErr := u.stop(); stopErr != nil {
			t.Errorf("harness: %v", stopErr)
		}
		t.Fatalf("harness: upstream restart on port %d failed: %v\n%s", u.Port, err, u.logTail())
	}
	t.Logf("harness: upstream restarted on %s in %v", u.URL, time.Since(start).Round(time.Millisecond))
}

// Stop stops the engine and the actor server or worker (SIGTERM, then SIGKILL after 10 s; the
// stateless worker gets SIGKILL). Stopping a stopped upstream does nothing.
func (u *Upstream) Stop(t testing.TB) {
	t.Helper()
	start := time.Now()
	if err := u.stop(); err != nil {
		t.Errorf("harness: %v", err)
		return
	}
	t.Logf("harness: upstream on %s stopped in %v", u.URL, time.Since(start).Round(time.Millisecond))
}

// Logs returns the engine and actor server (or worker) logs of the current (or last) run.
func (u *Upstream) Logs() string {
	var b strings.Builder
	for _, name := range u.logs {
		data, err := os.ReadFile(filepath.Join(u.runDir(), name))
		if err != nil {
			fmt.Fprintf(&b, "==> %s: %v\n", name, err)
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", name, data)
	}
	return b.String()
}

// runDir is where start.sh keeps PIDs, logs and engine state for this port.
func (u *Upstream) runDir() string {
	return filepath.Join(u.dir, ".run", strconv.Itoa(u.Port))
}

// logTail returns the last lines of both logs, for failure messages.
func (u *Upstream) logTail() string { return u.logTailIn(u.runDir()) }

// logTailIn is logTail for the logs in dir.
func (u *Upstream) logTailIn(dir string) string {
	var b strings.Builder
	for _, name := range u.logs {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(&b, "==> %s: %v\n", path, err)
			continue
		}
		fmt.Fprintf(&b, "==> %s (tail) <==\n%s\n", path, tail(string(data), logTailLines))
	}
	return b.String()
}

// start runs u's start script for u.Port.
func (u *Upstream) start() error {
	ctx, cancel := context.WithTimeout(context.Background(), upstreamReadyTimeout+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(u.dir, "scripts", u.script), strconv.Itoa(u.Port))
	cmd.Dir = u.dir
	env := map[string]string{
		// The watchdog stops the stack if this test binary dies without running cleanups.
		"WATCH_PID":     strconv.Itoa(os.Getpid()),
		"READY_TIMEOUT": strconv.Itoa(int(upstreamReadyTimeout / time.Second)),
	}
	if u.opts.AdminToken != "" {
		env["ENGINE_ADMIN_TOKEN"] = u.opts.AdminToken
	}
	cmd.Env = nodeEnv(env)
	// start.sh's children write to their own log files, so its output pipe closes when it
	// exits; WaitDelay only guards against that assumption breaking.
	cmd.WaitDelay = 5 * time.Second
	// From here on processes may exist, even if start.sh fails half-way.
	u.running = true
	out, err := cmd.CombinedOutput()
	if err != nil {
		if exitErr, ok := errors.AsType[*exec.ExitError](err); ok && exitErr.ExitCode() == 3 {
			return fmt.Errorf("%w: %s", errPortInUse, strings.TrimSpace(string(out)))
		}
		return fmt.Errorf("scripts/%s %d: %v: %s", u.script, u.Port, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stop runs scripts/stop.sh for u.Port if start.sh ran since the last stop.
func (u *Upstream) stop() error {
	if !u.running {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), upstreamStopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(u.dir, "scripts", "stop.sh"), strconv.Itoa(u.Port))
	cmd.Dir = u.dir
	cmd.Env = nodeEnv(nil)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("scripts/stop.sh %d: %v: %s", u.Port, err, strings.TrimSpace(string(out)))
	}
	u.running = false
	return nil
}

// cleanup stops the upstream at the end of the test and keeps the logs only if it failed.
func (u *Upstream) cleanup(t testing.TB) {
	if err := u.stop(); err != nil {
		t.Errorf("harness: %v", err)
	}
	if u.Port == 0 {
		return
	}
	if t.Failed() {
		// Moved aside: a later test that draws the same port would start
		// by wiping .run/PORT, and these logs with it.
		kept := u.runDir() + "-failed-" + time.Now().Format("150405.000000")
		if err := os.Rename(u.runDir(), kept); err != nil {
			kept = u.runDir()
		}
		t.Logf("harness: upstream logs kept in %s\n%s", kept, u.logTailIn(kept))
		return
	}
	os.RemoveAll(u.runDir())
}
