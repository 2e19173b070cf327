package rivet

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Actor ids issued by engine 2.3.19 (version 1, datacenter label 1).
const (
	idBob   = "hwzdj7sr4l7y4lxlvc506jrjwtal00"
	idAlice = "5n4e5u6wgh5fqm4dx2xmugup8bbl00"
)

func TestParseTargetRoutes(t *testing.T) {
	const q = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k1&rvt-crash-policy=sleep"
	post, get, put, del := http.MethodPost, http.MethodGet, http.MethodPut, http.MethodDelete
	key := func(ns, name string, key ...string) []Actor {
		if key == nil {
			key = []string{}
		}
		return []Actor{{Namespace: ns, Name: name, Key: key}}
	}
	tests := []struct {
		name, method, target string
		ws                   bool
		want                 Route
	}{
		{name: "health", method: get, target: "/health",
			want: Route{Intent: IntentHealth, Resolved: true}},
		{name: "metadata", method: get, target: "/metadata?namespace=my%20ns",
			want: Route{Intent: IntentMetadata, Namespace: "my ns", Resolved: true}},

		// The management API.
		{name: "lookup by key", method: get, target: "/actors?name=counter&key=bob&namespace=default",
			want: Route{Intent: IntentLookup, Namespace: "default", Resolved: true, Actors: key("default", "counter", "bob")}},
		{name: "lookup by multi-part key", method: get, target: "/actors?namespace=ns&name=counter&key=a%2Fb%5C%2Fc",
			want: Route{Intent: IntentLookup, Namespace: "ns", Resolved: true, Actors: key("ns", "counter", "a", "b/c")}},
		{name: "lookup by empty key", method: get, target: "/actors?namespace=ns&name=counter&key=%2F",
			want: Route{Intent: IntentLookup, Namespace: "ns", Resolved: true, Actors: key("ns", "counter")}},
		{name: "lookup by ids", method: get, target: "/actors?actor_ids=" + idBob + "," + strings.ToUpper(idAlice) + "&namespace=default",
			want: Route{Intent: IntentLookup, Namespace: "default", IDs: []string{idBob, idAlice}}},
		{name: "lookup by actor_id, repeated", method: get, target: "/actors?namespace=default&actor_id=" + idBob + "&actor_id=" + idAlice,
			want: Route{Intent: IntentLookup, Namespace: "default", IDs: []string{idBob, idAlice}}},
		{name: "list by name", method: get, target: "/actors?namespace=default&name=counter",
			want: Route{Intent: IntentList, Namespace: "default", Resolved: true}},
		{name: "empty key lists", method: get, target: "/actors?namespace=default&name=counter&key=",
			want: Route{Intent: IntentList, Namespace: "default", Resolved: true}},
		{name: "list names", method: get, target: "/actors/names?namespace=default",
			want: Route{Intent: IntentList, Namespace: "default", Resolved: true}},
		{name: "create", method: post, target: "/actors?namespace=default",
			want: Route{Intent: IntentCreate, Namespace: "default", ActorInBody: true}},
		{name: "get or create", method: put, target: "/actors?namespace=default",
			want: Route{Intent: IntentGetOrCreate, Namespace: "default", ActorInBody: true}},
		{name: "destroy", method: del, target: "/actors/" + idBob + "?namespace=default",
			want: Route{Intent: IntentDestroy, Namespace: "default", IDs: []string{idBob}}},
		{name: "destroy, encoded upper-case id", method: del, target: "/actors/%48WZDJ7SR4L7Y4LXLVC506JRJWTAL00?namespace=default",
			want: Route{Intent: IntentDestroy, Namespace: "default", IDs: []string{idBob}}},
		{name: "kv", method: get, target: "/actors/" + idBob + "/kv/keys/Aw==?namespace=default",
			want: Route{Intent: IntentKV, Namespace: "default", IDs: []string{idBob}}},
		{name: "sleep", method: post, target: "/actors/" + idBob + "/sleep?namespace=default",
			want: Route{Intent: IntentAdmin, Namespace: "default", IDs: []string{idBob}}},
		{name: "namespaces", method: post, target: "/namespaces",
			want: Route{Intent: IntentAdmin, Resolved: true}},
		{name: "runner config", method: put, target: "/runner-configs/default?namespace=ns",
			want: Route{Intent: IntentAdmin, Namespace: "ns", Resolved: true}},
		{name: "refresh metadata", method: post, target: "/runner-configs/pool/refresh-metadata?namespace=ns",
			want: Route{Intent: IntentAdmin, Namespace: "ns", Resolved: true}},

		// Id targets.
		{name: "id action", method: post, target: "/gateway/" + idBob + "/action/increment",
			want: Route{Intent: IntentAction, ActorID: idBob, IDs: []string{idBob}, Name: "increment", Target: idBob, Rest: "/action/increment"}},
		{name: "id with token", method: post, target: "/gateway/" + idBob + "@secret-tok/action/increment",
			want: Route{Intent: IntentAction, ActorID: idBob, IDs: []string{idBob}, Name: "increment", Target: idBob, Rest: "/action/increment", PathToken: true}},
		{name: "upper-case id", method: get, target: "/gateway/" + strings.ToUpper(idBob) + "/connect", ws: true,
			want: Route{Intent: IntentConnect, ActorID: idBob, IDs: []string{idBob}, Target: strings.ToUpper(idBob), Rest: "/connect"}},
		{name: "escaped id", method: get, target: "/gateway/%68" + idBob[1:] + "/connect", ws: true,
			want: Route{Intent: IntentConnect, ActorID: idBob, IDs: []string{idBob}, Target: "%68" + idBob[1:], Rest: "/connect"}},
		{name: "id queue", method: post, target: "/gateway/" + idBob + "/queue/jobs",
			want: Route{Intent: IntentQueue, ActorID: idBob, IDs: []string{idBob}, Name: "jobs", Target: idBob, Rest: "/queue/jobs"}},
		{name: "id request", method: put, target: "/gateway/" + idBob + "/request/hello/world?x=1",
			want: Route{Intent: IntentRequest, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/request/hello/world"}},
		{name: "request root", method: get, target: "/gateway/" + idBob + "/request",
			want: Route{Intent: IntentRequest, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/request"}},
		{name: "request trailing slash", method: get, target: "/gateway/" + idBob + "/request/x/",
			want: Route{Intent: IntentRequest, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/request/x/"}},
		{name: "request to a path named inspector", method: get, target: "/gateway/" + idBob + "/request/inspector",
			want: Route{Intent: IntentRequest, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/request/inspector"}},
		{name: "request to an escaped inspector", method: get, target: "/gateway/" + idBob + "/request/%69nspector/state",
			want: Route{Intent: IntentRequest, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/request/%69nspector/state"}},
		{name: "inspector through request", method: get, target: "/gateway/" + idBob + "/request/inspector/state",
			want: Route{Intent: IntentInspector, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/request/inspector/state"}},
		{name: "inspector", method: get, target: "/gateway/" + idBob + "/inspector/summary",
			want: Route{Intent: IntentInspector, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/inspector/summary"}},
		{name: "inspector websocket", method: get, target: "/gateway/" + idBob + "/inspector/connect?protocol_version=2", ws: true,
			want: Route{Intent: IntentInspector, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/inspector/connect"}},
		{name: "raw websocket", method: get, target: "/gateway/" + idBob + "/websocket/raw/path?y=2", ws: true,
			want: Route{Intent: IntentWebSocket, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/websocket/raw/path"}},
		{name: "escaped action name", method: post, target: "/gateway/" + idBob + "/action/get%43ount",
			want: Route{Intent: IntentAction, ActorID: idBob, IDs: []string{idBob}, Name: "getCount", Target: idBob, Rest: "/action/get%43ount"}},
		{name: "user query on id target", method: get, target: "/gateway/" + idBob + "/request/x?rvt=1&xrvt-method=get&a=%20",
			want: Route{Intent: IntentRequest, ActorID: idBob, IDs: []string{idBob}, Target: idBob, Rest: "/request/x"}},

		// Query targets.
		{name: "query getOrCreate action", method: post, target: "/gateway/counter/action/increment?" + q,
			want: Route{Intent: IntentAction, ActorName: "counter", Method: "getOrCreate", Key: []string{"k1"}, Namespace: "default",
				Name: "increment", Target: "counter", Rest: "/action/increment", Resolved: true, Actors: key("default", "counter", "k1")}},
		{name: "query multi-part key", method: post, target: "/gateway/counter/action/getCount?rvt-namespace=default&rvt-method=get&rvt-key=a%2Cb&rvt-token=t",
			want: Route{Intent: IntentAction, ActorName: "counter", Method: "get", Key: []string{"a", "b"}, Namespace: "default",
				Name: "getCount", Target: "counter", Rest: "/action/getCount", Resolved: true, Actors: key("default", "counter", "a", "b")}},
		{name: "query key with plus", method: get, target: "/gateway/counter/connect?rvt-namespace=default&rvt-method=get&rvt-key=a+b%2B", ws: true,
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "get", Key: []string{"a b+"}, Namespace: "default",
				Target: "counter", Rest: "/connect", Resolved: true, Actors: key("default", "counter", "a b+")}},
		{name: "query empty key is the empty key", method: get, target: "/gateway/counter/connect?rvt-namespace=default&rvt-method=get&rvt-key=", ws: true,
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "get", Key: []string{}, Namespace: "default",
				Target: "counter", Rest: "/connect", Resolved: true, Actors: key("default", "counter")}},
		{name: "query no key is the empty key", method: get, target: "/gateway/counter/connect?rvt-namespace=default&rvt-method=get", ws: true,
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "get", Key: []string{}, Namespace: "default",
				Target: "counter", Rest: "/connect", Resolved: true, Actors: key("default", "counter")}},
		{name: "query escaped name", method: post, target: "/gateway/my%40actor/action/inc?" + q,
			want: Route{Intent: IntentAction, ActorName: "my@actor", Method: "getOrCreate", Key: []string{"k1"}, Namespace: "default",
				Name: "inc", Target: "my%40actor", Rest: "/action/inc", Resolved: true, Actors: key("default", "my@actor", "k1")}},
		{name: "query id-shaped name", method: post, target: "/gateway/" + idAlice + "/action/inc?rvt-namespace=default&rvt-method=get&rvt-key=bob",
			want: Route{Intent: IntentAction, ActorName: idAlice, Method: "get", Key: []string{"bob"}, Namespace: "default",
				Name: "inc", Target: idAlice, Rest: "/action/inc", Resolved: true, Actors: key("default", idAlice, "bob")}},
		{name: "query user params first", method: get, target: "/gateway/counter/request/hello?x=1&y=%20&" + q,
			want: Route{Intent: IntentRequest, ActorName: "counter", Method: "getOrCreate", Key: []string{"k1"}, Namespace: "default",
				Target: "counter", Rest: "/request/hello", Resolved: true, Actors: key("default", "counter", "k1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTarget(tt.method, tt.target, tt.ws)
			if err != nil {
				t.Fatalf("ParseTarget(%s %q): got error %v, want none", tt.method, tt.target, err)
			}
			if !routeEqual(got, tt.want) {
				t.Errorf("ParseTarget(%s %q):\n got %+v\nwant %+v", tt.method, tt.target, got, tt.want)
			}
			if raw := got.RawPath + "?" + got.RawQuery; strings.TrimSuffix(raw, "?") != tt.target {
				t.Errorf("RawPath?RawQuery = %q, want the target %q", raw, tt.target)
			}
			if got.Target != "" {
				if p, want := got.Path(), strings.Replace(got.RawPath, "@secret-tok", "", 1); p != want {
					t.Errorf("Path() = %q, want %q", p, want)
				}
			}
		})
	}
}

func routeEqual(a, b Route) bool {
	if len(a.Actors) != len(b.Actors) {
		return false
	}
	for i := range a.Actors {
		x, y := a.Actors[i], b.Actors[i]
		if x.ID != y.ID || x.Namespace != y.Namespace || x.Name != y.Name || !slices.Equal(x.Key, y.Key) || (x.Key == nil) != (y.Key == nil) {
			return false
		}
	}
	return a.Intent == b.Intent && a.ActorID == b.ActorID && a.ActorName == b.ActorName &&
		a.Method == b.Method && slices.Equal(a.Key, b.Key) && a.Namespace == b.Namespace &&
		a.Name == b.Name && a.Target == b.Target && a.Rest == b.Rest && a.PathToken == b.PathToken &&
		slices.Equal(a.IDs, b.IDs) && a.ActorInBody == b.ActorInBody && a.Resolved == b.Resolved
}

// TestParseTargetRefuses holds request targets the gateway must never
// forward: each is read differently by the engine, the actor or Go (the
// engine's reading, measured on engine 2.3.19 and rivetkit 2.3.19, in the
// comment), or is no RivetKit client route.
func TestParseTargetRefuses(t *testing.T) {
	const gw = "/gateway/" + idBob
	const qs = "?rvt-namespace=default&rvt-method=get&rvt-key=bob"
	post, get := http.MethodPost, http.MethodGet
	tests := []struct {
		name, method, target string
		ws                   bool
		status               int
		code                 string
	}{
		// Targets readers disagree on.
		{"absolute form", post, "http://evil.example" + gw + "/action/x", false, 400, "gateway.invalid_path"}, // engine: host ignored
		{"asterisk", "OPTIONS", "*", false, 400, "gateway.invalid_path"},
		{"fragment", post, gw + "#/" + idAlice + "/action/x", false, 400, "gateway.invalid_path"},                    // engine: cut at #
		{"fragment in query", post, "/gateway/counter/action/x" + qs + "#alice", false, 400, "gateway.invalid_path"}, // engine: key bob
		{"empty segment", post, "/gateway//" + idBob + "/action/x", false, 400, "gateway.invalid_path"},              // engine: header routing
		{"double slash in rest", get, gw + "/websocket//x", true, 400, "gateway.invalid_path"},                       // engine: subprotocol routing
		{"double slash, query form", get, "/gateway/counter//connect" + qs, true, 400, "gateway.invalid_path"},
		{"dot segment", post, gw + "/./action/x", false, 400, "gateway.invalid_path"},
		{"dot-dot into inspector", get, gw + "/request/x/../inspector/state", false, 400, "gateway.invalid_path"}, // actor: inspector
		{"dot-dot over the target", post, "/gateway/x/../" + idBob + "/action/x", false, 400, "gateway.invalid_path"},
		{"escaped dot-dot", get, gw + "/request/%2e%2e/inspector/state", false, 400, "gateway.invalid_path"},
		{"half-escaped dot-dot", get, gw + "/request/.%2E/inspector/state", false, 400, "gateway.invalid_path"},
		{"escaped slash", get, gw + "/request/inspector%2Fstate", false, 400, "gateway.invalid_path"},
		{"escaped slash in id", post, gw + "%2Fx/action/x", false, 400, "gateway.invalid_path"},
		{"escaped dot in action", post, gw + "/action/x%2E", false, 400, "gateway.invalid_path"},
		{"escaped backslash", get, gw + "/request/%5C..%5Cinspector", false, 400, "gateway.invalid_path"},
		{"backslash", get, gw + `/request/x\..\inspector\state`, false, 400, "gateway.invalid_path"}, // actor: inspector
		{"escaped percent", post, gw + "/action/get%2543ount", false, 400, "gateway.invalid_path"},
		{"escaped control character", post, gw + "/action/x%00", false, 400, "gateway.invalid_path"},
		{"malformed escape", get, gw + "/request/%ZZ", false, 400, "gateway.invalid_path"},
		{"malformed escape in query", get, gw + "/request/x?a=%Z", false, 400, "gateway.invalid_path"},
		{"raw brace", get, gw + "/request/{x}", false, 400, "gateway.invalid_path"},
		{"raw non-ASCII", get, gw + "/request/\xc3\xa9", false, 400, "gateway.invalid_path"},

		// rvt-* spelled so that readers disagree.
		{"encoded rvt key", post, "/gateway/counter/action/x?rvt-namespace=default&rvt-method=get&%72vt-key=bob", false, 400, "guard.query_invalid_params"}, // engine: empty key
		{"upper-case rvt key", post, gw + "/action/x?RVT-key=alice", false, 400, "guard.query_invalid_params"},
		{"semicolon-joined rvt", post, "/gateway/counter/action/x?rvt-namespace=default&rvt-method=get&rvt-key=bob;rvt-key=alice", false, 400, ""},
		{"duplicate rvt-key", post, "/gateway/counter/action/x" + qs + "&rvt-key=alice", false, 400, "guard.query_invalid_params"},
		{"duplicate rvt-method, first empty", post, "/gateway/counter/action/x?rvt-namespace=default&rvt-method=&rvt-method=get", false, 400, "guard.query_invalid_params"},
		{"duplicate rvt-namespace, first bare", post, "/gateway/counter/action/x?rvt-namespace&rvt-namespace=default&rvt-method=get", false, 400, "guard.query_invalid_params"},
		{"unknown rvt key", post, "/gateway/counter/action/x" + qs + "&rvt-foo=1", false, 400, "guard.query_invalid_params"},
		{"rvt on an id target", post, gw + "/action/x?rvt-key=alice", false, 400, "guard.query_invalid_params"}, // engine: id is a name
		{"@token on a query target", post, "/gateway/counter@tok/action/x" + qs, false, 400, "guard.query_invalid_params"},
		{"rvt-method GET", post, "/gateway/counter/action/x?rvt-namespace=default&rvt-method=GET", false, 400, "guard.query_invalid_params"},
		{"missing rvt-namespace", post, "/gateway/counter/action/x?rvt-method=get&rvt-key=bob", false, 400, "guard.query_invalid_params"},
		{"invalid UTF-8 in rvt-key", post, "/gateway/counter/action/x" + qs + "%FF", false, 400, "guard.query_invalid_params"},

		// Targets that are not actor ids.
		{"not an id", post, "/gateway/notanid/action/x", false, 400, "guard.query_invalid_params"}, // engine: 500
		{"id with trailing dot", post, gw + "./action/x", false, 400, "guard.query_invalid_params"},
		{"empty token", post, gw + "@/action/x", false, 400, "guard.query_invalid_params"}, // engine: API 404
		{"empty id", post, "/gateway/@tok/action/x", false, 400, "guard.query_invalid_params"},
		{"empty target", get, "/gateway/", false, 400, "guard.query_invalid_params"},

		// What the actor does not serve as a client route.
		{"actor metrics", get, gw + "/metrics", false, 404, "guard.no_route"},
		{"actor metadata", get, gw + "/metadata", false, 404, "guard.no_route"},
		{"actor banner", get, gw, false, 404, "guard.no_route"},
		{"actor banner slash", get, gw + "/", false, 404, "guard.no_route"},
		{"action without name", post, gw + "/action/", false, 404, "guard.no_route"},
		{"action with two segments", post, gw + "/action/a/b", false, 404, "guard.no_route"},
		{"queue without name", post, gw + "/queue/", false, 404, "guard.no_route"}, // fuzz: once panicked
		{"queue with two segments", post, gw + "/queue/a/b", false, 404, "guard.no_route"},
		{"action by GET", get, gw + "/action/getCount", false, 405, "gateway.method_not_allowed"},
		{"queue by PUT", http.MethodPut, gw + "/queue/jobs", false, 405, "gateway.method_not_allowed"},
		{"connect without upgrade", get, gw + "/connect", false, 400, "gateway.invalid_request"},
		{"websocket without upgrade", get, gw + "/websocket/x", false, 400, "gateway.invalid_request"},
		{"upgrade to an action", get, gw + "/action/x", true, 404, "guard.no_route"},
		{"upgrade to request", get, gw + "/request/x", true, 404, "guard.no_route"},
		{"upgrade to connect/", get, gw + "/connect/", true, 404, "guard.no_route"}, // actor: onWebSocket
		{"upgrade off gateway", get, "/connect", true, 404, "guard.no_route"},       // engine: subprotocol routing
		{"upgrade to actors", get, "/actors?namespace=default", true, 404, "guard.no_route"},

		// The management API, strictly.
		{"actors trailing slash", get, "/actors/?namespace=default", false, 404, "guard.no_route"},
		{"actors upper case", get, "/ACTORS?namespace=default", false, 404, "guard.no_route"},
		{"actors without namespace", get, "/actors?name=counter&key=bob", false, 400, "guard.query_invalid_params"},
		{"duplicate namespace", get, "/actors?namespace=a&namespace=b&name=counter&key=bob", false, 400, "guard.query_invalid_params"},
		{"duplicate key", get, "/actors?namespace=default&name=counter&key=bob&key=alice", false, 400, "guard.query_invalid_params"},
		{"unknown parameter", get, "/actors?namespace=default&name=counter&key=bob&x=1", false, 400, "guard.query_invalid_params"},
		{"non-canonical key", get, `/actors?namespace=default&name=counter&key=bo%5Cb`, false, 400, "guard.query_invalid_params"},
		{"malformed id in actor_ids", get, "/actors?namespace=default&actor_ids=" + idBob + ",x", false, 400, "guard.query_invalid_params"}, // engine: drops x
		{"id with space in actor_ids", get, "/actors?namespace=default&actor_ids=+" + idBob, false, 400, "guard.query_invalid_params"},      // engine: trims
		{"ids and name", get, "/actors?namespace=default&name=counter&actor_ids=" + idBob, false, 400, "guard.query_invalid_params"},
		{"too many ids", get, "/actors?namespace=default&actor_ids=" + strings.Repeat(idBob+",", 32) + idBob, false, 400, "guard.query_invalid_params"},
		{"create with extra query", post, "/actors?namespace=default&name=counter", false, 400, "guard.query_invalid_params"},
		{"destroy without namespace", http.MethodDelete, "/actors/" + idBob, false, 400, "guard.query_invalid_params"},
		{"destroy by GET", get, "/actors/" + idBob + "?namespace=default", false, 405, "gateway.method_not_allowed"},
		{"actors by PATCH", http.MethodPatch, "/actors?namespace=default", false, 405, "gateway.method_not_allowed"},
		{"kv list", get, "/actors/" + idBob + "/kv/keys?namespace=default", false, 404, "guard.no_route"},
		{"runner connect", get, "/runners/connect", false, 404, "guard.no_route"},
		{"envoy connect", get, "/envoys/connect", false, 404, "guard.no_route"},
		{"ui", get, "/ui/", false, 404, "guard.no_route"},
		{"root", get, "/", false, 404, "guard.no_route"},
		{"metadata by POST", post, "/metadata", false, 405, "gateway.method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := ParseTarget(tt.method, tt.target, tt.ws)
			if err == nil {
				t.Fatalf("ParseTarget(%s %q): got %+v, want refused", tt.method, tt.target, rt)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseTarget(%s %q): got error %v, want a *rivet.Error", tt.method, tt.target, err)
			}
			if e.Status != tt.status || tt.code != "" && e.Group+"."+e.Code != tt.code {
				t.Errorf("ParseTarget(%s %q): got %d %s.%s (%v), want %d %s", tt.method, tt.target, e.Status, e.Group, e.Code, e.Metadata, tt.status, tt.code)
			}
		})
	}
}

func TestRemoveQueryParam(t *testing.T) {
	tests := []struct{ raw, key, want string }{
		{"", "rvt-token", ""},
		{"rvt-token=a", "rvt-token", ""},
		{"x=1&rvt-token=a&y=2", "rvt-token", "x=1&y=2"},
		{"rvt-token=a&x=1&rvt-token=b", "rvt-token", "x=1"},
		{"rvt-token&x=%zz", "rvt-token", "x=%zz"},
		{"rvt-tokenx=1&xrvt-token=2", "rvt-token", "rvt-tokenx=1&xrvt-token=2"},
		{"x=rvt-token", "rvt-token", "x=rvt-token"},
		{"a=1&&b=2&rvt-token=t", "rvt-token", "a=1&b=2"},
	}
	for _, tt := range tests {
		if got := RemoveQueryParam(tt.raw, tt.key); got != tt.want {
			t.Errorf("RemoveQueryParam(%q, %q): got %q, want %q", tt.raw, tt.key, got, tt.want)
		}
	}
}

func TestIntentNames(t *testing.T) {
	for _, i := range Intents() {
		got, ok := ParseIntent(i.String())
		if !ok || got != i {
			t.Errorf("ParseIntent(%q): got %v, %v; want %v, true", i.String(), got, ok, i)
		}
	}
	if _, ok := ParseIntent("unknown"); ok {
		t.Errorf("ParseIntent(\"unknown\"): got ok, want not ok")
	}
	if s := Intent(200).String(); s != "unknown" {
		t.Errorf("Intent(200).String(): got %q, want \"unknown\"", s)
	}
	carries := map[Intent]bool{IntentAction: true, IntentQueue: true, IntentRequest: true, IntentConnect: true, IntentWebSocket: true}
	privileged := map[Intent]bool{IntentList: true, IntentDestroy: true, IntentKV: true, IntentAdmin: true, IntentInspector: true}
	for _, i := range append(Intents(), IntentUnknown) {
		if got := i.CarriesParams(); got != carries[i] {
			t.Errorf("%v.CarriesParams(): got %v, want %v", i, got, carries[i])
		}
		if got := i.Privileged(); got != privileged[i] {
			t.Errorf("%v.Privileged(): got %v, want %v", i, got, privileged[i])
		}
	}
}

func TestRouteContext(t *testing.T) {
	if rt := RouteFrom(context.Background()); rt != nil {
		t.Fatalf("RouteFrom(empty): got %+v, want nil", rt)
	}
	rt := &Route{Intent: IntentConnect, ActorID: "abc"}
	if got := RouteFrom(WithRoute(context.Background(), rt)); got != rt {
		t.Errorf("RouteFrom: got %p, want %p", got, rt)
	}
}
