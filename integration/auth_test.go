package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/integration/harness"
)

// The tests' HS256 issuer. The secret goes into the gateway's YAML literally: StartGateway
// passes the gateway no extra environment.
const (
	e2eSecret   = "e2e-shared-secret-0123456789abcdef-0123"
	e2eIssuer   = "rivet-gateway-e2e"
	e2eAudience = "rivet"
	// esIssuer is the iss of the ES256 tokens whose keys come from the test's JWKS server.
	esIssuer = "https://idp.e2e.test/"
	esKID    = "e2e-es256-1"
	// nodeTimeout bounds one node script (each bounds its own run by RUN_TIMEOUT_MS, 60 s).
	nodeTimeout = 75 * time.Second
)

// TestAuth runs the real RivetKit JS client through gateways that authenticate: JWTs in the
// connection params (the browser way), from a shared secret and from a JWKS, tokens that expire
// on an open connection, refused tokens, actor-key binding and API keys.
func TestAuth(t *testing.T) {
	up := harness.StartUpstream(t)
	jwks := startJWKS(t)
	gw := harness.StartGateway(t, jwtGatewayConfig(up.URL, jwks.url, "0s"))

	t.Run("browser token in getParams and static params", func(t *testing.T) {
		t.Parallel()
		tokens := startTokenServer(t, func(int) (string, time.Time) {
			return mintHS256(t, "alice", time.Minute, nil)
		})
		static, _ := mintHS256(t, "alice", time.Minute, nil)
		testBrowserToken(t, gw.URL, "alice", tokens, static)
	})

	t.Run("JWKS issuer", func(t *testing.T) {
		t.Parallel()
		tokens := startTokenServer(t, func(int) (string, time.Time) {
			return jwks.mint(t, "erin", time.Minute)
		})
		static, _ := jwks.mint(t, "erin", time.Minute)
		testBrowserToken(t, gw.URL, "erin", tokens, static)
	})

	t.Run("refused tokens", func(t *testing.T) {
		t.Parallel()
		testRefusedTokens(t, gw.URL, jwks)
	})

	t.Run("token expires while connected", func(t *testing.T) {
		t.Parallel()
		testTokenExpiry(t, gw.URL)
	})

	t.Run("actor key binding", func(t *testing.T) {
		t.Parallel()
		testKeyBinding(t, gw.URL)
	})

	t.Run("API keys", func(t *testing.T) {
		t.Parallel()
		testAPIKeys(t, up.URL)
	})
}

// testBrowserToken: getParams returns {authToken, token}; the actor sees {token} on the
// connection, and a stateless action with static {authToken, token} params sees {token} too.
func testBrowserToken(t *testing.T, endpoint, sub string, tokens *tokenServer, static string) {
	var got struct {
		ConnWho        whoami
		HTTPWho        whoami
		Counts         []float64
		GetParamsCalls int
		Errors         []trackedError
	}
	runScript(t, "auth-client.mjs", map[string]string{
		"RIVET_ENDPOINT_URL": endpoint, "SCENARIO": "getparams", "KEY": sub,
		"TOKEN_URL": tokens.URL, "STATIC_TOKEN": static,
	}, &got)
	got.ConnWho.assertParams(t, "connect()", `{"token":"tok-1"}`)
	got.HTTPWho.assertParams(t, "stateless action", `{"token":"static"}`)
	if got.GetParamsCalls != 1 || tokens.calls() != 1 {
		t.Errorf("getParams calls = %d, token fetches = %d; want 1 and 1", got.GetParamsCalls, tokens.calls())
	}
	if len(got.Counts) != 2 || got.Counts[1] != got.Counts[0]+2 {
		t.Errorf("increment results = %v, want [n, n+2]", got.Counts)
	}
	if len(got.Errors) != 0 {
		t.Errorf("connection errors = %v, want none", got.Errors)
	}
}

