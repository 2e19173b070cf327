package params

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

func TestStaticInjectsEveryCarryingIntent(t *testing.T) {
	inj := mustNew(t, staticConfig(map[string]any{"tenant": "acme", "name": "Zoë 😀", "n": 1}), Options{})
	want := map[string]any{"tenant": "acme", "name": "Zoë 😀", "n": float64(1)}
	tests := []struct {
		name   string
		method string
		target string
		ws     bool
	}{
		{"action", http.MethodPost, actionPath, false},
		{"queue", http.MethodPost, queuePath, false},
		{"request", http.MethodGet, requestPath, false},
		{"connect", http.MethodGet, connectPath, true},
		{"raw websocket", http.MethodGet, rawWSPath, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, h := serve(t, inj, newReq(t, tt.method, tt.target, tt.ws, "rivet", "rivet_encoding.bare"))
			if rec.Code != http.StatusNoContent {
				t.Fatalf("got status %d, want 204 (%s)", rec.Code, rec.Body)
			}
			var got any
			if tt.ws {
				got = engineProtocolParams(t, h)
				if v := h.Get(rivet.HeaderConnParams); v != "" {
					t.Errorf("got header carrier %q on a WebSocket, want none", v)
				}
			} else {
				got = engineHeaderParams(t, h, rivet.HeaderConnParams)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("engine decodes %#v, want %#v", got, want)
			}
		})
	}
}

func TestASCIIHeader(t *testing.T) {
	inj := mustNew(t, staticConfig(map[string]any{"name": "café 😀 <&>"}), Options{})
	_, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	got := h.Get(rivet.HeaderConnParams)
	if want := `{"name":"caf\u00e9 \ud83d\ude00 <&>"}`; got != want {
		t.Errorf("got header %s, want %s", got, want)
	}
}

func TestPassThroughIntentsWithoutParams(t *testing.T) {
	inj := mustNew(t, staticConfig(map[string]any{"tenant": "acme"}), Options{})
	for _, target := range []string{
		"/metadata?namespace=default", "/actors?namespace=default", "/actors?namespace=default&name=counter&key=room-1", "/health",
		"/gateway/" + actorID + "/inspector/connect", "/gateway/" + actorID + "/request/inspector/state",
	} {
		r := newReq(t, http.MethodGet, target, false)
		r.Header.Set(rivet.HeaderConnParams, `{"client":1}`)
		rec, h := serve(t, inj, r)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("%s: got status %d, want 204", target, rec.Code)
		}
		if got := h.Get(rivet.HeaderConnParams); got != `{"client":1}` {
			t.Errorf("%s: got %q, want the request untouched", target, got)
		}
	}
}

func TestNoRouteFailsClosed(t *testing.T) {
	inj := mustNew(t, staticConfig(map[string]any{"tenant": "acme"}), Options{})
	up := &upstream{}
	rec := httptest.NewRecorder()
	inj.Middleware(up).ServeHTTP(rec, newReq(t, http.MethodPost, actionPath, false))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("got status %d, want 500", rec.Code)
	}
	if _, hits := up.last(); hits != 0 {
		t.Errorf("upstream got %d requests, want 0", hits)
	}
}

