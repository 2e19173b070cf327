package rivetclient

import (
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

func TestEncodeCompat(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"plain", map[string]any{"a": 1, "b": "x"}, `{"a":1,"b":"x"}`},
		{"bigint", BigInt("12345678901234567890"), `["$BigInt","12345678901234567890"]`},
		{"negative bigint", BigInt("-5"), `["$BigInt","-5"]`},
		{"uint8array", Uint8Array{1, 2, 255}, `["$Uint8Array","AQL/"]`},
		{"arraybuffer", ArrayBuffer("hi"), `["$ArrayBuffer","aGk="]`},
		{"undefined", Undefined, `["$Undefined",0]`},
		{"set", Set{1, "a"}, `["$Set",[1,"a"]]`},
		{"empty set", Set(nil), `["$Set",[]]`},
		{"escape", []any{"$foo", 1}, `["$$foo",1]`},
		{"escape already escaped", []any{"$$foo", 1}, `["$$$foo",1]`},
		{"no escape for 3 elements", []any{"$foo", 1, 2}, `["$foo",1,2]`},
		{"no escape without dollar", []any{"foo", 1}, `["foo",1]`},
		{"dollar string alone", "$BigInt", `"$BigInt"`},
		{"nested", map[string]any{"n": []any{BigInt("1"), Undefined}, "s": Set{[]any{"$x", 2}}},
			`{"n":[["$BigInt","1"],["$Undefined",0]],"s":["$Set",[["$$x",2]]]}`},
		{"set list itself not escaped", Set{"$x", 2}, `["$Set",["$x",2]]`},
		{"struct field", struct {
			ID  BigInt     `json:"id"`
			Raw Uint8Array `json:"raw"`
		}{"7", Uint8Array("a")}, `{"id":["$BigInt","7"],"raw":["$Uint8Array","YQ=="]}`},
		{"args list", []any{"$foo", 1}, `["$$foo",1]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeCompat(tt.in)
			if err != nil {
				t.Fatalf("encodeCompat: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := encodeCompat(BigInt("12a")); err == nil {
		t.Errorf("encodeCompat(BigInt(12a)): got nil error, want one")
	}
}

func TestReviveJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", `{"a":1}`, `{"a":1}`},
		{"bigint", `["$BigInt","12345678901234567890"]`, `12345678901234567890`},
		{"uint8array", `["$Uint8Array","AQL/"]`, `"AQL/"`},
		{"arraybuffer", `["$ArrayBuffer","aGk="]`, `"aGk="`},
		{"undefined top", `["$Undefined",0]`, `null`},
		{"undefined field dropped", `{"a":["$Undefined",0],"b":1}`, `{"b":1}`},
		{"undefined in array", `[1,["$Undefined",0]]`, `[1,null]`},
		{"set", `["$Set",[1,["$BigInt","2"]]]`, `[1,2]`},
		{"escape", `["$$foo",1]`, `["$foo",1]`},
		{"escape revives payload", `["$$foo",["$BigInt","3"]]`, `["$foo",3]`},
		{"integral float", `{"at":1795321053708.0}`, `{"at":1795321053708}`},
		{"real float kept", `1.5`, `1.5`},
		{"float exponent kept", `1.0e3`, `1.0e3`},
		{"nested", `{"x":[["$BigInt","1"],{"y":["$Set",[]]}]}`, `{"x":[1,{"y":[]}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := reviveJSON([]byte(tt.in))
			if err != nil {
				t.Fatalf("reviveJSON: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	for _, bad := range []string{`["$Nope",1]`, `["$BigInt","1x"]`, `["$BigInt",1]`, `["$Uint8Array","***"]`, `["$Set",1]`, `{`} {
		if _, err := reviveJSON([]byte(bad)); err == nil {
			t.Errorf("reviveJSON(%s): got nil error, want one", bad)
		}
	}
}

func TestDecodeValuePrecision(t *testing.T) {
	raw, err := reviveJSON([]byte(`{"big":["$BigInt","12345678901234567890"],"n":9007199254740993,"f":10.0,"bytes":["$Uint8Array","AQL/"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var typed struct {
		Big   *big.Int `json:"big"`
		N     int64    `json:"n"`
		F     int      `json:"f"`
		Bytes []byte   `json:"bytes"`
	}
	if err := decodeValue(raw, &typed); err != nil {
		t.Fatalf("decodeValue: %v", err)
	}
	if typed.Big.String() != "12345678901234567890" || typed.N != 9007199254740993 || typed.F != 10 || !reflect.DeepEqual(typed.Bytes, []byte{1, 2, 255}) {
		t.Errorf("got %+v", typed)
	}
	var loose map[string]any
	if err := decodeValue(raw, &loose); err != nil {
		t.Fatal(err)
	}
	if got, want := loose["n"], json.Number("9007199254740993"); got != want {
		t.Errorf("n: got %#v, want %#v", got, want)
	}
	var b BigInt
	if err := decodeValue(json.RawMessage(`"42"`), &b); err != nil || b != "42" {
		t.Errorf("BigInt from string: got %q, %v", b, err)
	}
	var s Set
	if err := decodeValue(json.RawMessage(`[1,"a"]`), &s); err != nil || !reflect.DeepEqual(s, Set{json.Number("1"), "a"}) {
		t.Errorf("Set: got %#v, %v", s, err)
	}
	var u Uint8Array
	if err := decodeValue(json.RawMessage(`"AQL/"`), &u); err != nil || !reflect.DeepEqual(u, Uint8Array{1, 2, 255}) {
		t.Errorf("Uint8Array: got %v, %v", u, err)
	}
	if err := decodeValue(nil, nil); err != nil {
		t.Errorf("nil dst: %v", err)
	}
}

func TestCompatRoundTrip(t *testing.T) {
	in := map[string]any{
		"big":   BigInt("-98765432109876543210"),
		"bytes": Uint8Array{0, 1},
		"tags":  []any{"$BigInt", "not a bigint"},
		"deep":  []any{[]any{"$$x", Set{"$y", 1}}},
	}
	enc, err := encodeCompat(in)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := reviveJSON(enc)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"big":-98765432109876543210,"bytes":"AAE=","deep":[["$$x",["$y",1]]],"tags":["$BigInt","not a bigint"]}`
	if string(dec) != want {
		t.Errorf("round trip: got %s, want %s", dec, want)
	}
}

func TestAsciiJSON(t *testing.T) {
	raw, err := json.Marshal(map[string]string{"name": "héllo 😀 <ok>"})
	if err != nil {
		t.Fatal(err)
	}
	got := asciiJSON(raw)
	want := `{"name":"h\u00e9llo \ud83d\ude00 \u003cok\u003e"}`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil || back["name"] != "héllo 😀 <ok>" {
		t.Errorf("round trip: got %q, %v", back["name"], err)
	}
	for _, c := range got {
		if c >= 0x80 {
			t.Fatalf("non-ASCII byte %#x in %s", c, got)
		}
	}
}

func TestWireMessages(t *testing.T) {
	args, _ := encodeArgs([]any{3, "$x"})
	msg, err := jsonCodec{}.actionRequest(7, "incr\"ement", args)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"body":{"tag":"ActionRequest","val":{"id":["$BigInt","7"],"name":"incr\"ement","args":[3,"$x"]}}}`
	if string(msg) != want {
		t.Errorf("ActionRequest: got %s, want %s", msg, want)
	}
	if !json.Valid(msg) {
		t.Errorf("ActionRequest is not valid JSON")
	}
	noArgs, _ := encodeArgs(nil)
	if string(noArgs) != "[]" {
		t.Errorf("no args: got %s, want []", noArgs)
	}
	sub := jsonCodec{}.subscriptionRequest("newCount", false)
	if want := `{"body":{"tag":"SubscriptionRequest","val":{"eventName":"newCount","subscribe":false}}}`; string(sub) != want {
		t.Errorf("SubscriptionRequest: got %s, want %s", sub, want)
	}
	for _, tt := range []struct {
		raw  string
		id   uint64
		ok   bool
		fail bool
	}{
		{`["$BigInt","0"]`, 0, true, false},
		{`["$BigInt","18446744073709551615"]`, 1<<64 - 1, true, false},
		{`12`, 12, true, false},
		{`null`, 0, false, false},
		{``, 0, false, false},
		{`"x"`, 0, false, true},
		{`["$BigInt","-1"]`, 0, false, true},
	} {
		id, ok, err := parseID(json.RawMessage(tt.raw))
		if id != tt.id || ok != tt.ok || (err != nil) != tt.fail {
			t.Errorf("parseID(%s): got %d, %t, %v; want %d, %t, error %t", tt.raw, id, ok, err, tt.id, tt.ok, tt.fail)
		}
	}
}

func TestEventArgs(t *testing.T) {
	args, err := eventArgs(json.RawMessage(`[10,["$BigInt","5"],{"a":["$Undefined",0]}]`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range args {
		got = append(got, string(a))
	}
	if want := []string{"10", "5", "{}"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
	ev := Event{Name: "e", Args: args}
	var n, m int
	var missing string
	if err := ev.Decode(&n, &m, nil, &missing); err != nil || n != 10 || m != 5 || missing != "" {
		t.Errorf("Decode: got %d %d %q %v", n, m, missing, err)
	}
	single, _ := eventArgs(json.RawMessage(`7`))
	if len(single) != 1 || string(single[0]) != "7" {
		t.Errorf("non-list args: got %q", single)
	}
}

func TestCBOR(t *testing.T) {
	tests := []struct {
		in   any
		want []byte
	}{
		{nil, []byte{0xf6}},
		{true, []byte{0xf5}},
		{0, []byte{0x00}},
		{23, []byte{0x17}},
		{24, []byte{0x18, 24}},
		{-1, []byte{0x20}},
		{1000, []byte{0x19, 0x03, 0xe8}},
		{uint64(1) << 63, []byte{0x1b, 0x80, 0, 0, 0, 0, 0, 0, 0}},
		{1.5, []byte{0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}},
		{"a", []byte{0x61, 'a'}},
		{map[string]any{"x": 1}, []byte{0xa1, 0x61, 'x', 0x01}},
		{[]any{1, "b"}, []byte{0x82, 0x01, 0x61, 'b'}},
		{BigInt("5"), []byte{0x82, 0x67, '$', 'B', 'i', 'g', 'I', 'n', 't', 0x61, '5'}},
	}
	for _, tt := range tests {
		got, err := encodeInputCBOR(tt.in)
		if err != nil {
			t.Errorf("encodeInputCBOR(%v): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("encodeInputCBOR(%v): got % x, want % x", tt.in, got, tt.want)
		}
	}
}

// TestEncodeParamsCompat: params are encoded like arguments (compat JSON,
// ASCII only), so values JSON alone would misread reach the actor as given.
func TestEncodeParamsCompat(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, ""},
		{map[string]any{"tags": []any{"$x", 1}}, `{"tags":["$$x",1]}`},
		{map[string]any{"n": BigInt("7")}, `{"n":["$BigInt","7"]}`},
		{map[string]string{"name": "é"}, `{"name":"\u00e9"}`},
	} {
		got, err := encodeParams(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("encodeParams(%v) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
