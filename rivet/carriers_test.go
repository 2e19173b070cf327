package rivet

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestSubprotocols(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []string
	}{
		{"absent", nil, nil},
		{"one header", []string{"rivet,rivet_encoding.bare"}, []string{"rivet", "rivet_encoding.bare"}},
		{"spaces", []string{"  rivet ,\trivet_encoding.json , rivet_conn_params.%7B%7D  "},
			[]string{"rivet", "rivet_encoding.json", "rivet_conn_params.%7B%7D"}},
		{"repeated headers", []string{"rivet", "rivet_encoding.cbor, rivet_skip_ready_wait", "rivet_conn_params.x"},
			[]string{"rivet", "rivet_encoding.cbor", "rivet_skip_ready_wait", "rivet_conn_params.x"}},
		{"empty entries", []string{",rivet,,", " , ", ""}, []string{"rivet"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add("sec-websocket-protocol", v)
			}
			if got := Subprotocols(h); !slices.Equal(got, tt.want) {
				t.Errorf("Subprotocols(%q): got %q, want %q", tt.values, got, tt.want)
			}
		})
	}
}

func TestSetSubprotocols(t *testing.T) {
	h := http.Header{}
	SetSubprotocols(h, []string{"rivet", "rivet_encoding.json"})
	if got, want := h.Get(HeaderWebSocketProtocol), "rivet, rivet_encoding.json"; got != want {
		t.Errorf("header: got %q, want %q", got, want)
	}
	SetSubprotocols(h, nil)
	if _, ok := h[http.CanonicalHeaderKey(HeaderWebSocketProtocol)]; ok {
		t.Errorf("SetSubprotocols(nil): header still present: %q", h.Values(HeaderWebSocketProtocol))
	}
}

func TestStripConnParams(t *testing.T) {
	h := http.Header{}
	h.Add(HeaderWebSocketProtocol, "rivet, rivet_conn_params.a, rivet_encoding.bare")
	h.Add(HeaderWebSocketProtocol, "rivet_conn_params.b, rivet_skip_ready_wait")
	h.Set(HeaderConnParams, `{"a":1}`)
	h.Set(HeaderLegacyConnParams, `{"b":1}`)
	StripConnParams(h)
	if got, want := Subprotocols(h), []string{"rivet", "rivet_encoding.bare", "rivet_skip_ready_wait"}; !slices.Equal(got, want) {
		t.Errorf("subprotocols: got %q, want %q", got, want)
	}
	for _, name := range []string{HeaderConnParams, HeaderLegacyConnParams} {
		if v := h.Values(name); len(v) != 0 {
			t.Errorf("%s: got %q, want absent", name, v)
		}
	}

	only := http.Header{}
	only.Set(HeaderWebSocketProtocol, "rivet_conn_params.a")
	StripConnParams(only)
	if v := only.Values(HeaderWebSocketProtocol); len(v) != 0 {
		t.Errorf("only conn params: got %q, want header removed", v)
	}

	untouched := http.Header{HeaderWebSocketProtocol: {"rivet,rivet_encoding.json"}}
	StripSubprotocols(untouched, ProtocolConnParamsPrefix)
	if got := untouched[HeaderWebSocketProtocol]; !slices.Equal(got, []string{"rivet,rivet_encoding.json"}) {
		t.Errorf("nothing to strip: header rewritten to %q", got)
	}
}

// hardParams are JSON documents whose form encoding must round-trip through
// the engine's decoder (url.QueryUnescape: '+' is a space).
var hardParams = []string{
	`{}`,
	`null`,
	`{"token":"static-tok"}`,
	`{"token":"a b  c"}`,
	`{"token":"a+b++c"}`,
	`{"token":"100%","pct":"%41%zz%"}`,
	`{"q":"a=1&b=2;c,d"}`,
	`{"u":"\u00e9t\u00e9","raw":"été – ünïcödé"}`,
	`{"emoji":"😀🚀","esc":"\ud83d\ude00"}`,
	`{"slash":"a/b\\c","quote":"\"x\"","nl":"a\nb"}`,
	`{"ctl":"` + "\t" + `","tilde":"~*'()!"}`,
}

