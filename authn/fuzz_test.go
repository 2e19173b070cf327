package authn

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// fuzzRequest builds a request by hand: httptest.NewRequest panics on
// what a fuzzer writes, a server does not.
func fuzzRequest(path, rawQuery string, ws bool) *http.Request {
	r := &http.Request{
		Method:     "GET",
		URL:        &url.URL{Path: path, RawQuery: rawQuery},
		Header:     http.Header{},
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Host:       "gateway.test",
	}
	r.RequestURI = r.URL.RequestURI()
	if ws {
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
	}
	rt, err := parseResolved(r)
	if err != nil {
		rt = rivet.Route{Resolved: true}
	}
	return r.WithContext(rivet.WithRoute(context.Background(), &rt))
}

func FuzzCredentials(f *testing.F) {
	cfg := hsConfig()
	cfg.Credentials = []string{SourceBearer, SourceAPIKeyHeader, SourceConnParams, SourceCookie, SourceQuery}
	cfg.APIKeys.Keys = []APIKey{{ID: "full", SHA256: hashHex(fullKey)}}
	strict := newAuth(f, cfg)
	cfg.Rules = []Rule{{Allow: AllowAnonymous}} // every request passes: stripping always runs
	open := newAuth(f, cfg)

	tok := hsToken(f, "alice")
	f.Add("Bearer "+tok, "", "", "", "rivet, rivet_encoding.json", "", true)
	f.Add("", fullKey, "a=1; rivet_auth="+tok, "access_token="+tok, "", `{"authToken":"x","a":"é"}`, false)
	f.Add("bearer  ", "", "rivet_auth=", "access_token=%zz", "rivet,rivet_conn_params."+url.QueryEscape(`{"authToken":"`+tok+`"}`), "", true)
	f.Add("Basic x", " ", "rivet_auth=a; rivet_auth=b", "access_token=a&access_token=b", "rivet_conn_params.%ZZ, rivet_conn_params.%7B%7D", `{"authToken":null}`, true)
	f.Add("Bearer a.b.c", "", "", "", "", `[1,2]`, false)

	f.Fuzz(func(t *testing.T, authz, apiKey, cookie, query, protocols, params string, ws bool) {
		build := func() *http.Request {
			r := fuzzRequest("/gateway/counter/connect", query+"&rvt-namespace=default&rvt-method=get&rvt-key=alice", ws)
			set := func(k, v string) {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			set("Authorization", authz)
			set("X-API-Key", apiKey)
			set("Cookie", cookie)
			set(rivet.HeaderWebSocketProtocol, protocols)
			set(rivet.HeaderConnParams, params)
			return r
		}
		for _, a := range []*Authenticator{strict, open} {
			var fwd *http.Request
			rec := httptest.NewRecorder()
			a.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { fwd = r })).ServeHTTP(rec, build())
			if fwd == nil {
				if rec.Code != 401 && rec.Code != 403 && rec.Code != 400 {
					t.Fatalf("rejection status %d", rec.Code)
				}
				continue
			}
			if IdentityFrom(fwd.Context()) == nil {
				t.Fatal("passed without an identity")
			}
			checkStripped(t, fwd, ws)
		}
	})
}

// checkStripped asserts no configured carrier holds a credential.
func checkStripped(t *testing.T, r *http.Request, ws bool) {
	t.Helper()
	if v := r.Header.Values("Authorization"); len(v) > 0 {
		t.Fatalf("Authorization forwarded: %q", v)
	}
	if len(r.Header.Values("X-API-Key")) > 0 {
		t.Fatal("X-API-Key forwarded")
	}
	if hasCookie(r.Header.Values("Cookie"), DefaultCookieName) {
		t.Fatalf("auth cookie forwarded: %q", r.Header.Values("Cookie"))
	}
	if _, ok, err := queryCredential(r.URL.RawQuery, DefaultQueryParam); ok || err != nil {
		t.Fatalf("query credential forwarded: %q", r.URL.RawQuery)
	}
	c := carriers{cfg: &sourceConfig{field: DefaultConnParamsField}, r: r, ws: ws}
	if _, ok := c.connParams()[DefaultConnParamsField]; ok {
		raw, _, _ := rivet.ConnParams(r, ws)
		t.Fatalf("conn-params field forwarded: %s", raw)
	}
}

