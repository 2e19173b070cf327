package rivetclient

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
)

// testdata/wire/vectors.json holds messages serialized by RivetKit 2.3.19's
// own serializers (gen.mjs) in the three encodings. What the server sends
// must decode to the expectation; what the client sends must carry the
// same message as RivetKit's bytes do.

type wireVector struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Encoding string `json:"encoding"`
	Text     string `json:"text"`
	Hex      string `json:"hex"`
}

func (v wireVector) bytes(t testing.TB) []byte {
	if v.Hex == "" {
		return []byte(v.Text)
	}
	b, err := hex.DecodeString(v.Hex)
	if err != nil {
		t.Fatalf("%s: %v", v.Name, err)
	}
	return b
}

func loadVectors(t testing.TB) map[string]map[string]wireVector {
	t.Helper()
	raw, err := os.ReadFile("testdata/wire/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		RivetKit string       `json:"rivetkit"`
		Vectors  []wireVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]wireVector{}
	for _, v := range file.Vectors {
		if out[v.Name] == nil {
			out[v.Name] = map[string]wireVector{}
		}
		out[v.Name][v.Encoding] = v
	}
	if len(out) < 14 {
		t.Fatalf("vectors: got %d cases, want 14", len(out))
	}
	return out
}

// sameJSONNumbers is sameJSON with numbers compared by their text, so that
// integers beyond 2^53 are compared exactly.
func sameJSONNumbers(t *testing.T, got, want []byte) bool {
	t.Helper()
	norm := func(b []byte) any {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("invalid JSON %s: %v", b, err)
		}
		return v
	}
	return reflect.DeepEqual(norm(got), norm(want))
}