// spoofs are the ways a client can try to set the server's "role" key.
var spoofs = []struct {
	name  string
	ws    bool
	setup func(r *http.Request)
}{
	{"header", false, func(r *http.Request) {
		r.Header.Set(rivet.HeaderConnParams, `{"role":"admin","theme":"dark","token":"t"}`)
	}},
	{"legacy header", false, func(r *http.Request) {
		r.Header.Set(rivet.HeaderLegacyConnParams, `{"role":"admin","theme":"dark","token":"t"}`)
	}},
	{"both headers", false, func(r *http.Request) {
		r.Header.Set(rivet.HeaderConnParams, `{"role":"admin","theme":"dark","token":"t"}`)
		r.Header.Add(rivet.HeaderConnParams, `{"role":"root"}`)
		r.Header.Set(rivet.HeaderLegacyConnParams, `{"role":"root"}`)
	}},
	{"escaped key", false, func(r *http.Request) {
		r.Header.Set(rivet.HeaderConnParams, `{"\u0072ole":"admin","theme":"dark","token":"t"}`)
	}},
	{"duplicate key", false, func(r *http.Request) {
		r.Header.Set(rivet.HeaderConnParams, `{"theme":"dark","token":"t","role":"user","role":"admin"}`)
	}},
	{"subprotocol", true, func(r *http.Request) {
		r.Header.Set("Sec-WebSocket-Protocol", "rivet, rivet_encoding.json, rivet_conn_params."+
			url.QueryEscape(`{"role":"admin","theme":"dark","token":"t"}`))
	}},
	{"two subprotocol entries and a header", true, func(r *http.Request) {
		r.Header.Set("Sec-WebSocket-Protocol", "rivet, rivet_encoding.json, rivet_conn_params."+
			url.QueryEscape(`{"role":"admin","theme":"dark","token":"t"}`)+", rivet_conn_params."+url.QueryEscape(`{"role":"root"}`))
		r.Header.Set(rivet.HeaderConnParams, `{"role":"root"}`)
		r.Header.Set(rivet.HeaderLegacyConnParams, `{"role":"root"}`)
	}},
}

func TestPolicy(t *testing.T) {
	server := map[string]any{"role": "viewer", "tenant": "acme"}
	tests := []struct {
		policy string
		want   map[string]any
	}{
		{PolicyReplace, map[string]any{"role": "viewer", "tenant": "acme"}},
		// token is a credential field authn consumed: never kept.
		{PolicyMerge, map[string]any{"role": "viewer", "tenant": "acme", "theme": "dark"}},
	}
	for _, tt := range tests {
		for _, sp := range spoofs {
			t.Run(tt.policy+"/"+sp.name, func(t *testing.T) {
				cfg := staticConfig(server)
				cfg.Policy = tt.policy
				inj := mustNew(t, cfg, Options{ConsumedFields: func(*http.Request) []string { return []string{"token"} }})
				target, method := actionPath, http.MethodPost
				if sp.ws {
					target, method = connectPath, http.MethodGet
				}
				r := newReq(t, method, target, sp.ws)
				sp.setup(r)
				orig := r.Header.Clone()
				rec, h := serve(t, inj, r)
				if rec.Code != http.StatusNoContent {
					t.Fatalf("got status %d, want 204 (%s)", rec.Code, rec.Body)
				}
				var got any
				if sp.ws {
					got = engineProtocolParams(t, h)
					if ps := rivet.Subprotocols(h); ps[0] != "rivet" || ps[1] != "rivet_encoding.json" || len(ps) != 3 {
						t.Errorf("got subprotocols %q, want rivet, rivet_encoding.json, then one params entry", ps)
					}
				} else {
					got = engineHeaderParams(t, h, rivet.HeaderConnParams)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("engine decodes %#v, want %#v", got, tt.want)
				}
				for _, name := range []string{rivet.HeaderLegacyConnParams} {
					if v := h.Values(name); len(v) != 0 {
						t.Errorf("got %s %q upstream, want it removed", name, v)
					}
				}
				if vs := h.Values(rivet.HeaderConnParams); sp.ws && len(vs) != 0 || !sp.ws && len(vs) != 1 {
					t.Errorf("got %s %q upstream, want exactly the injected one on HTTP and none on WebSocket", rivet.HeaderConnParams, vs)
				}
				if !reflect.DeepEqual(r.Header, orig) {
					t.Errorf("the incoming request's headers were changed: got %v, want %v", r.Header, orig)
				}
			})
		}
	}
}

func TestPolicyPassthroughAndNone(t *testing.T) {
	for name, cfg := range map[string]Config{
		"passthrough": {Policy: PolicyPassthrough},
		"none":        DefaultConfig(),
	} {
		t.Run(name, func(t *testing.T) {
			inj := mustNew(t, cfg, Options{})
			for _, sp := range spoofs {
				target, method := actionPath, http.MethodPost
				if sp.ws {
					target, method = connectPath, http.MethodGet
				}
				r := newReq(t, method, target, sp.ws)
				sp.setup(r)
				want := r.Header.Clone()
				rec, h := serve(t, inj, r)
				if rec.Code != http.StatusNoContent {
					t.Fatalf("%s: got status %d, want 204", sp.name, rec.Code)
				}
				if !reflect.DeepEqual(h, want) {
					t.Errorf("%s: got headers %v, want them untouched %v", sp.name, h, want)
				}
			}
		})
	}
}

