package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// TestClientEncodings runs the Go client in each of its encodings against
// the real engine, straight and through the gateway: stateless actions,
// errors with metadata, queue sends, a connection's actions, events and
// errors, and raw fetch. Values that JSON cannot carry (BigInt, bytes, Set,
// undefined, a '$'-led pair) are checked as the actor sees them (the
// counter's echo action describes their JavaScript types) and as they come
// back.
func TestClientEncodings(t *testing.T) {
	up := harness.StartUpstream(t)
	open := harness.StartGateway(t, openConfig(up.URL))
	static := rivetclient.HandleOptions{Params: map[string]any{"token": "enc-tok", "pair": []any{"$p", 1}}}

	// The arguments, and how the actor must see them.
	args := []any{
		rivetclient.BigInt("12345678901234567890"),
		rivetclient.Uint8Array{0, 1, 255},
		rivetclient.Set{1, "a"},
		rivetclient.Undefined,
		[]any{"$x", 1},
		map[string]any{"s": "héllo 😀", "f": 1.5, "n": -7, "nil": nil},
	}
	wantTypes := []string{
		"bigint:12345678901234567890",
		"Uint8Array:0,1,255",
		"Set(number:1,string:a)",
		"undefined",
		"[string:$x,number:1]",
		"{f:number:1.5,n:number:-7,nil:null,s:string:héllo 😀}",
	}
	type echo struct {
		Args  []any    `json:"args"`
		Types []string `json:"types"`
	}
	checkEcho := func(t *testing.T, how string, got echo) {
		t.Helper()
		if !slices.Equal(got.Types, wantTypes) {
			t.Errorf("%s: the actor saw %q, want %q", how, got.Types, wantTypes)
		}
		// Back at the client: BigInt as a number with all its digits, bytes as
		// base64, the Set as a list, undefined as null, the pair unescaped.
		want := `[12345678901234567890 AAH/ [1 a] <nil> [$x 1] map[f:1.5 n:-7 nil:<nil> s:héllo 😀]]`
		if s := fmt.Sprint(got.Args); s != want {
			t.Errorf("%s: echo returned %s, want %s", how, s, want)
		}
	}

	for _, enc := range []rivetclient.Encoding{rivetclient.EncodingBARE, rivetclient.EncodingCBOR, rivetclient.EncodingJSON} {
		for _, ep := range []struct{ name, url string }{{"engine", up.URL}, {"gateway", open.URL}} {
			t.Run(fmt.Sprintf("%s/%s", enc, ep.name), func(t *testing.T) {
				clientLeakCheck(t)
				ctx := clientContext(t)
				c := startClient(t, ep.url, rivetclient.WithEncoding(enc))
				h := c.GetOrCreate("counter", clientKey(t), static)

				var got echo
				if err := h.Action(ctx, "echo", &got, args...); err != nil {
					t.Fatalf("echo: %v", err)
				}
				checkEcho(t, "stateless echo", got)
				var n int
				if err := h.Action(ctx, "increment", &n, 5); err != nil || n != 5 {
					t.Fatalf("increment(5): got %d, %v", n, err)
				}
				var who clientWhoami
				if err := h.Action(ctx, "whoami", &who); err != nil {
					t.Fatalf("whoami: %v", err)
				}
				if s := fmt.Sprint(who.Params["pair"]); s != "[$p 1]" || who.Params["token"] != "enc-tok" {
					t.Errorf("whoami: the actor saw params %v, want token enc-tok and pair [$p 1]", who.Params)
				}
				checkFail := func(how string, err error, status bool) {
					t.Helper()
					var ae *rivetclient.ActorError
					if !errors.As(err, &ae) || ae.Group != "user" || ae.Code != "custom_fail" || ae.Message != "boom" {
						t.Fatalf("%s: got %v (%T), want user.custom_fail boom", how, err, err)
					}
					if !jsonEqual(t, ae.Metadata, `{"a":1}`) {
						t.Errorf("%s: metadata %s, want {\"a\":1}", how, ae.Metadata)
					}
					if status && (ae.StatusCode/100 != 5 || ae.RayID == "") {
						t.Errorf("%s: status %d, ray id %q; want 5xx and a ray id", how, ae.StatusCode, ae.RayID)
					}
				}
				checkFail("stateless fail", h.Action(ctx, "fail", nil), true)

				res, err := h.Send(ctx, "jobs", map[string]any{"big": rivetclient.BigInt("9007199254740993"), "pair": []any{"$q", 2}}, rivetclient.SendOptions{Wait: true, Timeout: 10 * time.Second})
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				var q struct {
					Echo  map[string]any `json:"echo"`
					Count int            `json:"count"`
				}
				if err := res.Decode(&q); err != nil {
					t.Fatalf("decode %s: %v", res.Response, err)
				}
				if res.Status != "completed" || fmt.Sprint(q.Echo["big"]) != "9007199254740993" || fmt.Sprint(q.Echo["pair"]) != "[$q 2]" || q.Count != 5 {
					t.Errorf("Send: got %q %s, want completed {echo:{big:9007199254740993,pair:[$q 2]},count:5}", res.Status, res.Response)
				}

				conn, err := h.Connect(ctx)
				if err != nil {
					t.Fatalf("Connect: %v", err)
				}
				defer conn.Close()
				log := watchConn(t, conn, "newCount")
				if err := conn.Action(ctx, "echo", &got, args...); err != nil {
					t.Fatalf("echo over the connection: %v", err)
				}
				checkEcho(t, "connection echo", got)
				if err := conn.Action(ctx, "increment", &n, 2); err != nil || n != 7 {
					t.Fatalf("increment(2) over the connection: got %d, %v", n, err)
				}
				log.waitEvent(t, 7)
				checkFail("connection fail", conn.Action(ctx, "fail", nil), false)
				if err := conn.Action(ctx, "getCount", &n); err != nil || n != 7 {
					t.Errorf("getCount after a failed action: got %d, %v; want 7 (the connection stays up)", n, err)
				}

				resp, err := h.Fetch(ctx, http.MethodPost, "/echo?x=1", strings.NewReader("raw body"), http.Header{"Content-Type": {"text/plain"}})
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var seen struct {
					Method, Path, Search string
					Headers              map[string]string
					Count                int
				}
				// Raw HTTP is the caller's own: the encoding adds nothing to it.
				if err := json.Unmarshal(body, &seen); err != nil || resp.StatusCode != 200 ||
					seen.Method != "POST" || seen.Path != "/echo" || seen.Search != "?x=1" || seen.Count != 7 ||
					seen.Headers["content-type"] != "text/plain" || seen.Headers["x-rivet-encoding"] != "" {
					t.Errorf("Fetch: got %d %s, want 200 from onRequest with POST /echo?x=1, text/plain, no x-rivet-encoding, count 7", resp.StatusCode, body)
				}
			})
		}
	}
}
