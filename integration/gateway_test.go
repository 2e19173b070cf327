package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

const testOrigin = "http://localhost:3000"

// openConfig is a gateway config whose rules let anonymous callers reach
// every actor route: the core tests exercise the proxy, not authentication.
// (Authentication still needs one credential source configured.)
func openConfig(upstream string) string {
	return `
server:
  listen: "{{LISTEN}}"
  shutdown_timeout: 10s
admin:
  listen: "{{ADMIN}}"
log:
  level: debug
upstream:
  url: "` + upstream + `"
  websocket:
    ping_interval: 2s
cors:
  allowed_origins: ["` + testOrigin + `"]
auth:
  api_keys:
    keys:
      - id: ci
        sha256: "` + sha256Hex("ci-key") + `"
  rules:
    - match: {intents: [action, queue, request, connect, websocket]}
      allow: anonymous
`
}

// TestGatewayRealClient runs every check of the real RivetKit JS client
// through the gateway, in all three encodings.
func TestGatewayRealClient(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, openConfig(up.URL))
	for _, enc := range encodings {
		t.Run(enc, func(t *testing.T) {
			t.Parallel()
			harness.RunChecks(t, gw.URL, map[string]string{"ENC": enc})
		})
	}
	t.Run("parameterized", func(t *testing.T) {
		t.Parallel()
		testParameterizedChecks(t, gw.URL)
	})
}

// TestGatewayCORS sends a browser's preflight and actual request.
func TestGatewayCORS(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, openConfig(up.URL))
	path := "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=cors&rvt-crash-policy=sleep"

	t.Run("preflight allowed", func(t *testing.T) {
		res := do(t, "OPTIONS", gw.URL+path, nil, map[string]string{
			"Origin":                         testOrigin,
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "content-type,x-rivet-encoding,x-rivet-conn-params",
		})
		if res.StatusCode != http.StatusNoContent {
			t.Fatalf("status = %d, want 204", res.StatusCode)
		}
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != testOrigin {
			t.Errorf("Allow-Origin = %q, want %q", got, testOrigin)
		}
		if got := res.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("Allow-Credentials = %q, want true", got)
		}
		allowed := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"content-type", "x-rivet-encoding", "x-rivet-conn-params", "authorization"} {
			if !strings.Contains(allowed, h) {
				t.Errorf("Allow-Headers %q lacks %s", allowed, h)
			}
		}
	})
	t.Run("preflight from another origin", func(t *testing.T) {
		res := do(t, "OPTIONS", gw.URL+path, nil, map[string]string{
			"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
		})
		if res.StatusCode != http.StatusForbidden || res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("status = %d, Allow-Origin = %q; want 403 and none", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
		}
	})
	t.Run("actual request has exactly one set of CORS headers", func(t *testing.T) {
		res := do(t, "POST", gw.URL+path, strings.NewReader(`{"args":[1]}`), map[string]string{
			"Origin": testOrigin, "Content-Type": "application/json", "X-Rivet-Encoding": "json",
			"X-Rivet-Conn-Params": `{"token":"x"}`,
		})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", res.StatusCode)
		}
		if got := res.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != testOrigin {
			t.Errorf("Allow-Origin = %q, want exactly [%s] (the engine's * replaced)", got, testOrigin)
		}
		if res.Header.Get("X-Rivet-Ray-Id") == "" {
			t.Error("X-Rivet-Ray-Id was not passed through")
		}
	})
	t.Run("websocket from a disallowed origin", func(t *testing.T) {
		u := "ws" + strings.TrimPrefix(gw.URL, "http") + strings.Replace(path, "/action/increment", "/connect", 1)
		code, reason := dialAndReadClose(t, u, http.Header{"Origin": {"https://evil.example"}})
		if code != websocket.CloseInternalServerErr || reason != "cors.origin_not_allowed" {
			t.Errorf("close = %d %q, want 1011 cors.origin_not_allowed", code, reason)
		}
	})
}

// TestGatewayErrorsAreRivetShaped checks the gateway's own rejections.
func TestGatewayErrorsAreRivetShaped(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, openConfig(up.URL))
	for _, tc := range []struct {
		name, path string
		status     int
		group      string
		code       string
	}{
		{"unknown route", "/runners/connect", 404, "guard", "no_route"},
		{"engine administration denied by default", "/namespaces", 403, "auth", "forbidden"},
		{"duplicate rvt param", "/gateway/counter/action/x?rvt-namespace=a&rvt-namespace=b&rvt-method=get", 400, "guard", "query_invalid_params"},
		{"inspector denied by default", "/gateway/hwzdj7sr4l7y4lxlvc506jrjwtal00/inspector/connect", 403, "auth", "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, "POST", gw.URL+tc.path, nil, nil)
			assertRivetError(t, res, tc.status, tc.group, tc.code)
		})
	}
}

