package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/config"
)

// Two actors of the pinned-namespace tests: one in the pinned namespace,
// one in another.
const (
	prodActor  = "hwzdj7sr4l7y4lxlvc506jrjwtal00"
	otherActor = "1c5gfmzaha6phb59q10jvqea4xal00"
)

// namespacedEngine is an engine holding prodActor in namespace prod and
// otherActor in namespace other. It answers id lookups (GET
// /actors?actor_ids=&namespace=) as engine 2.3.19 does, everything else
// with 200, and records every request target.
type namespacedEngine struct {
	*httptest.Server
	mu      sync.Mutex
	targets []string
}

func startNamespacedEngine(t *testing.T) *namespacedEngine {
	e := &namespacedEngine{}
	up := websocket.Upgrader{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.targets = append(e.targets, r.Method+" "+r.RequestURI)
		e.mu.Unlock()
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, http.Header{"Sec-Websocket-Protocol": {"rivet"}})
			if err == nil {
				_ = c.WriteMessage(websocket.TextMessage, []byte("hello"))
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _, _ = c.ReadMessage()
				c.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		q := r.URL.Query()
		if r.URL.Path == "/actors" && q.Has("actor_ids") {
			home := map[string]string{prodActor: "prod", otherActor: "other"}
			var actors []map[string]any
			if id := q.Get("actor_ids"); home[id] == q.Get("namespace") {
				actors = append(actors, map[string]any{"actor_id": id, "name": "counter", "key": "k"})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"actors": actors})
			return
		}
		_, _ = io.WriteString(w, `{"output":1}`)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *namespacedEngine) received() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.targets...)
}

// TestPinnedNamespace attacks a gateway pinned to namespace prod, as a
// client holding a valid credential would: another namespace in the
// query, escaped, in the body, an id that lives in another namespace, the
// engine-wide routes. Each is refused, and the engine is never asked
// about another namespace (no lookup with the gateway's token there).
func TestPinnedNamespace(t *testing.T) {
	engine := startNamespacedEngine(t)
	front := openGateway(t, engine.URL, func(c *Config) {
		c.Upstream.Namespace, c.Upstream.Token = "prod", "gw-token"
		// Every intent, the privileged ones included: the pin, not the
		// rules, must refuse.
		c.Auth.Rules = []authn.Rule{{Allow: authn.AllowAnonymous, Match: authn.Match{Intents: []string{
			"lookup", "create", "get_or_create", "list", "destroy", "kv", "admin",
			"action", "queue", "request", "connect", "websocket"}}}}
	})
	const refused = "gateway.namespace_not_allowed"
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string // group.code of the refusal, "" when it passes
	}{
		{"query target", "POST", "/gateway/counter/action/inc?rvt-namespace=other&rvt-method=get&rvt-key=k", "{}", 403, refused},
		{"query target, escaped", "POST", "/gateway/counter/action/inc?rvt-namespace=%6Fther&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k", "{}", 403, refused},
		{"query target, pin and a space", "POST", "/gateway/counter/action/inc?rvt-namespace=prod%20&rvt-method=get&rvt-key=k", "{}", 403, refused},
		{"query target, pin twice", "POST", "/gateway/counter/action/inc?rvt-namespace=prod&rvt-namespace=other&rvt-method=get", "{}", 400, "guard.query_invalid_params"},
		{"lookup by key", "GET", "/actors?namespace=other&name=counter&key=k", "", 403, refused},
		{"lookup, namespace twice", "GET", "/actors?namespace=prod&%6Eamespace=other&name=counter&key=k", "", 400, "guard.query_invalid_params"},
		{"create", "POST", "/actors?namespace=other", `{"name":"counter","key":"k","runner_name_selector":"default","crash_policy":"sleep"}`, 403, refused},
		{"create, namespace in the body", "POST", "/actors?namespace=prod", `{"name":"counter","key":"k","namespace":"other","runner_name_selector":"default","crash_policy":"sleep"}`, 400, "gateway.invalid_request"},
		{"get or create", "PUT", "/actors?namespace=other", `{"name":"counter","key":"k","runner_name_selector":"default","crash_policy":"sleep"}`, 403, refused},
		{"id of another namespace", "POST", "/gateway/" + otherActor + "/action/inc", "{}", 404, "actor.not_found"},
		{"id of another namespace with @token", "POST", "/gateway/" + otherActor + "@tok/action/inc", "{}", 404, "actor.not_found"},
		{"lookup of that id in the pin", "GET", "/actors?actor_ids=" + otherActor + "&namespace=prod", "", 404, "actor.not_found"},
		{"lookup of that id in its namespace", "GET", "/actors?actor_ids=" + otherActor + "&namespace=other", "", 403, refused},
		{"destroy it", "DELETE", "/actors/" + otherActor + "?namespace=other", "", 403, refused},
		{"its storage", "GET", "/actors/" + otherActor + "/kv/keys/a2V5?namespace=other", "", 403, refused},
		{"list elsewhere", "GET", "/actors?namespace=other&name=counter", "", 403, refused},
		{"namespaces", "GET", "/namespaces", "", 403, refused},
		{"datacenters", "GET", "/datacenters", "", 403, refused},
		{"runner configs elsewhere", "GET", "/runner-configs?namespace=other", "", 403, refused},
		{"query target in the pin", "POST", "/gateway/counter/action/inc?rvt-namespace=prod&rvt-method=get&rvt-key=k", "{}", 200, ""},
		{"id in the pin", "POST", "/gateway/" + prodActor + "/action/inc", "{}", 200, ""},
		{"lookup in the pin", "GET", "/actors?namespace=prod&name=counter&key=k", "", 200, ""},
		{"metadata, any namespace", "GET", "/metadata?namespace=other", "", 200, ""},
		{"health", "GET", "/health", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, front.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Errorf("status: got %d %s, want %d", res.StatusCode, body, tc.status)
			}
			if tc.code != "" {
				var e struct{ Group, Code string }
				if json.Unmarshal(body, &e) != nil || e.Group+"."+e.Code != tc.code {
					t.Errorf("body: got %s, want %s", body, tc.code)
				}
			}
		})
	}

	t.Run("websocket", func(t *testing.T) {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"rivet", "rivet_encoding.json"}}
		ws := "ws" + strings.TrimPrefix(front.URL, "http")
		for path, want := range map[string]string{
			"/gateway/counter/connect?rvt-namespace=other&rvt-method=get&rvt-key=k": refused,
			"/gateway/" + otherActor + "/connect":                                   "actor.not_found",
			"/gateway/" + prodActor + "/connect":                                    "",
		} {
			c, _, err := d.Dial(ws+path, nil)
			if err != nil {
				t.Fatalf("%s: dial: %v", path, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, msg, err := c.ReadMessage()
			var ce *websocket.CloseError
			switch {
			case want == "" && (err != nil || string(msg) != "hello"):
				t.Errorf("%s: got %q %v, want the engine's hello", path, msg, err)
			case want != "" && (!errors.As(err, &ce) || ce.Code != 1011 || !strings.HasPrefix(ce.Text, want)):
				t.Errorf("%s: got %v, want close 1011 %s", path, err, want)
			}
			c.Close()
		}
	})

	for _, target := range engine.received() {
		if strings.HasPrefix(target, "GET /metadata?") {
			continue // answered alike for every namespace; passes on purpose
		}
		if strings.Contains(target, "other") || strings.Contains(target, "/namespaces") || strings.Contains(target, "/datacenters") {
			t.Errorf("the engine got %q: a pinned gateway forwarded or looked up another namespace", target)
		}
	}
}