// clientView is what the client makes of a server message, in the shape
// of the vectors' expectations.
func clientView(t *testing.T, cd codec, kind string, data []byte) []byte {
	t.Helper()
	orNil := func(raw json.RawMessage) json.RawMessage {
		if raw == nil {
			return json.RawMessage("null")
		}
		return raw
	}
	var v any
	switch kind {
	case "ToClient":
		m, err := cd.toClient(data)
		if err != nil {
			t.Fatalf("toClient: %v", err)
		}
		switch m.tag {
		case "Init":
			v = map[string]any{"tag": m.tag, "actorId": m.actorID, "connectionId": m.connectionID}
		case "ActionResponse":
			if m.outputErr != nil {
				t.Fatalf("output: %v", m.outputErr)
			}
			v = map[string]any{"tag": m.tag, "id": m.id, "output": m.output}
		case "Event":
			v = map[string]any{"tag": m.tag, "name": m.event, "args": m.args}
		case "Error":
			v = map[string]any{"tag": m.tag, "group": m.err.Group, "code": m.err.Code, "message": m.err.Message, "metadata": orNil(m.err.Metadata), "actionId": m.actionID}
		}
	case "HttpActionResponse":
		out, err := cd.httpActionResponse(data)
		if err != nil {
			t.Fatalf("httpActionResponse: %v", err)
		}
		v = map[string]any{"output": out}
	case "HttpQueueSendResponse":
		res, err := cd.queueSendResponse(data)
		if err != nil {
			t.Fatalf("queueSendResponse: %v", err)
		}
		v = map[string]any{"status": res.Status, "response": orNil(res.Response)}
	case "HttpResponseError":
		ae, ok := cd.httpError(data)
		if !ok {
			t.Fatalf("httpError: not an error body")
		}
		v = map[string]any{"group": ae.Group, "code": ae.Code, "message": ae.Message, "metadata": orNil(ae.Metadata)}
	default:
		t.Fatalf("unknown kind %s", kind)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// serverView is what a server makes of a client message, in the shape of
// the vectors' expectations (values revived).
func serverView(t *testing.T, enc Encoding, kind string, data []byte) []byte {
	t.Helper()
	j, err := serverDecode(enc, kind, data)
	if err != nil {
		t.Fatalf("serverDecode: %v", err)
	}
	revive := func(raw json.RawMessage) json.RawMessage {
		r, err := reviveJSON(raw)
		if err != nil {
			t.Fatalf("revive %s: %v", raw, err)
		}
		return r
	}
	var v any
	switch kind {
	case "ToServer":
		var m struct {
			Body struct {
				Tag string
				Val struct {
					ID        json.RawMessage
					Name      string
					Args      json.RawMessage
					EventName string
					Subscribe bool
				}
			}
		}
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		val := m.Body.Val
		if m.Body.Tag == "SubscriptionRequest" {
			v = map[string]any{"event": val.EventName, "subscribe": val.Subscribe}
			break
		}
		id, ok, err := parseID(val.ID)
		if err != nil || !ok {
			t.Fatalf("id %s: %v", val.ID, err)
		}
		v = map[string]any{"id": id, "name": val.Name, "args": revive(val.Args)}
	case "HttpActionRequest":
		var m struct{ Args json.RawMessage }
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		v = map[string]any{"args": revive(m.Args)}
	case "HttpQueueSendRequest":
		var m struct {
			Body    json.RawMessage
			Name    string
			Wait    bool
			Timeout json.Number
		}
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		v = map[string]any{"body": revive(m.Body), "name": m.Name, "wait": m.Wait, "timeout": m.Timeout}
	default:
		t.Fatalf("unknown kind %s", kind)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vectorValue is the vectors' value as a Go caller passes it.
var vectorValue = map[string]any{
	"n": 5, "f": 1.5, "s": "héllo", "big": BigInt("12345678901234567890"),
	"bytes": Uint8Array{1, 2, 255}, "list": []any{"$x", 1}, "nil": nil,
}

// clientMessage is what this client sends for a client-side vector.
func clientMessage(t *testing.T, cd codec, name string) []byte {
	t.Helper()
	compat := func(v any) json.RawMessage {
		raw, err := encodeCompat(v)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	var out []byte
	var err error
	switch name {
	case "action request":
		out, err = cd.actionRequest(3, "increment", compat([]any{vectorValue}))
	case "subscription request":
		out = cd.subscriptionRequest("newCount", true)
	case "unsubscription request":
		out = cd.subscriptionRequest("newCount", false)
	case "http action request":
		out, err = cd.httpActionRequest(compat([]any{vectorValue, 2}))
	case "queue send request":
		ms := int64(1500)
		out, err = cd.queueSendRequest(queueSend{body: compat(vectorValue), name: "jobs", wait: true, timeoutMs: &ms})
	default:
		t.Fatalf("no client message for %q", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWireVectors(t *testing.T) {
	for name, byEnc := range loadVectors(t) {
		want := []byte(byEnc["expect"].Text)
		for _, enc := range encodings {
			t.Run(fmt.Sprintf("%s/%s", name, enc), func(t *testing.T) {
				v, ok := byEnc[string(enc)]
				if !ok {
					t.Fatalf("no %s vector", enc)
				}
				cd := mustCodec(t, enc)
				if strings.HasPrefix(v.Kind, "ToServer") || strings.HasSuffix(v.Kind, "Request") {
					// RivetKit's bytes and ours carry the same message.
					if got := serverView(t, enc, v.Kind, v.bytes(t)); !sameJSONNumbers(t, got, want) {
						t.Fatalf("RivetKit's message reads %s, want %s", got, want)
					}
					ours := clientMessage(t, cd, name)
					if got := serverView(t, enc, v.Kind, ours); !sameJSONNumbers(t, got, want) {
						t.Errorf("our message %x reads %s, want %s", ours, got, want)
					}
					if enc == EncodingBARE && v.Kind == "ToServer" && name != "action request" && !bytes.Equal(ours, v.bytes(t)) {
						t.Errorf("our message %x, RivetKit's %x", ours, v.bytes(t))
					}
					return
				}
				if got := clientView(t, cd, v.Kind, v.bytes(t)); !sameJSONNumbers(t, got, want) {
					t.Errorf("got %s, want %s", got, want)
				}
			})
		}
	}
}

// FuzzDecodeMessages feeds arbitrary bytes to every decoder of every codec:
// they come from the network, so none may panic, and what they accept must
// be JSON the rest of the client can read.
func FuzzDecodeMessages(f *testing.F) {
	for _, byEncoding := range loadVectors(f) {
		for enc, v := range byEncoding {
			if enc != "expect" {
				f.Add(v.bytes(f))
			}
		}
	}
	f.Add([]byte{4, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Add([]byte{0x9f, 0x9f, 0x9f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, enc := range encodings {
			cd := mustCodec(t, enc)
			if m, err := cd.toClient(data); err == nil {
				for _, v := range append([]json.RawMessage{m.output}, m.args...) {
					if len(v) > 0 && !json.Valid(v) {
						t.Fatalf("%s toClient: invalid JSON value %q", enc, v)
					}
				}
				if m.err != nil && len(m.err.Metadata) > 0 && !json.Valid(m.err.Metadata) {
					t.Fatalf("%s toClient: invalid metadata %q", enc, m.err.Metadata)
				}
			}
			if out, err := cd.httpActionResponse(data); err == nil && len(out) > 0 && !json.Valid(out) {
				t.Fatalf("%s httpActionResponse: invalid JSON %q", enc, out)
			}
			if res, err := cd.queueSendResponse(data); err == nil && len(res.Response) > 0 && !json.Valid(res.Response) {
				t.Fatalf("%s queueSendResponse: invalid JSON %q", enc, res.Response)
			}
			if ae, ok := cd.httpError(data); ok && len(ae.Metadata) > 0 && !json.Valid(ae.Metadata) {
				t.Fatalf("%s httpError: invalid metadata %q", enc, ae.Metadata)
			}
		}
		if j, err := cborToJSON(data); err == nil && !json.Valid(j) {
			t.Fatalf("cborToJSON(%x) = %q, not JSON", data, j)
		}
	})
}
