package rivet

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// stripPathToken returns an escaped /gateway/ path without the "@<token>" of
// its target segment: what Route.Path("") must rebuild.
func stripPathToken(p string) string {
	rest, ok := strings.CutPrefix(p, "/gateway/")
	if !ok {
		return p
	}
	seg, tail := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		seg, tail = rest[:i], rest[i:]
	}
	if i := strings.IndexByte(seg, '@'); i >= 0 {
		seg = seg[:i]
	}
	return "/gateway/" + seg + tail
}

func TestParseRoute(t *testing.T) {
	const q = "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k1&rvt-crash-policy=sleep"
	tests := []struct {
		name, path, query string
		want              Route
	}{
		{name: "health", path: "/health",
			want: Route{Intent: IntentHealth}},
		{name: "metadata", path: "/metadata", query: "namespace=default",
			want: Route{Intent: IntentMetadata, Namespace: "default"}},
		{name: "metadata escaped namespace", path: "/metadata", query: "x=1&namespace=my%20ns&namespace=other",
			want: Route{Intent: IntentMetadata, Namespace: "my ns"}},
		{name: "metadata without namespace", path: "/metadata",
			want: Route{Intent: IntentMetadata}},
		{name: "actors create", path: "/actors", query: "namespace=default",
			want: Route{Intent: IntentActors, Namespace: "default"}},
		{name: "actors lookup by id", path: "/actors", query: "actor_ids=abc&namespace=ns1",
			want: Route{Intent: IntentActors, Namespace: "ns1"}},
		{name: "actors lookup by key", path: "/actors", query: "name=counter&key=a%2Fb&namespace=ns1",
			want: Route{Intent: IntentActors, Namespace: "ns1"}},
		{name: "actors destroy", path: "/actors/18u0pfwqixkattvm3ohf6f511mcl00", query: "namespace=default",
			want: Route{Intent: IntentActors, Namespace: "default"}},
		{name: "unknown path", path: "/registry/actors/x",
			want: Route{}},
		{name: "actors prefix look-alike", path: "/actorsx",
			want: Route{}},
		{name: "gateway without slash", path: "/gateway",
			want: Route{}},

		// id targets
		{name: "id action", path: "/gateway/18u0pfwqixkattvm3ohf6f511mcl00/action/increment",
			want: Route{Intent: IntentAction, ActorID: "18u0pfwqixkattvm3ohf6f511mcl00", Name: "increment",
				Target: "18u0pfwqixkattvm3ohf6f511mcl00", Rest: "/action/increment"}},
		{name: "id with token action", path: "/gateway/18u0pfwqixkattvm3ohf6f511mcl00@secret-tok/action/increment",
			want: Route{Intent: IntentAction, ActorID: "18u0pfwqixkattvm3ohf6f511mcl00", Name: "increment",
				Target: "18u0pfwqixkattvm3ohf6f511mcl00", Rest: "/action/increment", PathToken: true}},
		{name: "id with escaped token connect", path: "/gateway/abc@tok%40en%2F1/connect",
			want: Route{Intent: IntentConnect, ActorID: "abc",
				Target: "abc", Rest: "/connect", PathToken: true}},
		{name: "id with empty token", path: "/gateway/abc@/connect",
			want: Route{Intent: IntentConnect, ActorID: "abc", Target: "abc", Rest: "/connect", PathToken: true}},
		{name: "id queue", path: "/gateway/abc/queue/jobs",
			want: Route{Intent: IntentQueue, ActorID: "abc", Name: "jobs", Target: "abc", Rest: "/queue/jobs"}},
		{name: "id request", path: "/gateway/abc/request/hello/world", query: "x=1",
			want: Route{Intent: IntentRequest, ActorID: "abc", Target: "abc", Rest: "/request/hello/world"}},
		{name: "id request root", path: "/gateway/abc/request",
			want: Route{Intent: IntentRequest, ActorID: "abc", Target: "abc", Rest: "/request"}},
		{name: "id websocket", path: "/gateway/abc/websocket/raw/path", query: "y=2",
			want: Route{Intent: IntentWebSocket, ActorID: "abc", Target: "abc", Rest: "/websocket/raw/path"}},
		{name: "id inspector", path: "/gateway/abc/inspector/connect", query: "protocol_version=2",
			want: Route{Intent: IntentInspector, ActorID: "abc", Target: "abc", Rest: "/inspector/connect"}},
		{name: "id no rest", path: "/gateway/abc",
			want: Route{Intent: IntentUnknown, ActorID: "abc", Target: "abc"}},
		{name: "id slash rest", path: "/gateway/abc/",
			want: Route{Intent: IntentUnknown, ActorID: "abc", Target: "abc", Rest: "/"}},
		{name: "id unknown rest", path: "/gateway/abc/connectx",
			want: Route{Intent: IntentUnknown, ActorID: "abc", Target: "abc", Rest: "/connectx"}},
		{name: "id with user query not rvt", path: "/gateway/abc/request/x", query: "rvt=1&xrvt-method=get&%zz",
			want: Route{Intent: IntentRequest, ActorID: "abc", Target: "abc", Rest: "/request/x"}},

		// query targets
		{name: "query getOrCreate action", path: "/gateway/counter/action/increment", query: q,
			want: Route{Intent: IntentAction, ActorName: "counter", Method: "getOrCreate", Key: []string{"k1"},
				Namespace: "default", Name: "increment", Target: "counter", Rest: "/action/increment"}},
		{name: "query get multi-part key", path: "/gateway/counter/action/getCount",
			query: "rvt-namespace=default&rvt-method=get&rvt-key=a%2Cb&rvt-token=secret-tok",
			want: Route{Intent: IntentAction, ActorName: "counter", Method: "get", Key: []string{"a", "b"},
				Namespace: "default", Name: "getCount", Target: "counter", Rest: "/action/getCount"}},
		{name: "query key with literal comma", path: "/gateway/counter/connect",
			query: "rvt-namespace=default&rvt-method=get&rvt-key=a,b,c",
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "get", Key: []string{"a", "b", "c"},
				Namespace: "default", Target: "counter", Rest: "/connect"}},
		{name: "query key with space and plus", path: "/gateway/counter/connect",
			query: "rvt-namespace=default&rvt-method=get&rvt-key=a+b%2B",
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "get", Key: []string{"a b+"},
				Namespace: "default", Target: "counter", Rest: "/connect"}},
		{name: "query empty key", path: "/gateway/counter/connect",
			query: "rvt-namespace=default&rvt-method=get&rvt-key=",
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "get", Key: []string{""},
				Namespace: "default", Target: "counter", Rest: "/connect"}},
		{name: "query without key", path: "/gateway/counter/connect",
			query: "rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-crash-policy=sleep",
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "getOrCreate",
				Namespace: "default", Target: "counter", Rest: "/connect"}},
		{name: "query escaped actor name", path: "/gateway/my%40actor%2Fx/action/inc", query: q,
			want: Route{Intent: IntentAction, ActorName: "my@actor/x", Method: "getOrCreate", Key: []string{"k1"},
				Namespace: "default", Name: "inc", Target: "my%40actor%2Fx", Rest: "/action/inc"}},
		{name: "escaped action name", path: "/gateway/counter/action/do%20it%2Fnow", query: q,
			want: Route{Intent: IntentAction, ActorName: "counter", Method: "getOrCreate", Key: []string{"k1"},
				Namespace: "default", Name: "do it/now", Target: "counter", Rest: "/action/do%20it%2Fnow"}},
		{name: "escaped queue name", path: "/gateway/abc/queue/q%C3%A9ue%2B1",
			want: Route{Intent: IntentQueue, ActorID: "abc", Name: "qéue+1", Target: "abc", Rest: "/queue/q%C3%A9ue%2B1"}},
		{name: "query request with user query first", path: "/gateway/counter/request/hello/world",
			query: "x=1&y=%zz&" + q,
			want: Route{Intent: IntentRequest, ActorName: "counter", Method: "getOrCreate", Key: []string{"k1"},
				Namespace: "default", Target: "counter", Rest: "/request/hello/world"}},
		{name: "query websocket", path: "/gateway/counter/websocket/raw/path", query: "y=2&" + q,
			want: Route{Intent: IntentWebSocket, ActorName: "counter", Method: "getOrCreate", Key: []string{"k1"},
				Namespace: "default", Target: "counter", Rest: "/websocket/raw/path"}},
		{name: "query connect", path: "/gateway/counter/connect", query: q + "&rvt-skip-ready-wait=true&rvt-input=oWF4AQ",
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "getOrCreate", Key: []string{"k1"},
				Namespace: "default", Target: "counter", Rest: "/connect"}},
		{name: "query escaped namespace", path: "/gateway/counter/connect", query: "rvt-namespace=a%20b&rvt-method=get",
			want: Route{Intent: IntentConnect, ActorName: "counter", Method: "get",
				Namespace: "a b", Target: "counter", Rest: "/connect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRoute(tt.path, tt.query)
			if err != nil {
				t.Fatalf("ParseRoute(%q, %q): got error %v, want none", tt.path, tt.query, err)
			}
			if !routeEqual(got, tt.want) {
				t.Errorf("ParseRoute(%q, %q):\n got %+v\nwant %+v", tt.path, tt.query, got, tt.want)
			}
			if got.Intent.Gateway() || got.Target != "" {
				if p, want := got.Path(""), stripPathToken(tt.path); p != want {
					t.Errorf("Path(\"\"): got %q, want %q", p, want)
				}
				if p, want := got.Path("tok%40x"), "/gateway/"+got.Target+"@tok%40x"+got.Rest; p != want {
					t.Errorf("Path(token): got %q, want %q", p, want)
				}
			} else if p := got.Path(""); p != "" {
				t.Errorf("Path(\"\") of non-gateway route: got %q, want \"\"", p)
			}
		})
	}
}