func TestSetConnParamsWebSocket(t *testing.T) {
	for _, params := range hardParams {
		t.Run(params, func(t *testing.T) {
			h := http.Header{}
			h.Add(HeaderWebSocketProtocol, "rivet, rivet_encoding.json")
			h.Add(HeaderWebSocketProtocol, "rivet_conn_params.%7B%22old%22%3Atrue%7D, rivet_skip_ready_wait")
			h.Set(HeaderConnParams, `{"spoofed":true}`)
			h.Set(HeaderLegacyConnParams, `{"spoofed":true}`)

			if err := SetConnParams(h, true, []byte(params), DialectCurrent, 16); err != nil {
				t.Fatalf("SetConnParams: got error %v, want none", err)
			}
			list := Subprotocols(h)
			if len(list) != 4 || list[0] != "rivet" || list[1] != "rivet_encoding.json" || list[2] != "rivet_skip_ready_wait" {
				t.Fatalf("subprotocols: got %q, want rivet, rivet_encoding.json, rivet_skip_ready_wait, rivet_conn_params.…", list)
			}
			enc, ok := strings.CutPrefix(list[3], ProtocolConnParamsPrefix)
			if !ok {
				t.Fatalf("last entry: got %q, want the rivet_conn_params. entry", list[3])
			}
			// A subprotocol is an RFC 7230 token: no spaces, commas, quotes...
			for _, c := range []byte(enc) {
				if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
					t.Fatalf("encoded entry %q: byte %q is not a token character", enc, c)
				}
			}
			// What the engine does: form decoding.
			dec, err := url.QueryUnescape(enc)
			if err != nil || dec != params {
				t.Errorf("QueryUnescape(%q): got %q, %v; want %q", enc, dec, err, params)
			}
			for _, name := range []string{HeaderConnParams, HeaderLegacyConnParams} {
				if v := h.Values(name); len(v) != 0 {
					t.Errorf("%s: got %q, want removed", name, v)
				}
			}
			r := &http.Request{Header: h}
			raw, found, err := ConnParams(r, true)
			if err != nil || !found || string(raw) != params {
				t.Errorf("ConnParams: got %q, %v, %v; want %q, true, nil", raw, found, err, params)
			}
		})
	}
}

func TestSetConnParamsHTTP(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderConnParams, `{"old":1}`)
	h.Set(HeaderLegacyConnParams, `{"old":2}`)
	params := `{"token":"a b+c%"}`
	if err := SetConnParams(h, false, []byte(params), DialectCurrent, 0); err != nil {
		t.Fatalf("SetConnParams: got error %v, want none", err)
	}
	if got := h.Values(HeaderConnParams); !slices.Equal(got, []string{params}) {
		t.Errorf("%s: got %q, want [%q] (raw JSON, not encoded)", HeaderConnParams, got, params)
	}
	if got := h.Values(HeaderLegacyConnParams); len(got) != 0 {
		t.Errorf("%s: got %q, want removed", HeaderLegacyConnParams, got)
	}
}

func TestSetConnParamsLegacy(t *testing.T) {
	for _, ws := range []bool{false, true} {
		h := http.Header{}
		h.Set(HeaderWebSocketProtocol, "rivet, rivet_conn_params.x, rivet_encoding.json")
		h.Set(HeaderConnParams, `{"old":1}`)
		params := `{"token":"t"}`
		if err := SetConnParams(h, ws, []byte(params), DialectLegacy, 0); err != nil {
			t.Fatalf("websocket=%v: SetConnParams: got error %v, want none", ws, err)
		}
		if got := h.Get(HeaderLegacyConnParams); got != params {
			t.Errorf("websocket=%v: %s: got %q, want %q", ws, HeaderLegacyConnParams, got, params)
		}
		if got := h.Values(HeaderConnParams); len(got) != 0 {
			t.Errorf("websocket=%v: %s: got %q, want removed", ws, HeaderConnParams, got)
		}
		if got, want := Subprotocols(h), []string{"rivet", "rivet_encoding.json"}; !slices.Equal(got, want) {
			t.Errorf("websocket=%v: subprotocols: got %q, want %q", ws, got, want)
		}
	}
}