// testRefusedTokens: bad tokens get auth.unauthorized as an ActorError, over a stateless
// action and over connect(), and the client does not retry the connection.
func testRefusedTokens(t *testing.T, endpoint string, jwks *jwksServer) {
	wrongSig, _ := signToken(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdef-xyz"), "",
		claims(e2eIssuer, "carol", time.Now().Add(time.Minute), nil))
	expired, _ := signToken(t, jwt.SigningMethodHS256, []byte(e2eSecret), "",
		claims(e2eIssuer, "carol", time.Now().Add(-time.Minute), nil))
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by a key the JWKS does not hold, under the JWKS key's kid.
	foreign, _ := signToken(t, jwt.SigningMethodES256, otherKey, esKID, claims(esIssuer, "carol", time.Now().Add(time.Minute), nil))
	none, _ := signToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "",
		claims(e2eIssuer, "carol", time.Now().Add(time.Minute), nil))
	wantReason := map[string]string{
		"wrong-signature": "invalid",
		"expired":         "expired",
		"foreign-key":     "invalid",
		"alg-none":        "algorithm_not_allowed",
	}
	bad, _ := json.Marshal(map[string]string{
		"wrong-signature": wrongSig, "expired": expired, "foreign-key": foreign, "alg-none": none,
	})

	var got struct {
		Cases map[string]struct {
			HTTP    rivetErr
			Connect struct {
				Statuses       []trackedStatus
				Errors         []trackedError
				Status         string
				GetParamsCalls int
			}
		}
	}
	runScript(t, "auth-client.mjs", map[string]string{
		"RIVET_ENDPOINT_URL": endpoint, "SCENARIO": "rejected", "KEY": "carol", "BAD_TOKENS_JSON": string(bad),
	}, &got)
	for name, reason := range wantReason {
		c, ok := got.Cases[name]
		if !ok {
			t.Errorf("%s: no result", name)
			continue
		}
		if c.HTTP.Group+"."+c.HTTP.Code != "auth.unauthorized" {
			t.Errorf("%s: stateless action: got %+v, want ActorError auth.unauthorized", name, c.HTTP)
		}
		if c.HTTP.Metadata["reason"] != reason {
			t.Errorf("%s: stateless action metadata = %v, want reason %q", name, c.HTTP.Metadata, reason)
		}
		// The gateway's own refusal names itself, so the client's rayId is
		// the one in the gateway's access log.
		if !strings.HasPrefix(c.HTTP.RayID, "gw-") {
			t.Errorf("%s: stateless action rayId = %q, want the gateway's gw- ray id", name, c.HTTP.RayID)
		}
		// The client reports a terminal close twice (once for the close, once when it gives
		// up), like an onBeforeConnect rejection; anything else would be a different error.
		conn := c.Connect
		if len(conn.Errors) == 0 {
			t.Errorf("%s: connect() reported no error, want auth.unauthorized", name)
		}
		for _, e := range conn.Errors {
			if e.Error != "auth.unauthorized" {
				t.Errorf("%s: connect() errors = %v, want only auth.unauthorized", name, conn.Errors)
				break
			}
		}
		if conn.Status != "idle" || conn.GetParamsCalls != 1 {
			t.Errorf("%s: connect() ended %q after %d getParams calls, want idle after 1 (no retry); statuses %v",
				name, conn.Status, conn.GetParamsCalls, conn.Statuses)
		}
	}
}

