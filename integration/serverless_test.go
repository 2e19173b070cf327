package integration

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// Serverless actors (issue 15, item 1): the counter served by RivetKit's serverless
// handler(request) in workerd, Cloudflare's Workers runtime, started by the real engine through a
// serverless runner pool, and reached by the real JS client and the Go client through the
// gateway, with the same configuration as the self-hosted tests: JWTs, the README's rules (a
// counter is reachable only by the user its key names) and params built from the verified token.

const (
	// workerdRuntime is what the actor's runtime action answers in workerd (navigator.userAgent).
	workerdRuntime = "Cloudflare-Workers"
	// serverlessFirstTTL is the lifetime of each client's first connection token: the gateway
	// closes the socket when it expires, and the client reconnects with a fresh one. The token
	// is minted before the connection opens, and connect, whoami, increment and its event must
	// all happen before it expires: under CI load (four clients at once, -race) that took up to
	// 2.9 s, and a 3 s token once expired with an action in flight; later a 6 s token did too,
	// an increment left unanswered by workerd for over 5 s while the engine saw another envoy
	// miss its pings. An action the expiry cuts cannot be retried blindly (it may have run), so
	// the token outlives such stalls instead.
	serverlessFirstTTL = 12 * time.Second
)

// serverlessConfig is the README's configuration for actors on Cloudflare Workers, run in front
// of up: JWTs as bearer tokens or in the connection params (the test's HS256 issuer for the
// README's JWKS one), the README's rules (a counter is reachable only by the user its key
// names), params built from the verified token, connections closed when their token expires.
// The gateway must listen where the worker's publicEndpoint points clients (StartGatewayAt).
func serverlessConfig(t *testing.T, up *harness.Upstream) string {
	tokenFile := filepath.Join(t.TempDir(), "token")
	// The open-source engine checks no token: this one only shows the file is read and sent.
	if err := os.WriteFile(tokenFile, []byte("serverless-namespace-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return readmeConfig(t, "### Actors on Cloudflare Workers",
		set("server.listen", "{{LISTEN}}"),
		add("server.shutdown_timeout", "5s"),
		set("admin.listen", "{{ADMIN}}"),
		add("log.level", "debug"),
		set("upstream.url", up.URL),
		set("upstream.token_file", tokenFile),
		set("upstream.namespace", "default"),
		add("auth.jwt.leeway", "0s"),
		set("auth.jwt.issuers", yamlText(hsIssuerYAML())),
	)
}

// TestServerlessActors runs the gateway in front of an engine whose counter actors are served
// by RivetKit's handler(request) in workerd, and drives the real JS client and the Go client
// through it: stateless actions, a connection with events whose token expires and is refreshed
// by getParams / GetParams on the reconnect, and the key binding refusing another user's counter.
// Both clients also start from the Worker's own URL, as a client configured with a Worker's
// address does: the Worker's metadata (its publicEndpoint) must send them to the gateway.
func TestServerlessActors(t *testing.T) {
	up := harness.StartServerlessUpstream(t)
	gw := harness.StartGatewayAt(t, up.PublicAddr, serverlessConfig(t, up))

	// The group returns once its parallel subtests have: the worker's clients below run after
	// them. With all six at once, one workerd process under -race in CI twice left a
	// connection's action unanswered until its token expired.
	t.Run("at the engine and the gateway", func(t *testing.T) {
		// The baseline, as TestUpstreamDirect for the envoy host: every checks.mjs check
		// straight at the engine (raw fetch and WebSocket, queue, ordering, errors included).
		t.Run("checks without gateway", func(t *testing.T) {
			t.Parallel()
			harness.RunChecks(t, up.URL, map[string]string{"RIVET_POOL": up.Pool})
		})
		t.Run("JS client", func(t *testing.T) {
			t.Parallel()
			testServerlessJS(t, gw.URL, up.Pool, "ada")
		})
		t.Run("Go client", func(t *testing.T) {
			t.Parallel()
			testServerlessGo(t, gw.URL, up.Pool, "gus")
		})
	})
	t.Run("the worker sends clients to the gateway", func(t *testing.T) {
		testWorkerMetadata(t, up.WorkerURL, gw.URL)
		t.Run("JS client", func(t *testing.T) { testServerlessJS(t, up.WorkerURL, up.Pool, "cy") })
		t.Run("Go client", func(t *testing.T) { testServerlessGo(t, up.WorkerURL, up.Pool, "dot") })
	})
}

// testWorkerMetadata checks what the worker's /api/rivet/metadata tells a client that starts
// there: the gateway as clientEndpoint (its publicEndpoint), and no token or namespace of its
// own. The clients then never use the worker's URL again: every later request goes to the
// gateway, which the subtests after it prove (the actor sees the params only the gateway builds,
// and the key binding refuses bob's counter).
func testWorkerMetadata(t *testing.T, workerURL, gatewayURL string) {
	resp, err := http.Get(workerURL + "/metadata")
	if err != nil {
		t.Fatalf("worker metadata: %v", err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("worker metadata: status %d, %v", resp.StatusCode, err)
	}
	// RivetKit hands publicEndpoint out normalized, with a trailing slash.
	if md["clientEndpoint"] != gatewayURL+"/" {
		t.Errorf("worker metadata clientEndpoint: got %v, want the gateway %s", md["clientEndpoint"], gatewayURL)
	}
	for _, field := range []string{"clientToken", "clientNamespace"} {
		if v, ok := md[field]; ok {
			t.Errorf("worker metadata %s: got %v, want none", field, v)
		}
	}

	// The rest of /api/rivet is the engine's: it runs actors for whoever calls it. The engine's
	// requests carry the pool's secret header (they start every actor these tests use).
	for _, tt := range []struct{ method, path, secret string }{
		{"POST", "/start", ""},
		{"POST", "/start", "not-the-secret"},
		{"GET", "/start", ""},
		{"GET", "/health", ""},
		{"GET", "", ""},
		{"POST", "/metadata", ""},
	} {
		req, err := http.NewRequest(tt.method, workerURL+tt.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if tt.secret != "" {
			req.Header.Set("X-Worker-Secret", tt.secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s worker%s (secret %q): got %d, want 403", tt.method, tt.path, tt.secret, resp.StatusCode)
		}
	}
}

// serverlessParams is what the actor must see on every connection of sub: the params the
// gateway builds from the token (authzConfig), never the token itself.
func serverlessParams(sub string) string {
	return `{"token":"verified-by-gateway","userId":"` + sub + `"}`
}

// testServerlessJS drives serverless-client.mjs as sub, starting at endpoint: stateless actions with a bearer
// token, connect() whose getParams token expires and is refreshed on the reconnect, and bob's
// counter refused over HTTP and connect().
func testServerlessJS(t *testing.T, endpoint, pool, sub string) {
	tokens := startTokenServer(t, func(n int) (string, time.Time) {
		ttl := time.Minute
		if n == 1 {
			ttl = serverlessFirstTTL
		}
		return mintHS256(t, sub, ttl, nil)
	})
	static, _ := mintHS256(t, sub, time.Minute, nil)
	var got struct {
		HTTP struct {
			Runtime string
			Count   float64
			Who     whoami
		}
		Conn struct {
			Before, After  whoami
			Counts, Events []float64
			GetParamsCalls int
			Errors         []trackedError
			Statuses       []trackedStatus
		}
		Other struct {
			HTTP    rivetErr
			Connect struct {
				Errors         []trackedError
				Status         string
				GetParamsCalls int
			}
		}
	}
	runScript(t, "serverless-client.mjs", map[string]string{
		"RIVET_ENDPOINT_URL": endpoint, "POOL": pool, "KEY": sub, "OTHER_KEY": "bob",
		"TOKEN": static, "TOKEN_URL": tokens.URL,
	}, &got)

	if got.HTTP.Runtime != workerdRuntime {
		t.Errorf("actor runtime: got %q, want %q (served by workerd)", got.HTTP.Runtime, workerdRuntime)
	}
	if got.HTTP.Count != 5 {
		t.Errorf("increment(5) on a new counter: got %v, want 5", got.HTTP.Count)
	}
	got.HTTP.Who.assertParams(t, "stateless action", serverlessParams(sub))

	c := got.Conn
	c.Before.assertParams(t, "connect()", serverlessParams(sub))
	c.After.assertParams(t, "connect() after the token expired", serverlessParams(sub))
	if len(c.Counts) != 2 || c.Counts[0] != 7 || c.Counts[1] != 10 {
		t.Errorf("increments over the connection: got %v, want [7 10]", c.Counts)
	}
	for _, n := range []float64{7, 10} {
		if !slices.Contains(c.Events, n) {
			t.Errorf("newCount events: got %v, want %v among them", c.Events, n)
		}
	}
	if c.GetParamsCalls != 2 || tokens.calls() != 2 {
		t.Errorf("getParams calls %d, token fetches %d: want 2 and 2 (connect, reconnect)", c.GetParamsCalls, tokens.calls())
	}
	if len(c.Errors) != 1 || c.Errors[0].Error != "ws.going_away" {
		t.Errorf("connection errors: got %v, want only the ws.going_away of the expiry", c.Errors)
	}

	o := got.Other
	if o.HTTP.Group+"."+o.HTTP.Code != "auth.forbidden" || o.HTTP.Metadata["reason"] != "key_binding" {
		t.Errorf("stateless action on bob's counter: got %+v, want auth.forbidden (key_binding)", o.HTTP)
	}
	// The client reports a refused connection to onError twice (the Error message, then the
	// close), as for an onBeforeConnect rejection.
	if len(o.Connect.Errors) == 0 || slices.ContainsFunc(o.Connect.Errors, func(e trackedError) bool { return e.Error != "auth.forbidden" }) {
		t.Errorf("connect() to bob's counter: errors %v, want auth.forbidden only", o.Connect.Errors)
	}
	if o.Connect.GetParamsCalls != 1 || o.Connect.Status == "connected" {
		t.Errorf("connect() to bob's counter: getParams calls %d, status %q; want 1 (no retry), not connected", o.Connect.GetParamsCalls, o.Connect.Status)
	}
}

// testServerlessGo does what testServerlessJS does with the Go client.
func testServerlessGo(t *testing.T, endpoint, pool, sub string) {
	clientLeakCheck(t)
	ctx := clientContext(t)
	c := startClient(t, endpoint, rivetclient.WithPoolName(pool))
	token, _ := mintHS256(t, sub, time.Minute, nil)
	params := serverlessParams(sub)

	// Stateless actions: the token travels in the params field the gateway reads and removes.
	h := c.GetOrCreate("counter", []string{sub}, rivetclient.HandleOptions{Params: map[string]string{"authToken": token}})
	var runtime string
	if err := h.Action(ctx, "runtime", &runtime); err != nil || runtime != workerdRuntime {
		t.Fatalf("runtime: got %q, %v; want %q (served by workerd)", runtime, err, workerdRuntime)
	}
	var n int
	if err := h.Action(ctx, "increment", &n, 4); err != nil || n != 4 {
		t.Fatalf("increment(4) on a new counter: got %d, %v; want 4", n, err)
	}
	var who whoami
	if err := h.Action(ctx, "whoami", &who); err != nil {
		t.Fatalf("whoami: %v", err)
	}
	who.assertParams(t, "stateless action", params)

	// A connection whose first token expires: GetParams is called again for the reconnect.
	var calls atomic.Int32
	hc := c.GetOrCreate("counter", []string{sub}, rivetclient.HandleOptions{GetParams: func(context.Context) (any, error) {
		ttl := time.Minute
		if calls.Add(1) == 1 {
			ttl = serverlessFirstTTL
		}
		tok, _ := mintHS256(t, sub, ttl, nil)
		return map[string]string{"authToken": tok}, nil
	}})
	conn, err := hc.Connect(ctx)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	log := watchConn(t, conn, "newCount")
	if err := conn.Action(ctx, "whoami", &who); err != nil {
		t.Fatalf("whoami over the connection: %v", err)
	}
	who.assertParams(t, "Connect", params)
	if err := conn.Action(ctx, "increment", &n, 1); err != nil || n != 5 {
		t.Fatalf("increment(1) over the connection: got %d, %v; want 5", n, err)
	}
	log.waitEvent(t, 5)
	log.waitErrors(t, "ws.going_away")
	clientWaitFor(t, "the reconnect with a fresh token", func() bool {
		return calls.Load() >= 2 && conn.Status() == rivetclient.StatusConnected
	})
	if err := conn.Action(ctx, "whoami", &who); err != nil {
		t.Fatalf("whoami after the reconnect: %v", err)
	}
	who.assertParams(t, "Connect after the token expired", params)
	if err := conn.Action(ctx, "increment", &n, 2); err != nil || n != 7 {
		t.Fatalf("increment(2) after the reconnect: got %d, %v; want 7", n, err)
	}
	log.waitEvent(t, 7)
	if got := log.errorCodes(); len(got) != 1 || calls.Load() != 2 {
		t.Errorf("errors %v, GetParams calls %d: want only ws.going_away, and 2 calls", got, calls.Load())
	}

	// bob's counter, with gus's valid token: refused over HTTP and over a connection, for good.
	bob := c.GetOrCreate("counter", []string{"bob"}, rivetclient.HandleOptions{Params: map[string]string{"authToken": token}})
	var ae *rivetclient.ActorError
	if err := bob.Action(ctx, "getCount", nil); !errors.As(err, &ae) || ae.Group != "auth" || ae.Code != "forbidden" {
		t.Errorf("stateless action on bob's counter: got %v, want auth.forbidden", err)
	}
	if bc, err := bob.Connect(ctx); err == nil {
		bc.Close()
		t.Errorf("Connect to bob's counter succeeded, want auth.forbidden")
	} else if !errors.As(err, &ae) || ae.Group != "auth" || ae.Code != "forbidden" || rivetclient.IsRetryable(err) {
		t.Errorf("Connect to bob's counter: got %v, want the terminal auth.forbidden", err)
	}
	c.Close()
}
