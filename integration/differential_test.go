package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// TestParserAgreesWithEngine is the differential test of issue 11, item 3: request targets are
// read by the gateway's parser (rivet.ParseTarget, what the running gateway classifies with) and
// sent, byte for byte, straight to the real engine, whose answer is the oracle: which actor
// served it (x-rivet-actor, the Init message) and what the actor served (an action, onRequest
// with which path, onWebSocket, the inspector). Every target the gateway accepts must be served
// by the actor the gateway resolved, as the intent it classified; targets it refuses are counted
// with what the engine would have done with them.
//
// The targets are a fixed base set of every client route, by id and by key, and seeded random
// mutations of them (dot segments, escapes, empty segments, "@", "#", ";", "\", case, repeated
// and disguised rvt-* parameters, swapped actors). Only requests without side effects are sent
// (getCount, onRequest, the inspector without a token, WebSocket opens).
func TestParserAgreesWithEngine(t *testing.T) {
	up := harness.StartUpstream(t)
	addr := strings.TrimPrefix(up.URL, "http://")
	ids := map[string]string{} // key -> id
	byCount := map[float64]string{}
	for k, count := range map[string]int{"alice": 7, "bob": 41} {
		var created struct{ Actor engineActor }
		engineCall(t, up.URL, "PUT", "/actors?namespace=default",
			`{"name":"counter","key":"`+k+`","runner_name_selector":"default","crash_policy":"sleep"}`,
			map[string]string{"Content-Type": "application/json"}, &created)
		ids[k] = created.Actor.ActorID
		warmByID(t, up.URL, ids[k])
		// Their counts tell them apart where the answer names no actor (onWebSocket's greeting).
		engineCall(t, up.URL, "POST", "/gateway/"+ids[k]+"/action/increment", fmt.Sprintf(`{"args":[%d]}`, count),
			map[string]string{"X-Rivet-Encoding": "json", "Content-Type": "application/json", "X-Rivet-Conn-Params": `{"token":"diff"}`}, nil)
		byCount[float64(count)] = ids[k]
	}
	keyOf := map[string]string{ids["alice"]: "alice", ids["bob"]: "bob"}

	bases := differentialBases(ids["alice"], ids["bob"])
	rng := rand.New(rand.NewPCG(11, 2026))
	var cases []diffCase
	for _, b := range bases {
		cases = append(cases, b)
	}
	for len(cases) < 900 {
		b := bases[rng.IntN(len(bases))]
		m := b
		for range 1 + rng.IntN(2) {
			m.target = mutate(rng, m.target, ids)
		}
		cases = append(cases, m)
	}

	// The engine's answers, eight at a time.
	answers := make([]engineReply, len(cases))
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				answers[i] = engineAnswer(addr, cases[i], byCount)
			}
		})
	}
	for i := range cases {
		next <- i
	}
	close(next)
	wg.Wait()

	var accepted, refused, refusedServed, engineRefusedAccepted int
	for i, c := range cases {
		rt, perr := rivet.ParseTarget(c.method, c.target, c.ws)
		ans := answers[i]
		if strings.HasPrefix(ans.what, "no connection") {
			t.Fatalf("%s %q: %s", c.method, c.target, ans.what)
		}
		if perr != nil {
			refused++
			if ans.actor != "" {
				if refusedServed++; refusedServed <= 25 {
					t.Logf("refused, the engine would serve %s (%s): %s %q", keyOf[ans.actor], ans.what, c.method, c.target)
				}
			}
			continue
		}
		accepted++
		want := rt.ActorID
		if want == "" {
			// A query target: the actor the engine holds under that namespace, name and key.
			if rt.Namespace == "default" && rt.ActorName == "counter" && len(rt.Key) == 1 {
				want = ids[rt.Key[0]]
			}
		}
		if ans.actor == "" && servedIntent(ans) == rt.Intent.String() {
			// The inspector's WebSocket closes (1008, no token) without naming its actor:
			// the intent is what can be checked.
			continue
		}
		if ans.actor == "" {
			if want != "" && ans.status < 500 && !strings.HasPrefix(ans.what, "error guard.") && !strings.HasPrefix(ans.what, "error actor.") {
				t.Errorf("%s %q: accepted as %s of %s, but the engine served no actor (%d %s)", c.method, c.target, rt.Intent, want, ans.status, ans.what)
			}
			if want == "" || ans.status >= 400 {
				engineRefusedAccepted++
			}
			continue
		}
		if ans.actor != want {
			t.Errorf("%s %q: the gateway reads actor %q, the engine served %q (%s)", c.method, c.target, want, ans.actor, ans.what)
			continue
		}
		if got := servedIntent(ans); got != "" && got != rt.Intent.String() {
			t.Errorf("%s %q: the gateway reads intent %s, the actor served %s (%s)", c.method, c.target, rt.Intent, got, ans.what)
		}
		if rt.Intent == rivet.IntentRequest && ans.path != "" {
			if want := strings.TrimPrefix(rt.Rest, "/request"); ans.path != orSlash(want) {
				t.Errorf("%s %q: onRequest saw path %q, the gateway read %q", c.method, c.target, ans.path, want)
			}
		}
	}
	t.Logf("%d targets: %d accepted (%d of them answered by the engine without an actor), %d refused (%d of which the engine would have served from an actor)",
		len(cases), accepted, engineRefusedAccepted, refused, refusedServed)
	if accepted < 60 || refused < 100 {
		t.Errorf("the mutations are too tame or too wild: %d accepted, %d refused", accepted, refused)
	}
}