// testTokenExpiry: a token that expires on an open connection gets the socket closed with
// ws.going_away at expiry; the client reconnects by itself with a fresh token from getParams.
func testTokenExpiry(t *testing.T, endpoint string) {
	tokens := startTokenServer(t, func(n int) (string, time.Time) {
		if n == 1 {
			return mintHS256(t, "dave", 3*time.Second, nil)
		}
		return mintHS256(t, "dave", time.Minute, nil)
	})
	var got struct {
		Before, After whoami
		Tokens        []struct{ Exp, FetchedAt int64 }
		Statuses      []trackedStatus
		Errors        []trackedError
	}
	runScript(t, "auth-client.mjs", map[string]string{
		"RIVET_ENDPOINT_URL": endpoint, "SCENARIO": "expiry", "KEY": "dave", "TOKEN_URL": tokens.URL,
	}, &got)
	got.Before.assertParams(t, "before expiry", `{"token":"tok-1"}`)
	got.After.assertParams(t, "after reconnect", fmt.Sprintf(`{"token":"tok-%d"}`, len(got.Tokens)))
	if len(got.Tokens) < 2 {
		t.Fatalf("getParams calls = %d, want >= 2", len(got.Tokens))
	}
	exp := time.UnixMilli(got.Tokens[0].Exp)
	var closed *trackedError
	for i := range got.Errors {
		if got.Errors[i].Error == "ws.going_away" {
			closed = &got.Errors[i]
			break
		}
	}
	if closed == nil {
		t.Fatalf("errors = %v, want ws.going_away (statuses %v)", got.Errors, got.Statuses)
	}
	// Same clock on both sides; the bound on the late side allows for a loaded machine.
	if at := time.UnixMilli(closed.At); at.Before(exp.Add(-100*time.Millisecond)) || at.After(exp.Add(3*time.Second)) {
		t.Errorf("closed at %v, token expired at %v: want the close at expiry", at.Format(time.StampMilli), exp.Format(time.StampMilli))
	}
	if fetched := time.UnixMilli(got.Tokens[1].FetchedAt); fetched.Before(exp.Add(-100 * time.Millisecond)) {
		t.Errorf("second token fetched at %v, before the first expired (%v)", fetched.Format(time.StampMilli), exp.Format(time.StampMilli))
	}
	for _, s := range got.Statuses {
		if s.Status == "idle" {
			t.Errorf("statuses = %v: the client gave up (idle) instead of reconnecting", got.Statuses)
		}
	}
	t.Logf("expiry: token exp %v, close %+v, statuses %v", exp.Format(time.StampMilli), *closed, got.Statuses)
}

// testKeyBinding: kai's token reaches counter ["kai"] but not ["bob"]. (Each subtest uses
// its own actor keys: engine 2.3.19 answers one of two concurrent first getOrCreate calls for a
// key with 400 actor.destroyed_during_creation.)
func testKeyBinding(t *testing.T, endpoint string) {
	kai, _ := mintHS256(t, "kai", time.Minute, nil)
	auth := map[string]string{
		"Authorization": "Bearer " + kai, "X-Rivet-Encoding": "json", "Content-Type": "application/json",
		"X-Rivet-Conn-Params": `{"token":"t"}`,
	}
	res := do(t, "POST", endpoint+actionPath("kai", "getCount"), strings.NewReader(`{"args":[]}`), auth)
	if res.StatusCode != http.StatusOK {
		t.Errorf("kai -> counter [kai]: status %d, want 200", res.StatusCode)
	}
	res = do(t, "POST", endpoint+actionPath("bob", "getCount"), strings.NewReader(`{"args":[]}`), auth)
	e := assertRivetErrorBody(t, res, http.StatusForbidden, "auth", "forbidden")
	if e.Metadata["reason"] != "key_binding" {
		t.Errorf("metadata = %v, want reason key_binding", e.Metadata)
	}

	// The real client, connecting as kai to bob's counter.
	results := harness.RunChecks(t, endpoint, map[string]string{
		"KEY": "bob", "GETPARAMS_JSON": `{"authToken":"` + kai + `","token":"t"}`, "EXPECT_ERROR": "auth.forbidden",
	}, "connect-error-expected")
	if len(results) == 1 && results[0].OK {
		var d struct{ ConnStatus string }
		if err := results[0].DecodeDetail(&d); err == nil && d.ConnStatus == "connected" {
			t.Errorf("connection status %q after auth.forbidden", d.ConnStatus)
		}
	}
}

