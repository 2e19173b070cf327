package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivet"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// Bad input (issue 7, item 4) against the real gateway binary and the real engine: requests
// over the server's limits, slowloris clients, malformed routes, params, subprotocol lists and
// frames. Each gets its answer, and a connection of the real Go client kept open through all of
// them is never disturbed. gateway/badinput_test.go covers the gateway's own parsing in-process,
// with an engine that records what reaches it.

// badInputConfig is openConfig with small server limits, a small WebSocket message limit, and
// params merged with a static server key under a small header limit.
func badInputConfig(upstream string) string {
	cfg := strings.Replace(openConfig(upstream), "  shutdown_timeout: 10s\n", `  shutdown_timeout: 10s
  max_header_bytes: 4096
  read_header_timeout: 300ms
  read_timeout: 2s
  idle_timeout: 500ms
`, 1)
	return withUpstreamYAML(cfg, "", "    read_limit: 4096\n") + `params:
  source: static
  policy: merge
  static: {via: gateway}
  max_header_bytes: 512
`
}

func TestBadInput(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, badInputConfig(up.URL))
	addr := strings.TrimPrefix(gw.URL, "http://")

	// The witness: a real client connection that must live through everything below.
	clientLeakCheck(t)
	ctx := clientContext(t)
	_, _, witness, witnessLog, _ := connectCounting(t, ctx, gw.URL)
	witnessID := witness.ConnectionID()

	q := strings.TrimPrefix(actionPath("bad", "whoami"), "/gateway/counter/action/whoami")
	head := func(path string, extra ...string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nX-Rivet-Encoding: json\r\nContent-Type: application/json\r\n" +
			"Content-Length: 11\r\n" + strings.Join(extra, "") + "\r\n" + `{"args":[]}`
	}
	params := func(v string) string { return "X-Rivet-Conn-Params: " + v + "\r\n" }

	t.Run("over max_header_bytes", func(t *testing.T) {
		// net/http allows max_header_bytes plus 4096 bytes of slack before it answers 431.
		for name, req := range map[string]string{
			"header":       head("/gateway/counter/action/whoami"+q, "X-Big: "+strings.Repeat("b", 16<<10)+"\r\n"),
			"request line": head("/gateway/" + strings.Repeat("a", 16<<10) + "/action/whoami" + q),
		} {
			res, closed := rawRoundTrip(t, addr, true, req)
			// Answered by net/http before any handler runs: plain text, not RivetKit's shape.
			if res.status != http.StatusRequestHeaderFieldsTooLarge || !closed {
				t.Errorf("%s: %d %q (connection closed: %v), want 431 and the connection closed", name, res.status, res.body, closed)
			}
		}
	})

	t.Run("slowloris headers", func(t *testing.T) {
		c := dialRaw(t, addr)
		start := time.Now()
		io.WriteString(c, "POST /gateway/counter/action/whoami"+q+" HTTP/1.1\r\nHost: x\r\n")
		closed := closedWithin(c, 5*time.Second, func() {
			for range 40 { // one byte of header every 100 ms: never a whole header block
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
		if d := time.Since(start); !closed || d < 250*time.Millisecond || d > 3*time.Second {
			t.Errorf("connection closed: %v after %v, want closed after about read_header_timeout (300ms)", closed, d)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		c := dialRaw(t, addr)
		io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET /health: %v %v", res, err)
		}
		io.Copy(io.Discard, res.Body)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = br.ReadByte()
		if d := time.Since(start); !errors.Is(err, io.EOF) || d < 400*time.Millisecond || d > 3*time.Second {
			t.Errorf("idle connection: %v after %v, want EOF after about idle_timeout (500ms)", err, d)
		}
	})

	t.Run("params over params.max_header_bytes", func(t *testing.T) {
		big := `{"token":"t","pad":"` + strings.Repeat("p", 1000) + `"}`
		res, _ := rawRoundTrip(t, addr, false, head("/gateway/counter/action/whoami"+q, params(big)))
		res.assertRivet(t, http.StatusInternalServerError, "client", "get_params_failed")
		if res.err.Metadata["reason"] != "too_large" {
			t.Errorf("metadata = %v, want reason too_large", res.err.Metadata)
		}
		huge := `{"token":"t","pad":"` + strings.Repeat("p", 5000) + `"}`
		code, reason := dialProtocols(t, gw.URL, "rivet", "rivet_encoding.json", "rivet_conn_params."+url.QueryEscape(huge))
		if code != websocket.CloseInternalServerErr || reason != "client.get_params_failed" {
			t.Errorf("websocket: close %d %q, want 1011 client.get_params_failed", code, reason)
		}
	})

	t.Run("websocket messages", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			msg    []byte
			code   int
			reason string
		}{
			{"over read_limit", []byte(strings.Repeat("x", 8<<10)), websocket.CloseMessageTooBig, "ws.message_too_big"},
			// Relayed as sent; the engine refuses it (RFC 6455 would say 1007).
			{"invalid UTF-8 text", []byte("{\"body\":\xff}"), websocket.CloseInternalServerErr, "core.internal_error"},
		} {
			conn := dialInit(t, gw.URL, `{"token":"t"}`)
			if err := conn.WriteMessage(websocket.TextMessage, tc.msg); err != nil {
				t.Fatal(err)
			}
			code, reason := readClose(conn)
			reason, _ = rivet.SplitRayID(reason) // the engine appends its ray id
			if code != tc.code || reason != tc.reason {
				t.Errorf("%s: close %d %q, want %d %s", tc.name, code, reason, tc.code, tc.reason)
			}
			conn.Close()
		}
	})

	t.Run("malformed HTTP", func(t *testing.T) {
		for _, tc := range []struct {
			name, req   string
			status      int
			group, code string // "" for answers net/http writes itself (plain text)
		}{
			{"empty target", head("/gateway/"), 400, "guard", "query_invalid_params"},
			{"empty target segment", head("/gateway//action/whoami" + q), 400, "gateway", "invalid_path"},
			{"rvt-* without rvt-method", head("/gateway/counter/action/whoami?rvt-namespace=default"), 400, "guard", "query_invalid_params"},
			{"repeated rvt-key", head("/gateway/counter/action/whoami" + q + "&rvt-key=other"), 400, "guard", "query_invalid_params"},
			{"bad escape in an rvt-* value", head("/gateway/counter/action/whoami" + q + "x&rvt-input=%zz"), 400, "gateway", "invalid_path"},
			{"unknown rvt-* key (engine)", head("/gateway/counter/action/whoami" + q + "&rvt-nonsense=1"), 400, "guard", "query_invalid_params"},
			{"raw invalid UTF-8 in the actor name", head("/gateway/count\xffer/action/whoami" + q), 400, "gateway", "invalid_path"},
			{"bad escape in the path (net/http)", head("/gateway/%zz/action/whoami" + q), 400, "", ""},
			{"invalid header name (net/http)", head("/gateway/counter/action/whoami"+q, "X-Bad\xff: 1\r\n"), 400, "", ""},
			{"control byte in a header (net/http)", head("/gateway/counter/action/whoami"+q, "X-Ctl: a\x01b\r\n"), 400, "", ""},
			{"params not JSON", head("/gateway/counter/action/whoami"+q, params("notjson")), 400, "gateway", "invalid_request"},
			{"params not an object", head("/gateway/counter/action/whoami"+q, params(`["token"]`)), 400, "gateway", "invalid_request"},
		} {
			res, _ := rawRoundTrip(t, addr, false, tc.req)
			if res.status == http.StatusBadGateway && strings.HasSuffix(tc.name, "(engine)") {
				// Seen once in a loaded -race run: the engine dropped the pooled keep-alive
				// connection after its previous 400, and a POST is not retried. Reported.
				t.Logf("%s: 502 %s (the engine closed a pooled connection)", tc.name, res.body)
				continue
			}
			if tc.group == "" {
				if res.status != tc.status {
					t.Errorf("%s: %d %q, want %d", tc.name, res.status, res.body, tc.status)
				}
				continue
			}
			t.Run(tc.name, func(t *testing.T) { res.assertRivet(t, tc.status, tc.group, tc.code) })
		}
	})

	t.Run("params the actor sees", func(t *testing.T) {
		for _, tc := range []struct {
			name, headers string
			token         string
		}{
			// Raw invalid UTF-8 would be dropped by the engine; the gateway sends ASCII JSON.
			{"invalid UTF-8 in params", params("{\"token\":\"a\xffb\"}"), "a\ufffdb"},
			// Two carriers are gateway/badinput_test.go's TestBugMalformedConnParamsReachEngine.
		} {
			res, _ := rawRoundTrip(t, addr, false, head("/gateway/counter/action/whoami"+q, tc.headers))
			var out struct{ Output clientWhoami }
			if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &out) != nil {
				t.Errorf("%s: %d %s, want 200", tc.name, res.status, res.body)
				continue
			}
			out.Output.assertToken(t, tc.token)
			if out.Output.Params["via"] != "gateway" {
				t.Errorf("%s: params %v lack the server's key", tc.name, out.Output.Params)
			}
		}
	})

	t.Run("subprotocol lists", func(t *testing.T) {
		p := func(v string) string { return "rivet_conn_params." + url.QueryEscape(v) }
		for _, tc := range []struct {
			name   string
			list   []string
			reason string // "" for a connection that opens
		}{
			// The engine answers "rivet" whatever was offered (shared/rivet-protocol.md §2).
			{"without rivet", []string{"rivet_encoding.json", p(`{"token":"t"}`)}, ""},
			{"bad escape in params", []string{"rivet", "rivet_encoding.json", "rivet_conn_params.%zz"}, "gateway.invalid_request"},
			{"params not JSON", []string{"rivet", "rivet_encoding.json", p("notjson")}, "gateway.invalid_request"},
			{"no params: the actor refuses", []string{"rivet", "rivet_encoding.json"}, "user.unauthorized"},
		} {
			code, reason := dialProtocols(t, gw.URL, tc.list...)
			reason, _ = rivet.SplitRayID(reason)
			switch {
			case tc.reason == "" && code != 0:
				t.Errorf("%s: close %d %q, want the connection to open", tc.name, code, reason)
			case tc.reason != "" && (code != websocket.CloseInternalServerErr || reason != tc.reason):
				t.Errorf("%s: close %d %q, want 1011 %s", tc.name, code, reason, tc.reason)
			}
		}
	})

	// Nothing else was disturbed: the witness never saw an error and is the same connection,
	// and a good request works.
	if s := witness.Status(); s != rivetclient.StatusConnected || witness.ConnectionID() != witnessID || len(witnessLog.errorList()) > 0 {
		t.Errorf("witness connection: status %v, same connection %v, errors %v", s, witness.ConnectionID() == witnessID, witnessLog.errorCodes())
	}
	var who clientWhoami
	if err := witness.Action(ctx, "whoami", &who); err != nil {
		t.Fatalf("witness whoami: %v", err)
	}
	who.assertToken(t, "gp-1")
	res, _ := rawRoundTrip(t, addr, false, head("/gateway/counter/action/whoami"+q, params(`{"token":"t"}`)))
	if res.status != http.StatusOK {
		t.Errorf("good request after the bad input: %d %s", res.status, res.body)
	}
	waitMetric(t, gw.AdminURL, "rivet_gateway_websockets_open", 1)
}

