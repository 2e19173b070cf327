package rivet

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
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

// FuzzSubprotocols: any Sec-WebSocket-Protocol header list reads back as
// trimmed, non-empty entries without commas; writing them back reads back the
// same list; stripping a prefix removes exactly the entries that have it.
func FuzzSubprotocols(f *testing.F) {
	for _, s := range []string{
		"rivet, rivet_encoding.json, rivet_conn_params.%7B%7D",
		"rivet_encoding.bare",
		" , ,rivet,,",
		"rivet_conn_params.a,rivet_conn_params.b",
		"rivet\t,\x00, rivet_token.x",
		"rivet_conn_params.%7B%22a%22%3A%22%2C%22%7D",
	} {
		f.Add(s, "rivet_", "rivet_conn_params.")
	}
	f.Fuzz(func(t *testing.T, first, second, prefix string) {
		h := http.Header{}
		h.Add(HeaderWebSocketProtocol, first)
		h.Add(HeaderWebSocketProtocol, second)
		list := Subprotocols(h)
		for _, p := range list {
			if p == "" || strings.Contains(p, ",") || strings.TrimSpace(p) != p {
				t.Fatalf("Subprotocols(%q, %q): bad entry %q in %q", first, second, p, list)
			}
		}
		again := http.Header{}
		SetSubprotocols(again, list)
		if got := Subprotocols(again); !slices.Equal(got, list) {
			t.Fatalf("SetSubprotocols(%q) reads back %q", list, got)
		}
		if prefix == "" {
			return
		}
		var want []string
		for _, p := range list {
			if !strings.HasPrefix(p, prefix) {
				want = append(want, p)
			}
		}
		StripSubprotocols(h, prefix)
		if got := Subprotocols(h); !slices.Equal(got, want) {
			t.Fatalf("StripSubprotocols(%q, %q): got %q, want %q", list, prefix, got, want)
		}
	})
}

// FuzzCheckConnParams: what CheckConnParams accepts, ConnParams reads
// unambiguously as JSON; what it rejects is a second carrier, a bad escape
// or not JSON.
func FuzzCheckConnParams(f *testing.F) {
	f.Add(`{"token":"t"}`, "", true)
	f.Add("rivet, rivet_conn_params.%7B%7D", "", true)
	f.Add("rivet_conn_params.%zz", "", true)
	f.Add("rivet_conn_params.1, rivet_conn_params.2", "", true)
	f.Add(`{"a":1}`, `{"a":2}`, false)
	f.Add("notjson", "", false)
	f.Add("{\"a\":\"\xff\"}", "", false)
	f.Fuzz(func(t *testing.T, first, second string, ws bool) {
		r := &http.Request{Header: http.Header{}}
		name := HeaderConnParams
		if ws {
			name = HeaderWebSocketProtocol
		}
		for _, v := range []string{first, second} {
			if v != "" {
				r.Header.Add(name, v)
			}
		}
		err := CheckConnParams(r, ws)
		if err != nil {
			if !errors.Is(err, ErrInvalidConnParams) {
				t.Fatalf("CheckConnParams: error %v does not wrap ErrInvalidConnParams", err)
			}
			return
		}
		raw, found, err := ConnParams(r, ws)
		if err != nil {
			t.Fatalf("accepted, but ConnParams fails: %v", err)
		}
		if found && !json.Valid(raw) {
			t.Fatalf("accepted, but ConnParams reads %q, which is not JSON", raw)
		}
		if ws {
			n := 0
			for _, p := range Subprotocols(r.Header) {
				if strings.HasPrefix(p, ProtocolConnParamsPrefix) {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("accepted %d rivet_conn_params entries", n)
			}
		} else if vals := r.Header.Values(HeaderConnParams); len(vals) > 1 {
			t.Fatalf("accepted %d x-rivet-conn-params headers", len(vals))
		}
	})
}

// FuzzErrorShape: whatever group, code, message and metadata an error
// carries, the HTTP answer is one JSON object RivetKit parses back to the
// same group and code, and the WebSocket close reason fits a close frame.
func FuzzErrorShape(f *testing.F) {
	f.Add("guard", "no_route", "No route.", "reason", "x", false)
	f.Add("client", "get_params_failed", "", "attempts", "\xff", true)
	f.Add(strings.Repeat("g", 100), strings.Repeat("c", 100), "m", "", "", true)
	f.Add("ws", "going_away#ray", "é", "k\x00", "\u2028", false)
	f.Fuzz(func(t *testing.T, group, code, message, key, value string, retryable bool) {
		e := &Error{Status: 400, Group: group, Code: code, Message: message, Retryable: retryable}
		if key != "" {
			e = e.With(key, value)
		}
		if r := e.Reason(); len(r) > maxCloseReason {
			t.Fatalf("Reason() is %d bytes, more than a close frame allows", len(r))
		} else if retryable && !RetryableReason(r) {
			t.Fatalf("retryable error closes with %q, which RivetKit does not retry", r)
		}
		rec := httptest.NewRecorder()
		WriteHTTPError(rec, e)
		var body map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("body %q is not one JSON object: %v", rec.Body.Bytes(), err)
		}
		var g, c string
		_ = json.Unmarshal(body["group"], &g)
		_ = json.Unmarshal(body["code"], &c)
		if g != asJSONString(group) || c != asJSONString(code) {
			t.Fatalf("body %s: group %q code %q, want %q %q", rec.Body.Bytes(), g, c, group, code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" || rec.Code != 400 {
			t.Fatalf("answer %d %q, want 400 application/json", rec.Code, ct)
		}
	})
}

// asJSONString is s as it reads back from encoding/json (invalid UTF-8
// replaced byte by byte).
func asJSONString(s string) string {
	b, _ := json.Marshal(s)
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}
