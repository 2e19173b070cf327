package proxy

import (
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Transient engine errors (Config.WebSocket.TransientErrors). Measured on the
// real engine 2.3.19 while it restarts: every WebSocket upgrade is accepted
// (101) and closed at once, before any data frame, with 1011
// "namespace.not_found#<ray>" for a few hundred milliseconds, then
// "actor.no_runner_config_configured#<ray>" until the actor server has
// registered. The fake engines here answer both ways: that close after the
// 101 (in every byte layout), and an HTTP error refusing the upgrade.

// upstreamErrors collects what OnUpstreamError reports.
func upstreamErrors() (chan *rivet.Error, func(*http.Request, *rivet.Error)) {
	ch := make(chan *rivet.Error, 16)
	return ch, func(_ *http.Request, e *rivet.Error) { ch <- e }
}

// engineClose is what the fake engine read from the gateway after its own
// close: the gateway's close frame and how many data frames came first.
type engineClose struct {
	code   int
	reason string
	seen   bool
	data   int64
}

// scriptedEngine is an engine that accepts the upgrade and then writes the
// chunks script returns for the 101 head it must send (one Write each, gap
// apart), and reports the close the gateway answers with.
func scriptedEngine(t *testing.T, gap time.Duration, script func(head []byte) [][]byte) (string, <-chan engineClose) {
	t.Helper()
	got := make(chan engineClose, 4)
	u := rawUpstream(t, func(conn net.Conn, req *http.Request, done <-chan struct{}) {
		head := []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\nSec-WebSocket-Protocol: rivet\r\n\r\n")
		for _, chunk := range script(head) {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
			time.Sleep(gap)
		}
		// The gateway's frames are masked client frames: follow them until
		// its close (or the connection's end, which engineClose reports).
		f, _ := followToClose(conn)
		got <- engineClose{f.closeCode, f.closeReason, f.closeSeen, f.messages}
	})
	return u, got
}

// frame encodes one frame as the engine sends it (unmasked).
func frame(op byte, payload []byte) []byte {
	return appendFrame(nil, frameSpec{op: op, fin: true, payload: payload}, rand.New(rand.NewPCG(1, 2)))
}

func closeFrame(code int, reason string) []byte { return frame(opClose, closePayload(code, reason)) }

// bytewise splits b into one-byte chunks.
func bytewise(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

const (
	noRunner = "actor.no_runner_config_configured"
	ray      = "lnnxk2hv0uyx6ghyp1wv6vd4qdcl00" // an engine ray id
)

func TestWebSocketEngineNotReadyClose(t *testing.T) {
	tests := []struct {
		name   string
		gap    time.Duration
		script func(head []byte) [][]byte
	}{
		{"close after the 101", 20 * time.Millisecond, func(h []byte) [][]byte {
			return [][]byte{h, closeFrame(1011, noRunner+"#"+ray)}
		}},
		{"close in the same write as the 101", 0, func(h []byte) [][]byte {
			return [][]byte{append(h, closeFrame(1011, noRunner+"#"+ray)...)}
		}},
		{"101 and close byte by byte", time.Millisecond, func(h []byte) [][]byte {
			return bytewise(append(h, closeFrame(1011, noRunner+"#"+ray)...))
		}},
		{"close split after the 101's last byte", 20 * time.Millisecond, func(h []byte) [][]byte {
			c := closeFrame(1011, noRunner+"#"+ray)
			return [][]byte{h[:len(h)-1], append(h[len(h)-1:], c[:3]...), c[3:]}
		}},
		{"ping, then close, in one write", 0, func(h []byte) [][]byte {
			return [][]byte{slices.Concat(h, frame(opPing, []byte("p")), closeFrame(1011, noRunner+"#"+ray))}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			u, engineGot := scriptedEngine(t, tc.gap, tc.script)
			ends, onEnd := endings()
			errs, onErr := upstreamErrors()
			_, front := startProxy(t, testConfig(u), Options{OnWebSocketEnd: onEnd, OnUpstreamError: onErr})
			c, resp, err := dialWS(t, front, "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k", nil, rivetProtocols...)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "rivet" {
				t.Fatalf("dial: got %v, want 101 with rivet", err)
			}
			start := time.Now()
			ce := readClose(t, c)
			checkClose(t, "client", ce, 1011, "guard.service_unavailable#"+ray)
			if !rivet.RetryableReason(ce.Text) {
				t.Errorf("client close reason %q is not one RivetKit retries", ce.Text)
			}
			if got := recv(t, engineGot, "the engine to read the gateway's close"); !got.seen || got.code != 1011 || got.data != 0 {
				t.Errorf("engine: got %+v, want its close answered with 1011 and no data", got)
			}
			st := recv(t, ends, "OnWebSocketEnd")
			if d := time.Since(start); d > promptly {
				t.Errorf("session ended %v after the close, want within %v", d, promptly)
			}
			if st.Cause != "upstream_not_ready" || st.UpstreamCloseCode != 1011 || st.GatewayCloseCode != 1011 || st.MessagesOut != 0 {
				t.Errorf("stats: got %+v, want cause upstream_not_ready, 1011 both ways, no message out", st)
			}
			e := recv(t, errs, "OnUpstreamError")
			if !errorsIs(e, rivet.ErrUpstreamUnavailable) || e.Metadata["upstream_error"] != noRunner {
				t.Errorf("OnUpstreamError: got %v %v, want guard.service_unavailable with upstream_error %s", e, e.Metadata, noRunner)
			}
		})
	}
}

// errorsIs is errors.Is for *rivet.Error, nil-safe for messages.
func errorsIs(e, target *rivet.Error) bool { return e != nil && e.Is(target) }

// TestWebSocketEngineCloseRelayed: what is not "not ready yet" reaches the
// client as the engine sent it.
func TestWebSocketEngineCloseRelayed(t *testing.T) {
	tests := []struct {
		name       string
		transient  []string // nil: the default list
		script     func(head []byte) [][]byte
		wantFirst  string // the message the client reads first, if any
		wantReason string
	}{
		{"not a transient error", nil, func(h []byte) [][]byte {
			return [][]byte{h, closeFrame(1011, "actor.not_found#"+ray)}
		}, "", "actor.not_found#" + ray},
		{"after a data frame: the socket was open", nil, func(h []byte) [][]byte {
			return [][]byte{h, slices.Concat(frame(opText, []byte(initMessage)), closeFrame(1011, noRunner+"#"+ray))}
		}, initMessage, noRunner + "#" + ray},
		{"user error after its Error message", nil, func(h []byte) [][]byte {
			return [][]byte{h, frame(opText, []byte(`{"body":{"tag":"Error"}}`)), closeFrame(1011, "user.unauthorized")}
		}, `{"body":{"tag":"Error"}}`, "user.unauthorized"},
		{"transient list emptied", []string{}, func(h []byte) [][]byte {
			return [][]byte{h, closeFrame(1011, noRunner+"#"+ray)}
		}, "", noRunner + "#" + ray},
		{"other list", []string{"namespace.not_found"}, func(h []byte) [][]byte {
			return [][]byte{h, closeFrame(1011, noRunner)}
		}, "", noRunner},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			u, engineGot := scriptedEngine(t, 10*time.Millisecond, tc.script)
			cfg := testConfig(u)
			if tc.transient != nil {
				cfg.WebSocket.TransientErrors = tc.transient
			}
			ends, onEnd := endings()
			errs, onErr := upstreamErrors()
			_, front := startProxy(t, cfg, Options{OnWebSocketEnd: onEnd, OnUpstreamError: onErr})
			c := mustDialWS(t, front, "/gateway/counter/connect?rvt-namespace=default&rvt-method=get&rvt-key=k", nil, rivetProtocols...)
			if tc.wantFirst != "" {
				if _, msg, err := c.ReadMessage(); err != nil || string(msg) != tc.wantFirst {
					t.Fatalf("first message: got %q %v, want %q", msg, err, tc.wantFirst)
				}
			}
			checkClose(t, "client", readClose(t, c), 1011, tc.wantReason)
			if got := recv(t, engineGot, "the engine to read the gateway's close"); !got.seen || got.code != 1011 {
				t.Errorf("engine: got %+v, want its close answered with 1011", got)
			}
			if st := recv(t, ends, "OnWebSocketEnd"); st.Cause != "" {
				t.Errorf("stats: got cause %q, want none", st.Cause)
			}
			select {
			case e := <-errs:
				t.Errorf("OnUpstreamError called with %v", e)
			default:
			}
		})
	}
}