func TestSetConnParamsTooLarge(t *testing.T) {
	// Every '"' encodes to 3 bytes: just over the limit once encoded.
	big := []byte(`{"a":"` + strings.Repeat(`\"`, MaxProtocolParams/4) + `"}`)
	if n := len(url.QueryEscape(string(big))); n <= MaxProtocolParams {
		t.Fatalf("test params encode to %d bytes, want > %d", n, MaxProtocolParams)
	}
	// {"a":" encodes to 16 bytes and "} to 6: exactly at the limit.
	fits := []byte(`{"a":"` + strings.Repeat("x", MaxProtocolParams-22) + `"}`)
	if n := len(url.QueryEscape(string(fits))); n != MaxProtocolParams {
		t.Fatalf("test params encode to %d bytes, want %d", n, MaxProtocolParams)
	}

	t.Run("websocket", func(t *testing.T) {
		h := http.Header{HeaderWebSocketProtocol: {"rivet, rivet_conn_params.%7B%7D"}}
		before := h.Clone()
		err := SetConnParams(h, true, big, DialectCurrent, 0)
		if !errors.Is(err, ErrParamsTooLarge) {
			t.Errorf("got error %v, want ErrParamsTooLarge", err)
		}
		if !reflect.DeepEqual(h, before) {
			t.Errorf("header changed on error: got %q, want %q", h, before)
		}
		if err := SetConnParams(h, true, fits, DialectCurrent, 0); err != nil {
			t.Errorf("params of %d bytes encoded: got error %v, want none", len(url.QueryEscape(string(fits))), err)
		}
	})
	t.Run("header", func(t *testing.T) {
		h := http.Header{HeaderConnParams: {`{"old":1}`}}
		before := h.Clone()
		err := SetConnParams(h, false, []byte(`{"a":"12345"}`), DialectCurrent, 12)
		if !errors.Is(err, ErrParamsTooLarge) {
			t.Errorf("got error %v, want ErrParamsTooLarge", err)
		}
		if !reflect.DeepEqual(h, before) {
			t.Errorf("header changed on error: got %q, want %q", h, before)
		}
		if err := SetConnParams(h, false, []byte(`{"a":"1234"}`), DialectCurrent, 12); err != nil {
			t.Errorf("params at the limit: got error %v, want none", err)
		}
	})
	t.Run("legacy websocket uses the header bound", func(t *testing.T) {
		h := http.Header{}
		if err := SetConnParams(h, true, big, DialectLegacy, 0); err != nil {
			t.Errorf("unbounded legacy header: got error %v, want none", err)
		}
		if err := SetConnParams(h, true, big, DialectLegacy, 100); !errors.Is(err, ErrParamsTooLarge) {
			t.Errorf("bounded legacy header: got error %v, want ErrParamsTooLarge", err)
		}
	})
}

