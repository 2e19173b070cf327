package integration

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/internal/readme"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// The attacker's tests (issue 11): alice holds a valid token, and bob's counter lives in the same
// real engine. With the README's own rule (users reach only the counter keyed by their sub),
// alice tries to reach bob's actor, his data and the inspector every way there is: by id, through
// the management API, through the inspector behind /request/, with paths the gateway and the
// engine or the actor could read differently, with headers that steer the engine, with
// credentials the gateway does not read, with hop-by-hop tricks and tunnelled upgrades. Each
// attempt must be refused by the gateway, and after each one bob's actor is checked directly at
// the engine: still there, same key, same count, same state.

// readmeRules returns the rules block of the README's JWT example (from "  rules:" to the end of
// its YAML block): the configuration these tests run is the one the README tells users to write.
func readmeRules(t *testing.T) string {
	t.Helper()
	blocks, err := readme.YAMLBlocks()
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range blocks {
		if !strings.Contains(block, "key_binding") {
			continue
		}
		if i := strings.Index(block, "  rules:\n"); i >= 0 {
			return block[i:]
		}
	}
	t.Fatal("README.md has no YAML example with key_binding rules")
	return ""
}

// authzConfig is the gateway of the attacker tests: the README's rules, JWTs of the test issuer
// as bearer tokens or in the connection params, and params built from the verified token.
func authzConfig(t *testing.T, upstream string) string {
	return baseConfig(upstream) + `auth:
  credentials: [bearer, conn_params]
  jwt:
    issuers:
` + hsIssuerYAML() + `
` + readmeRules(t) + `params:
  source: claims
  claims:
    token: verified-by-gateway
    userId: "{{ .Subject }}"
`
}

// engineActor is an actor as the engine's API lists it.
type engineActor struct {
	ActorID   string  `json:"actor_id"`
	Name      string  `json:"name"`
	Key       string  `json:"key"`
	DestroyTS *int64  `json:"destroy_ts"`
	Created   *bool   `json:"-"`
	Error     *string `json:"-"`
}

