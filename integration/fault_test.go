package integration

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivet"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// Fault tests (issue 7, item 3): the real gateway binary while what it depends on fails, with
// the real engine and real clients where it matters. Unit tests of proxy/, params/ and authn/
// cover each failure in-process; these add the binary, the real engine and JS client, and
// leaks measured on the gateway's own /metrics.

// faultWait bounds every wait of these tests.
const faultWait = 20 * time.Second

// TestFaultEngineRestartClients kills the engine and actor server under five connections of the
// Go client and starts them again (fresh state): every connection comes back by itself within
// the client's backoff, and each new connection carries params the gateway freshly fetched from
// its params service. (The real JS client does the same in TestFaultEngineRestartJSClients.)
func TestFaultEngineRestartClients(t *testing.T) {
	const conns = 5
	up := harness.StartUpstream(t)
	svc := startClientParamsService(t)
	gw := harness.StartGateway(t, restartConfig(up.URL, svc.URL))
	clientLeakCheck(t)
	ctx := clientContext(t)
	c := startClient(t, gw.URL)
	type watched struct {
		conn   *rivetclient.Conn
		log    *connLog
		first  string
		before int
	}
	var ws []watched
	for range conns {
		conn, err := c.GetOrCreate("counter", clientKey(t), rivetclient.HandleOptions{}).Connect(ctx)
		if err != nil {
			t.Fatalf("Connect: %v", err)
		}
		ws = append(ws, watched{conn: conn, log: watchConn(t, conn, ""), first: conn.ConnectionID(), before: svcToken(t, ctx, conn)})
	}
	waitMetric(t, gw.AdminURL, "rivet_gateway_websockets_open", conns)
	fetchesBefore := int(svc.calls.Load())

	up.Stop(t)
	up.Start(t)
	back := time.Now()
	for i, w := range ws {
		clientWaitFor(t, fmt.Sprintf("connection %d back", i), func() bool {
			return w.conn.Status() == rivetclient.StatusConnected && w.conn.ConnectionID() != w.first
		})
		if after := svcToken(t, ctx, w.conn); after <= fetchesBefore || after <= w.before {
			t.Errorf("connection %d: params token svc-%d before, svc-%d after; want one fetched after the restart (%d fetches before)",
				i, w.before, after, fetchesBefore)
		}
		if s := w.log.statusList(); slices.Contains(s, rivetclient.StatusIdle) {
			t.Errorf("connection %d: statuses %v, want no idle", i, s)
		}
	}
	// The client's backoff here is 50 ms doubling to 500 ms, so it retries
	// at least every 500 ms until the engine has started the actors again:
	// usually within a few seconds, but a loaded engine 2.3.19 can take its
	// full 10 s actor-ready timeout, and then a second try, for an actor.
	if d := time.Since(back); d > 25*time.Second {
		t.Errorf("connections back %v after the engine, want within the engine's actor start plus the backoff", d)
	}
	t.Logf("all %d connections back %v after the engine; errors of the first: %s", conns, time.Since(back).Round(time.Millisecond), compactCodes(ws[0].log.errorCodes()))
	waitMetric(t, gw.AdminURL, "rivet_gateway_websockets_open", conns)
	c.Close()
}