func TestConnParams(t *testing.T) {
	tests := []struct {
		name      string
		header    http.Header
		websocket bool
		want      string
		found     bool
		err       bool
	}{
		{name: "http header", header: http.Header{"X-Rivet-Conn-Params": {`{"token":"a b+c"}`}},
			want: `{"token":"a b+c"}`, found: true},
		{name: "http legacy header", header: http.Header{"X-Rivetkit-Conn-Params": {`{"l":1}`}},
			want: `{"l":1}`, found: true},
		{name: "http current wins over legacy", header: http.Header{"X-Rivet-Conn-Params": {`{"c":1}`}, "X-Rivetkit-Conn-Params": {`{"l":1}`}},
			want: `{"c":1}`, found: true},
		{name: "http ignores subprotocol", header: http.Header{"Sec-Websocket-Protocol": {"rivet_conn_params.%7B%7D"}}},
		{name: "http none", header: http.Header{}},
		{name: "ws subprotocol", websocket: true,
			header: http.Header{"Sec-Websocket-Protocol": {"rivet, rivet_encoding.bare, rivet_conn_params.%7B%22token%22%3A%22dyn-tok-1%22%7D"}},
			want:   `{"token":"dyn-tok-1"}`, found: true},
		{name: "ws form decoding", websocket: true,
			header: http.Header{"Sec-Websocket-Protocol": {"rivet", "rivet_conn_params.%7b%22t%22%3a%22a+b%2B%22%7d"}},
			want:   `{"t":"a b+"}`, found: true},
		{name: "ws first entry wins", websocket: true,
			header: http.Header{"Sec-Websocket-Protocol": {"rivet_conn_params.1, rivet_conn_params.2"}},
			want:   `1`, found: true},
		{name: "ws bad escape", websocket: true,
			header: http.Header{"Sec-Websocket-Protocol": {"rivet_conn_params.%zz"}}, found: true, err: true},
		{name: "ws ignores current header", websocket: true,
			header: http.Header{"X-Rivet-Conn-Params": {`{"h":1}`}}},
		{name: "ws legacy header", websocket: true,
			header: http.Header{"X-Rivetkit-Conn-Params": {`{"l":1}`}}, want: `{"l":1}`, found: true},
		{name: "ws none", websocket: true, header: http.Header{"Sec-Websocket-Protocol": {"rivet"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, found, err := ConnParams(&http.Request{Header: tt.header}, tt.websocket)
			if (err != nil) != tt.err {
				t.Fatalf("got error %v, want error: %v", err, tt.err)
			}
			if string(raw) != tt.want || found != tt.found {
				t.Errorf("got %q, found %v; want %q, found %v", raw, found, tt.want, tt.found)
			}
		})
	}
}

func TestParseDialect(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Dialect
		err  bool
	}{{"", DialectCurrent, false}, {"current", DialectCurrent, false}, {"legacy", DialectLegacy, false}, {"Legacy", DialectCurrent, true}} {
		got, err := ParseDialect(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseDialect(%q): got %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err == nil {
			if back, _ := ParseDialect(got.String()); back != got {
				t.Errorf("ParseDialect(%v.String()): got %v", got, back)
			}
		}
	}
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func TestASCIIJSON(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ascii unchanged", `{"a":"b\u00e9"}`, `{"a":"b\u00e9"}`},
		{"latin", `{"a":"é"}`, `{"a":"\u00e9"}`},
		{"bmp", `["€ 中"]`, `["\u20ac \u4e2d"]`},
		{"emoji surrogate pair", `"😀"`, `"\ud83d\ude00"`},
		{"max rune", "\"\U0010FFFF\"", `"\udbff\udfff"`},
		{"key", `{"ключ":1}`, `{"\u043a\u043b\u044e\u0447":1}`},
		{"invalid utf-8", "\"a\xffb\"", `"a\ufffdb"`},
		{"truncated rune", "\"\xe2\x82\"", `"\ufffd\ufffd"`},
		{"encoded surrogate", "\"\xed\xa0\x80\"", `"\ufffd\ufffd\ufffd"`},
		{"line separator", "\"\u2028\"", `"\u2028"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ASCIIJSON([]byte(tt.in))
			if string(got) != tt.want {
				t.Errorf("ASCIIJSON(%q): got %q, want %q", tt.in, got, tt.want)
			}
			checkSameJSON(t, []byte(tt.in), got)
		})
	}
}

// checkSameJSON fails unless out is pure ASCII and decodes to what in does.
func checkSameJSON(t *testing.T, in, out []byte) {
	t.Helper()
	if !isASCII(out) {
		t.Fatalf("output %q is not ASCII", out)
	}
	var a, b any
	errA := json.Unmarshal(in, &a)
	errB := json.Unmarshal(out, &b)
	if (errA == nil) != (errB == nil) {
		t.Fatalf("decoding: input error %v, output error %v", errA, errB)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("decoded values differ: input %#v, output %#v", a, b)
	}
}

func TestMarshalASCII(t *testing.T) {
	v := map[string]any{"token": "été 😀 <&>", "n": 1.5, "bad": "\xff", "list": []any{"中", nil, true}}
	got, err := MarshalASCII(v)
	if err != nil {
		t.Fatalf("MarshalASCII: got error %v", err)
	}
	if !isASCII(got) {
		t.Fatalf("MarshalASCII: got non-ASCII %q", got)
	}
	if strings.Contains(string(got), `\u003c`) || strings.HasSuffix(string(got), "\n") {
		t.Errorf("MarshalASCII: got %q, want no HTML escaping and no trailing newline", got)
	}
	var back map[string]any
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatalf("decoding %q: %v", got, err)
	}
	want := map[string]any{"token": "été 😀 <&>", "n": 1.5, "bad": "\ufffd", "list": []any{"中", nil, true}}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("round trip: got %#v, want %#v", back, want)
	}
	if _, err := MarshalASCII(make(chan int)); err == nil {
		t.Errorf("MarshalASCII(chan): got nil error, want one")
	}
}

func TestCheckConnParams(t *testing.T) {
	p := func(s string) string { return ProtocolConnParamsPrefix + url.QueryEscape(s) }
	for _, tc := range []struct {
		name    string
		ws      bool
		header  []string // values of x-rivet-conn-params (HTTP) or subprotocol entries (WebSocket)
		wantErr bool
	}{
		{"http none", false, nil, false},
		{"http empty header", false, []string{""}, false},
		{"http object", false, []string{`{"token":"t"}`}, false},
		{"http raw invalid UTF-8 in a string", false, []string{"{\"token\":\"\xff\"}"}, false},
		{"http not JSON", false, []string{"notjson"}, true},
		{"http URL-encoded", false, []string{url.QueryEscape(`{"a":1}`)}, true},
		{"http two headers", false, []string{`{"token":"a"}`, `{"token":"b"}`}, true},
		{"ws none", true, []string{"rivet", "rivet_encoding.json"}, false},
		{"ws object", true, []string{"rivet", p(`{"token":"a b+c"}`)}, false},
		{"ws bad escape", true, []string{"rivet", ProtocolConnParamsPrefix + "%zz"}, true},
		{"ws not JSON", true, []string{"rivet", p("notjson")}, true},
		{"ws two entries", true, []string{"rivet", p(`{"token":"a"}`), p(`{"token":"b"}`)}, true},
		{"ws legacy header is not read", true, []string{"rivet"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{Header: http.Header{}}
			if tc.ws {
				SetSubprotocols(r.Header, tc.header)
				r.Header.Set(HeaderLegacyConnParams, "not json: ignored by the engine")
			} else {
				for _, v := range tc.header {
					r.Header.Add(HeaderConnParams, v)
				}
			}
			err := CheckConnParams(r, tc.ws)
			if (err != nil) != tc.wantErr || err != nil && !errors.Is(err, ErrInvalidConnParams) {
				t.Errorf("got %v, want error: %v (wrapping ErrInvalidConnParams)", err, tc.wantErr)
			}
		})
	}
}
