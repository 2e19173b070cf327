package params

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// FuzzCarrierRoundTrip: for any params object, what the engine decodes from
// each carrier (JSON from the header; form-decoded JSON from the
// subprotocol entry) equals the object, or the injector refuses it as too
// large: never a truncated or altered value.
func FuzzCarrierRoundTrip(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":1}`, "plain"},
		{`{"token":"a b+c%20d&e=f"}`, "café 😀"},
		{`{"nested":{"x":[1,"é",null,true,{"y":"\u2028\u0000"}]}}`, `"}, "admin": true, "x": {"`},
		{`{}`, "\x7f\x01<>&+ %"},
		{`{"big":1e300,"neg":-0.5,"s":"\ud83d\ude00"}`, ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, doc, extra string) {
		if !utf8.ValidString(doc) || !utf8.ValidString(extra) {
			t.Skip() // encoding/json itself rewrites invalid UTF-8
		}
		var obj map[string]any
		if json.Unmarshal([]byte(doc), &obj) != nil || obj == nil {
			obj = map[string]any{}
		}
		obj["extra"] = extra
		want := jsonValue(t, mustMarshal(t, obj)) // numbers as the engine's JSON sees them

		inj, err := New(staticConfig(obj), Options{})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer inj.Close()
		for _, ws := range []bool{false, true} {
			r := newReq(t, http.MethodGet, connectPath, ws, "rivet", "rivet_encoding.json")
			if !ws {
				r = newReq(t, http.MethodPost, actionPath, false)
			}
			rec, h := serve(t, inj, r)
			if rec.Code != http.StatusNoContent {
				if h != nil || rec.Code != http.StatusInternalServerError && !ws {
					t.Fatalf("ws=%v: got status %d, forwarded %v; want 204, or a refusal", ws, rec.Code, h != nil)
				}
				continue // too large for this carrier
			}
			var got any
			if ws {
				got = engineProtocolParams(t, h)
			} else {
				got = engineHeaderParams(t, h, rivet.HeaderConnParams)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("ws=%v: engine decodes %#v, want %#v", ws, got, want)
			}
		}
	})
}

func mustMarshal(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzClaimsNoInjection: a claim value, whatever it holds, comes out as
// exactly one string value, alone or with text around it.
func FuzzClaimsNoInjection(f *testing.F) {
	for _, s := range []string{"editor", `"}, "admin": true, "x": {"`, `{{ .Subject }}`, `\u0022`, "a\nb\x00c", "😀é"} {
		f.Add(s)
	}
	src, err := newClaimsSource(map[string]any{
		"role":  "{{ .Claims.role }}",
		"label": "x-{{ .Claims.role }}-y",
		"admin": false,
	}, MissingDeny, "params.claims")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, role string) {
		if !utf8.ValidString(role) || strings.Contains(role, "<no value>") {
			t.Skip() // invalid UTF-8 becomes U+FFFD; "<no value>" text is read as missing
		}
		q := &query{caller: &Caller{Subject: "u", Claims: map[string]any{"role": role}}}
		obj, _, err := src.resolve(t.Context(), q)
		if err != nil {
			t.Fatalf("resolve: %v", err)
		}
		body, err := rivet.MarshalASCII(obj)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("params %s are not JSON: %v", body, err)
		}
		want := map[string]any{"role": role, "label": "x-" + role + "-y", "admin": false}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v, want %#v", got, want)
		}
	})
}

// FuzzMergeNeverKeepsServerKeys: whatever the client sends, in either
// carrier, the engine sees the server's value for every server key, never
// a consumed credential field, and the client's other keys unchanged.
func FuzzMergeNeverKeepsServerKeys(f *testing.F) {
	for _, s := range []string{
		`{"role":"admin","theme":"dark","token":"t"}`,
		`{"\u0072ole":"admin"}`,
		`{"role":"user","role":"admin"}`,
		`{"a":{"role":"nested is the client's own"}}`,
		`[1]`, `null`, `"x"`, `{"tenant":`, ``,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	cfg := staticConfig(map[string]any{"role": "viewer", "tenant": "acme"})
	cfg.Policy = PolicyMerge
	inj, err := New(cfg, Options{ConsumedFields: func(*http.Request) []string { return []string{"token"} }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, client string, ws bool) {
		var r *http.Request
		if ws {
			r = newReq(t, http.MethodGet, connectPath, true, "rivet", "rivet_conn_params."+url.QueryEscape(client))
		} else {
			r = newReq(t, http.MethodPost, actionPath, false)
			if !validHeaderValue(client) || strings.TrimSpace(client) != client {
				t.Skip() // not a header value a client can send
			}
			r.Header.Set(rivet.HeaderConnParams, client)
		}
		rec, h := serve(t, inj, r)
		var clientObj map[string]any
		clientErr := json.Unmarshal([]byte(client), &clientObj)
		if rec.Code != http.StatusNoContent {
			if rec.Code != http.StatusBadRequest && rec.Code != http.StatusInternalServerError || h != nil {
				t.Fatalf("got status %d (forwarded %v), want 204, 400 or 500", rec.Code, h != nil)
			}
			return
		}
		var got any
		if ws {
			got = engineProtocolParams(t, h)
		} else {
			got = engineHeaderParams(t, h, rivet.HeaderConnParams)
		}
		m, ok := got.(map[string]any)
		if !ok || m["role"] != "viewer" || m["tenant"] != "acme" {
			t.Fatalf("got %#v, want the server's role and tenant", got)
		}
		if _, ok := m["token"]; ok {
			t.Fatalf("got token %#v, want the consumed field removed", m["token"])
		}
		if clientErr == nil {
			for k, v := range clientObj {
				if k == "role" || k == "tenant" || k == "token" {
					continue
				}
				if !reflect.DeepEqual(m[k], v) {
					t.Fatalf("client key %q: got %#v, want %#v", k, m[k], v)
				}
			}
		}
	})
}

// FuzzParseObject: the params service's answer is accepted exactly when it
// is a JSON object, and kept value for value.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{}`, `null`, `[]`, `"s"`, `{"a":`, ` {"a" : [1, {"b": null}] } `, `{"a":1}{"b":2}`, "\ufeff{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := parseObject(data)
		var want map[string]any
		wantErr := json.Unmarshal(data, &want)
		if wantErr != nil || want == nil {
			if err == nil {
				t.Fatalf("parseObject(%q) accepted %v, want an error", data, obj)
			}
			var fl *failure
			if !errorsAs(err, &fl) || !fl.retry || (fl.cause != CauseInvalidJSON && fl.cause != CauseNotObject) {
				t.Fatalf("got %v, want a retryable invalid_json or not_object failure", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("parseObject(%q): %v, want it accepted", data, err)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %s, want %v", b, want)
		}
	})
}

func errorsAs(err error, target **failure) bool {
	f, ok := err.(*failure)
	*target = f
	return ok
}