// TestFaultEngineRestartJSClients: the same restart under five real RivetKit JS connections,
// which (unlike the Go client) give up on any close reason they do not know as retryable. A
// restarting engine accepts each WebSocket and closes it at once, before any data frame, with
// 1011 namespace.not_found (first few hundred ms) and then actor.no_runner_config_configured
// until the actor server has registered again; the gateway turns those into the retryable
// guard.service_unavailable while the socket is opening (upstream.websocket.transient_errors),
// so every connection comes back by itself with params fetched after the restart.
func TestFaultEngineRestartJSClients(t *testing.T) {
	const conns = 5
	up := harness.StartUpstream(t)
	svc := startClientParamsService(t)
	gw := harness.StartGateway(t, restartConfig(up.URL, svc.URL))
	dir := t.TempDir()
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := harness.RunNode(t, "fault-clients.mjs", map[string]string{
			"RIVET_ENDPOINT_URL": gw.URL, "FAULT_DIR": dir, "CONNS": strconv.Itoa(conns),
			"KEY": fmt.Sprintf("restart-%d", time.Now().UnixNano()),
		}, nodeTimeout)
		done <- result{out, err}
	}()
	waitSignalFile(t, dir, "ready", func() (string, bool) {
		select {
		case r := <-done:
			return fmt.Sprintf("%s %v", r.out, r.err), true
		default:
			return "", false
		}
	})
	fetchesBefore := svc.calls.Load()
	up.Stop(t)
	up.Start(t)
	if err := os.WriteFile(filepath.Join(dir, "up"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("node fault-clients.mjs: %v\n%s", r.err, r.out)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	var got struct {
		Error json.RawMessage
		Conns []struct {
			Key                string
			Before, After      clientWhoami
			ReconnectedAfterMs *int64
			Errors             []trackedError
		}
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil || len(got.Error) > 0 || len(got.Conns) != conns {
		t.Fatalf("client result %q: %v", lines[len(lines)-1], err)
	}
	for _, c := range got.Conns {
		after, _ := c.After.Params["token"].(string)
		if n, err := strconv.Atoi(strings.TrimPrefix(after, "svc-")); err != nil || int32(n) <= fetchesBefore {
			t.Errorf("%s: params %v after the restart, want a token fetched after it", c.Key, c.After.Params)
		}
		// The backoff plus the engine's actor start (up to its 10 s
		// actor-ready timeout, and a retry, when loaded).
		if c.ReconnectedAfterMs == nil || *c.ReconnectedAfterMs > 25_000 {
			t.Errorf("%s: reconnected %v ms after the engine was back, want within the engine's actor start plus the backoff", c.Key, c.ReconnectedAfterMs)
		}
		var codes []string
		for _, e := range c.Errors {
			codes = append(codes, e.Error)
			if !rivet.RetryableReason(e.Error) {
				t.Errorf("%s: the client saw %s, which it does not retry", c.Key, e.Error)
			}
		}
		back := "never"
		if c.ReconnectedAfterMs != nil {
			back = fmt.Sprintf("%d ms after the engine", *c.ReconnectedAfterMs)
		}
		t.Logf("%s: back %s; errors %s", c.Key, back, compactCodes(codes))
	}
	// Timing-dependent, so only logged: how many opening sockets the engine refused while it
	// was not ready, which the gateway turned into the retryable close.
	t.Logf("engine-not-ready closes relayed as guard.service_unavailable: %d (%s)",
		strings.Count(gw.Logs(), "engine not ready"), upstreamErrorsIn(gw.Logs()))
}

// upstreamErrorsIn counts the upstream_error values in gateway log text.
func upstreamErrorsIn(logs string) string {
	counts := map[string]int{}
	for _, f := range strings.Fields(logs) {
		if v, ok := strings.CutPrefix(f, "upstream_error="); ok && v != "" && v != `""` {
			counts[v]++
		}
	}
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// restartConfig is openConfig with params fetched from the params service at svcURL for every
// connection.
func restartConfig(upstream, svcURL string) string {
	return openConfig(upstream) + `params:
  source: http
  http: {url: "` + svcURL + `", timeout: 1s}
  retry: {max_attempts: 2, initial_backoff: 50ms, max_backoff: 100ms, budget: 2s}
`
}

// svcToken returns n of the params token svc-<n> the actor saw on conn.
func svcToken(t *testing.T, ctx context.Context, conn *rivetclient.Conn) int {
	t.Helper()
	var who clientWhoami
	if err := conn.Action(ctx, "whoami", &who); err != nil {
		t.Fatalf("whoami: %v", err)
	}
	tok, _ := who.Params["token"].(string)
	n, err := strconv.Atoi(strings.TrimPrefix(tok, "svc-"))
	if err != nil {
		t.Fatalf("whoami: params %v, want a token svc-<n> from the params service", who.Params)
	}
	return n
}

// TestFaultSlowUpstream puts the gateway in front of an "engine" that accepts connections and
// never answers: HTTP gets 504 within response_header_timeout, a WebSocket the retryable close
// within handshake_timeout, both RivetKit-shaped, and nothing is left behind.
func TestFaultSlowUpstream(t *testing.T) {
	hang := startHangingServer(t)
	gw := harness.StartGateway(t, withUpstreamYAML(openConfig("http://"+hang.Addr().String()),
		"  response_header_timeout: 500ms\n", "    handshake_timeout: 500ms\n"))
	base := leakBaseline(t, gw.AdminURL)

	start := time.Now()
	res := do(t, "POST", gw.URL+actionPath("slow", "getCount"), strings.NewReader(`{"args":[]}`), map[string]string{"X-Rivet-Encoding": "json"})
	assertRivetError(t, res, http.StatusGatewayTimeout, "guard", "gateway_response_start_timeout")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("HTTP answered after %v, want about response_header_timeout (500ms)", d)
	}

	start = time.Now()
	code, reason := dialAndReadClose(t, wsURL(gw.URL, connectPath("slow")), nil)
	if code != websocket.CloseInternalServerErr || !rivet.RetryableReason(reason) {
		t.Errorf("close = %d %q, want 1011 with a reason RivetKit retries", code, reason)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("WebSocket closed after %v, want about handshake_timeout (500ms)", d)
	}
	base.assertBack(t)
}

// TestFaultParamsService: the params service refusing connections, too slow, or answering
// garbage, the wrong shape or too much. HTTP gets a RivetKit-shaped client.get_params_failed
// (503 and retryable, or 500 when waiting cannot help), a WebSocket the close with that reason,
// within the retry budget; once the service answers again, requests go through with its params.
func TestFaultParamsService(t *testing.T) {
	up := harness.StartUpstream(t)
	svc := startModalParamsService(t)
	gw := harness.StartGateway(t, openConfig(up.URL)+`params:
  source: http
  http: {url: "`+svc.URL+`", timeout: 300ms, max_response_bytes: 1024}
  retry: {max_attempts: 2, initial_backoff: 50ms, max_backoff: 100ms, budget: 1500ms}
`)
	base := leakBaseline(t, gw.AdminURL)
	for _, tc := range []struct {
		mode, reason string
		status       int
	}{
		{"reset", "unreachable", 503},
		{"slow", "timeout", 503},
		{"garbage", "invalid_json", 503},
		{"array", "not_object", 503},
		{"null", "not_object", 503},
		{"500", "status_5xx", 503},
		{"huge", "too_large", 500},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			svc.mode.Store(tc.mode)
			start := time.Now()
			res := do(t, "POST", gw.URL+actionPath("params-"+tc.mode, "whoami"), strings.NewReader(`{"args":[]}`),
				map[string]string{"X-Rivet-Encoding": "json", "Content-Type": "application/json"})
			e := assertRivetErrorBody(t, res, tc.status, "client", "get_params_failed")
			if e.Metadata["reason"] != tc.reason {
				t.Errorf("metadata = %v, want reason %q", e.Metadata, tc.reason)
			}
			code, reason := dialAndReadClose(t, wsURL(gw.URL, connectPath("params-"+tc.mode)), nil)
			if code != websocket.CloseInternalServerErr || reason != "client.get_params_failed" {
				t.Errorf("close = %d %q, want 1011 client.get_params_failed", code, reason)
			}
			if d := time.Since(start); d > 6*time.Second {
				t.Errorf("took %v: the retry budget (1.5s per request) does not bound the failures", d)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		// Nothing listens on the service's address.
		down := harness.StartGateway(t, openConfig(up.URL)+`params:
  source: http
  http: {url: "http://`+clientFreeAddr(t)+`/params", timeout: 300ms}
  retry: {max_attempts: 2, initial_backoff: 50ms, max_backoff: 100ms, budget: 1500ms}
`)
		res := do(t, "POST", down.URL+actionPath("params-refused", "whoami"), strings.NewReader(`{"args":[]}`),
			map[string]string{"X-Rivet-Encoding": "json", "Content-Type": "application/json"})
		if e := assertRivetErrorBody(t, res, 503, "client", "get_params_failed"); e.Metadata["reason"] != "refused" {
			t.Errorf("metadata = %v, want reason refused", e.Metadata)
		}
		code, reason := dialAndReadClose(t, wsURL(down.URL, connectPath("params-refused")), nil)
		if code != websocket.CloseInternalServerErr || reason != "client.get_params_failed" {
			t.Errorf("close = %d %q, want 1011 client.get_params_failed", code, reason)
		}
	})
	svc.mode.Store("ok")
	n := svc.calls.Load()
	res := do(t, "POST", gw.URL+actionPath("params-ok", "whoami"), strings.NewReader(`{"args":[]}`),
		map[string]string{"X-Rivet-Encoding": "json", "Content-Type": "application/json"})
	var out struct{ Output clientWhoami }
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&out) != nil {
		t.Fatalf("with the service back: status %d, want 200", res.StatusCode)
	}
	out.Output.assertToken(t, "svc-"+strconv.Itoa(int(n+1)))
	base.assertBack(t)
}

// TestFaultJWKS: the JWKS endpoint down when the gateway starts, then slow and answering garbage
// at refresh and unknown-kid refetch. The gateway starts anyway, refuses tokens it cannot check
// with a clear auth.unauthorized (reason unknown_key) at once, keeps accepting tokens of the keys
// it has cached, and picks up a rotated key once the endpoint answers again.
func TestFaultJWKS(t *testing.T) {
	up := harness.StartUpstream(t)
	idp := startFaultJWKS(t)
	idp.mode.Store("down")
	start := time.Now()
	gw := harness.StartGateway(t, baseConfig(up.URL)+`auth:
  credentials: [bearer]
  jwt:
    issuers:
      - name: idp
        issuer: "`+esIssuer+`"
        audiences: [`+e2eAudience+`]
        algorithms: [ES256]
        jwks_url: "`+idp.URL+`"
        jwks_refresh: 300ms
        jwks_refetch_interval: 100ms
        jwks_timeout: 300ms
  rules:
    - match: {actors: [counter]}
      allow: authenticated
`)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("gateway took %v to start with the JWKS endpoint down", d)
	}
	action := func(tok string) *http.Response {
		return do(t, "POST", gw.URL+actionPath("jwks", "whoami"), strings.NewReader(`{"args":[]}`), map[string]string{
			"Authorization": "Bearer " + tok, "X-Rivet-Encoding": "json", "Content-Type": "application/json",
			"X-Rivet-Conn-Params": `{"token":"t"}`,
		})
	}
	k1 := idp.mint(t, "k1")
	timed := func(what string, bound time.Duration, f func()) {
		t.Helper()
		start := time.Now()
		f()
		if d := time.Since(start); d > bound {
			t.Errorf("%s took %v, want under %v", what, d, bound)
		}
	}
	timed("a token while the JWKS is down", 2*time.Second, func() {
		e := assertRivetErrorBody(t, action(k1), http.StatusUnauthorized, "auth", "unauthorized")
		if e.Metadata["reason"] != "unknown_key" {
			t.Errorf("metadata = %v, want reason unknown_key", e.Metadata)
		}
	})

	idp.mode.Store("ok")
	pollStatus(t, "a token once the JWKS is up", func() int { return action(k1).StatusCode }, http.StatusOK)

	for _, mode := range []string{"slow", "garbage", "down"} {
		idp.mode.Store(mode)
		fetches := idp.fetches.Load()
		// Two refresh intervals fail behind the scenes; cached keys keep working, without delay.
		deadline := time.Now().Add(faultWait)
		for idp.fetches.Load() < fetches+2 && time.Now().Before(deadline) {
			timed("a token of a cached key (JWKS "+mode+")", time.Second, func() {
				if res := action(k1); res.StatusCode != http.StatusOK {
					t.Errorf("JWKS %s: cached key: status %d, want 200", mode, res.StatusCode)
				}
			})
			time.Sleep(50 * time.Millisecond)
		}
		if idp.fetches.Load() < fetches+2 {
			t.Errorf("JWKS %s: no refresh attempts seen", mode)
		}
		// An unknown kid may trigger a refetch: bounded by jwks_timeout, never a hang.
		timed("an unknown kid (JWKS "+mode+")", 2*time.Second, func() {
			assertRivetError(t, action(idp.mint(t, "k2")), http.StatusUnauthorized, "auth", "unauthorized")
		})
	}

	idp.rotate(t, "k2")
	idp.mode.Store("ok")
	pollStatus(t, "the rotated key once the JWKS answers again", func() int { return action(idp.mint(t, "k2")).StatusCode }, http.StatusOK)
	if !strings.Contains(gw.Logs(), "JWKS fetch failed") {
		t.Errorf("gateway log does not report the failed JWKS fetches")
	}
}

