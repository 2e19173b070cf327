package integration

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// The gateway in front of a hosted engine (issue 15, item 2): the real engine behind a TLS edge
// of its own (tlsFront: its own CA, a certificate for engine.rivet.test only, which does not
// resolve and is not the address it is reached at, the namespace token required), the gateway
// configured as for Rivet Cloud (an https upstream, its CA, the engine's name for SNI and Host,
// the namespace token held by the gateway) and serving TLS itself, and the real JS client and
// the Go client on every client route over https and wss. Each client holds a namespace token
// of its own and sends it wherever RivetKit sends one: the front must only ever see the
// gateway's.

const (
	hostedEngineName = "engine.rivet.test"
	// hostedToken is the namespace token: the engine's own (auth.admin_token) and the front's.
	hostedToken = "ns-token-held-by-the-gateway"
	// The clients' own namespace tokens, which must never reach the engine.
	hostedJSToken = "client-js-own-token"
	hostedGoToken = "client-go-own-token"
	hostedAPIKey  = "hosted-e2e-api-key"
	// hostedAPIKeyID is its id in the API keys file.
	hostedAPIKeyID = "hosted-e2e"
)

// hostedSetup is what a hosted gateway's configuration names.
type hostedSetup struct {
	front                     *tlsFront
	caFile, certFile, keyFile string
	tokenFile, keysFile       string // the namespace token, the API keys (hostedAPIKey)
}

// hostedReadmeHeading is the README section whose configuration these tests run.
const hostedReadmeHeading = "### In front of Rivet Cloud"