func TestMergeRejectsNonObjectClientParams(t *testing.T) {
	cfg := staticConfig(map[string]any{"role": "viewer"})
	cfg.Policy = PolicyMerge
	inj := mustNew(t, cfg, Options{})
	for _, bad := range []string{`["role","admin"]`, `"admin"`, `{"role":`, `42`} {
		r := newReq(t, http.MethodPost, actionPath, false)
		r.Header.Set(rivet.HeaderConnParams, bad)
		rec, h := serve(t, inj, r)
		if rec.Code != http.StatusBadRequest || h != nil {
			t.Errorf("client params %s: got status %d (forwarded %v), want 400 and nothing forwarded", bad, rec.Code, h != nil)
		}
	}
	// null and absent are no params at all.
	for _, ok := range []string{"null", " null "} {
		r := newReq(t, http.MethodPost, actionPath, false)
		r.Header.Set(rivet.HeaderConnParams, ok)
		_, h := serve(t, inj, r)
		if got := engineHeaderParams(t, h, rivet.HeaderConnParams); !reflect.DeepEqual(got, map[string]any{"role": "viewer"}) {
			t.Errorf("client params %s: got %v, want the server's only", ok, got)
		}
	}
}

func TestSubprotocolListKeepsOrder(t *testing.T) {
	inj := mustNew(t, staticConfig(map[string]any{"token": "server tok+1"}), Options{})
	tests := []struct {
		offered []string
		want    []string
	}{
		{[]string{"rivet", "rivet_encoding.bare"}, []string{"rivet", "rivet_encoding.bare"}},
		{[]string{"rivet", "rivet_encoding.cbor", "rivet_skip_ready_wait", "rivet_conn_params.%7B%22token%22%3A%22client%22%7D"}, []string{"rivet", "rivet_encoding.cbor", "rivet_skip_ready_wait"}},
		{[]string{"rivet_conn_params.x", "rivet", "rivet_encoding.json", "rivet_token.abc"}, []string{"rivet", "rivet_encoding.json", "rivet_token.abc"}},
	}
	for _, tt := range tests {
		_, h := serve(t, inj, newReq(t, http.MethodGet, connectPath, true, tt.offered...))
		got := rivet.Subprotocols(h)
		want := append(tt.want, "rivet_conn_params."+url.QueryEscape(`{"token":"server tok+1"}`))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("offered %q: got %q, want %q", tt.offered, got, want)
		}
		if !strings.Contains(got[len(got)-1], "server+tok%2B1") {
			t.Errorf("got entry %q, want space as + and + as %%2B", got[len(got)-1])
		}
	}
}

func TestLegacyDialect(t *testing.T) {
	cfg := staticConfig(map[string]any{"tenant": "acmé"})
	cfg.Dialect = "legacy"
	inj := mustNew(t, cfg, Options{})
	want := map[string]any{"tenant": "acmé"}
	for _, ws := range []bool{false, true} {
		r := newReq(t, http.MethodGet, connectPath, ws, "rivet", "rivet_encoding.json", "rivet_conn_params.%7B%7D")
		if !ws {
			r = newReq(t, http.MethodPost, actionPath, false)
		}
		r.Header.Set(rivet.HeaderConnParams, `{"spoof":1}`)
		_, h := serve(t, inj, r)
		if got := engineHeaderParams(t, h, rivet.HeaderLegacyConnParams); !reflect.DeepEqual(got, want) {
			t.Errorf("ws=%v: got %v, want %v", ws, got, want)
		}
		if v := h.Get(rivet.HeaderConnParams); v != "" {
			t.Errorf("ws=%v: got current header %q, want none", ws, v)
		}
		for _, p := range rivet.Subprotocols(h) {
			if strings.HasPrefix(p, rivet.ProtocolConnParamsPrefix) {
				t.Errorf("ws=%v: got subprotocol %q, want none", ws, p)
			}
		}
	}
}