func FuzzConnParams(f *testing.F) {
	f.Add(`{"authToken":"t","room":"lobby"}`, true)
	f.Add(`{"authToken":"t"}`, false)
	f.Add(`{"authToken":"t","authToken":"u","x":"\u00e9\ud83d\ude00"}`, true)
	f.Add(`{"authToken":{"nested":1}}`, false)
	f.Add(`{"a":1e400,"authToken":"x"}`, true)
	f.Add(`"just a string"`, false)
	f.Add(`{"authToken":"x"} trailing`, true)
	f.Add("{\"authToken\":\"x\",\"k\":\"\xff\"}", false)
	cfg := &sourceConfig{order: []source{srcConnParams}, field: DefaultConnParamsField}

	f.Fuzz(func(t *testing.T, params string, ws bool) {
		r := fuzzRequest("/gateway/counter/connect", "rvt-namespace=default&rvt-method=get&rvt-key=a", ws)
		if ws {
			r.Header.Set(rivet.HeaderWebSocketProtocol, "rivet, rivet_encoding.json, "+rivet.ProtocolConnParamsPrefix+url.QueryEscape(params))
		} else {
			r.Header.Set(rivet.HeaderConnParams, params)
		}
		c := carriers{cfg: cfg, r: r, ws: ws}
		cred, found, err := c.find()
		var before map[string]json.RawMessage
		if json.Unmarshal([]byte(params), &before) != nil {
			before = nil
		}
		_, had := before[cfg.field]
		if found && err == nil && !had {
			t.Fatalf("credential %q found in params without the field", cred.value)
		}
		out := r.WithContext(r.Context())
		if err := c.strip(out); err != nil {
			return // too large for the carrier: the middleware rejects
		}
		after := carriers{cfg: cfg, r: out, ws: ws}
		got := after.connParams()
		if _, ok := got[cfg.field]; ok {
			t.Fatalf("field survived stripping: %v", got)
		}
		if had {
			raw, _, _ := rivet.ConnParams(out, ws)
			for _, b := range raw {
				if b >= 0x80 {
					t.Fatalf("re-encoded params are not ASCII: %q", raw)
				}
			}
			if len(got) != len(before)-1 {
				t.Fatalf("keys: got %d, want %d (%s)", len(got), len(before)-1, raw)
			}
			if ws && !strings.HasPrefix(out.Header.Get(rivet.HeaderWebSocketProtocol), "rivet, rivet_encoding.json") {
				t.Fatalf("other subprotocols lost: %q", out.Header.Get(rivet.HeaderWebSocketProtocol))
			}
		}
	})
}

func FuzzVerifyJWT(f *testing.F) {
	k := fixtures()
	a := newAuth(f, jwtConfig(f))
	f.Add(hsToken(f, "alice"))
	f.Add(sign(f, jwt.SigningMethodRS256, k.rsa, claimsFor(rsaIssuer, "alice"), "kid"))
	f.Add(unsigned(map[string]any{"alg": "none"}, claimsFor(localIssuer, "x"), ""))
	f.Add(unsigned(map[string]any{"alg": "HS256", "kid": []int{1}}, map[string]any{"iss": localIssuer, "exp": "x", "aud": 3}, "AAAA"))
	f.Add("..")
	f.Add("a.b.c.d")
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := a.verifyJWT(context.Background(), tok)
		if err == nil {
			// A fuzzer cannot forge a signature; only seeds may pass.
			if id == nil || id.Method != MethodJWT {
				t.Fatalf("nil error without a JWT identity: %+v", id)
			}
			alg, iss, perr := peekToken(tok)
			if perr != nil || a.byIss[iss] == nil || !a.byIss[iss].algs[alg] {
				t.Fatalf("accepted a token with alg %q iss %q", alg, iss)
			}
			return
		}
		if Reason(err) == "" || !strings.Contains(rejection(err).Reason(), "auth.unauthorized") {
			t.Fatalf("error %v maps to %q", err, rejection(err).Reason())
		}
	})
}

func FuzzKeysFile(f *testing.F) {
	f.Add([]byte("- id: a\n  sha256: " + hashHex("k") + "\n  scopes: [\"action:counter\"]\n"))
	f.Add([]byte("[]"))
	f.Add([]byte("- id: a\n  expires: 2027-01-01T00:00:00Z\n"))
	f.Add([]byte("{a: 1}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := parseKeysFile(b)
		if err != nil {
			return
		}
		var p problems
		validateKeys(&p, "keys", keys)
		if len(p) == 0 {
			for _, k := range compileKeys(keys) {
				if k.id == "" {
					t.Fatal("valid key without id")
				}
			}
		}
	})
}