// newHostedSetup writes the files the configuration references: the gateway's certificate, the
// namespace token, the API keys file.
func newHostedSetup(t *testing.T, pki *testPKI, front *tlsFront) hostedSetup {
	_, certFile, keyFile := pki.issue(t, "gateway", []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	dir := t.TempDir()
	h := hostedSetup{front: front, caFile: pki.CAFile, certFile: certFile, keyFile: keyFile,
		tokenFile: filepath.Join(dir, "token"), keysFile: filepath.Join(dir, "api-keys.yaml")}
	keys := "- id: " + hostedAPIKeyID + "\n  sha256: \"" + sha256Hex(hostedAPIKey) + "\"\n"
	for file, content := range map[string]string{h.tokenFile: hostedToken + "\n", h.keysFile: keys} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// config returns the README's configuration for Rivet Cloud (hostedReadmeHeading) with what is
// the deployment's replaced by the test's, and, without the upstream keys named in omit (host,
// server_name, ca_file, token), for the tests showing what each of them is for.
func (h hostedSetup) config(t *testing.T, omit ...string) string {
	edits := []yamlEdit{
		set("server.listen", "{{LISTEN}}"),
		add("server.shutdown_timeout", "5s"),
		set("server.tls_cert_file", h.certFile),
		set("server.tls_key_file", h.keyFile),
		set("admin.listen", "{{ADMIN}}"),
		add("log.level", "debug"),
		// The URL names the address: engine.rivet.test does not resolve here (nor, for a
		// private endpoint, in production). host and server_name name the engine.
		set("upstream.url", h.front.URL),
		set("upstream.token_file", h.tokenFile),
		set("upstream.namespace", "default"),
		set("auth.api_keys.file", h.keysFile),
	}
	for _, kv := range [][2]string{{"host", h.front.Host}, {"server_name", h.front.Name}, {"ca_file", h.caFile}} {
		if !slices.Contains(omit, kv[0]) {
			edits = append(edits, add("upstream."+kv[0], kv[1]))
		}
	}
	if slices.Contains(omit, "token") {
		edits = append(edits, del("upstream.token_file"))
	}
	return readmeConfig(t, hostedReadmeHeading, edits...)
}

// assertHostedParams: the actor saw the params the README's configuration builds for hostedAPIKey.
func assertHostedParams(t *testing.T, what string, p map[string]any) {
	t.Helper()
	if p["token"] != "verified-by-gateway" || p["caller"] != hostedAPIKeyID || len(p) != 2 {
		t.Errorf("params the actor saw (%s): got %v, want only the gateway's {token: verified-by-gateway, caller: %s}", what, p, hostedAPIKeyID)
	}
}

// TestHostedEngineOverTLS runs the real JS client and the Go client through a TLS gateway in
// front of the real engine behind a TLS front (see the top of this file), on every client route:
// metadata, actions by key and by id, create, connect with events, raw fetch, raw WebSocket and
// queue. The front must see only the gateway's token, in the carriers the engine reads, with
// engine.rivet.test as SNI and Host on every connection and request.
func TestHostedEngineOverTLS(t *testing.T) {
	pki := newTestPKI(t)
	up := harness.StartUpstreamWith(t, harness.UpstreamOptions{AdminToken: hostedToken})
	front := startTLSFront(t, pki, hostedEngineName, up.URL, hostedToken)
	setup := newHostedSetup(t, pki, front)
	gw := harness.StartGateway(t, setup.config(t))
	endpoint := "https://" + strings.TrimPrefix(gw.URL, "http://")
	// Trusting the test CA the usual way: the default transport, cloned, with a root pool. Its
	// TLS config offers h2 (issue 12: rivetclient's WebSocket dials must not inherit that).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig.RootCAs = pki.Pool()
	trusting := &http.Client{Timeout: 30 * time.Second, Transport: transport}

	t.Run("the front and the engine refuse what the gateway must get right", func(t *testing.T) {
		testFrontRefuses(t, front, up.URL, pki)
	})
	front.take() // the probes above are not the gateway's traffic

	t.Run("JS client", func(t *testing.T) {
		var out struct {
			ActionByKey, GetByKey, ActionByID, GetForID int
			CreatedID                                   string
			WhoamiHTTP                                  map[string]any
			ConnectByKey, ConnectByID                   struct {
				Count, Event int
				Params       map[string]any
			}
			FetchByKey, FetchByID struct {
				Status        int
				Path          string
				ActorSawToken *string
			}
			QueueByKey, QueueByID string
		}
		runScript(t, "hosted-client.mjs", map[string]string{
			"RIVET_ENDPOINT_URL":  endpoint,
			"NODE_EXTRA_CA_CERTS": pki.CAFile,
			"RIVET_TOKEN":         hostedJSToken,
			"API_KEY":             hostedAPIKey,
			"KEY":                 fmt.Sprintf("hosted-js-%d", time.Now().UnixNano()),
		}, &out)
		if out.ActionByKey != 5 || out.GetByKey != 5 || out.ActionByID != 3 || out.GetForID != 3 || out.CreatedID == "" {
			t.Errorf("actions: got by key %d then %d, by id %d then %d (id %q); want 5, 5, 3, 3 and an id",
				out.ActionByKey, out.GetByKey, out.ActionByID, out.GetForID, out.CreatedID)
		}
		for what, p := range map[string]map[string]any{"HTTP": out.WhoamiHTTP, "connect by key": out.ConnectByKey.Params, "connect by id": out.ConnectByID.Params} {
			assertHostedParams(t, what, p)
		}
		for what, f := range map[string]*string{"by key": out.FetchByKey.ActorSawToken, "by id": out.FetchByID.ActorSawToken} {
			if f != nil && *f != hostedToken {
				t.Errorf("raw fetch %s: the actor saw x-rivet-token %q, want none or the gateway's", what, *f)
			}
			if f != nil {
				t.Logf("raw fetch %s: engine 2.3.19 passed the gateway's x-rivet-token on to the actor's onRequest", what)
			}
		}
		requests, snis := front.take()
		t.Logf("JS client: what the front saw (route, protocol, token carriers):\n%s", carrierTable(requests))
		assertHostedTraffic(t, front, requests, snis, hostedJSToken, []string{
			"/metadata", "POST /actors",
			"/gateway by key /action", "/gateway by id /action",
			"/gateway by key /connect", "/gateway by id /connect",
			"/gateway by key /request", "/gateway by id /request",
			"/gateway by key /websocket", "/gateway by id /websocket",
			"/gateway by key /queue", "/gateway by id /queue",
		})
	})

	t.Run("Go client", func(t *testing.T) {
		clientLeakCheck(t)
		testHostedGoClient(t, endpoint, trusting)
		requests, snis := front.take()
		t.Logf("Go client: what the front saw (route, protocol, token carriers):\n%s", carrierTable(requests))
		assertHostedTraffic(t, front, requests, snis, hostedGoToken, []string{
			"/metadata", "POST /actors",
			"/gateway by key /action", "/gateway by id /action",
			"/gateway by key /connect", "/gateway by id /connect",
			"/gateway by key /request", "/gateway by id /request",
			"/gateway by key /websocket", "/gateway by id /websocket",
			"/gateway by key /queue", "/gateway by id /queue",
		})
	})

	// What each upstream key is for: a gateway without it fails against the front, and the
	// front says why.
	t.Run("without", func(t *testing.T) {
		for _, tt := range []struct {
			omit string
			want func(t *testing.T, status int, requests []frontRequest, snis []string)
		}{
			{"server_name", func(t *testing.T, status int, requests []frontRequest, snis []string) {
				// Go sends no SNI for an address: the front has no certificate for that.
				if status < 500 || len(requests) != 0 || !slices.Contains(snis, "") {
					t.Errorf("got status %d, %d requests through, server names %q; want a 5xx, none, an empty server name", status, len(requests), snis)
				}
			}},
			{"ca_file", func(t *testing.T, status int, requests []frontRequest, snis []string) {
				// The front's certificate is not from a system root: the handshake fails.
				if status < 500 || len(requests) != 0 {
					t.Errorf("got status %d, %d requests through; want a 5xx, none", status, len(requests))
				}
			}},
			{"host", func(t *testing.T, status int, requests []frontRequest, snis []string) {
				// Host is the URL's, the address: the front routes on Host and knows no such host.
				if status != http.StatusMisdirectedRequest || len(requests) == 0 || requests[0].Host != front.Addr {
					t.Errorf("got status %d, requests %+v; want 421, the front seeing Host %s", status, requests, front.Addr)
				}
			}},
			{"token", func(t *testing.T, status int, requests []frontRequest, snis []string) {
				// The client's token passes through, and the engine's edge refuses it.
				if status != http.StatusForbidden || len(requests) == 0 || requests[0].Refused == "" {
					t.Errorf("got status %d, requests %+v; want 403 from the front, which refused the client's token", status, requests)
				}
			}},
		} {
			t.Run(tt.omit, func(t *testing.T) {
				g := harness.StartGateway(t, setup.config(t, tt.omit))
				front.take()
				status := hostedAction(t, trusting, "https://"+strings.TrimPrefix(g.URL, "http://"))
				requests, snis := front.take()
				// The gateway's readiness probe may have reached the front meanwhile.
				requests = slices.DeleteFunc(requests, func(r frontRequest) bool { return r.Route == "/health" })
				tt.want(t, status, requests, snis)
				// No idle HTTP/2 connection to wait for at shutdown (http2's GOAWAY grace).
				trusting.CloseIdleConnections()
				g.Stop(t)
			})
		}
	})
}

// hostedAction sends one action by key through the gateway at endpoint, as a client holding its
// own namespace token (x-rivet-token), and returns the status.
func hostedAction(t *testing.T, hc *http.Client, endpoint string) int {
	t.Helper()
	req, err := http.NewRequest("POST", endpoint+actionPath(fmt.Sprintf("hosted-without-%d", time.Now().UnixNano()), "getCount"), strings.NewReader(`{"args":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Rivet-Encoding", "json")
	req.Header.Set("X-API-Key", hostedAPIKey)
	req.Header.Set("X-Rivet-Token", hostedGoToken)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("action through the gateway: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("action through the gateway: %d %s", res.StatusCode, body)
	return res.StatusCode
}

// testFrontRefuses shows the front and the engine are not a formality: a wrong or missing
// server name fails the handshake, a wrong Host gets 421, a missing or wrong token 403, and the
// engine itself refuses its API without the token.
func testFrontRefuses(t *testing.T, front *tlsFront, engineURL string, pki *testPKI) {
	front.take()
	for _, sni := range []string{"other.rivet.test", ""} {
		// No server name: Go sends none for an address. Skipping verification leaves the
		// refusal to the front.
		conn, err := tls.Dial("tcp", front.Addr, &tls.Config{ServerName: sni, RootCAs: pki.Pool(), InsecureSkipVerify: sni == ""})
		if err == nil {
			conn.Close()
			t.Errorf("TLS handshake with server name %q: got success, want a refusal", sni)
		}
	}
	if _, snis := front.take(); !slices.Equal(snis, []string{"other.rivet.test", ""}) {
		t.Errorf("server names the front refused: got %q, want [other.rivet.test \"\"]", snis)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: front.Name, RootCAs: pki.Pool()},
	}}
	for _, tt := range []struct {
		name, method, path string
		header             map[string]string
		status             int
	}{
		{"wrong Host", "GET", "/metadata", map[string]string{"Host": "other.rivet.test"}, http.StatusMisdirectedRequest},
		{"/actors without a token", "GET", "/actors?namespace=default&name=counter", nil, http.StatusForbidden},
		{"/actors with another token", "GET", "/actors?namespace=default&name=counter", map[string]string{"Authorization": "Bearer " + hostedGoToken}, http.StatusForbidden},
		{"/actors with the token", "GET", "/actors?namespace=default&name=counter", map[string]string{"Authorization": "Bearer " + hostedToken}, http.StatusOK},
		{"/gateway without a token", "POST", actionPath("probe", "getCount"), nil, http.StatusForbidden},
		{"/gateway with another token", "POST", actionPath("probe", "getCount"), map[string]string{"X-Rivet-Token": hostedGoToken}, http.StatusForbidden},
	} {
		req, _ := http.NewRequest(tt.method, front.URL+tt.path, nil)
		for k, v := range tt.header {
			req.Header.Set(k, v)
		}
		req.Host = front.Host
		if h := tt.header["Host"]; h != "" {
			req.Host = h
		}
		res, err := client.Do(req)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != tt.status {
			t.Errorf("front, %s: got %d, want %d", tt.name, res.StatusCode, tt.status)
		}
	}
	// The engine itself (engine 2.3.19 with auth.admin_token) refuses its API without the token.
	res := do(t, "GET", engineURL+"/actors?namespace=default&name=counter", nil, nil)
	assertRivetError(t, res, http.StatusForbidden, "api", "forbidden")
}

// assertHostedTraffic checks what the front saw of a client's session through the gateway:
// every server name offered and every request's SNI and Host name the engine, nothing was
// refused, no token but the gateway's (never clientToken) in any carrier, a token on every
// /actors and /gateway request in a carrier the engine reads there, HTTP over HTTP/2 and
// WebSockets over HTTP/1.1, and every route in want.
func assertHostedTraffic(t *testing.T, front *tlsFront, requests []frontRequest, snis []string, clientToken string, want []string) {
	t.Helper()
	if len(snis) == 0 {
		t.Errorf("server names offered: none; want the gateway's handshakes")
	}
	for _, sni := range snis {
		if sni != front.Name {
			t.Errorf("server name offered: got %q, want %q", sni, front.Name)
		}
	}
	seen := map[string]bool{}
	for _, r := range requests {
		seen[r.Route] = true
		if r.SNI != front.Name || r.Host != front.Host {
			t.Errorf("%s: got SNI %q, Host %q; want %q, %q", r.Route, r.SNI, r.Host, front.Name, front.Host)
		}
		if r.Refused != "" {
			t.Errorf("%s: the front refused it: %s", r.Route, r.Refused)
		}
		for carrier, tokens := range r.Carriers {
			for _, tok := range tokens {
				switch tok {
				case hostedToken:
				case clientToken:
					t.Errorf("%s: the client's own token reached the engine in %s", r.Route, carrier)
				default:
					t.Errorf("%s: got token %q in %s, want only the gateway's", r.Route, tok, carrier)
				}
			}
		}
		switch {
		case strings.HasSuffix(r.Route, " /actors") && len(r.Carriers[carrierAuthorization]) == 0:
			t.Errorf("%s: no Authorization: Bearer, want the gateway's token", r.Route)
		case strings.HasPrefix(r.Route, "/gateway ") && !slices.ContainsFunc(gatewayCarriers, func(c string) bool { return len(r.Carriers[c]) > 0 }):
			t.Errorf("%s: no token in %v, want the gateway's", r.Route, gatewayCarriers)
		}
		if wantProto := map[bool]string{false: "HTTP/2.0", true: "HTTP/1.1"}[r.Upgrade]; r.Proto != wantProto {
			t.Errorf("%s (upgrade %v): got %s, want %s", r.Route, r.Upgrade, r.Proto, wantProto)
		}
	}
	for _, route := range want {
		if !seen[route] {
			t.Errorf("route %s: the front never saw it", route)
		}
	}
}

// testHostedGoClient drives the Go client on every route through the gateway at endpoint (TLS,
// trusted through hc), holding a namespace token of its own and the gateway's API key.
func testHostedGoClient(t *testing.T, endpoint string, hc *http.Client) {
	// Each step has a bound of its own: a Connect that cannot succeed retries until its
	// context ends, and must not take the other steps with it.
	step := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), clientWait)
		t.Cleanup(cancel)
		return ctx
	}
	c := startClient(t, endpoint,
		rivetclient.WithHTTPClient(hc),
		rivetclient.WithToken(hostedGoToken),
		rivetclient.WithHeader("X-API-Key", hostedAPIKey))
	key := clientKey(t)
	byKey := c.GetOrCreate("counter", key, rivetclient.HandleOptions{})
	var n int
	if err := byKey.Action(step(), "increment", &n, 5); err != nil || n != 5 {
		t.Fatalf("increment(5) by key: got %d, %v; want 5", n, err)
	}
	if err := c.Get("counter", key, rivetclient.HandleOptions{}).Action(step(), "getCount", &n); err != nil || n != 5 {
		t.Errorf("getCount by Get: got %d, %v; want 5", n, err)
	}
	var who clientWhoami
	if err := byKey.Action(step(), "whoami", &who); err != nil {
		t.Errorf("whoami: %v", err)
	} else {
		who.assertToken(t, "verified-by-gateway")
		assertHostedParams(t, "Go client, whoami", who.Params)
	}

	byID, err := c.Create(step(), "counter", clientKey(t), nil, rivetclient.HandleOptions{})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := byID.Action(step(), "increment", &n, 3); err != nil || n != 3 {
		t.Errorf("increment(3) by id: got %d, %v; want 3", n, err)
	}
	id, err := byID.Resolve(step())
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	if err := c.GetForID("counter", id, rivetclient.HandleOptions{}).Action(step(), "getCount", &n); err != nil || n != 3 {
		t.Errorf("getCount by GetForID: got %d, %v; want 3", n, err)
	}

	for what, h := range map[string]*rivetclient.Handle{"by key": byKey, "by id": byID} {
		// Connect, with an event.
		conn, err := h.Connect(step())
		if err != nil {
			t.Errorf("Connect %s: %v", what, err)
		} else {
			log := watchConn(t, conn, "newCount")
			var got int
			if err := conn.Action(step(), "increment", &got, 2); err != nil {
				t.Errorf("increment over the connection %s: %v", what, err)
			} else {
				log.waitEvent(t, got)
			}
			conn.Close()
		}

		// Raw fetch.
		res, err := h.Fetch(step(), "GET", "/hello/world?x=1", nil, nil)
		if err != nil {
			t.Errorf("Fetch %s: %v", what, err)
		} else {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"path":"/hello/world"`) {
				t.Errorf("Fetch %s: got %d %s, want 200 from onRequest", what, res.StatusCode, body)
			}
		}

		// Raw WebSocket: greeting, then echo.
		ws, err := h.WebSocket(step(), "/raw/path?y=2")
		if err != nil {
			t.Errorf("WebSocket %s: %v", what, err)
		} else {
			ws.SetReadDeadline(time.Now().Add(clientWait))
			_, hello, err1 := ws.ReadMessage()
			err2 := ws.WriteMessage(rivetclient.TextMessage, []byte("ping"))
			_, echo, err3 := ws.ReadMessage()
			if err := errors.Join(err1, err2, err3); err != nil || !strings.Contains(string(hello), `"hello":"raw"`) || string(echo) != "echo:ping" {
				t.Errorf("WebSocket %s: got %q, %q, %v; want the greeting, echo:ping", what, hello, echo, err)
			}
			ws.Close()
		}

		// Queue.
		res2, err := h.Send(step(), "jobs", map[string]any{"via": what}, rivetclient.SendOptions{Wait: true, Timeout: 10 * time.Second})
		if err != nil || res2.Status != "completed" {
			t.Errorf("Send %s: got %+v, %v; want completed", what, res2, err)
		}
	}
	c.Close()
}