type diffCase struct {
	method, target string
	ws             bool
}

// differentialBases are the client routes, by id and by key, that the mutations start from.
func differentialBases(alice, bob string) []diffCase {
	q := func(k string) string { return "?rvt-namespace=default&rvt-method=get&rvt-key=" + k }
	var out []diffCase
	for _, id := range []string{alice, bob} {
		out = append(out,
			diffCase{"POST", "/gateway/" + id + "/action/getCount", false},
			diffCase{"GET", "/gateway/" + id + "/request/echo/x?y=1", false},
			diffCase{"GET", "/gateway/" + id + "/request/inspector/state", false},
			diffCase{"GET", "/gateway/" + id + "/inspector/state", false},
			diffCase{"GET", "/gateway/" + id + "/connect", true},
			diffCase{"GET", "/gateway/" + id + "/websocket/x", true},
			diffCase{"GET", "/gateway/" + id + "/inspector/connect", true},
		)
	}
	for _, k := range []string{"alice", "bob"} {
		out = append(out,
			diffCase{"POST", "/gateway/counter/action/getCount" + q(k), false},
			diffCase{"GET", "/gateway/counter/request/echo" + q(k), false},
			diffCase{"GET", "/gateway/counter/request/inspector/state" + q(k), false},
			diffCase{"GET", "/gateway/counter/connect" + q(k), true},
			diffCase{"GET", "/gateway/counter/websocket/x" + q(k), true},
		)
	}
	return out
}