func routeEqual(a, b Route) bool {
	return a.Intent == b.Intent && a.ActorID == b.ActorID && a.ActorName == b.ActorName &&
		a.Method == b.Method && slices.Equal(a.Key, b.Key) && a.Namespace == b.Namespace &&
		a.Name == b.Name && a.Target == b.Target && a.Rest == b.Rest && a.PathToken == b.PathToken
}

func TestParseRouteInvalid(t *testing.T) {
	tests := []struct{ name, path, query string }{
		{"empty target", "/gateway//connect", ""},
		{"empty target at end", "/gateway/", ""},
		{"empty target with token", "/gateway/@tok/connect", ""},
		{"bad escape in target", "/gateway/ab%zz/connect", ""},
		{"truncated escape in target", "/gateway/ab%4/connect", ""},
		{"bad escape in action name", "/gateway/abc/action/x%zz", ""},
		{"bad escape in queue name", "/gateway/abc/queue/%", ""},
		{"action without name", "/gateway/abc/action", ""},
		{"action with empty name", "/gateway/abc/action/", ""},
		{"action with two segments", "/gateway/abc/action/a/b", ""},
		{"queue without name", "/gateway/abc/queue/", ""},
		{"rvt-method invalid", "/gateway/counter/connect", "rvt-namespace=default&rvt-method=create"},
		{"rvt-method wrong case", "/gateway/counter/connect", "rvt-namespace=default&rvt-method=GET"},
		{"rvt params without method", "/gateway/counter/connect", "rvt-namespace=default&rvt-key=a"},
		{"rvt-token alone", "/gateway/abc/connect", "rvt-token=t"},
		{"empty rvt-method", "/gateway/counter/connect", "rvt-namespace=default&rvt-method="},
		{"missing rvt-namespace", "/gateway/counter/connect", "rvt-method=get&rvt-key=a"},
		{"empty rvt-namespace", "/gateway/counter/connect", "rvt-namespace=&rvt-method=get"},
		{"duplicate rvt-method", "/gateway/counter/connect", "rvt-namespace=default&rvt-method=get&rvt-method=getOrCreate"},
		{"duplicate rvt-namespace", "/gateway/counter/connect", "rvt-namespace=a&rvt-namespace=b&rvt-method=get"},
		{"duplicate rvt-key", "/gateway/counter/connect", "rvt-namespace=a&rvt-method=get&rvt-key=x&rvt-key=y"},
		{"bad escape in rvt value", "/gateway/counter/connect", "rvt-namespace=a%zz&rvt-method=get"},
		{"query target action without name", "/gateway/counter/action", "rvt-namespace=default&rvt-method=get"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := ParseRoute(tt.path, tt.query)
			if err == nil {
				t.Fatalf("ParseRoute(%q, %q): got %+v, nil error; want an error", tt.path, tt.query, rt)
			}
			if !errors.Is(err, ErrInvalidRoute) {
				t.Errorf("ParseRoute(%q, %q): got error %v, want one wrapping ErrInvalidRoute", tt.path, tt.query, err)
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

func TestAppendQueryParam(t *testing.T) {
	tests := []struct{ raw, key, value, want string }{
		{"", "rvt-token", "a b+c", "rvt-token=a+b%2Bc"},
		{"x=1", "rvt-token", "t@k", "x=1&rvt-token=t%40k"},
	}
	for _, tt := range tests {
		if got := AppendQueryParam(tt.raw, tt.key, tt.value); got != tt.want {
			t.Errorf("AppendQueryParam(%q, %q, %q): got %q, want %q", tt.raw, tt.key, tt.value, got, tt.want)
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
	for _, i := range append(Intents(), IntentUnknown) {
		if got := i.CarriesParams(); got != carries[i] {
			t.Errorf("%v.CarriesParams(): got %v, want %v", i, got, carries[i])
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

// TestParseRouteEngineParity holds requests the engine (rivet-engine 2.3.19,
// run locally) rejects with 400 that ParseRoute must reject too: otherwise
// the gateway classifies, authorizes and rewrites a route the engine reads
// differently (and stripping "@token" would even turn a rejected request into
// an accepted one).
//
// KNOWN BUG, reported to the lead (rivet/route.go is not ours to edit):
// parseRvtQuery detects a duplicate by the earlier value being non-empty, not
// by the key having been seen, so an empty first occurrence hides the
// duplicate; and parseGateway accepts "@token" on query targets.
func TestParseRouteEngineParity(t *testing.T) {
	tests := []struct{ name, path, query, engine string }{
		{"duplicate rvt-method, first empty", "/gateway/counter/action/x",
			"rvt-namespace=default&rvt-method=&rvt-method=get&rvt-key=k", "guard.query_duplicate_param"},
		{"duplicate rvt-method, first without =", "/gateway/counter/action/x",
			"rvt-namespace=default&rvt-method&rvt-method=get&rvt-key=k", "guard.query_duplicate_param"},
		{"duplicate rvt-namespace, first without =", "/gateway/counter/action/x",
			"rvt-namespace&rvt-namespace=default&rvt-method=get&rvt-key=k", "guard.query_duplicate_param"},
		{"duplicate rvt-token", "/gateway/counter/action/x",
			"rvt-namespace=default&rvt-method=get&rvt-key=k&rvt-token=a&rvt-token=b", "guard.query_duplicate_param"},
		{"@token on a query target", "/gateway/counter@tok/action/x",
			"rvt-namespace=default&rvt-method=get&rvt-key=k", "guard.query_path_token_syntax"},
		{"empty @token on a query target", "/gateway/counter@/action/x",
			"rvt-namespace=default&rvt-method=get&rvt-key=k", "guard.query_path_token_syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := ParseRoute(tt.path, tt.query)
			if !errors.Is(err, ErrInvalidRoute) {
				t.Errorf("ParseRoute(%q, %q): got %+v, %v; want ErrInvalidRoute (the engine answers 400 %s)",
					tt.path, tt.query, rt, err, tt.engine)
			}
		})
	}
}