// TestGatewayUpstreamStopped stops the engine under a running real client:
// the client gets a RivetKit ActorError (not a bare 502 page), its open
// connection is closed with a reason and reconnects by itself once the
// engine is back, and readiness follows the engine.
func TestGatewayUpstreamStopped(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, openConfig(up.URL))
	dir := t.TempDir()

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := harness.RunNode(t, "engine-outage.mjs", map[string]string{"RIVET_ENDPOINT_URL": gw.URL, "OUTAGE_DIR": dir}, 90*time.Second)
		done <- result{out, err}
	}()
	waitFile := func(name string) {
		t.Helper()
		for range 600 {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return
			}
			select {
			case r := <-done:
				t.Fatalf("client exited early: %s %v", r.out, r.err)
			case <-time.After(50 * time.Millisecond):
			}
		}
		t.Fatalf("timeout waiting for the client to write %s", name)
	}
	waitFile("ready")
	up.Stop(t)
	res := do(t, "POST", gw.URL+"/gateway/counter/action/getCount?rvt-namespace=default&rvt-method=get&rvt-key=x", nil,
		map[string]string{"X-Rivet-Encoding": "json"})
	assertRivetError(t, res, http.StatusBadGateway, "guard", "service_unavailable")
	os.WriteFile(filepath.Join(dir, "down"), nil, 0o600)
	waitFile("seen")
	if code := getStatus(t, gw.AdminURL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Logf("readyz with the engine down = %d (cached for one readiness interval)", code)
	}
	up.Start(t)
	os.WriteFile(filepath.Join(dir, "up"), nil, 0o600)

	r := <-done
	if r.err != nil {
		t.Fatalf("client: %v", r.err)
	}
	var got struct {
		Before        *float64
		DuringAction  string
		ConnErrors    []string
		After         *float64
		Reconnected   bool
		NewConnection bool
		Statuses      []string
		Error         string
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("client output %q: %v", r.out, err)
	}
	if got.Error != "" || got.Before == nil || got.After == nil {
		t.Fatalf("client = %+v", got)
	}
	if got.DuringAction != "guard.service_unavailable" {
		t.Errorf("action with the engine down: %q, want ActorError guard.service_unavailable", got.DuringAction)
	}
	if len(got.ConnErrors) == 0 || got.ConnErrors[0] != "guard.service_unavailable" {
		t.Errorf("connection errors = %v, want the retryable guard.service_unavailable first", got.ConnErrors)
	}
	if !slices.Contains(got.Statuses[1:], "connecting") {
		t.Errorf("statuses = %v: the client did not retry after the gateway's close", got.Statuses)
	}
	if !got.NewConnection {
		t.Errorf("no new connection after the engine restarted")
	}
	t.Logf("engine outage: errors %v, statuses %v, old connection back: %v", got.ConnErrors, got.Statuses, got.Reconnected)
	if code := getStatus(t, gw.AdminURL+"/readyz"); code != http.StatusOK {
		// One readiness interval may still hold the failure.
		time.Sleep(6 * time.Second)
		if code = getStatus(t, gw.AdminURL+"/readyz"); code != http.StatusOK {
			t.Errorf("readyz after the engine is back = %d, want 200", code)
		}
	}
}

func getStatus(t *testing.T, u string) int {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestGatewayShutdownClosesWebSockets sends SIGTERM with a proxied
// WebSocket open: it is closed with 1001 ws.going_away, and the process
// exits cleanly.
func TestGatewayShutdownClosesWebSockets(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, openConfig(up.URL))
	u := "ws" + strings.TrimPrefix(gw.URL, "http") +
		"/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=shutdown&rvt-crash-policy=sleep"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{
		"rivet", "rivet_encoding.json", "rivet_conn_params." + url.QueryEscape(`{"token":"t"}`),
	}}
	conn, _, err := d.Dial(u, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	if _, msg, err := conn.ReadMessage(); err != nil || !strings.Contains(string(msg), `"Init"`) {
		t.Fatalf("first message = %s, %v; want Init", msg, err)
	}
	if err := gw.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, reason := readClose(conn)
	if code != websocket.CloseGoingAway || reason != "ws.going_away" {
		t.Errorf("close = %d %q, want 1001 ws.going_away", code, reason)
	}
	exit, err := gw.Wait(15 * time.Second)
	if err != nil || exit != 0 {
		t.Errorf("exit = %d, %v; want 0\n%s", exit, err, gw.Logs())
	}
}