func TestOversizeParams(t *testing.T) {
	// 2000 quotes: 4002 bytes of JSON escaping to 6000+ bytes in the
	// subprotocol (over 4096), well within the 8192-byte header bound.
	big := strings.Repeat(`"`, 2000)
	obs := &observed{}
	inj := mustNew(t, staticConfig(map[string]any{"v": big}), Options{Observe: obs.add})

	rec, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("HTTP: got status %d, want 204", rec.Code)
	}
	if got := engineHeaderParams(t, h, rivet.HeaderConnParams); got.(map[string]any)["v"] != big {
		t.Errorf("HTTP: got a changed value, want it whole")
	}

	rec, h = serve(t, inj, newReq(t, http.MethodGet, connectPath, true, "rivet"))
	if h != nil {
		t.Fatalf("WebSocket: forwarded %q, want it refused", h.Values("Sec-WebSocket-Protocol"))
	}
	if f := obs.last(t); f.Cause != CauseTooLarge {
		t.Errorf("Observe: got cause %q, want too_large", f.Cause)
	}
	_ = rec // the WebSocket form is checked over a real socket in websocket_test.go

	cfg := staticConfig(map[string]any{"v": strings.Repeat("x", 200)})
	cfg.MaxHeaderBytes = 100
	inj = mustNew(t, cfg, Options{})
	rec, h = serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	if rec.Code != http.StatusInternalServerError || h != nil {
		t.Fatalf("header over max_header_bytes: got status %d (forwarded %v), want 500", rec.Code, h != nil)
	}
	e := decodeError(t, rec)
	if e.Group != "client" || e.Code != "get_params_failed" || e.Metadata["reason"] != CauseTooLarge {
		t.Errorf("got %+v, want client.get_params_failed reason too_large", e)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "" {
		t.Errorf("got Retry-After %q, want none: waiting does not help", ra)
	}
}

// TestParamsInCompatJSON: what the gateway builds is plain JSON, and the
// actor reads compat JSON, in which a two-element array starting with a
// "$" string is a tagged value: such arrays from claims, a params service
// or the static config are escaped ("$" + tag), while a client's own params,
// compat JSON already, pass as they are under policy merge.
func TestParamsInCompatJSON(t *testing.T) {
	svc := newService(t, answer(`{"tags":["$x",1],"plain":"$5"}`))
	caller := &Caller{Method: "jwt", Subject: "alice", Claims: map[string]any{"groups": []any{"$admin", "x"}}}
	merge := staticConfig(map[string]any{"t": []any{"$x", 1}})
	merge.Policy = PolicyMerge
	for _, tc := range []struct {
		name   string
		cfg    Config
		client string
		want   string
	}{
		{"claims", claimsConfig(map[string]any{"groups": "{{ .Claims.groups }}", "sub": "{{ .Subject }}"}), "", `{"groups":["$$admin","x"],"sub":"alice"}`},
		{"params service", httpConfig(svc.URL), "", `{"plain":"$5","tags":["$$x",1]}`},
		{"static", staticConfig(map[string]any{"t": []any{"$x", 1}}), "", `{"t":["$$x",1]}`},
		{"static, merged with the client's", merge, `{"c":["$$y",1]}`, `{"c":["$$y",1],"t":["$$x",1]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inj := mustNew(t, tc.cfg, Options{Caller: callerFn(caller)})
			r := newReq(t, http.MethodPost, actionPath, false)
			if tc.client != "" {
				r.Header.Set(rivet.HeaderConnParams, tc.client)
			}
			rec, h := serve(t, inj, r)
			if rec.Code != http.StatusNoContent {
				t.Fatalf("got status %d, want 204 (%s)", rec.Code, rec.Body)
			}
			if got := h.Get(rivet.HeaderConnParams); got != tc.want {
				t.Errorf("params sent: %s, want %s", got, tc.want)
			}
		})
	}
	// The static object is not changed by escaping it for a request.
	inj := mustNew(t, merge, Options{})
	for range 2 {
		_, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
		if got := h.Get(rivet.HeaderConnParams); got != `{"t":["$$x",1]}` {
			t.Errorf("params sent: %s, want {\"t\":[\"$$x\",1]} on every request", got)
		}
	}
}