// TestWebSocketEngineNotReadyCloseGorilla: the same with an engine built on
// gorilla (upgrade, then a close control frame), and namespace.not_found,
// the first error of a restarting engine.
func TestWebSocketEngineNotReadyCloseGorilla(t *testing.T) {
	checkGoroutines(t)
	upEnd := make(chan error, 1)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1011, "namespace.not_found#"+ray), time.Now().Add(wait))
		_, _, err := c.ReadMessage()
		upEnd <- err
	})
	errs, onErr := upstreamErrors()
	_, front := startProxy(t, testConfig(up.URL), Options{OnUpstreamError: onErr})
	c := mustDialWS(t, front, "/gateway/counter/connect?rvt-namespace=default&rvt-method=get&rvt-key=k", nil, rivetProtocols...)
	checkClose(t, "client", readClose(t, c), 1011, "guard.service_unavailable#"+ray)
	if ce := asClose(recv(t, upEnd, "the upstream to end")); ce == nil || ce.Code != 1011 {
		t.Errorf("upstream: got %v, want its close answered with 1011", ce)
	}
	if e := recv(t, errs, "OnUpstreamError"); e.Metadata["upstream_error"] != "namespace.not_found" {
		t.Errorf("OnUpstreamError: got %v %v, want upstream_error namespace.not_found", e, e.Metadata)
	}
}