// rawResult is an answer read off a raw connection.
type rawResult struct {
	status int
	header http.Header
	body   string
	err    rivetErr
}

// assertRivet checks a RivetKit-shaped JSON error.
func (r rawResult) assertRivet(t *testing.T, status int, group, code string) {
	t.Helper()
	if r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") ||
		r.err.Group != group || r.err.Code != code || r.err.Message == "" {
		t.Errorf("got %d %s (%s), want %d with %s.%s", r.status, r.body, r.header.Get("Content-Type"), status, group, code)
	}
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawRoundTrip sends req as bytes on a new connection and reads one answer. With checkClose,
// closed reports whether the server closed the connection after it (waiting up to 2 s).
func rawRoundTrip(t *testing.T, addr string, checkClose bool, req string) (res rawResult, closed bool) {
	t.Helper()
	c := dialRaw(t, addr)
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(c)
	hr, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	body, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	res = rawResult{status: hr.StatusCode, header: hr.Header, body: string(body)}
	_ = json.Unmarshal(body, &res.err)
	if !checkClose {
		return res, false
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = br.ReadByte()
	return res, errors.Is(err, io.EOF)
}

// closedWithin runs trickle in the background and reports whether the server closes c within d
// (an answer such as 408 may come first).
func closedWithin(c net.Conn, d time.Duration, trickle func()) bool {
	go trickle()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// dialInit opens a /connect WebSocket as a RivetKit JSON client with params and reads Init.
func dialInit(t *testing.T, base, params string) *websocket.Conn {
	t.Helper()
	conn, code, reason := openConnect(t, wsURL(base, connectPath("bad")), "rivet", "rivet_encoding.json",
		"rivet_conn_params."+url.QueryEscape(params))
	if conn == nil {
		t.Fatalf("connect: close %d %q, want Init", code, reason)
	}
	return conn
}

// dialProtocols opens a /connect WebSocket offering list and returns 0 when it opens (Init),
// else the close code and reason.
func dialProtocols(t *testing.T, base string, list ...string) (int, string) {
	t.Helper()
	conn, code, reason := openConnect(t, wsURL(base, connectPath("bad")), list...)
	if conn != nil {
		conn.Close()
	}
	return code, reason
}