// engineCall sends method path (with body, JSON) to endpoint and decodes the JSON answer into out
// (when not nil); it fails the test unless the status is 200.
func engineCall(t *testing.T, endpoint, method, path, body string, header map[string]string, out any) {
	t.Helper()
	res := do(t, method, endpoint+path, strings.NewReader(body), header)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// bobAtEngine is what must never change: bob's actor, read straight from the engine.
type bobAtEngine struct {
	endpoint, id string
	count        float64
	state        string // the inspector's view of his state, JSON
	inspector    string // his inspector token (the engine's KV key [3])
}

// check fails the test unless bob's actor is as it was: listed under the same id and key, with
// the same count, and the same state in his inspector. After a failure it takes what it found as
// the new baseline, so that every attack is judged on what it did itself.
func (b *bobAtEngine) check(t *testing.T, after string) {
	t.Helper()
	var list struct{ Actors []engineActor }
	engineCall(t, b.endpoint, "GET", "/actors?namespace=default&name=counter&key=bob", "", nil, &list)
	if len(list.Actors) != 1 || list.Actors[0].ActorID != b.id || list.Actors[0].Key != "bob" || list.Actors[0].DestroyTS != nil {
		t.Fatalf("after %s: bob's actor at the engine is %+v, want %s keyed bob, alive", after, list.Actors, b.id)
	}
	if got := bobCount(t, b.endpoint, b.id); got != b.count {
		t.Errorf("after %s: bob's count at the engine is %v, want %v", after, got, b.count)
		b.count = got
	}
	if got := inspectorState(t, b.endpoint, b.id, b.inspector); got != b.state {
		t.Errorf("after %s: bob's state at the engine is %s, want %s", after, got, b.state)
		b.state = got
	}
}

// bobCount reads getCount of actor id straight from the engine.
func bobCount(t *testing.T, endpoint, id string) float64 {
	t.Helper()
	var out struct{ Output float64 }
	engineCall(t, endpoint, "POST", "/gateway/"+id+"/action/getCount", `{"args":[]}`,
		map[string]string{"X-Rivet-Encoding": "json", "Content-Type": "application/json", "X-Rivet-Conn-Params": `{"token":"engine-side"}`}, &out)
	return out.Output
}

// inspectorState reads actor id's state through its inspector, straight from the engine.
func inspectorState(t *testing.T, endpoint, id, token string) string {
	t.Helper()
	var out json.RawMessage
	engineCall(t, endpoint, "GET", "/gateway/"+id+"/inspector/state", "", map[string]string{"Authorization": "Bearer " + token}, &out)
	return string(out)
}

// setUpBob creates bob's counter at the engine, counts it up to 41 and reads his inspector token
// (which the engine's KV API hands to anyone who can reach it).
func setUpBob(t *testing.T, endpoint string) *bobAtEngine {
	t.Helper()
	var created struct{ Actor engineActor }
	engineCall(t, endpoint, "PUT", "/actors?namespace=default",
		`{"name":"counter","key":"bob","runner_name_selector":"default","crash_policy":"sleep"}`,
		map[string]string{"Content-Type": "application/json"}, &created)
	b := &bobAtEngine{endpoint: endpoint, id: created.Actor.ActorID}
	h := map[string]string{"X-Rivet-Encoding": "json", "Content-Type": "application/json", "X-Rivet-Conn-Params": `{"token":"engine-side"}`}
	deadline := time.Now().Add(time.Minute)
	for { // a new actor may take a while to start (see warmActor)
		res := do(t, "POST", endpoint+"/gateway/"+b.id+"/action/increment", strings.NewReader(`{"args":[41]}`), h)
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's actor does not start: %d", res.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var kv struct{ Value string }
	engineCall(t, endpoint, "GET", "/actors/"+b.id+"/kv/keys/Aw==?namespace=default", "", nil, &kv)
	tok, err := base64.StdEncoding.DecodeString(kv.Value)
	if err != nil || len(tok) == 0 {
		t.Fatalf("bob's inspector token: %q, %v", kv.Value, err)
	}
	b.inspector = string(tok)
	b.count = bobCount(t, endpoint, b.id)
	b.state = inspectorState(t, endpoint, b.id, b.inspector)
	if b.count != 41 {
		t.Fatalf("bob's count: got %v, want 41", b.count)
	}
	return b
}

// attack is one request alice sends through the gateway.
type attack struct {
	name    string
	method  string
	target  string   // the raw request target, sent byte for byte
	headers []string // "Name: value" lines
	body    string
	ws      bool // a WebSocket upgrade: the answer is a close frame
	// noAuth leaves out alice's bearer token (the attack carries its own credential).
	noAuth bool
	// status is the HTTP status the gateway must answer (ws: 101), code the RivetKit
	// group.code of the error body or of the close reason.
	status int
	code   string
}

func TestAttackerCannotReachOthersActors(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, authzConfig(t, up.URL))
	addr := strings.TrimPrefix(gw.URL, "http://")
	bob := setUpBob(t, up.URL)
	alice, _ := mintHS256(t, "alice", 10*time.Minute, nil)
	auth := "Authorization: Bearer " + alice

	// Alice's own counter, created through the gateway: the forms she is allowed to use work.
	var created struct{ Actor engineActor }
	engineCall(t, gw.URL, "POST", "/actors?namespace=default",
		`{"name":"counter","key":"alice","runner_name_selector":"default","crash_policy":"sleep"}`,
		map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + alice}, &created)
	aliceID := created.Actor.ActorID
	if aliceID == "" || aliceID == bob.id {
		t.Fatalf("alice's create: %+v", created)
	}
	warmActor(t, gw.URL, "alice", map[string]string{"authToken": alice}) // by key, through the gateway

	allowed := []attack{
		{name: "her own counter by id", method: "POST", target: "/gateway/" + aliceID + "/action/increment", body: `{"args":[1]}`, status: 200},
		{name: "her own counter by id, upper case", method: "POST", target: "/gateway/" + strings.ToUpper(aliceID) + "/action/getCount", body: `{"args":[]}`, status: 200},
		{name: "her own counter by key", method: "POST", target: actionPath("alice", "getCount"), body: `{"args":[]}`, status: 200},
		{name: "look up her own counter by key", method: "GET", target: "/actors?namespace=default&name=counter&key=alice", status: 200},
		{name: "look up her own counter by id", method: "GET", target: "/actors?namespace=default&actor_ids=" + aliceID, status: 200},
		{name: "get or create her own counter", method: "PUT", target: "/actors?namespace=default",
			body: `{"name":"counter","key":"alice","runner_name_selector":"default","crash_policy":"sleep"}`, status: 200},
		{name: "her own onRequest", method: "GET", target: "/gateway/" + aliceID + "/request/inspector", status: 200},
		{name: "her own connection by id", method: "GET", target: "/gateway/" + aliceID + "/connect", ws: true, status: 101, code: "Init=" + aliceID},
	}
	for _, a := range allowed {
		a.headers = append([]string{auth}, a.headers...)
		got, code := send(t, addr, a)
		if got != a.status || a.code != "" && code != a.code {
			t.Errorf("control %q: got %d %s, want %d %s", a.name, got, code, a.status, a.code)
		}
	}

	// The real JS client as alice: create() and getForId() on her own counter, then bob's.
	t.Run("real JS client", func(t *testing.T) {
		var got struct {
			OwnID                         string
			OwnCount, Again               float64
			BobByID, BobByKey, BobResolve rivetErr
			BobConnect                    struct {
				Errors         []trackedError
				Status         string
				GetParamsCalls int
			}
		}
		runScript(t, "authz-client.mjs", map[string]string{
			"RIVET_ENDPOINT_URL": gw.URL, "SCENARIO": "alice", "TOKEN": alice, "BOB_ID": bob.id,
		}, &got)
		if got.OwnID == "" || got.OwnCount != 3 || got.Again != 3 {
			t.Errorf("her own counter by id: id %q, increment(3) = %v, getCount = %v; want 3 and 3", got.OwnID, got.OwnCount, got.Again)
		}
		for name, e := range map[string]rivetErr{"by id": got.BobByID, "by key": got.BobByKey, "resolve": got.BobResolve} {
			if e.Group+"."+e.Code != "auth.forbidden" {
				t.Errorf("bob's counter %s: got %+v, want ActorError auth.forbidden", name, e)
			}
		}
		c := got.BobConnect
		if len(c.Errors) == 0 || c.Errors[0].Error != "auth.forbidden" || c.GetParamsCalls != 1 || c.Status == "connected" {
			t.Errorf("bob's counter over connect(): %+v, want one auth.forbidden, no retry", c)
		}
		bob.check(t, "the JS client")
	})

	q := "?rvt-namespace=default&rvt-method=get&rvt-key=bob"
	ownParams := "rivet_conn_params." + url.QueryEscape(`{"token":"her-own"}`)
	gc := "?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=bob&rvt-crash-policy=sleep"
	body := `{"args":[1000]}`
	createBob := `{"name":"counter","key":"bob","runner_name_selector":"default","crash_policy":"sleep"}`
	attacks := []attack{
		// By key, the plain way: the rule's own case.
		{name: "bob's counter by key", method: "POST", target: "/gateway/counter/action/increment" + q, body: body, status: 403, code: "auth.forbidden"},
		{name: "bob's counter by key, getOrCreate", method: "POST", target: "/gateway/counter/action/increment" + gc, body: body, status: 403, code: "auth.forbidden"},
		{name: "connect to bob's counter by key", method: "GET", target: "/gateway/counter/connect" + q, ws: true, status: 101, code: "auth.forbidden"},

		// By id: routes by id carry no name; the gateway must learn it.
		{name: "action by id", method: "POST", target: "/gateway/" + bob.id + "/action/increment", body: body, status: 403, code: "auth.forbidden"},
		{name: "action by upper-case id", method: "POST", target: "/gateway/" + strings.ToUpper(bob.id) + "/action/increment", body: body, status: 403, code: "auth.forbidden"},
		{name: "action by percent-encoded id", method: "POST", target: "/gateway/%" + fmt.Sprintf("%02X", bob.id[0]) + bob.id[1:] + "/action/increment", body: body, status: 403, code: "auth.forbidden"},
		{name: "action by id with @token", method: "POST", target: "/gateway/" + bob.id + "@anything/action/increment", body: body, status: 403, code: "auth.forbidden"},
		{name: "queue by id", method: "POST", target: "/gateway/" + bob.id + "/queue/jobs", body: `{"name":"jobs","body":1}`, status: 403, code: "auth.forbidden"},
		{name: "onRequest by id", method: "GET", target: "/gateway/" + bob.id + "/request/x", status: 403, code: "auth.forbidden"},
		{name: "connect by id", method: "GET", target: "/gateway/" + bob.id + "/connect", ws: true, status: 101, code: "auth.forbidden"},
		{name: "raw WebSocket by id", method: "GET", target: "/gateway/" + bob.id + "/websocket/x", ws: true, status: 101, code: "auth.forbidden"},
		// With rvt-* parameters guard reads the segment as an actor NAME, whatever its shape, and
		// so does the gateway: no actor is named so, and nothing of bob's is reached.
		{name: "id-shaped name with rvt params", method: "POST", target: "/gateway/" + bob.id + "/action/increment" + q, body: body, status: 404, code: "actor.not_found"},
		{name: "OPTIONS without Origin by id", method: "OPTIONS", target: "/gateway/" + bob.id + "/request/x", status: 403, code: "auth.forbidden"},

		// The engine's management API.
		{name: "look up bob's id by key", method: "GET", target: "/actors?namespace=default&name=counter&key=bob", status: 403, code: "auth.forbidden"},
		{name: "look up bob by id", method: "GET", target: "/actors?namespace=default&actor_ids=" + bob.id, status: 403, code: "auth.forbidden"},
		{name: "look up alice and bob by ids", method: "GET", target: "/actors?namespace=default&actor_ids=" + aliceID + "," + bob.id, status: 403, code: "auth.forbidden"},
		{name: "look up bob by actor_id", method: "GET", target: "/actors?namespace=default&actor_id=" + bob.id, status: 403, code: "auth.forbidden"},
		{name: "look up bob with a junk id the engine drops", method: "GET", target: "/actors?namespace=default&actor_ids=" + bob.id + ",junk", status: 400, code: "guard.query_invalid_params"},
		{name: "list every counter", method: "GET", target: "/actors?namespace=default&name=counter", status: 403, code: "auth.forbidden"},
		{name: "list with an empty key", method: "GET", target: "/actors?namespace=default&name=counter&key=", status: 403, code: "auth.forbidden"},
		{name: "list actor names", method: "GET", target: "/actors/names?namespace=default", status: 403, code: "auth.forbidden"},
		{name: "create under bob's key", method: "POST", target: "/actors?namespace=default", body: createBob, status: 403, code: "auth.forbidden"},
		{name: "get or create bob's", method: "PUT", target: "/actors?namespace=default", body: createBob, status: 403, code: "auth.forbidden"},
		{name: "create with two keys", method: "POST", target: "/actors?namespace=default", body: `{"name":"counter","key":"alice","key":"bob","runner_name_selector":"default","crash_policy":"sleep"}`, status: 400, code: "gateway.invalid_request"},
		{name: "create with KEY and key", method: "PUT", target: "/actors?namespace=default", body: `{"name":"counter","KEY":"alice","key":"bob","runner_name_selector":"default","crash_policy":"sleep"}`, status: 400, code: "gateway.invalid_request"},
		{name: "read bob's inspector token from KV", method: "GET", target: "/actors/" + bob.id + "/kv/keys/Aw==?namespace=default", status: 403, code: "auth.forbidden"},
		{name: "put bob's actor to sleep", method: "POST", target: "/actors/" + bob.id + "/sleep?namespace=default", status: 403, code: "auth.forbidden"},
		{name: "create a namespace", method: "POST", target: "/namespaces", body: `{"name":"evil","display_name":"Evil"}`, status: 403, code: "auth.forbidden"},
		{name: "runner configs", method: "GET", target: "/runner-configs?namespace=default", status: 403, code: "auth.forbidden"},
		{name: "engine route not on the list", method: "GET", target: "/envoys/connect", status: 404, code: "guard.no_route"},
		{name: "the engine's dashboard", method: "GET", target: "/ui/", status: 404, code: "guard.no_route"},

		// The inspector, however it is spelled (her own counter's included).
		{name: "inspector", method: "GET", target: "/gateway/" + bob.id + "/inspector/state", status: 403, code: "auth.forbidden"},
		{name: "inspector of her own counter", method: "GET", target: "/gateway/" + aliceID + "/inspector/state", status: 403, code: "auth.forbidden"},
		{name: "inspector behind /request/", method: "GET", target: "/gateway/" + bob.id + "/request/inspector/state", status: 403, code: "auth.forbidden"},
		{name: "inspector behind /request/ by key", method: "GET", target: "/gateway/counter/request/inspector/state" + q, status: 403, code: "auth.forbidden"},
		{name: "inspector behind /request/, her own", method: "PATCH", target: "/gateway/" + aliceID + "/request/inspector/state", body: `{"state":{"count":0}}`, status: 403, code: "auth.forbidden"},
		{name: "inspector WebSocket", method: "GET", target: "/gateway/" + bob.id + "/inspector/connect", ws: true, status: 101, code: "auth.forbidden"},
		{name: "inspector through a dot segment", method: "GET", target: "/gateway/" + aliceID + "/request/x/../inspector/state", status: 400, code: "gateway.invalid_path"},
		{name: "inspector through ./", method: "GET", target: "/gateway/" + aliceID + "/request/./inspector/state", status: 400, code: "gateway.invalid_path"},
		{name: "inspector through %2e%2e", method: "GET", target: "/gateway/" + aliceID + "/request/%2e%2e/inspector/state", status: 400, code: "gateway.invalid_path"},
		{name: "inspector through .%2E", method: "GET", target: "/gateway/" + aliceID + "/request/x/.%2E/inspector/state", status: 400, code: "gateway.invalid_path"},
		{name: "inspector through backslashes", method: "GET", target: "/gateway/" + aliceID + `/request/x\..\inspector\state`, status: 400, code: "gateway.invalid_path"},
		{name: "inspector through %5C", method: "GET", target: "/gateway/" + aliceID + "/request/x%5C..%5Cinspector/state", status: 400, code: "gateway.invalid_path"},
		{name: "inspector through %2F", method: "GET", target: "/gateway/" + aliceID + "/request/inspector%2Fstate", status: 400, code: "gateway.invalid_path"},
		{name: "inspector with bob's token as Bearer<TAB>", method: "GET", target: "/gateway/" + bob.id + "/request/inspector/state",
			headers: []string{"X-Rivet-Conn-Params: {\"authToken\":\"" + alice + "\"}", "Authorization: Bearer\t" + bob.inspector}, noAuth: true, status: 403, code: "auth.forbidden"},
		{name: "her own onRequest with bob's token as Bearer<TAB>", method: "GET", target: "/gateway/" + aliceID + "/request/x",
			headers: []string{"X-Rivet-Conn-Params: {\"authToken\":\"" + alice + "\"}", "Authorization: Bearer\t" + bob.inspector}, noAuth: true, status: 401, code: "auth.unauthorized"},
		{name: "bare inspector token", method: "GET", target: "/gateway/" + aliceID + "/request/x",
			headers: []string{"X-Rivet-Conn-Params: {\"authToken\":\"" + alice + "\"}", "Authorization: " + bob.inspector}, noAuth: true, status: 401, code: "auth.unauthorized"},

		// Paths the gateway and the engine could read differently.
		{name: "empty segment before bob's id", method: "POST", target: "/gateway//" + bob.id + "/action/increment", body: body, status: 400, code: "gateway.invalid_path"},
		{name: "dot-dot from her id to bob's", method: "POST", target: "/gateway/" + aliceID + "/../" + bob.id + "/action/increment", body: body, status: 400, code: "gateway.invalid_path"},
		{name: "dot-dot over the target", method: "POST", target: "/gateway/x/../" + bob.id + "/action/increment", body: body, status: 400, code: "gateway.invalid_path"},
		{name: "fragment hiding bob's id", method: "POST", target: "/gateway/" + bob.id + "#/" + aliceID + "/action/increment", body: body, status: 400, code: "gateway.invalid_path"},
		{name: "fragment in rvt-key", method: "POST", target: "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get&rvt-key=bob#alice", body: body, status: 400, code: "gateway.invalid_path"},
		{name: "absolute-form target", method: "POST", target: "http://evil.example/gateway/" + bob.id + "/action/increment", body: body, status: 400, code: "gateway.invalid_path"},
		{name: "percent-encoded rvt-key", method: "POST", target: "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get&rvt-key=alice&%72vt-key=bob", body: body, status: 400, code: "guard.query_invalid_params"},
		{name: "upper-case RVT-key", method: "POST", target: "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get&rvt-key=alice&RVT-key=bob", body: body, status: 400, code: "guard.query_invalid_params"},
		{name: "two rvt-key", method: "POST", target: "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get&rvt-key=alice&rvt-key=bob", body: body, status: 400, code: "guard.query_invalid_params"},
		{name: "semicolon-joined rvt-key", method: "POST", target: "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get&rvt-key=bob;rvt-key=alice", body: body, status: 400, code: "guard.query_invalid_params"},
		{name: "bob's id with an rvt-key of hers", method: "POST", target: "/gateway/" + bob.id + "/action/increment?rvt-key=alice", body: body, status: 400, code: "guard.query_invalid_params"},

		// Headers and subprotocols that steer the engine: stripped, her own actor answers.
		{name: "x-rivet-actor steering to bob", method: "POST", target: "/gateway/" + aliceID + "/action/getCount",
			headers: []string{"X-Rivet-Target: actor", "X-Rivet-Actor: " + bob.id}, body: `{"args":[]}`, status: 200, code: "actor=" + aliceID},
		{name: "rivet_actor subprotocol steering to bob", method: "GET", target: "/gateway/" + aliceID + "/connect",
			headers: []string{"Sec-WebSocket-Protocol: rivet, rivet_encoding.json, rivet_target.actor, rivet_actor." + bob.id}, ws: true, status: 101, code: "Init=" + aliceID},
		{name: "steering subprotocols off /gateway/", method: "GET", target: "/connect",
			headers: []string{"Sec-WebSocket-Protocol: rivet, rivet_encoding.json, rivet_target.actor, rivet_actor." + bob.id}, ws: true, status: 101, code: "guard.no_route"},
		// Off /gateway/, the engine routes a WebSocket by these subprotocols alone; with params
		// of her own making the socket would be bob's.
		{name: "steering subprotocols on /actors", method: "GET", target: "/actors?namespace=default",
			headers: []string{"Sec-WebSocket-Protocol: rivet, rivet_encoding.json, rivet_target.actor, rivet_actor." + bob.id + ", " + ownParams}, ws: true, status: 101, code: "guard.no_route"},
		{name: "steering subprotocols on /metadata", method: "GET", target: "/metadata",
			headers: []string{"Sec-WebSocket-Protocol: rivet, rivet_encoding.json, rivet_target.actor, rivet_actor." + bob.id + ", " + ownParams}, ws: true, status: 101, code: "guard.no_route"},
		{name: "steering subprotocols with //", method: "GET", target: "/gateway//" + bob.id + "/connect",
			headers: []string{"Sec-WebSocket-Protocol: rivet, rivet_encoding.json, rivet_target.actor, rivet_actor." + bob.id}, ws: true, status: 101, code: "gateway.invalid_path"},
		{name: "runner target header", method: "GET", target: "/gateway/" + aliceID + "/request/x",
			headers: []string{"X-Rivet-Target: envoy"}, status: 200, code: "actor=" + aliceID},
		{name: "two x-rivet-encoding headers", method: "POST", target: "/gateway/" + aliceID + "/action/getCount",
			headers: []string{"X-Rivet-Encoding: json", "X-Rivet-Encoding: cbor"}, body: `{"args":[]}`, status: 400, code: "gateway.invalid_request"},

		// Credentials and hop-by-hop headers.
		{name: "Bearer<TAB> with her own token", method: "POST", target: "/gateway/" + aliceID + "/action/getCount",
			headers: []string{"Authorization: Bearer\t" + alice}, noAuth: true, body: `{"args":[]}`, status: 401, code: "auth.unauthorized"},
		{name: "lower-case bearer", method: "POST", target: "/gateway/" + aliceID + "/action/getCount",
			headers: []string{"Authorization: bearer " + alice}, noAuth: true, body: `{"args":[]}`, status: 401, code: "auth.unauthorized"},
		{name: "two Authorization headers", method: "POST", target: "/gateway/" + aliceID + "/action/getCount",
			headers: []string{"Authorization: Bearer " + alice}, body: `{"args":[]}`, status: 401, code: "auth.unauthorized"},
		{name: "Connection naming the params header", method: "POST", target: "/gateway/" + aliceID + "/action/whoami",
			headers: []string{"Connection: x-rivet-conn-params"}, body: `{"args":[]}`, status: 400, code: "gateway.invalid_request"},
		{name: "Connection naming x-rivet-token", method: "POST", target: "/gateway/" + aliceID + "/action/whoami",
			headers: []string{"Connection: keep-alive, X-Rivet-Token"}, body: `{"args":[]}`, status: 400, code: "gateway.invalid_request"},

		// Upgrades that are not WebSockets, tunnelled past the WebSocket checks.
		{name: "POST upgrade", method: "POST", target: "/gateway/" + aliceID + "/connect",
			headers: []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, status: 400, code: "gateway.invalid_request"},
		{name: "PUT upgrade", method: "PUT", target: "/gateway/" + aliceID + "/websocket/x",
			headers: []string{"Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, status: 400, code: "gateway.invalid_request"},
		{name: "HEAD upgrade", method: "HEAD", target: "/gateway/" + aliceID + "/request/x",
			headers: []string{"Connection: Upgrade", "Upgrade: websocket"}, status: 400, code: ""},
		{name: "h2c upgrade", method: "GET", target: "/gateway/" + aliceID + "/request/x",
			headers: []string{"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"}, status: 400, code: "gateway.invalid_request"},
		{name: "Upgrade without Connection", method: "GET", target: "/gateway/" + aliceID + "/request/x",
			headers: []string{"Upgrade: websocket"}, status: 400, code: "gateway.invalid_request"},

		// Last, as they would leave nothing to check after them on a gateway that lets them by.
		{name: "destroy bob", method: "DELETE", target: "/actors/" + bob.id + "?namespace=default", status: 403, code: "auth.forbidden"},
		{name: "destroy bob by upper-case id", method: "DELETE", target: "/actors/" + strings.ToUpper(bob.id) + "?namespace=default", status: 403, code: "auth.forbidden"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			if !a.noAuth {
				a.headers = append([]string{auth}, a.headers...)
			}
			if a.name == "two Authorization headers" {
				a.headers = append(a.headers, auth)
			}
			got, code := send(t, addr, a)
			if got != a.status || a.code != "" && code != a.code {
				t.Errorf("got %d %s, want %d %s", got, code, a.status, a.code)
			}
			bob.check(t, a.name)
		})
	}
}

// send sends a through a raw connection to addr and returns the status and what identifies the
// answer: the RivetKit error's group.code, "actor=<id>" for an actor's answer, or for a
// WebSocket the close reason's group.code (without "#rayId"), "Init=<actor id>" when a
// connection opened, or "onWebSocket count=<n>" when an actor's raw handler greeted.
func send(t *testing.T, addr string, a attack) (int, string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", a.method, a.target, addr)
	hasProtocol := false
	for _, h := range a.headers {
		b.WriteString(h + "\r\n")
		hasProtocol = hasProtocol || strings.HasPrefix(h, "Sec-WebSocket-Protocol:")
	}
	if a.ws {
		b.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
		if !hasProtocol {
			b.WriteString("Sec-WebSocket-Protocol: rivet, rivet_encoding.json\r\n")
		}
	} else {
		b.WriteString("X-Rivet-Encoding: json\r\nContent-Type: application/json\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(a.body), a.body)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, &http.Request{Method: a.method})
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return res.StatusCode, firstFrame(t, br)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		return res.StatusCode, "actor=" + res.Header.Get("X-Rivet-Actor")
	}
	var e struct{ Group, Code string }
	_ = json.Unmarshal(body, &e)
	if e.Group == "" {
		return res.StatusCode, ""
	}
	return res.StatusCode, e.Group + "." + e.Code
}

// firstFrame reads server frames until a close (its reason's group.code), an Init message or
// a raw handler's greeting.
func firstFrame(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	for range 8 {
		op, p, err := readFrame(br)
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		switch {
		case op == 8:
			if len(p) < 2 {
				return "close"
			}
			reason, _ := rivet.SplitRayID(string(p[2:]))
			return reason
		case op == 1 && strings.Contains(string(p), `"Init"`):
			var m struct {
				Body struct{ Val struct{ ActorID string } }
			}
			_ = json.Unmarshal(p, &m)
			return "Init=" + m.Body.Val.ActorID
		case op == 1 && strings.Contains(string(p), `"hello":"raw"`):
			// An actor's onWebSocket greeting, with its count.
			var m struct{ Count float64 }
			_ = json.Unmarshal(p, &m)
			return fmt.Sprintf("onWebSocket count=%v", m.Count)
		}
	}
	return "no close"
}