// testAPIKeys runs a gateway that accepts API keys in X-API-Key only.
func testAPIKeys(t *testing.T, upstream string) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys.yaml")
	writeKeysFile(t, keysFile, "rotating", "rotating-key")
	gw := harness.StartGateway(t, baseConfig(upstream)+`auth:
  credentials: [api_key_header]
  api_keys:
    keys:
      - id: actions
        sha256: "`+sha256Hex("key-actions")+`"
        scopes: ["action:counter"]
      - id: queue-only
        sha256: "`+sha256Hex("key-queue-only")+`"
        scopes: ["queue:counter"]
      - id: expired
        sha256: "`+sha256Hex("key-expired")+`"
        expires: 2020-01-01T00:00:00Z
    file: "`+keysFile+`"
    file_reload: 100ms
`)
	params := map[string]string{
		"X-Rivet-Encoding": "json", "Content-Type": "application/json", "X-Rivet-Conn-Params": `{"token":"t"}`,
	}
	withKey := func(key string) map[string]string {
		h := map[string]string{}
		if key != "" {
			h["X-API-Key"] = key
		}
		for k, v := range params {
			h[k] = v
		}
		return h
	}
	for _, tc := range []struct {
		name, key    string
		status       int
		code, reason string
	}{
		{"scoped key", "key-actions", 200, "", ""},
		{"key without the scope", "key-queue-only", 403, "forbidden", "missing_scope"},
		{"expired key", "key-expired", 401, "unauthorized", "expired"},
		{"unknown key", "key-unknown", 401, "unauthorized", "invalid_api_key"},
		{"no key", "", 401, "unauthorized", "missing"},
		{"empty key header", " ", 401, "unauthorized", "malformed"},
		{"key from the file", "rotating-key", 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := do(t, "POST", gw.URL+actionPath("keys", "getCount"), strings.NewReader(`{"args":[]}`), withKey(tc.key))
			if tc.status == 200 {
				if res.StatusCode != 200 {
					t.Errorf("status %d, want 200", res.StatusCode)
				}
				return
			}
			e := assertRivetErrorBody(t, res, tc.status, "auth", tc.code)
			if e.Metadata["reason"] != tc.reason {
				t.Errorf("metadata = %v, want reason %q", e.Metadata, tc.reason)
			}
		})
	}

	t.Run("scope limits the intent", func(t *testing.T) {
		u := "ws" + strings.TrimPrefix(gw.URL, "http") + strings.Replace(actionPath("keys", "x"), "/action/x", "/connect", 1)
		code, reason := dialAndReadClose(t, u, http.Header{"X-Api-Key": {"key-actions"}})
		if code != websocket.CloseInternalServerErr || reason != "auth.forbidden" {
			t.Errorf("connect with an action-only key: close %d %q, want 1011 auth.forbidden", code, reason)
		}
	})

	t.Run("real client", func(t *testing.T) {
		results := harness.RunChecks(t, gw.URL, map[string]string{"HEADERS_JSON": `{"X-API-Key":"key-actions"}`}, "whoami-http")
		if len(results) == 1 && results[0].OK {
			var who whoami
			if err := results[0].DecodeDetail(&who); err != nil {
				t.Fatal(err)
			}
			who.assertParams(t, "whoami with an API key", `{"token":"static-tok"}`)
		}
		harness.RunChecks(t, gw.URL, map[string]string{
			"HEADERS_JSON": `{"X-API-Key":"key-queue-only"}`, "EXPECT_ERROR": "auth.forbidden",
		}, "action-error-expected")
	})

	t.Run("revoked key", func(t *testing.T) {
		writeKeysFile(t, keysFile, "other", "other-key")
		deadline := time.Now().Add(10 * time.Second)
		for {
			res := do(t, "POST", gw.URL+actionPath("keys", "getCount"), strings.NewReader(`{"args":[]}`), withKey("rotating-key"))
			if res.StatusCode == http.StatusUnauthorized {
				e := assertRivetErrorBody(t, res, http.StatusUnauthorized, "auth", "unauthorized")
				if e.Metadata["reason"] != "invalid_api_key" {
					t.Errorf("metadata = %v, want reason invalid_api_key", e.Metadata)
				}
				break
			}
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d while the key file is reloaded, want 200 then 401", res.StatusCode)
			}
			if time.Now().After(deadline) {
				t.Fatal("the key removed from the file still works after 10s (file_reload 100ms)")
			}
			time.Sleep(50 * time.Millisecond)
		}
		res := do(t, "POST", gw.URL+actionPath("keys", "getCount"), strings.NewReader(`{"args":[]}`), withKey("other-key"))
		if res.StatusCode != http.StatusOK {
			t.Errorf("the key added to the file: status %d, want 200", res.StatusCode)
		}
	})
}