// mutate applies one random change to a request target.
func mutate(rng *rand.Rand, s string, ids map[string]string) string {
	path, query, hasQ := strings.Cut(s, "?")
	slashes := func() []int {
		var at []int
		for i := 0; i < len(path); i++ {
			if path[i] == '/' {
				at = append(at, i)
			}
		}
		return at
	}
	at := slashes()
	pos := at[rng.IntN(len(at))]
	insert := func(x string) string { return path[:pos] + x + path[pos:] }
	other := ids["alice"]
	if strings.Contains(s, other) {
		other = ids["bob"]
	}
	switch rng.IntN(22) {
	case 0:
		path = insert("/.")
	case 1:
		path = insert("/..")
	case 2:
		path = insert("/x/..")
	case 3:
		path = insert("/")
	case 4:
		path = insert("/%2e%2e")
	case 5:
		path = insert("/.%2E")
	case 6: // escape one character
		i := rng.IntN(len(path))
		path = path[:i] + fmt.Sprintf("%%%02X", path[i]) + path[i+1:]
	case 7: // escape one character, lower-case hex
		i := rng.IntN(len(path))
		path = path[:i] + fmt.Sprintf("%%%02x", path[i]) + path[i+1:]
	case 8:
		path = insert(`\`)
	case 9:
		path = strings.Replace(path, "/", "/"+other+"/../", 1+rng.IntN(3))
	case 10:
		path += "/"
	case 11:
		path = insert("@tok")
	case 12:
		path = insert("#/" + other)
	case 13:
		path = strings.ToUpper(path[:pos]) + path[pos:]
	case 14:
		path = insert("/%2F")
	case 15:
		path = insert(";x=1")
	case 16:
		query += "&rvt-key=alice"
		hasQ = true
	case 17:
		query += "&%72vt-key=alice"
		hasQ = true
	case 18:
		query += ";rvt-key=alice"
		hasQ = true
	case 19:
		query = "rvt-namespace=default&rvt-method=get&rvt-key=bob&" + query
		hasQ = true
	case 20:
		path = insert("/request")
	case 21:
		query += "#x"
		hasQ = true
	}
	if hasQ {
		return path + "?" + strings.TrimPrefix(query, "&")
	}
	return path
}

// engineReply is what the engine did with a target.
type engineReply struct {
	status int
	actor  string // the actor that answered (x-rivet-actor, or the Init's actor id), if any
	what   string // "error group.code", "onRequest", "action", "inspector", "connect", "onWebSocket", ...
	path   string // the path onRequest saw
}

// servedIntent maps what the engine did to the gateway's intent names ("" when unknown).
func servedIntent(a engineReply) string {
	switch a.what {
	case "onRequest":
		return "request"
	case "action":
		return "action"
	case "inspector":
		return "inspector"
	case "connect":
		return "connect"
	case "onWebSocket":
		return "websocket"
	}
	return ""
}

func orSlash(s string) string {
	if s == "" {
		return "/"
	}
	return s
}

// engineAnswer sends c's bytes to the engine at addr and describes the answer.
// byCount names the actor whose count a greeting or an echo reports.
func engineAnswer(addr string, c diffCase, byCount map[float64]string) engineReply {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nX-Rivet-Encoding: json\r\n", c.method, c.target, addr)
	if c.ws {
		b.WriteString("Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
		b.WriteString("Sec-WebSocket-Protocol: rivet, rivet_encoding.json, rivet_conn_params." + url.QueryEscape(`{"token":"diff"}`) + "\r\n\r\n")
	} else {
		body := `{"args":[]}`
		fmt.Fprintf(&b, "X-Rivet-Conn-Params: {\"token\":\"diff\"}\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return engineReply{what: "no connection: " + err.Error()}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return engineReply{what: "no connection: " + err.Error()}
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, &http.Request{Method: c.method})
	if err != nil {
		return engineReply{what: "no answer: " + err.Error()}
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		a := wsAnswer(br, byCount)
		if a.actor == "" {
			a.actor = res.Header.Get("X-Rivet-Actor")
		}
		return a
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	a := engineReply{status: res.StatusCode, actor: res.Header.Get("X-Rivet-Actor")}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	switch {
	case m["group"] == "inspector":
		a.what = "inspector"
	case m["group"] != nil:
		a.what = fmt.Sprintf("error %v.%v", m["group"], m["code"])
	case m["path"] != nil:
		a.what, a.path = "onRequest", fmt.Sprint(m["path"])
		if n, ok := m["count"].(float64); ok && a.actor == "" {
			a.actor = byCount[n]
		}
	case m["output"] != nil:
		a.what = "action"
	default:
		a.what = fmt.Sprintf("status %d", res.StatusCode)
	}
	return a
}

// wsAnswer reads an upgraded engine socket's first frames: Init (a connection), the raw
// handler's greeting (onWebSocket), or a close (the inspector's 1008, an error's 1011).
func wsAnswer(br *bufio.Reader, byCount map[float64]string) engineReply {
	a := engineReply{status: http.StatusSwitchingProtocols}
	for range 4 {
		op, p, err := readFrame(br)
		if err != nil {
			a.what = "no frame: " + err.Error()
			return a
		}
		switch {
		case op == 8:
			reason := ""
			if len(p) > 2 {
				reason, _ = rivet.SplitRayID(string(p[2:]))
			}
			if strings.HasPrefix(reason, "inspector.") {
				a.what = "inspector"
			} else {
				a.what = "close " + reason
			}
			return a
		case op == 1 || op == 2:
			var m struct {
				Hello string
				Count float64
				Body  struct {
					Tag string
					Val struct{ ActorID string }
				}
			}
			_ = json.Unmarshal(p, &m)
			switch {
			case m.Body.Tag == "Init":
				a.what, a.actor = "connect", m.Body.Val.ActorID
			case m.Hello == "raw":
				a.what, a.actor = "onWebSocket", byCount[m.Count]
			default:
				a.what = "message"
			}
			return a
		}
	}
	a.what = "no answer"
	return a
}

// warmByID waits until actor id answers getCount straight at the engine (a new actor may take a
// while to start).
func warmByID(t *testing.T, endpoint, id string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res := do(t, "POST", endpoint+"/gateway/"+id+"/action/getCount", strings.NewReader(`{"args":[]}`),
			map[string]string{"X-Rivet-Encoding": "json", "Content-Type": "application/json", "X-Rivet-Conn-Params": `{"token":"warm"}`})
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("actor %s does not start: %d", id, res.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
