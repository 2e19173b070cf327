package rivet

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func FuzzParseRoute(f *testing.F) {
	seeds := [][2]string{
		{"/health", ""},
		{"/metadata", "namespace=default"},
		{"/actors/abc", "namespace=default"},
		{"/gateway/18u0pfwqixkattvm3ohf6f511mcl00@secret-tok/action/increment", ""},
		{"/gateway/counter/action/getCount", "rvt-namespace=default&rvt-method=get&rvt-key=a%2Cb&rvt-token=secret-tok"},
		{"/gateway/counter/request/hello/world", "x=1&rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k&rvt-crash-policy=sleep"},
		{"/gateway/my%40actor/queue/q%2F1", "rvt-namespace=n&rvt-method=get"},
		{"/gateway/a@b@c/connect", "rvt-token&&rvt-token=x&y"},
		{"/gateway//x", "rvt-method=get&rvt-method=get"},
		{"/gateway/a%zz/websocket/", "%zz=rvt-token"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		rt, err := ParseRoute(path, query)
		if err != nil {
			if !errors.Is(err, ErrInvalidRoute) {
				t.Fatalf("ParseRoute(%q, %q): error %v does not wrap ErrInvalidRoute", path, query, err)
			}
		} else if strings.HasPrefix(path, "/gateway/") {
			if got, want := rt.Path(""), stripPathToken(path); got != want {
				t.Fatalf("ParseRoute(%q, %q).Path(\"\"): got %q, want %q", path, query, got, want)
			}
			if (rt.ActorID == "") == (rt.Method == "") {
				t.Fatalf("ParseRoute(%q, %q): got ActorID %q and Method %q, want exactly one", path, query, rt.ActorID, rt.Method)
			}
		}

		out := RemoveQueryParam(query, "rvt-token")
		var want []string
		for _, part := range strings.Split(query, "&") {
			if k, _, _ := strings.Cut(part, "="); k != "rvt-token" && part != "" {
				want = append(want, part)
			}
		}
		var got []string // empty pairs are not pairs: ignore them
		for _, part := range strings.Split(out, "&") {
			if part != "" {
				got = append(got, part)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("RemoveQueryParam(%q): got pairs %q, want %q", query, got, want)
		}
		for _, part := range got {
			if k, _, _ := strings.Cut(part, "="); k == "rvt-token" {
				t.Fatalf("RemoveQueryParam(%q) = %q keeps an rvt-token pair", query, out)
			}
		}
	})
}

func FuzzASCIIJSON(f *testing.F) {
	for _, s := range []string{"", "plain", "été", "😀", "\xff\xfe", "\xed\xa0\x80", "a\u2028b", "\U0010FFFF", `"\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// A Go value: MarshalASCII must decode to what json.Marshal does.
		v := map[string]any{"s": s, "list": []string{s, s + "x"}, s: 1}
		ascii, err := MarshalASCII(v)
		if err != nil {
			t.Fatalf("MarshalASCII: %v", err)
		}
		plain, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		checkSameJSON(t, plain, ascii)

		// A document with raw (possibly invalid) UTF-8 inside a string.
		doc := []byte(`{"k":"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(stripControls(s)) + `"}`)
		if json.Valid(doc) {
			checkSameJSON(t, doc, ASCIIJSON(doc))
		}
	})
}

func stripControls(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 {
			return -1
		}
		return r
	}, s)
}

// FuzzConnParams checks that what SetConnParams writes is what ConnParams
// (and the engine's form decoding) reads back, for both carriers.
func FuzzConnParams(f *testing.F) {
	for _, p := range hardParams {
		f.Add(p, "rivet, rivet_encoding.json, rivet_conn_params.old")
	}
	f.Fuzz(func(t *testing.T, params, protocols string) {
		for _, ws := range []bool{false, true} {
			h := http.Header{}
			h.Set(HeaderWebSocketProtocol, protocols)
			before := Subprotocols(h)
			err := SetConnParams(h, ws, []byte(params), DialectCurrent, 0)
			if err != nil {
				if !ws || !errors.Is(err, ErrParamsTooLarge) {
					t.Fatalf("SetConnParams(websocket=%v): got error %v", ws, err)
				}
				if got := Subprotocols(h); !slices.Equal(got, before) {
					t.Fatalf("subprotocols changed on error: got %q, want %q", got, before)
				}
				continue
			}
			if !ws {
				// Header values are sent as they are (callers pass ASCII
				// JSON); only check the value is the one written.
				if got := h.Values(HeaderConnParams); len(got) != 1 || got[0] != params {
					t.Fatalf("header: got %q, want [%q]", got, params)
				}
				continue
			}
			raw, found, err := ConnParams(&http.Request{Header: h}, ws)
			if err != nil || !found || string(raw) != params {
				t.Fatalf("ConnParams: got %q, %v, %v; want %q, true, nil", raw, found, err, params)
			}
			list := Subprotocols(h)
			var kept []string
			for _, p := range before {
				if !strings.HasPrefix(p, ProtocolConnParamsPrefix) {
					kept = append(kept, p)
				}
			}
			if !slices.Equal(list[:len(list)-1], kept) {
				t.Fatalf("other subprotocols: got %q, want %q", list[:len(list)-1], kept)
			}
			enc := strings.TrimPrefix(list[len(list)-1], ProtocolConnParamsPrefix)
			if dec, err := url.QueryUnescape(enc); err != nil || dec != params {
				t.Fatalf("engine decoding of %q: got %q, %v; want %q", enc, dec, err, params)
			}
		}
	})
}
