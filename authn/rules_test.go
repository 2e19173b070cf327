package authn

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

func TestBuiltinRules(t *testing.T) {
	a := newAuth(t, hsConfig())
	good := hsToken(t, "alice")
	tests := []struct {
		name       string
		method     string
		target     string
		headers    []string
		noRoute    bool
		wantStatus int
		wantReason string
		wantMethod string
	}{
		{"health anonymous", "GET", "/health", nil, false, 200, "", MethodAnonymous},
		{"metadata anonymous", "GET", "/metadata?namespace=default", nil, false, 200, "", MethodAnonymous},
		{"metadata with expired token stays anonymous", "GET", "/metadata", bearer(hsToken(t, "alice", "exp", 1)), false, 200, "", MethodAnonymous},
		{"metadata with good token is identified", "GET", "/metadata", bearer(good), false, 200, "", MethodJWT},
		{"actors API needs a credential", "POST", "/actors?namespace=default", nil, false, 401, "missing", ""},
		{"action needs a credential", "POST", actionAlice, nil, false, 401, "missing", ""},
		{"raw request needs a credential", "GET", "/gateway/counter/request/hello?rvt-namespace=default&rvt-method=get&rvt-key=a", nil, false, 401, "missing", ""},
		{"inspector denied even with a token", "GET", inspector, bearer(good), false, 403, "denied", ""},
		{"inspector denied anonymous", "GET", inspector, nil, false, 403, "denied", ""},
		{"inspector through request denied", "GET", "/gateway/tdpqkgvaig2jgfhgqrgvpg0u30cl00/request/inspector/state", bearer(good), false, 403, "denied", ""},
		{"destroy denied", "DELETE", "/actors/tdpqkgvaig2jgfhgqrgvpg0u30cl00?namespace=default", bearer(good), false, 403, "denied", ""},
		{"kv denied", "GET", "/actors/tdpqkgvaig2jgfhgqrgvpg0u30cl00/kv/keys/Aw==?namespace=default", bearer(good), false, 403, "denied", ""},
		{"list denied", "GET", "/actors?namespace=default&name=counter", bearer(good), false, 403, "denied", ""},
		{"admin denied", "GET", "/runner-configs?namespace=default", bearer(good), false, 403, "denied", ""},
		{"lookup by key needs a credential", "GET", "/actors?namespace=default&name=counter&key=bob", nil, false, 401, "missing", ""},
		{"no route in context fails closed", "GET", "/health", bearer(good), true, 500, "", ""},
		{"OPTIONS with Access-Control-Request-Method but no Origin is authenticated", "OPTIONS", "/gateway/counter/request/x?rvt-namespace=default&rvt-method=get&rvt-key=a", []string{"Access-Control-Request-Method", "GET"}, false, 401, "missing", ""},
		{"OPTIONS to the inspector is denied", "OPTIONS", "/gateway/tdpqkgvaig2jgfhgqrgvpg0u30cl00/inspector/x", []string{"Access-Control-Request-Method", "GET", "Origin", "https://app.test"}, false, 403, "denied", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for i := 0; i+1 < len(tc.headers); i += 2 {
				r.Header.Add(tc.headers[i], tc.headers[i+1])
			}
			if !tc.noRoute {
				r = withRoute(t, r)
			}
			res := serve(t, a, r)
			if res.status != tc.wantStatus {
				t.Fatalf("status: got %d, want %d (%s)", res.status, tc.wantStatus, res.raw)
			}
			if got := res.reason(); got != tc.wantReason {
				t.Errorf("reason: got %q, want %q", got, tc.wantReason)
			}
			if tc.wantStatus == 403 && (res.body.Group != "auth" || res.body.Code != "forbidden") {
				t.Errorf("error: got %s.%s, want auth.forbidden", res.body.Group, res.body.Code)
			}
			if tc.wantStatus != 200 {
				return
			}
			if tc.wantMethod == "" { // preflight: nothing set, nothing stripped
				if res.id != nil {
					t.Errorf("identity on a preflight: got %+v, want nil", res.id)
				}
				if res.fwd != r {
					t.Errorf("preflight request was replaced")
				}
				return
			}
			if res.id == nil || res.id.Method != tc.wantMethod {
				t.Errorf("identity: got %+v, want method %s", res.id, tc.wantMethod)
			}
			if res.fwd.Header.Get("Authorization") != "" {
				t.Errorf("Authorization forwarded on an anonymous route")
			}
		})
	}
}