// TestCheckListsEveryProblem runs the built binary's -check on a broken
// config: one pass, every problem once with its path and line (an unknown
// key and a type error no longer hide the rest), exit 1; -skip-files
// leaves out the missing file and says so; a stray argument is a usage
// error; the example config passes.
func TestCheckListsEveryProblem(t *testing.T) {
	bin := harness.BuildGateway(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "broken.yaml")
	broken := `
server:
  listen: "nonsense"
  lissen: ":1"
  read_timeout: 30
upstream:
  url: "ftp://engine"
  ca_file: /nonexistent/ca.pem
  websocket:
    read_limit: -1
cors:
  allowed_origins: ["*"]
  allow_credentials: true
log:
  level: loud
`
	if err := os.WriteFile(cfg, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(args ...string) (string, int) {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errorsAs(err, &ee) {
			t.Fatalf("%v: %v", args, err)
		}
		if ee != nil {
			return string(out), ee.ExitCode()
		}
		return string(out), 0
	}
	problems := []string{
		"  line 3: server.listen: not a host:port address",
		`  line 4: server.lissen: unknown key "lissen"`,
		`  line 5: server.read_timeout: got 30, want a duration (write durations as "30s", "5m")`,
		"  line 7: upstream.url: scheme must be http or https",
		"  line 8: upstream.ca_file: open /nonexistent/ca.pem",
		"  line 10: upstream.websocket.read_limit: must be positive",
		"  line 12: cors.allowed_origins[0]:",
		"  line 15: log.level:",
		"  auth: no credential can ever be valid", // not in the file: no line, last
	}
	out, code := check("-config", cfg, "-check")
	if code != 1 || !strings.Contains(out, "invalid configuration, 9 problems:") {
		t.Errorf("-check: exit %d, want 1 and 9 problems:\n%s", code, out)
	}
	at := 0
	for _, want := range problems {
		if n := strings.Count(out, want); n != 1 {
			t.Errorf("-check output has %q %d times, want once:\n%s", want, n, out)
			continue
		}
		if i := strings.Index(out, want); i < at {
			t.Errorf("-check output has %q out of line order:\n%s", want, out)
		} else {
			at = i
		}
	}

	out, code = check("-config", cfg, "-check", "-skip-files")
	if code != 1 || strings.Contains(out, "open /nonexistent") || !strings.Contains(out, "invalid configuration, 8 problems:") ||
		!strings.Contains(out, "1 referenced file not checked (-skip-files):\n  upstream.ca_file: /nonexistent/ca.pem") {
		t.Errorf("-check -skip-files: exit %d, want 1, 8 problems and the file not checked:\n%s", code, out)
	}

	if out, code = check("-config", cfg, "-check", "extra"); code != 2 || !strings.Contains(out, `unexpected argument "extra"`) {
		t.Errorf("-check with an extra argument: exit %d, want 2 and the usage:\n%s", code, out)
	}

	good := filepath.Join("..", "config.example.yaml")
	cmd := exec.Command(bin, "-config", good, "-check")
	cmd.Env = append(os.Environ(), "JWT_SECRET=0123456789abcdef0123456789abcdef")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("config.example.yaml does not pass -check: %v\n%s", err, out)
	}
}

// --- helpers ---

func do(t *testing.T, method, u string, body io.Reader, header map[string]string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func assertRivetError(t *testing.T, res *http.Response, status int, group, code string) {
	t.Helper()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e struct{ Group, Code, Message string }
	if err := json.Unmarshal(body, &e); err != nil || e.Group != group || e.Code != code || e.Message == "" {
		t.Errorf("body = %s, want group %q code %q and a message", body, group, code)
	}
}

// dialAndReadClose dials a gateway WebSocket as the RivetKit client does
// and returns the close it receives.
func dialAndReadClose(t *testing.T, u string, h http.Header) (int, string) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Subprotocols: []string{"rivet", "rivet_encoding.json"}}
	conn, res, err := d.Dial(u, h)
	if err != nil {
		status := 0
		if res != nil {
			status = res.StatusCode
		}
		t.Fatalf("dial: %v (status %d); the gateway must accept then close", err, status)
	}
	defer conn.Close()
	if conn.Subprotocol() != "rivet" {
		t.Errorf("subprotocol = %q, want rivet", conn.Subprotocol())
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return readClose(conn)
}

// readClose reads until the close and returns its code and reason, without
// the "#rayId" the gateway and the engine append to their reasons.
func readClose(conn *websocket.Conn) (int, string) {
	for range 100 {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errorsAs(err, &ce) {
			reason, _ := rivet.SplitRayID(ce.Text)
			return ce.Code, reason
		}
		return -1, err.Error()
	}
	return -1, "no close"
}