// TestFaultClientDisconnects: clients that vanish mid-request (while the actor is slow), before
// the upgrade is answered, after the 101 before any frame, and mid-headers. The gateway's
// goroutines, open sockets and file descriptors return to where they were.
func TestFaultClientDisconnects(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, openConfig(up.URL))
	addr := strings.TrimPrefix(gw.URL, "http://")
	connect := wsURL(gw.URL, connectPath("vanish"))
	// Warm up: the actor exists, and the gateway has its upstream connections and buffers.
	if code, _ := dialAndReadInit(t, connect); code != 0 {
		t.Fatalf("warm-up connect failed: close %d", code)
	}
	res := do(t, "POST", gw.URL+actionPath("vanish", "getCount"), strings.NewReader(`{"args":[]}`),
		map[string]string{"X-Rivet-Encoding": "json", "X-Rivet-Conn-Params": `{"token":"t"}`})
	io.Copy(io.Discard, res.Body)
	base := leakBaseline(t, gw.AdminURL)

	const rounds = 10
	var wg sync.WaitGroup
	for range rounds {
		wg.Add(1)
		go func() { // mid-request: the actor takes 3 s, the client leaves after 200 ms
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", gw.URL+actionPath("vanish", "slow"), strings.NewReader(`{"args":[3000]}`))
			req.Header.Set("X-Rivet-Encoding", "json")
			req.Header.Set("X-Rivet-Conn-Params", `{"token":"t"}`)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
				t.Errorf("slow action answered %d within 200ms", res.StatusCode)
			}
		}()
	}
	upgrade := "GET " + connectPath("vanish") + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: rivet, rivet_encoding.json, " +
		"rivet_conn_params." + url.QueryEscape(`{"token":"t"}`) + "\r\n\r\n"
	for i := range rounds {
		// Mid-upgrade: the whole handshake, then gone before the answer; and half the headers.
		for _, req := range []string{upgrade, upgrade[:len(upgrade)/2]} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, req)
			if i%2 == 1 {
				time.Sleep(20 * time.Millisecond) // let the gateway be dialing the engine
			}
			c.Close()
		}
		// After the 101, before any frame: the TCP connection just closes.
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"rivet", "rivet_encoding.json",
			"rivet_conn_params." + url.QueryEscape(`{"token":"t"}`)}}
		conn, _, err := d.Dial(connect, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		conn.UnderlyingConn().Close()
	}
	wg.Wait()
	base.assertBack(t)
	// Nothing else was disturbed.
	if code, msg := dialAndReadInit(t, connect); code != 0 {
		t.Errorf("connect after the disconnects: close %d %s", code, msg)
	}
}