// TestPinnedNamespaceConfig: actors.namespaces may be left out or name the
// pin, and then ids are resolved in the pin only; another list is a
// mistake reported with its path.
func TestPinnedNamespaceConfig(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		want    []string // the resolver's namespaces
		problem string
	}{
		{doc: "upstream: {url: 'http://e', namespace: prod}", want: []string{"prod"}},
		{doc: "upstream: {url: 'http://e', namespace: prod}\nactors: {namespaces: [prod]}", want: []string{"prod"}},
		{doc: "upstream: {url: 'http://e', namespace: prod}\nactors: {namespaces: [prod, other]}", problem: `actors.namespaces: must be left out, or list only "prod"`},
		{doc: "upstream: {url: 'http://e', namespace: prod}\nactors: {namespaces: [other]}", problem: `actors.namespaces: must be left out, or list only "prod"`},
		{doc: "upstream: {url: 'http://e'}\nactors: {namespaces: [a, b]}", want: []string{"a", "b"}},
		{doc: "upstream: {url: 'http://e'}", want: []string{"default"}},
	} {
		cfg := DefaultConfig()
		if err := config.Decode([]byte(tc.doc), &cfg, func(string) (string, bool) { return "", false }); err != nil {
			t.Fatal(err)
		}
		err := cfg.Validate()
		if tc.problem != "" {
			if err == nil || !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("%s: got %v, want %q", tc.doc, err, tc.problem)
			}
			continue
		}
		if err != nil && strings.Contains(err.Error(), "namespace") {
			t.Errorf("%s: got %v", tc.doc, err)
		}
		if got := cfg.actorsConfig().Namespaces; strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: resolver namespaces %q, want %q", tc.doc, got, tc.want)
		}
	}
}

// TestReloadMovesThePin: a reload that changes upstream.namespace rebuilds
// the proxy and the resolver, and applies to new requests only: the
// namespace it left is refused from then on, while a WebSocket opened in
// it before stays open (as with rules, which run at the upgrade).
func TestReloadMovesThePin(t *testing.T) {
	engine := fakeEngine(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	pinned := func(ns string) string {
		return strings.Replace(reloadConfig(engine.URL, []string{keyA}, ""), "upstream: {url: ", "upstream: {namespace: "+ns+", url: ", 1)
	}
	writeFile(t, path, pinned("default"))
	s := serveFile(t, path)
	old := s.dial(t, keyA)
	if got := s.status(t, keyA); got != http.StatusOK {
		t.Fatalf("action in the pinned namespace: %d", got)
	}

	writeFile(t, path, pinned("elsewhere"))
	if err := s.Reload(path, TriggerSignal); err != nil {
		t.Fatal(err)
	}
	if got := s.status(t, keyA); got != http.StatusForbidden {
		t.Errorf("action in the namespace the pin left: %d, want 403", got)
	}
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k"
	c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + keyA}, "Sec-WebSocket-Protocol": {"rivet"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if ce := closedWith(t, c); ce.Code != websocket.CloseInternalServerErr || ce.Text != "gateway.namespace_not_allowed" {
		t.Errorf("new WebSocket: closed %d %q, want 1011 gateway.namespace_not_allowed", ce.Code, ce.Text)
	}
	echoOK(t, old)
	if logs := s.logs.String(); !strings.Contains(logs, `"proxy":"rebuilt"`) || !strings.Contains(logs, `"actor_resolver":"rebuilt"`) {
		t.Errorf("reload log does not say the proxy and resolver were rebuilt:\n%s", logs)
	}
}