func TestRules(t *testing.T) {
	cfg := hsConfig()
	cfg.APIKeys.Keys = []APIKey{{ID: "full", SHA256: hashHex(fullKey)}}
	cfg.Rules = []Rule{
		{ // users reach only their own counter, by key
			Match:      Match{Intents: []string{"connect", "action"}, Actors: []string{"counter"}, Targets: []string{"key"}},
			Methods:    []string{MethodJWT},
			Claims:     map[string][]string{"role": {"member", "admin"}},
			KeyBinding: &KeyBinding{Index: 0, Claim: "sub"},
		},
		{ // ... and never by id, which would skip the key binding
			Match: Match{Intents: []string{"action", "queue", "request", "connect", "websocket"}, Targets: []string{"id"}},
			Allow: AllowDeny,
		},
		{Match: Match{Intents: []string{"lookup", "create", "get_or_create"}}, Methods: []string{MethodAPIKey}},
		{Match: Match{Intents: []string{"queue"}, Actors: []string{"jobs"}}, Scopes: []string{"queue:jobs"}},
		{Match: Match{Intents: []string{"action"}, Actors: []string{"tenant"}}, KeyBinding: &KeyBinding{Index: 1, Claim: "org.id"}},
		{Match: Match{Namespaces: []string{"public"}}, Allow: AllowAnonymous},
		{Match: Match{Intents: []string{"websocket"}}, Issuers: []string{"local"}},
	}
	a := newAuth(t, cfg)
	counter := func(key string) string {
		return "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=" + key
	}
	jobs := "/gateway/jobs/queue/run?rvt-namespace=default&rvt-method=get&rvt-key=j"
	tests := []struct {
		name       string
		target     string
		headers    []string
		wantStatus int
		wantReason string
	}{
		{"own actor", counter("alice"), bearer(hsToken(t, "alice", "role", "member")), 200, ""},
		{"own actor, compound key", counter("alice,room1"), bearer(hsToken(t, "alice", "role", "admin")), 200, ""},
		{"another user's actor", counter("bob"), bearer(hsToken(t, "alice", "role", "member")), 403, "key_binding"},
		{"no key", "/gateway/counter/connect?rvt-namespace=default&rvt-method=get", bearer(hsToken(t, "alice", "role", "member")), 403, "key_binding"},
		{"empty sub never binds", counter(""), bearer(hsToken(t, "", "role", "member")), 403, "key_binding"},
		{"role not accepted", counter("alice"), bearer(hsToken(t, "alice", "role", "guest")), 403, "claim_mismatch"},
		{"role missing", counter("alice"), bearer(hsToken(t, "alice")), 403, "claim_mismatch"},
		{"role list with an accepted value", counter("alice"), bearer(hsToken(t, "alice", "role", []string{"x", "admin"})), 200, ""},
		{"API key where only JWTs count", counter("alice"), []string{"X-API-Key", fullKey}, 403, "method_not_allowed"},
		{"actor by id is denied", actionByID, bearer(hsToken(t, "alice", "role", "admin")), 403, "denied"},
		{"actors API with a JWT", "/actors?namespace=default", bearer(hsToken(t, "alice")), 403, "method_not_allowed"},
		{"actors API with an API key", "/actors?namespace=default", []string{"X-API-Key", fullKey}, 200, ""},
		{"queue with scope", jobs, bearer(hsToken(t, "alice", "scope", "queue:jobs")), 200, ""},
		{"queue with wildcard scope", jobs, bearer(hsToken(t, "alice", "scp", []string{"queue:*"})), 200, ""},
		{"queue without scope", jobs, bearer(hsToken(t, "alice", "scope", "queue:other")), 403, "missing_scope"},
		{"nested claim binding", "/gateway/tenant/action/x?rvt-namespace=default&rvt-method=get&rvt-key=u,acme", bearer(hsToken(t, "u", "org", map[string]any{"id": "acme"})), 200, ""},
		{"nested claim binding mismatch", "/gateway/tenant/action/x?rvt-namespace=default&rvt-method=get&rvt-key=u,evil", bearer(hsToken(t, "u", "org", map[string]any{"id": "acme"})), 403, "key_binding"},
		{"public namespace anonymous", "/gateway/chat/action/read?rvt-namespace=public&rvt-method=get&rvt-key=lobby", nil, 200, ""},
		{"raw websocket needs the local issuer", "/gateway/chat/websocket/x?rvt-namespace=default&rvt-method=get&rvt-key=a", []string{"X-API-Key", fullKey}, 403, "method_not_allowed"},
		{"raw websocket with the local issuer", "/gateway/chat/websocket/x?rvt-namespace=default&rvt-method=get&rvt-key=a", bearer(hsToken(t, "alice")), 200, ""},
		{"other routes: any valid credential", "/gateway/chat/action/x?rvt-namespace=default&rvt-method=get&rvt-key=a", []string{"X-API-Key", fullKey}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(t, a, newRequest(t, "POST", tc.target, tc.headers...))
			if res.status != tc.wantStatus {
				t.Fatalf("status: got %d, want %d (%s)", res.status, tc.wantStatus, res.raw)
			}
			if got := res.reason(); got != tc.wantReason {
				t.Errorf("reason: got %q, want %q", got, tc.wantReason)
			}
		})
	}
}