// TestFaultGracefulShutdownUnderLoad stops gateway A (SIGTERM, drain_delay 1s) while HTTP load
// and WebSockets run through a load balancer in front of A and B that follows A's /readyz. No
// HTTP request that got an answer failed, the request in flight at SIGTERM completes, every
// WebSocket on A is closed with 1001 ws.going_away, and the clients reconnect through B with
// fresh params.
func TestFaultGracefulShutdownUnderLoad(t *testing.T) {
	up := harness.StartUpstream(t)
	cfg := strings.Replace(openConfig(up.URL), "  shutdown_timeout: 10s\n", "  shutdown_timeout: 10s\n  drain_delay: 1s\n", 1)
	gwA := harness.StartGateway(t, cfg)
	gwB := harness.StartGateway(t, cfg)
	lb := startFailover(t, gwA, gwB)

	// WebSockets through the balancer: Go clients with a counting GetParams, and a raw socket
	// to see the close code itself.
	clientLeakCheck(t)
	ctx := clientContext(t)
	type wsClient struct {
		conn  *rivetclient.Conn
		log   *connLog
		calls *atomic.Int32
		first string
	}
	var clients []wsClient
	for range 3 {
		_, _, conn, log, calls := connectCounting(t, ctx, lb.URL)
		clients = append(clients, wsClient{conn, log, calls, conn.ConnectionID()})
	}
	raw, _, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"rivet", "rivet_encoding.json",
		"rivet_conn_params." + url.QueryEscape(`{"token":"t"}`)}}).Dial(wsURL(lb.URL, connectPath("drain-raw")), nil)
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	defer raw.Close()
	waitMetric(t, gwA.AdminURL, "rivet_gateway_websockets_open", 4)

	// HTTP load: each worker loops on its own actor over keep-alive connections. A request is
	// retried by the transport only when a reused connection was closed before any answer
	// (Idempotency-Key): it never reached a gateway.
	// The actor the slow action runs on exists before SIGTERM: what is in
	// flight then is the action, not an engine actor start (see warmActor).
	warmActor(t, lb.URL, "drain-slow", map[string]string{"token": "t"})
	load := startHTTPLoad(t, lb.URL, 4)
	load.waitCount(t, 40)
	slow := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("POST", lb.URL+actionPath("drain-slow", "slow"), strings.NewReader(`{"args":[1500]}`))
		req.Header.Set("X-Rivet-Encoding", "json")
		req.Header.Set("X-Rivet-Conn-Params", `{"token":"t"}`)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("slow action in flight at SIGTERM: %v", err)
			res = nil
		}
		slow <- res
	}()
	time.Sleep(200 * time.Millisecond) // the slow action is on A

	sigterm := time.Now()
	if err := gwA.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, reason := readClose(raw)
	if code != websocket.CloseGoingAway || reason != "ws.going_away" {
		t.Errorf("raw socket close = %d %q, want 1001 ws.going_away", code, reason)
	}
	if d := time.Since(sigterm); d < 900*time.Millisecond {
		t.Errorf("WebSockets closed %v after SIGTERM, want after drain_delay (1s)", d)
	}
	if exit, err := gwA.Wait(15 * time.Second); err != nil || exit != 0 {
		t.Errorf("gateway A exit = %d, %v; want 0", exit, err)
	}
	if res := <-slow; res != nil {
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("slow action in flight at SIGTERM: %d %s, want 200", res.StatusCode, body)
		}
	}
	for i, c := range clients {
		c.log.waitErrors(t, "ws.going_away")
		clientWaitFor(t, fmt.Sprintf("client %d reconnected through B", i), func() bool {
			return c.conn.Status() == rivetclient.StatusConnected && c.conn.ConnectionID() != c.first
		})
		var who clientWhoami
		if err := c.conn.Action(ctx, "whoami", &who); err != nil {
			t.Fatalf("client %d whoami after failover: %v", i, err)
		}
		who.assertToken(t, "gp-"+strconv.Itoa(int(c.calls.Load())))
		if c.calls.Load() < 2 {
			t.Errorf("client %d: GetParams calls %d, want >= 2", i, c.calls.Load())
		}
	}
	waitMetric(t, gwB.AdminURL, "rivet_gateway_websockets_open", 3)
	n := load.count.Load()
	load.waitCount(t, n+40) // the load goes on through B
	load.stop()
	t.Logf("HTTP load: %d requests; the balancer saw A's /readyz %s", load.count.Load(), lb.observed())
	if !strings.Contains(lb.observed(), "503") {
		t.Errorf("the balancer never saw A's /readyz answer 503 during the drain (saw %s)", lb.observed())
	}
}