// writeKeysFile atomically replaces the API keys file with one key.
func writeKeysFile(t *testing.T, path, id, key string) {
	t.Helper()
	tmp := path + ".tmp"
	body := fmt.Sprintf("- id: %s\n  sha256: %q\n  scopes: [\"*\"]\n", id, sha256Hex(key))
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// jwtGatewayConfig is a gateway accepting JWTs (bearer, or authToken in the conn params) from
// the HS256 issuer and the JWKS issuer, binding counter keys to the token's sub, and closing
// WebSockets at token expiry with the given leeway.
func jwtGatewayConfig(upstream, jwksURL, leeway string) string {
	return baseConfig(upstream) + `auth:
  credentials: [bearer, conn_params]
  close_on_expiry: true
  jwt:
    leeway: ` + leeway + `
    issuers:
` + hsIssuerYAML() + `
      - name: jwks
        issuer: "` + esIssuer + `"
        audiences: [` + e2eAudience + `]
        algorithms: [ES256]
        jwks_url: "` + jwksURL + `"
        required_claims: [sub]
  rules:
    - match: {actors: [counter]}
      allow: authenticated
      key_binding: {index: 0, claim: sub}
`
}

// hsIssuerYAML is the HS256 issuer's entry under auth.jwt.issuers.
func hsIssuerYAML() string {
	return `      - name: shared
        issuer: ` + e2eIssuer + `
        audiences: [` + e2eAudience + `]
        algorithms: [HS256]
        secret: "` + e2eSecret + `"
        required_claims: [sub]`
}

// actionPath is the query-gateway path of a stateless action on counter [key].
func actionPath(key, action string) string {
	return "/gateway/counter/action/" + action +
		"?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=" + key + "&rvt-crash-policy=sleep"
}

// --- JWTs ---

// claims returns the registered claims of a test token plus extra.
func claims(iss, sub string, exp time.Time, extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"iss": iss, "sub": sub, "aud": e2eAudience, "iat": time.Now().Unix(), "exp": exp.Unix()}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// signToken signs c with method and key (kid in the header unless empty) and returns the token
// and its expiry.
func signToken(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) (string, time.Time) {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		// Errorf, not Fatalf: token servers call this from their handlers' goroutines.
		t.Errorf("sign %s token: %v", method.Alg(), err)
	}
	exp, _ := c["exp"].(int64)
	return s, time.Unix(exp, 0)
}

// mintHS256 returns a token of the HS256 issuer for sub, valid for ttl (exp is whole seconds,
// so up to 1s less), with extra claims.
func mintHS256(t testing.TB, sub string, ttl time.Duration, extra map[string]any) (string, time.Time) {
	t.Helper()
	return signToken(t, jwt.SigningMethodHS256, []byte(e2eSecret), "", claims(e2eIssuer, sub, time.Now().Add(ttl), extra))
}

// jwksServer is an issuer whose ES256 public key the gateway fetches from a JWKS endpoint.
type jwksServer struct {
	url string
	key *ecdsa.PrivateKey
}

// startJWKS serves a JWKS with one P-256 key on loopback http (allowed for loopback hosts).
func startJWKS(t *testing.T) *jwksServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	set, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": esKID, "alg": "ES256", "use": "sig",
		"x": b64(pt[1:33]), "y": b64(pt[33:]),
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(set)
	}))
	t.Cleanup(srv.Close)
	return &jwksServer{url: srv.URL + "/.well-known/jwks.json", key: key}
}