// TestSpoofedIdentity: what a client says about itself, outside a verified
// credential, changes nothing.
func TestSpoofedIdentity(t *testing.T) {
	a := newAuth(t, hsConfig())
	spoof := []string{
		"X-Forwarded-User", "admin",
		"X-Auth-Request-User", "admin",
		"X-Authenticated-Subject", "admin",
		"X-Rivet-Identity", `{"sub":"admin"}`,
		"X-Remote-User", "admin",
		"X-Rivet-Conn-Params", `{"sub":"admin","role":"admin","identity":{"sub":"admin"}}`,
	}
	res := serve(t, a, newRequest(t, "POST", actionAlice, spoof...))
	if res.status != 401 || res.reason() != "missing" {
		t.Fatalf("spoofed headers alone: got %d %q, want 401 missing", res.status, res.reason())
	}
	res = serve(t, a, newRequest(t, "GET", "/metadata", spoof...))
	if res.status != 200 || res.id.Method != MethodAnonymous || res.id.Subject != "" {
		t.Fatalf("spoofed headers on an anonymous route: got %d %+v, want an empty anonymous identity", res.status, res.id)
	}
	res = serve(t, a, newRequest(t, "POST", actionAlice, append(spoof, bearer(hsToken(t, "alice"))...)...))
	if res.status != 200 || res.id.Subject != "alice" {
		t.Fatalf("spoofed headers with alice's token: got %d %+v, want alice", res.status, res.id)
	}
	// A context identity planted before the middleware is replaced.
	r := newRequest(t, "POST", actionAlice, bearer(hsToken(t, "alice"))...)
	r = r.WithContext(WithIdentity(r.Context(), &Identity{Method: MethodJWT, Subject: "admin"}))
	if res := serve(t, a, r); res.id.Subject != "alice" {
		t.Fatalf("planted context identity: got %q, want alice", res.id.Subject)
	}
	// The first configured source wins; a second credential cannot pick
	// the identity, and is stripped too.
	r = newRequest(t, "POST", actionAlice, append(bearer(hsToken(t, "alice")),
		"X-Rivet-Conn-Params", `{"authToken":"`+hsToken(t, "bob")+`"}`)...)
	res = serve(t, a, r)
	if res.status != 200 || res.id.Subject != "alice" {
		t.Fatalf("bearer and conn params: got %d %+v, want alice", res.status, res.id)
	}
	if got := res.fwd.Header.Get(rivet.HeaderConnParams); got != "{}" {
		t.Errorf("unused conn-params credential: got %s, want {}", got)
	}
	// Two Authorization headers are ambiguous.
	r = newRequest(t, "POST", actionAlice, "Authorization", "Bearer "+hsToken(t, "alice"), "Authorization", "Bearer "+hsToken(t, "bob"))
	if res := serve(t, a, r); res.status != 401 || res.reason() != "malformed" {
		t.Fatalf("two Authorization headers: got %d %q, want 401 malformed", res.status, res.reason())
	}
	// Two auth cookies (cookie tossing) are ambiguous.
	r = newRequest(t, "POST", actionAlice, "Cookie", "rivet_auth="+hsToken(t, "mallory")+"; rivet_auth="+hsToken(t, "alice"))
	if res := serve(t, a, r); res.status != 401 || res.reason() != "malformed" {
		t.Fatalf("two auth cookies: got %d %q, want 401 malformed", res.status, res.reason())
	}
}