// TestWebSocketEngineNotReadyRefusal: the engine refusing the upgrade itself
// (HTTP error with its JSON body) with a transient error.
func TestWebSocketEngineNotReadyRefusal(t *testing.T) {
	tests := []struct {
		name, body string
		status     int
		wantReason string
		wantErr    string // metadata upstream_error reported, "" for none
	}{
		{"no runner config", `{"group":"actor","code":"no_runner_config_configured","message":"No runner config with name 'default'.","metadata":{"namespace":"default","pool_name":"default"}}`,
			http.StatusBadRequest, "guard.service_unavailable", noRunner},
		{"namespace not found", `{"group":"namespace","code":"not_found","message":"The namespace does not exist."}`,
			http.StatusBadRequest, "guard.service_unavailable", "namespace.not_found"},
		{"transient code with a 503", `{"group":"actor","code":"no_runner_config_configured","message":"x"}`,
			http.StatusServiceUnavailable, "guard.service_unavailable", noRunner},
		{"not transient", `{"group":"actor","code":"not_found","message":"Actor not found."}`,
			http.StatusNotFound, "actor.not_found", ""},
		{"error body with a success status", `{"group":"actor","code":"weird","message":"x"}`,
			http.StatusOK, "actor.weird", ""},
		{"group with a dot is no RivetKit error", `{"group":"a.b","code":"c","message":"x"}`,
			http.StatusBadRequest, "gateway.invalid_request", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Rivet-Error", "x")
				w.Header().Set("X-Rivet-Ray-Id", ray)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			})
			ends, onEnd := endings()
			errs, onErr := upstreamErrors()
			_, front := startProxy(t, testConfig(up.URL), Options{OnWebSocketEnd: onEnd, OnUpstreamError: onErr})
			c, resp, err := dialWS(t, front, "/gateway/counter/connect?rvt-namespace=default&rvt-method=get&rvt-key=k", nil, rivetProtocols...)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || c.Subprotocol() != "rivet" {
				t.Fatalf("dial: got %v, want 101 with rivet", err)
			}
			checkClose(t, "client", readClose(t, c), 1011, tc.wantReason)
			recv(t, ends, "OnWebSocketEnd")
			// OnUpstreamError reports engine failures only: the transient
			// errors, not the engine's verdict on a request.
			select {
			case e := <-errs:
				if got, _ := e.Metadata["upstream_error"].(string); tc.wantErr == "" || got != tc.wantErr || !e.Is(rivet.ErrUpstreamUnavailable) {
					t.Errorf("OnUpstreamError: got %v %v, want upstream_error %q", e, e.Metadata, tc.wantErr)
				}
			default:
				if tc.wantErr != "" {
					t.Errorf("OnUpstreamError not called, want upstream_error %q", tc.wantErr)
				}
			}
		})
	}
}