// --- helpers ---

// waitSignalFile waits for dir/name, failing early when early reports that the other side is
// gone (with what it left).
func waitSignalFile(t *testing.T, dir, name string, early func() (string, bool)) {
	t.Helper()
	deadline := time.Now().Add(nodeTimeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return
		}
		if out, gone := early(); gone {
			t.Fatalf("client exited before writing %s: %s", name, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timeout waiting for %s", name)
}

// scrapeMetrics returns the unlabelled and labelled samples of the gateway's /metrics, keyed by
// the text before the value (e.g. `go_goroutines` or `x{a="b"}`).
func scrapeMetrics(t *testing.T, adminURL string) map[string]float64 {
	t.Helper()
	res, err := http.Get(adminURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}

// waitMetric polls the gateway's metric name until it equals want.
func waitMetric(t *testing.T, adminURL, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for {
		got, ok := scrapeMetrics(t, adminURL)[name]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s = %v (present %v) after %v, want %v", name, got, ok, faultWait, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leakBase is what a gateway holds at rest: goroutines, open file descriptors and WebSockets.
type leakBase struct {
	adminURL              string
	goroutines, fds, open float64
}

// leakBaseline reads the gateway's resting state: the lowest of a few scrapes, once the
// WebSocket count is 0 (idle connections come and go).
func leakBaseline(t *testing.T, adminURL string) leakBase {
	t.Helper()
	waitMetric(t, adminURL, "rivet_gateway_websockets_open", 0)
	b := leakBase{adminURL: adminURL, goroutines: 1e9, fds: 1e9}
	for range 5 {
		m := scrapeMetrics(t, adminURL)
		b.goroutines, b.fds = min(b.goroutines, m["go_goroutines"]), min(b.fds, m["process_open_fds"])
		time.Sleep(20 * time.Millisecond)
	}
	return b
}

// assertBack waits (bounded) until the gateway holds no more than at its baseline, with a small
// slack for idle keep-alive connections to the engine (two goroutines and one descriptor each).
func (b leakBase) assertBack(t *testing.T) {
	t.Helper()
	const slackConns = 3
	deadline := time.Now().Add(faultWait)
	for {
		m := scrapeMetrics(t, b.adminURL)
		g, fds, open := m["go_goroutines"], m["process_open_fds"], m["rivet_gateway_websockets_open"]
		if g <= b.goroutines+2*slackConns && fds <= b.fds+slackConns && open == 0 {
			t.Logf("resources: goroutines %v (baseline %v), fds %v (baseline %v)", g, b.goroutines, fds, b.fds)
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v: goroutines %v (baseline %v), open fds %v (baseline %v), websockets %v; want back at the baseline",
				faultWait, g, b.goroutines, fds, b.fds, open)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pollStatus calls f until it returns want, failing after faultWait.
func pollStatus(t *testing.T, what string, f func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for {
		got := f()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %d after %v, want %d", what, got, faultWait, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// withUpstreamYAML inserts keys under openConfig's upstream: section and its websocket: section.
func withUpstreamYAML(cfg, upstreamKeys, websocketKeys string) string {
	return strings.Replace(cfg, "  websocket:\n", upstreamKeys+"  websocket:\n"+websocketKeys, 1)
}

// connectPath is the query-gateway path of connect() to counter [key].
func connectPath(key string) string {
	return strings.Replace(actionPath(key, "x"), "/action/x", "/connect", 1)
}

// wsURL turns a gateway URL and a path into a ws:// URL.
func wsURL(base, path string) string {
	return "ws" + strings.TrimPrefix(base, "http") + path
}

// openConnect dials u offering the subprotocols list (the gateway must accept) and reads the
// first message: the open connection when it is Init, else nil and the close code and reason
// (after an Error message, if one comes first).
func openConnect(t *testing.T, u string, list ...string) (conn *websocket.Conn, code int, reason string) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: list}
	conn, res, err := d.Dial(u, nil)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial %v: %v (status %d); the gateway must accept, then close", list, err, status)
	}
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err == nil && strings.Contains(string(msg), `"Init"`) {
		return conn, 0, ""
	}
	defer conn.Close()
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		reason, _ = rivet.SplitRayID(ce.Text) // without the ray id
		return nil, ce.Code, reason
	case err == nil: // an Error message precedes the close
		code, reason = readClose(conn)
		return nil, code, reason
	}
	return nil, -1, err.Error()
}

// dialAndReadInit connects as a RivetKit JSON client with params {token: t}: 0 when Init
// arrives (the connection is then closed normally), else the close code and reason.
func dialAndReadInit(t *testing.T, u string) (int, string) {
	t.Helper()
	conn, code, reason := openConnect(t, u, "rivet", "rivet_encoding.json", "rivet_conn_params."+url.QueryEscape(`{"token":"t"}`))
	if conn != nil {
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		readClose(conn)
		conn.Close()
	}
	return code, reason
}

// startHangingServer accepts TCP connections, reads what is sent and never answers; a
// t.Cleanup closes it and every connection.
func startHangingServer(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns connSet
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.add(c)
			wg.Add(1)
			go func() { defer wg.Done(); io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		conns.closeAll()
		wg.Wait()
	})
	return l
}

// connSet remembers connections so a cleanup can close them all.
type connSet struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (s *connSet) add(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, cs...)
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// modalParamsService is a params service whose answer the test switches: ok ({"token":
// "svc-<n>"} for the n-th call), reset (the connection is reset at once), slow (answers after
// 2 s), garbage, array, null, 500, huge (64 KiB).
type modalParamsService struct {
	URL   string
	mode  atomic.Value // string
	calls atomic.Int32
}

func startModalParamsService(t *testing.T) *modalParamsService {
	t.Helper()
	s := &modalParamsService{}
	s.mode.Store("ok")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch s.mode.Load().(string) {
		case "reset":
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.(*net.TCPConn).SetLinger(0) // a reset, as from a dead service
				c.Close()
			}
		case "slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		case "garbage":
			io.WriteString(w, "<html>not json")
		case "array":
			io.WriteString(w, `[{"token":"x"}]`)
		case "null":
			io.WriteString(w, `null`)
		case "500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "huge":
			fmt.Fprintf(w, `{"token":"svc-%d","pad":"%s"}`, n, strings.Repeat("p", 64<<10))
		default:
			fmt.Fprintf(w, `{"token":"svc-%d"}`, n)
		}
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/params"
	return s
}

// faultJWKS is an identity provider whose JWKS endpoint the test switches between ok, down
// (503), slow (answers after 3 s) and garbage; rotate replaces the key set.
type faultJWKS struct {
	URL     string
	mode    atomic.Value // string
	fetches atomic.Int32

	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey // by kid
	set  []byte                       // the JWKS of the key named by rotate (or k1)
}

func startFaultJWKS(t *testing.T) *faultJWKS {
	t.Helper()
	j := &faultJWKS{keys: map[string]*ecdsa.PrivateKey{}}
	j.mode.Store("ok")
	j.rotate(t, "k1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch j.mode.Load().(string) {
		case "down":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		case "garbage":
			io.WriteString(w, `{"keys":[{"kty":"EC","crv":"P-256","kid":"k2","x":"!!","y":1}]`)
		default:
			j.mu.Lock()
			w.Write(j.set)
			j.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	j.URL = srv.URL + "/.well-known/jwks.json"
	return j
}

// key returns the signing key of kid, making it on first use.
func (j *faultJWKS) key(t *testing.T, kid string) *ecdsa.PrivateKey {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.keys[kid] == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		j.keys[kid] = k
	}
	return j.keys[kid]
}

// rotate makes the served set hold only kid's public key.
func (j *faultJWKS) rotate(t *testing.T, kid string) {
	pt, err := j.key(t, kid).PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	set, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig", "x": b64(pt[1:33]), "y": b64(pt[33:]),
	}}})
	j.mu.Lock()
	j.set = set
	j.mu.Unlock()
}

