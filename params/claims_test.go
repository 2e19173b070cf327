package params

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// testCaller has claims of every JSON type, decoded as authn would.
func testCaller(t testing.TB) *Caller {
	var claims map[string]any
	if err := json.Unmarshal([]byte(`{
		"sub": "user-123", "role": "editor", "level": 7, "ratio": 0.5, "admin": false,
		"groups": ["a", "b"], "org": {"id": 42, "name": "Acme", "gone": null},
		"nothing": null, "https://example.com/tier": "gold",
		"evil": "\"}, \"admin\": true, \"x\": {\"",
		"unicode": "caf\u00e9 \ud83d\ude00"
	}`), &claims); err != nil {
		t.Fatal(err)
	}
	return &Caller{Method: "jwt", Subject: "user-123", Issuer: "https://issuer.example", Scopes: []string{"read", "write"}, Claims: claims}
}

func TestClaimsMapping(t *testing.T) {
	tests := []struct {
		name    string
		mapping map[string]any
		mode    string
		caller  *Caller
		want    string // the params object, as JSON
		wantErr error
	}{
		{"subject", map[string]any{"userId": "{{ .Subject }}"}, "", nil, `{"userId":"user-123"}`, nil},
		{"string claim", map[string]any{"role": "{{ .Claims.role }}"}, "", nil, `{"role":"editor"}`, nil},
		{"number keeps its type", map[string]any{"level": "{{ .Claims.level }}", "ratio": "{{.Claims.ratio}}"}, "", nil, `{"level":7,"ratio":0.5}`, nil},
		{"bool keeps its type", map[string]any{"admin": "{{ .Claims.admin }}"}, "", nil, `{"admin":false}`, nil},
		{"array keeps its type", map[string]any{"groups": "{{ .Claims.groups }}"}, "", nil, `{"groups":["a","b"]}`, nil},
		{"object keeps its type, nulls dropped", map[string]any{"org": "{{ .Claims.org }}"}, "", nil, `{"org":{"id":42,"name":"Acme"}}`, nil},
		{"nested claim", map[string]any{"orgId": "{{ .Claims.org.id }}"}, "", nil, `{"orgId":42}`, nil},
		{"trim markers still one action", map[string]any{"level": "{{- .Claims.level -}}"}, "", nil, `{"level":7}`, nil},
		{"mixed text is a string", map[string]any{"label": "L{{ .Claims.level }}", "who": "{{ .Subject }}@{{ .Issuer }}"}, "", nil, `{"label":"L7","who":"user-123@https://issuer.example"}`, nil},
		{"text around a single action is a string", map[string]any{"level": " {{ .Claims.level }}"}, "", nil, `{"level":" 7"}`, nil},
		{"json func in text", map[string]any{"g": "groups={{ json .Claims.groups }}"}, "", nil, `{"g":"groups=[\"a\",\"b\"]"}`, nil},
		{"printf is a string", map[string]any{"level": `{{ printf "%s:%v" .Subject .Claims.level }}`}, "", nil, `{"level":"user-123:7"}`, nil},
		{"strict index", map[string]any{"tier": `{{ index .Claims "https://example.com/tier" }}`, "g0": `{{ index .Claims.groups 1 }}`}, "", nil, `{"g0":"b","tier":"gold"}`, nil},
		{"nested objects and arrays", map[string]any{"a": map[string]any{"b": []any{"{{ .Subject }}", 1, true, nil, "lit"}}}, "", nil, `{"a":{"b":["user-123",1,true,null,"lit"]}}`, nil},
		{"yaml map[any]any", map[string]any{"a": map[any]any{"b": "{{ .Claims.role }}"}}, "", nil, `{"a":{"b":"editor"}}`, nil},
		{"literal without actions", map[string]any{"plain": "no {templates} here", "n": 3.5}, "", nil, `{"n":3.5,"plain":"no {templates} here"}`, nil},
		{"scopes", map[string]any{"scopes": "{{ .Scopes }}"}, "", nil, `{"scopes":["read","write"]}`, nil},
		{"route", map[string]any{"actor": "{{ .Route.ActorName }}", "key": "{{ .Route.Key }}", "intent": "{{ .Route.Intent }}"}, "", nil, `{"actor":"counter","intent":"action","key":["room-1"]}`, nil},
		{"range over groups", map[string]any{"csv": "{{ range $i, $g := .Claims.groups }}{{ if $i }},{{ end }}{{ $g }}{{ end }}"}, "", nil, `{"csv":"a,b"}`, nil},
		{"unicode stays a value", map[string]any{"u": "{{ .Claims.unicode }}"}, "", nil, `{"u":"café 😀"}`, nil},
		{"injection stays a string", map[string]any{"role": "{{ .Claims.evil }}", "label": "x{{ .Claims.evil }}"}, "", nil,
			`{"label":"x\"}, \"admin\": true, \"x\": {\"","role":"\"}, \"admin\": true, \"x\": {\""}`, nil},

		{"missing deny", map[string]any{"t": "{{ .Claims.tenant }}"}, MissingDeny, nil, ``, errMissing},
		{"null claim is missing", map[string]any{"t": "{{ .Claims.nothing }}"}, MissingDeny, nil, ``, errMissing},
		{"nested null is missing", map[string]any{"t": "{{ .Claims.org.gone }}"}, MissingDeny, nil, ``, errMissing},
		{"missing in text deny", map[string]any{"t": "t-{{ .Claims.tenant }}"}, MissingDeny, nil, ``, errMissing},
		{"missing index deny", map[string]any{"t": `{{ index .Claims "nope" }}`}, MissingDeny, nil, ``, errMissing},
		{"missing index in text deny", map[string]any{"t": `x{{ index .Claims "nope" }}`}, MissingDeny, nil, ``, errMissing},
		{"index out of range", map[string]any{"t": `{{ index .Claims.groups 5 }}`}, MissingDeny, nil, ``, errMissing},
		{"missing omit", map[string]any{"t": "{{ .Claims.tenant }}", "r": "{{ .Claims.role }}", "a": []any{"{{ .Claims.tenant }}", "x"}}, MissingOmit, nil, `{"a":["x"],"r":"editor"}`, nil},
		{"missing null", map[string]any{"t": "{{ .Claims.tenant }}", "a": []any{"{{ .Claims.tenant }}"}}, MissingNull, nil, `{"a":[null],"t":null}`, nil},
		{"missing actor name on an id route", map[string]any{"actor": "{{ .Route.ActorID }}"}, MissingOmit, nil, `{}`, nil},
		{"anonymous caller denied", map[string]any{"userId": "{{ .Subject }}"}, MissingDeny, &Caller{}, ``, errMissing},
		{"anonymous caller omitted", map[string]any{"userId": "{{ .Subject }}", "kind": "anon"}, MissingOmit, &Caller{}, `{"kind":"anon"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mode := tt.mode
			if mode == "" {
				mode = MissingDeny
			}
			src, err := newClaimsSource(tt.mapping, mode, "params.claims")
			if err != nil {
				t.Fatalf("compile: %v", err)
			}
			caller := tt.caller
			if caller == nil {
				caller = testCaller(t)
			}
			rt, perr := rivet.ParseTarget("POST", "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get&rvt-key=room-1", false)
			if perr != nil {
				t.Fatalf("ParseTarget: %v", perr)
			}
			q := &query{route: &rt, caller: caller, requestID: "rid-1"}
			obj, _, err := src.resolve(t.Context(), q)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			got, _ := json.Marshal(obj)
			if !reflect.DeepEqual(jsonValue(t, string(got)), jsonValue(t, tt.want)) {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// TestClaimsInjectionEndToEnd sends a claim crafted to break out of a JSON
// string through the middleware and decodes it as the engine does.
func TestClaimsInjectionEndToEnd(t *testing.T) {
	evil := `"}, "admin": true, "x": {"`
	caller := &Caller{Subject: "u1", Claims: map[string]any{"role": evil}}
	cfg := claimsConfig(map[string]any{"userId": "{{ .Subject }}", "role": "{{ .Claims.role }}", "admin": false})
	inj := mustNew(t, cfg, Options{Caller: callerFn(caller)})

	for _, ws := range []bool{false, true} {
		r := newReq(t, http.MethodGet, connectPath, ws, "rivet", "rivet_encoding.json")
		if !ws {
			r = newReq(t, http.MethodPost, actionPath, false)
		}
		rec, h := serve(t, inj, r)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("ws=%v: got status %d, want 204 (body %s)", ws, rec.Code, rec.Body)
		}
		var got any
		if ws {
			got = engineProtocolParams(t, h)
		} else {
			got = engineHeaderParams(t, h, rivet.HeaderConnParams)
		}
		want := map[string]any{"userId": "u1", "role": evil, "admin": false}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ws=%v: engine decodes %#v, want %#v", ws, got, want)
		}
	}
}

func TestClaimsMissingDeniesRequest(t *testing.T) {
	inj := mustNew(t, claimsConfig(map[string]any{"role": "{{ .Claims.role }}"}), Options{})
	rec, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("got status %d, want 403", rec.Code)
	}
	if h != nil {
		t.Errorf("the request reached upstream, want it refused")
	}
	e := decodeError(t, rec)
	if e.Group != "auth" || e.Code != "forbidden" || e.Metadata["reason"] != CauseMissingClaim {
		t.Errorf("got %+v, want auth.forbidden reason missing_claim", e)
	}
}