// mint returns an ES256 token of the JWKS issuer for sub.
func (j *jwksServer) mint(t testing.TB, sub string, ttl time.Duration) (string, time.Time) {
	t.Helper()
	return signToken(t, jwt.SigningMethodES256, j.key, esKID, claims(esIssuer, sub, time.Now().Add(ttl), nil))
}

// tokenServer is the app backend a browser asks for a JWT before each connection: GET answers
// {"token": <jwt>, "exp": <expiry in ms>} with a fresh token per call.
type tokenServer struct {
	URL string
	mu  sync.Mutex
	n   int
}

// startTokenServer serves tokens made by mint(n) for the n-th call, from 1.
func startTokenServer(t *testing.T, mint func(n int) (string, time.Time)) *tokenServer {
	t.Helper()
	ts := &tokenServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ts.n++
		n := ts.n
		ts.mu.Unlock()
		tok, exp := mint(n)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "exp": exp.UnixMilli()})
	}))
	t.Cleanup(srv.Close)
	ts.URL = srv.URL + "/token"
	return ts
}

func (ts *tokenServer) calls() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.n
}

// --- node scripts and results ---

// whoami is what the actor's whoami action returns: the params of the calling connection, as
// c.conn.params and as seen by createConnState.
type whoami struct {
	Params    json.RawMessage `json:"params"`
	ConnState struct {
		Params json.RawMessage `json:"params"`
	} `json:"connState"`
}

// assertParams checks both views of the params against want (JSON).
func (w whoami) assertParams(t *testing.T, what, want string) {
	t.Helper()
	if len(w.Params) == 0 || !jsonEqual(t, w.Params, want) {
		t.Errorf("%s: c.conn.params = %s, want %s", what, w.Params, want)
	}
	if len(w.ConnState.Params) == 0 || !jsonEqual(t, w.ConnState.Params, want) {
		t.Errorf("%s: createConnState params = %s, want %s", what, w.ConnState.Params, want)
	}
}

// rivetErr is an error as the scripts describe it.
type rivetErr struct {
	Group, Code, Message string
	Metadata             map[string]any
	// RayID is the client's rayId: X-Rivet-Ray-Id of the answer.
	RayID string `json:"rayId"`
	// Success is set instead when the call succeeded.
	Success json.RawMessage
}

type trackedError struct {
	Error string
	At    int64
}

type trackedStatus struct {
	Status string
	At     int64
}

func (s trackedStatus) String() string { return s.Status }

// runScript runs a node script of integration/upstream with env and decodes the JSON of the last
// line of its stdout into v. A script that crashes, times out or reports {"error"} fails the
// test.
func runScript(t *testing.T, script string, env map[string]string, v any) {
	t.Helper()
	start := time.Now()
	out, err := harness.RunNode(t, script, env, nodeTimeout)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if err != nil {
		t.Fatalf("node %s: %v\n--- stdout ---\n%s", script, err, out)
	}
	var failed struct{ Error json.RawMessage }
	if err := json.Unmarshal([]byte(last), &failed); err != nil {
		t.Fatalf("node %s: last line %q: %v", script, last, err)
	}
	if len(failed.Error) > 0 {
		t.Fatalf("node %s (%s): %s\n--- result ---\n%s", script, env["SCENARIO"], failed.Error, last)
	}
	if err := json.Unmarshal([]byte(last), v); err != nil {
		t.Fatalf("node %s: result %s: %v", script, last, err)
	}
	t.Logf("node %s %s: %v", script, env["SCENARIO"], time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node %s %s result:\n%s", script, env["SCENARIO"], last)
		}
	})
}

// assertRivetErrorBody is assertRivetError that also returns the decoded body.
func assertRivetErrorBody(t *testing.T, res *http.Response, status int, group, code string) rivetErr {
	t.Helper()
	var e rivetErr
	if res.StatusCode != status {
		t.Errorf("status = %d, want %d", res.StatusCode, status)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
		t.Errorf("body: %v", err)
	}
	if e.Group != group || e.Code != code || e.Message == "" {
		t.Errorf("error = %+v, want %s.%s with a message", e, group, code)
	}
	return e
}