// mint returns a token for sub "jwks" signed with kid's key.
func (j *faultJWKS) mint(t *testing.T, kid string) string {
	tok, _ := signToken(t, jwt.SigningMethodES256, j.key(t, kid), kid, claims(esIssuer, "jwks", time.Now().Add(time.Minute), nil))
	return tok
}

// failover is a TCP load balancer in front of gateways A and B: a new connection goes to A
// while A's /readyz answers 200 (polled every 20 ms), else to B; a connection A refuses also
// goes to B.
type failover struct {
	URL string

	mu       sync.Mutex
	aReady   bool
	statuses []string // A's /readyz answers, runs collapsed
}

func startFailover(t *testing.T, a, b *harness.Gateway) *failover {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &failover{URL: "http://" + l.Addr().String(), aReady: true}
	aAddr, bAddr := strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // readiness poller
		defer wg.Done()
		client := &http.Client{Timeout: time.Second}
		for {
			status := "refused"
			if res, err := client.Get(a.AdminURL + "/readyz"); err == nil {
				res.Body.Close()
				status = strconv.Itoa(res.StatusCode)
			}
			f.mu.Lock()
			f.aReady = status == "200"
			if n := len(f.statuses); n == 0 || f.statuses[n-1] != status {
				f.statuses = append(f.statuses, status)
			}
			f.mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var conns connSet
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			targets := []string{bAddr}
			if f.aReady {
				targets = []string{aAddr, bAddr}
			}
			f.mu.Unlock()
			var up net.Conn
			for _, addr := range targets {
				if up, err = net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
					break
				}
			}
			if up == nil {
				c.Close()
				continue
			}
			conns.add(c, up)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	t.Cleanup(func() {
		close(stop)
		l.Close()
		conns.closeAll()
		wg.Wait()
	})
	return f
}