func TestStripCredentials(t *testing.T) {
	cfg := apiKeyConfig()
	cfg.Credentials = []string{SourceBearer, SourceAPIKeyHeader, SourceConnParams, SourceCookie, SourceQuery}
	key := fullKey
	tests := []struct {
		name    string
		target  string
		headers []string
		forward bool
		check   func(t *testing.T, fwd *http.Request)
	}{
		{"bearer", actionAlice, bearer(key), false, func(t *testing.T, fwd *http.Request) {
			if v := fwd.Header.Values("Authorization"); len(v) != 0 {
				t.Errorf("Authorization: got %q, want none", v)
			}
		}},
		{"api key header", actionAlice, []string{"X-API-Key", key}, false, func(t *testing.T, fwd *http.Request) {
			if v := fwd.Header.Values("X-API-Key"); len(v) != 0 {
				t.Errorf("X-API-Key: got %q, want none", v)
			}
		}},
		{"cookie", actionAlice, []string{"Cookie", "a=1; rivet_auth=" + key + "; b=2", "Cookie", "c=3"}, false, func(t *testing.T, fwd *http.Request) {
			if got := fwd.Header.Values("Cookie"); !slices.Equal(got, []string{"a=1; b=2", "c=3"}) {
				t.Errorf("Cookie: got %q, want [a=1; b=2 c=3]", got)
			}
		}},
		{"cookie alone", actionAlice, []string{"Cookie", "rivet_auth=" + key}, false, func(t *testing.T, fwd *http.Request) {
			if got := fwd.Header.Values("Cookie"); len(got) != 0 {
				t.Errorf("Cookie: got %q, want none", got)
			}
		}},
		{"query", "/gateway/counter/action/inc?x=1&access_token=" + key + "&rvt-namespace=default&rvt-method=get&rvt-key=alice", nil, false, func(t *testing.T, fwd *http.Request) {
			want := "x=1&rvt-namespace=default&rvt-method=get&rvt-key=alice"
			if fwd.URL.RawQuery != want {
				t.Errorf("query: got %q, want %q", fwd.URL.RawQuery, want)
			}
			if strings.Contains(fwd.RequestURI, key) {
				t.Errorf("RequestURI still holds the key: %q", fwd.RequestURI)
			}
		}},
		{"conn params field, others kept and ASCII", actionAlice, []string{"X-Rivet-Conn-Params", `{"authToken":"` + key + `","room":"lobby","name":"Zoë","n":1.50}`}, false, func(t *testing.T, fwd *http.Request) {
			want := `{"n":1.50,"name":"Zo\u00eb","room":"lobby"}`
			if got := fwd.Header.Get(rivet.HeaderConnParams); got != want {
				t.Errorf("x-rivet-conn-params: got %s, want %s", got, want)
			}
		}},
		{"conn params with only the field become {}", actionAlice, []string{"X-Rivet-Conn-Params", `{"authToken":"` + key + `"}`}, false, func(t *testing.T, fwd *http.Request) {
			if got := fwd.Header.Get(rivet.HeaderConnParams); got != "{}" {
				t.Errorf("x-rivet-conn-params: got %s, want {}", got)
			}
		}},
		{"legacy conn params header stays legacy", actionAlice, []string{"X-RivetKit-Conn-Params", `{"authToken":"` + key + `","a":1}`}, false, func(t *testing.T, fwd *http.Request) {
			if got := fwd.Header.Get(rivet.HeaderLegacyConnParams); got != `{"a":1}` {
				t.Errorf("legacy header: got %s, want {\"a\":1}", got)
			}
			if got := fwd.Header.Get(rivet.HeaderConnParams); got != "" {
				t.Errorf("current header: got %s, want none", got)
			}
		}},
		{"every carrier is stripped, used or not", actionAlice, []string{"X-API-Key", key, "Cookie", "rivet_auth=zzz", "X-Rivet-Conn-Params", `{"authToken":"yyy"}`}, false, func(t *testing.T, fwd *http.Request) {
			if fwd.Header.Get("X-API-Key") != "" || fwd.Header.Get("Cookie") != "" || fwd.Header.Get(rivet.HeaderConnParams) != "{}" {
				t.Errorf("headers: got %v, want no credential", fwd.Header)
			}
		}},
		{"forward_credentials keeps them", actionAlice + "&access_token=q", []string{"X-API-Key", key, "Cookie", "rivet_auth=c", "X-Rivet-Conn-Params", `{"authToken":"p"}`}, true, func(t *testing.T, fwd *http.Request) {
			if fwd.Header.Get("X-API-Key") != key || fwd.Header.Get("Cookie") != "rivet_auth=c" ||
				fwd.Header.Get(rivet.HeaderConnParams) != `{"authToken":"p"}` || !strings.Contains(fwd.URL.RawQuery, "access_token=q") {
				t.Errorf("forwarded: got %v %q, want every credential kept", fwd.Header, fwd.URL.RawQuery)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.ForwardCredentials = tc.forward
			a := newAuth(t, c)
			r := newRequest(t, "POST", tc.target, tc.headers...)
			before := r.Header.Clone()
			res := serve(t, a, r)
			if res.status != 200 {
				t.Fatalf("status: got %d, want 200 (%s)", res.status, res.raw)
			}
			tc.check(t, res.fwd)
			for k, v := range before { // the caller's request is not modified
				if !slices.Equal(r.Header[k], v) {
					t.Errorf("inbound header %s modified: got %q, want %q", k, r.Header[k], v)
				}
			}
		})
	}
}

func TestObserve(t *testing.T) {
	var mu sync.Mutex
	var got []Outcome
	cfg := hsConfig()
	cfg.APIKeys.Keys = []APIKey{{ID: "full", SHA256: hashHex(fullKey)}}
	cfg.Rules = []Rule{{Match: Match{Actors: []string{"chat"}}, KeyBinding: &KeyBinding{Index: 0, Claim: "sub"}}}
	const chatBob = "/gateway/chat/action/send?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=bob"
	a := newAuth(t, cfg, Options{Observe: func(r *http.Request, o Outcome) {
		mu.Lock()
		defer mu.Unlock()
		if r == nil {
			t.Error("Observe got no request")
		}
		got = append(got, o)
	}})
	serve(t, a, newRequest(t, "POST", actionAlice, bearer(hsToken(t, "alice"))...))
	serve(t, a, newRequest(t, "POST", actionAlice, "X-API-Key", fullKey))
	serve(t, a, newRequest(t, "GET", "/metadata"))
	serve(t, a, newRequest(t, "GET", "/metadata", bearer("garbage")...))
	serve(t, a, newRequest(t, "POST", actionAlice))
	serve(t, a, newRequest(t, "GET", inspector, bearer(hsToken(t, "alice"))...))
	serve(t, a, newRequest(t, "POST", chatBob, bearer(hsToken(t, "alice"))...))
	serve(t, a, newRequest(t, "OPTIONS", "/gateway/counter/request/x?rvt-namespace=default&rvt-method=get&rvt-key=a", "Access-Control-Request-Method", "POST"))
	want := []Outcome{
		{Result: ResultOK, Method: MethodJWT, Issuer: "local", Subject: "alice"},
		{Result: ResultOK, Method: MethodAPIKey, APIKeyID: "full"},
		{Result: ResultAnonymous, Method: MethodAnonymous},
		{Result: ResultAnonymous, Method: MethodAnonymous, Reason: "invalid_api_key"},
		{Result: ResultUnauthorized, Reason: "missing"},
		{Result: ResultForbidden, Reason: "denied"},
		// A valid credential the rules refuse: who it was is known.
		{Result: ResultForbidden, Reason: "key_binding", Method: MethodJWT, Issuer: "local", Subject: "alice"},
		{Result: ResultUnauthorized, Reason: "missing"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("outcomes:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestHTTPErrorShape(t *testing.T) {
	a := newAuth(t, hsConfig())
	tok := hsToken(t, "alice", "exp", 1000)
	rec := httptest.NewRecorder()
	a.Middleware(http.NotFoundHandler()).ServeHTTP(rec, newRequest(t, "POST", actionAlice, bearer(tok)...))
	if rec.Code != 401 {
		t.Fatalf("status: got %d, want 401", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	if got := rec.Header().Get(rivet.HeaderError); got != "auth.unauthorized" {
		t.Errorf("%s: got %q, want auth.unauthorized", rivet.HeaderError, got)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"group": "auth", "code": "unauthorized", "message": ErrUnauthorized.Message, "metadata": map[string]any{"reason": "expired"}}
	if b, w := mustJSON(body), mustJSON(want); b != w {
		t.Errorf("body: got %s, want %s", b, w)
	}
	if strings.Contains(rec.Body.String(), tok[len(tok)-10:]) {
		t.Errorf("body echoes the token")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestUnparsableCredentialsRefused: a credential that is present but not
// in the one form the gateway reads is a 401, never ignored (and so never
// forwarded for another reader, such as the actor's inspector, to accept).
func TestUnparsableCredentialsRefused(t *testing.T) {
	cfg := apiKeyConfig()
	cfg.Credentials = []string{SourceBearer, SourceAPIKeyHeader, SourceConnParams, SourceCookie, SourceQuery}
	a := newAuth(t, cfg)
	tok := fullKey
	tests := []struct {
		name    string
		target  string
		headers []string
	}{
		{"Bearer<TAB>", actionAlice, []string{"Authorization", "Bearer\t" + tok}},
		{"two spaces", actionAlice, []string{"Authorization", "Bearer  " + tok}},
		{"lower-case scheme", actionAlice, []string{"Authorization", "bearer " + tok}},
		{"upper-case scheme", actionAlice, []string{"Authorization", "BEARER " + tok}},
		{"bare token", actionAlice, []string{"Authorization", tok}},
		{"other scheme", actionAlice, []string{"Authorization", "Basic dXNlcjpwYXNz", "X-API-Key", tok}},
		{"trailing space", actionAlice, []string{"Authorization", "Bearer " + tok + " "}},
		{"two Authorization headers", actionAlice, []string{"Authorization", "Bearer " + tok, "Authorization", "Bearer " + tok}},
		{"empty bearer", actionAlice, []string{"Authorization", "Bearer "}},
		{"API key with spaces", actionAlice, []string{"X-API-Key", " " + tok}},
		{"empty API key", actionAlice, []string{"X-API-Key", ""}},
		{"quoted cookie", actionAlice, []string{"Cookie", `rivet_auth="` + tok + `"`}},
		{"cookie with spaces around =", actionAlice, []string{"Cookie", "rivet_auth = " + tok}},
		{"two auth cookies", actionAlice, []string{"Cookie", "rivet_auth=" + tok + "; rivet_auth=x"}},
		{"cookie without value", actionAlice, []string{"Cookie", "a=1; rivet_auth"}},
		{"empty params field", actionAlice, []string{"X-Rivet-Conn-Params", `{"authToken":""}`}},
		{"params field not a string", actionAlice, []string{"X-Rivet-Conn-Params", `{"authToken":1}`}},
		{"params field with a space", actionAlice, []string{"X-Rivet-Conn-Params", `{"authToken":" ` + tok + `"}`}},
		{"two query credentials", actionAlice + "&access_token=" + tok + "&access_token=" + tok, nil},
		{"empty query credential", actionAlice + "&access_token=", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(t, a, newRequest(t, "POST", tc.target, tc.headers...))
			if res.status != 401 || res.reason() != "malformed" {
				t.Errorf("status: got %d %q, want 401 malformed (%s)", res.status, res.reason(), res.raw)
			}
		})
	}
}

// TestStripEveryKnownCarrier: with forward_credentials off, every carrier
// the gateway knows leaves the request, whichever sources are configured
// and whichever credential was used.
func TestStripEveryKnownCarrier(t *testing.T) {
	cfg := apiKeyConfig()
	cfg.Credentials = []string{SourceAPIKeyHeader}
	a := newAuth(t, cfg)
	r := newRequest(t, "POST", actionAlice+"&access_token=q&keep=1",
		"X-API-Key", fullKey,
		"Authorization", "Bearer\tinspector-token",
		"Cookie", "a=1; rivet_auth=c",
		"X-Rivet-Conn-Params", `{"authToken":"p","keep":1}`)
	res := serve(t, a, r)
	if res.status != 200 {
		t.Fatalf("status: got %d, want 200 (%s)", res.status, res.raw)
	}
	f := res.fwd
	if v := f.Header.Values("Authorization"); len(v) > 0 {
		t.Errorf("Authorization: got %q, want none", v)
	}
	if v := f.Header.Values("X-API-Key"); len(v) > 0 {
		t.Errorf("X-API-Key: got %q, want none", v)
	}
	if got := f.Header.Get("Cookie"); got != "a=1" {
		t.Errorf("Cookie: got %q, want a=1", got)
	}
	if got := f.Header.Get(rivet.HeaderConnParams); got != `{"keep":1}` {
		t.Errorf("conn params: got %s, want {\"keep\":1}", got)
	}
	if strings.Contains(f.URL.RawQuery, "access_token") || !strings.Contains(f.URL.RawQuery, "keep=1") {
		t.Errorf("query: got %q, want access_token removed and keep=1 kept", f.URL.RawQuery)
	}
}

// TestPrivilegedGrantedExplicitly: the README's operators rule opens
// list, destroy and admin to API keys holding every scope, and to nothing
// else; kv and the inspector stay denied because it does not name them.
func TestPrivilegedGrantedExplicitly(t *testing.T) {
	cfg := apiKeyConfig()
	cfg.JWT = hsConfig().JWT
	cfg.Rules = []Rule{{Match: Match{Intents: []string{"list", "destroy", "admin"}}, Methods: []string{MethodAPIKey}, Scopes: []string{"*"}}}
	cfg.APIKeys.Keys = append(cfg.APIKeys.Keys, APIKey{ID: "ops", SHA256: hashHex("ops-key-0123456789"), Scopes: []string{"*"}})
	a := newAuth(t, cfg)
	const id = "hwzdj7sr4l7y4lxlvc506jrjwtal00"
	destroy := "/actors/" + id + "?namespace=default"
	tests := []struct {
		name, method, target string
		headers              []string
		status               int
	}{
		{"operators' key destroys", "DELETE", destroy, []string{"X-API-Key", "ops-key-0123456789"}, 200},
		{"operators' key lists", "GET", "/actors?namespace=default&name=counter", []string{"X-API-Key", "ops-key-0123456789"}, 200},
		{"operators' key: kv not granted", "GET", "/actors/" + id + "/kv/keys/Aw==?namespace=default", []string{"X-API-Key", "ops-key-0123456789"}, 403},
		{"operators' key: inspector not granted", "GET", "/gateway/" + id + "/inspector/state", []string{"X-API-Key", "ops-key-0123456789"}, 403},
		{"scoped key cannot destroy", "DELETE", destroy, []string{"X-API-Key", backendKey}, 403},
		{"unscoped key without the * scope", "DELETE", destroy, []string{"X-API-Key", fullKey}, 403},
		{"a JWT cannot destroy", "DELETE", destroy, bearer(hsToken(t, "alice")), 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := serve(t, a, newRequest(t, tc.method, tc.target, tc.headers...))
			if res.status != tc.status {
				t.Errorf("status: got %d, want %d (%s)", res.status, tc.status, res.raw)
			}
		})
	}
}