func TestTransientErrorsConfig(t *testing.T) {
	cfg := DefaultConfig()
	if !slices.Equal(cfg.WebSocket.TransientErrors, []string{noRunner, "namespace.not_found"}) {
		t.Errorf("default transient_errors: got %q", cfg.WebSocket.TransientErrors)
	}
	cfg.WebSocket.TransientErrors[0] = "changed.x"
	if DefaultTransientErrors[0] != noRunner {
		t.Errorf("DefaultConfig shares DefaultTransientErrors")
	}
	cfg = testConfig("http://127.0.0.1:1")
	cfg.WebSocket.TransientErrors = []string{"ok.code", "nodot", "a.b.c", ".x", "x.", "a.b#c", "sp ace.x"}
	err := cfg.Validate("upstream")
	if err == nil {
		t.Fatal("Validate accepted bad transient_errors")
	}
	for i := 1; i <= 6; i++ {
		if want := "upstream.websocket.transient_errors[" + string(rune('0'+i)) + "]"; !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v\nwant a problem with %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "transient_errors[0]") {
		t.Errorf("Validate rejected ok.code: %v", err)
	}
	cfg.WebSocket.TransientErrors = nil
	if err := cfg.Validate("upstream"); err != nil {
		t.Errorf("Validate with no transient errors: %v", err)
	}
}

// TestFrameParserFrameByFrame: in every chunking, feedFrame stops exactly
// at each frame's end (where the relay decides what to pass on), the close
// is seen in the call that ends it, and only data frames set dataSeen; a
// head other than 101 is not a switch.
func TestFrameParserFrameByFrame(t *testing.T) {
	for _, tc := range []struct {
		name     string
		head     string
		frames   []frameSpec
		dataSeen bool
	}{
		{"101, close", testHead, []frameSpec{{op: opClose, fin: true, payload: closePayload(1011, noRunner+"#"+ray)}}, false},
		{"101, pings, empty close", testHead, []frameSpec{{op: opPing, fin: true}, {op: opPong, fin: true, payload: []byte("x")}, {op: opClose, fin: true}}, false},
		{"no head, text, close", "", []frameSpec{{op: opText, fin: true, payload: []byte("hi")}, {op: opClose, fin: true, payload: closePayload(1000, "")}}, true},
		{"empty text, close", "", []frameSpec{{op: opText, fin: true}, {op: opClose, fin: true, payload: closePayload(1011, "x.y")}}, true},
	} {
		s := buildStream(tc.head, tc.frames, 3)
		for how, cuts := range chunkings(len(s.data), 5) {
			f := frameParser{handshake: tc.head != ""}
			var ends []int
			start := 0
			for _, end := range cuts {
				for at := start; at < end; {
					n, err := f.feedFrame(s.data[at:end])
					if err != nil || n == 0 {
						t.Fatalf("%s %s: feedFrame at %d: %d, %v", tc.name, how, at, n, err)
					}
					at += n
					if f.atBoundary() {
						ends = append(ends, at)
						if at != end && !s.boundaries[at] {
							t.Fatalf("%s %s: stopped at %d, not a frame boundary", tc.name, how, at)
						}
					}
				}
				start = end
			}
			if got := ends[len(ends)-1]; got != len(s.data) {
				t.Errorf("%s %s: last frame ended at %d, want %d", tc.name, how, got, len(s.data))
			}
			if !f.closeSeen || f.dataSeen != tc.dataSeen || f.switched() != (tc.head != "") {
				t.Errorf("%s %s: close seen %v, dataSeen %v, switched %v", tc.name, how, f.closeSeen, f.dataSeen, f.switched())
			}
		}
	}
	f := frameParser{handshake: true}
	_, _ = f.feed([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n\x88\x00"))
	if f.switched() || !f.closeSeen {
		t.Errorf("400 head: switched %v, close seen %v; want not switched (the body is no stream)", f.switched(), f.closeSeen)
	}
}