// observed lists A's /readyz answers the balancer saw, in order.
func (f *failover) observed() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.statuses, " → ")
}

// httpLoad runs workers that call increment in a loop until stop; any answer other than 200, or
// a request that fails even after the transport's retry, fails the test.
type httpLoad struct {
	count atomic.Int64
	done  chan struct{}
	wg    sync.WaitGroup
}

func startHTTPLoad(t *testing.T, endpoint string, workers int) *httpLoad {
	t.Helper()
	l := &httpLoad{done: make(chan struct{})}
	for w := range workers {
		key := fmt.Sprintf("drain-load-%d-%d", w, time.Now().UnixNano())
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 2
		client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer tr.CloseIdleConnections()
			for i := 0; ; i++ {
				select {
				case <-l.done:
					return
				default:
				}
				req, _ := http.NewRequest("POST", endpoint+actionPath(key, "increment"), strings.NewReader(`{"args":[1]}`))
				req.Header.Set("X-Rivet-Encoding", "json")
				req.Header.Set("X-Rivet-Conn-Params", `{"token":"t"}`)
				req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", key, i))
				res, err := client.Do(req)
				if err != nil {
					t.Errorf("load %s request %d: %v", key, i, err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					t.Errorf("load %s request %d: %d %s", key, i, res.StatusCode, body)
					return
				}
				l.count.Add(1)
			}
		}()
	}
	t.Cleanup(l.stop)
	return l
}

func (l *httpLoad) waitCount(t *testing.T, n int64) {
	t.Helper()
	clientWaitFor(t, fmt.Sprintf("%d load requests", n), func() bool { return l.count.Load() >= n })
}

func (l *httpLoad) stop() {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.wg.Wait()
}
