package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
)

const testAPIKey = "test-api-key-0123456789abcdef0123456789"

// fakeEngine stands in for the Rivet Engine: HTTP requests get 200 with a
// ray id, WebSockets echo every message (see startRecordingEngine).
func fakeEngine(t *testing.T) *httptest.Server { return startRecordingEngine(t).Server }

func testGateway(t *testing.T, engineURL string, logw io.Writer) *Gateway {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:1"
	cfg.Upstream.URL = engineURL
	sum := sha256.Sum256([]byte(testAPIKey))
	cfg.Auth.APIKeys.Keys = []authn.APIKey{{ID: "backend", SHA256: hex.EncodeToString(sum[:])}}
	cfg.Metrics.ActorNames = []string{"counter"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	logger := slog.New(slog.NewJSONHandler(logw, &slog.HandlerOptions{Level: slog.LevelInfo}))
	g, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func scrape(t *testing.T, g *Gateway) string {
	t.Helper()
	rec := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: got %d, want 200", rec.Code)
	}
	return rec.Body.String()
}

// waitMetrics scrapes g until its metrics hold every line of want, and
// returns that scrape; after 5s it fails naming the lines still missing.
// A line ending in a space is a prefix (a name whose value varies); any
// other is matched whole, value included.
//
// One scrape is not a snapshot of one moment. The end of a WebSocket is
// recorded step by step on the relay's goroutine (requests, durations,
// messages, bytes, closes, then the overhead, then the session leaves the
// open-sockets count), and a Gather runs the collectors concurrently, so
// one scrape can hold the close but not yet the messages, or still count
// the socket open. Waiting for one series and reading the others from the
// same scrape made tests flaky; the condition waited on is the whole
// expected state.
func waitMetrics(t *testing.T, g *Gateway, want ...string) string {
	t.Helper()
	var body string
	var missing []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		body, missing = scrape(t, g), missing[:0]
		for _, w := range want {
			if !strings.HasSuffix(w, " ") {
				w += "\n"
			}
			if !strings.Contains(body, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return body
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // between scrapes: the condition is the metrics themselves
	}
	for _, w := range missing {
		t.Errorf("metrics lack %q", w)
	}
	t.Logf("metrics:\n%s", grepLines(body, "rivet_gateway_"))
	return body
}

func TestMetricsCountKnownTraffic(t *testing.T) {
	engine := fakeEngine(t)
	g := testGateway(t, engine.URL, io.Discard)
	front := httptest.NewServer(g.echo)
	defer front.Close()

	action := front.URL + "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a"
	for i := range 4 {
		req, _ := http.NewRequest(http.MethodPost, action, strings.NewReader(`{"args":[]}`))
		want := http.StatusUnauthorized
		if i < 3 {
			req.Header.Set("X-API-Key", testAPIKey)
			want = http.StatusOK
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("action %d: got %d, want %d", i, res.StatusCode, want)
		}
	}

	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"rivet", "rivet_encoding.json"}}
	hdr := http.Header{"X-Api-Key": {testAPIKey}}
	wsURL := "ws" + strings.TrimPrefix(front.URL, "http") + "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a"
	c, res, err := d.Dial(wsURL, hdr)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	for _, m := range []string{"one", "two"} {
		if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := c.ReadMessage(); err != nil || string(got) != m {
			t.Fatalf("echo: got %q, %v, want %q", got, err, m)
		}
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break
		}
	}
	c.Close()

	waitMetrics(t, g,
		`rivet_gateway_http_requests_total{actor="counter",code="2xx",intent="action"} 3`,
		`rivet_gateway_http_requests_total{actor="counter",code="4xx",intent="action"} 1`,
		`rivet_gateway_http_requests_total{actor="counter",code="1xx",intent="connect"} 1`,
		`rivet_gateway_http_request_duration_seconds_count{intent="action"} 4`,
		`rivet_gateway_websocket_duration_seconds_count{actor="counter",intent="connect"} 1`,
		`rivet_gateway_websocket_messages_total{direction="in"} 2`,
		`rivet_gateway_websocket_messages_total{direction="out"} 2`,
		`rivet_gateway_websocket_bytes_total{direction="in"} 6`,
		`rivet_gateway_websocket_bytes_total{direction="out"} 6`,
		`rivet_gateway_websocket_closes_total{code="1000"} 1`,
		`rivet_gateway_websockets_open 0`,
		`rivet_gateway_gateway_overhead_seconds_count{intent="action"} 3`,
		`rivet_gateway_gateway_overhead_seconds_count{intent="connect"} 1`,
		`rivet_gateway_auth_outcomes_total{api_key_id="backend",issuer="none",method="api_key",reason="none",result="ok"} 4`,
		`rivet_gateway_auth_outcomes_total{api_key_id="none",issuer="none",method="none",reason="missing",result="unauthorized"} 1`,
		`go_goroutines `,
		`process_start_time_seconds `,
	)
}

// TestMetricsCountUpstreamErrors: an engine that is gone counts one
// unavailable upstream error per request and per upgrade, by intent.
func TestMetricsCountUpstreamErrors(t *testing.T) {
	engine := fakeEngine(t)
	g := testGateway(t, engine.URL, io.Discard)
	engine.Close()
	front := httptest.NewServer(g.echo)
	defer front.Close()

	target := "/gateway/counter/%s?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a"
	req, _ := http.NewRequest(http.MethodPost, front.URL+fmt.Sprintf(target, "action/increment"), strings.NewReader(`{}`))
	req.Header.Set("X-API-Key", testAPIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("action with the engine gone: %d, want 502", res.StatusCode)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"rivet"}}
	c, _, err := d.Dial("ws"+strings.TrimPrefix(front.URL, "http")+fmt.Sprintf(target, "connect"), http.Header{"X-Api-Key": {testAPIKey}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_, _, err = c.ReadMessage()
	c.Close()
	if ce, ok := err.(*websocket.CloseError); !ok || withoutRayID(t, ce).Text != "guard.service_unavailable" {
		t.Fatalf("upgrade with the engine gone ended with %v", err)
	}
	var body string
	for deadline := time.Now().Add(5 * time.Second); ; {
		body = scrape(t, g)
		if strings.Contains(body, `intent="connect",kind="unavailable"}`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{
		`rivet_gateway_upstream_errors_total{intent="action",kind="unavailable"} 1`,
		`rivet_gateway_upstream_errors_total{intent="connect",kind="unavailable"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(body, "rivet_gateway_upstream"))
		}
	}
}

func grepLines(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestAccessLogOmitsSecrets(t *testing.T) {
	engine := fakeEngine(t)
	tests := []struct {
		name       string
		token      string
		wantStatus int
		wantRay    string
	}{
		{name: "accepted", token: testAPIKey, wantStatus: http.StatusOK, wantRay: `"ray_id":"ray-from-engine"`},
		{name: "rejected", token: "not-a-valid-key-0123456789", wantStatus: http.StatusUnauthorized, wantRay: `"ray_id":"gw-`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			g := testGateway(t, engine.URL, &logs)
			req := httptest.NewRequest(http.MethodPost,
				"/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=a&rvt-token=secret", strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer "+tt.token)
			rec := httptest.NewRecorder()
			g.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got %d, want %d", rec.Code, tt.wantStatus)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, `"msg":"request"`) {
					line = l
				}
			}
			if line == "" {
				t.Fatalf("no access log line in:\n%s", logs.String())
			}
			for _, bad := range []string{tt.token, "secret", "rvt-key", "rvt-token"} {
				if strings.Contains(line, bad) {
					t.Errorf("access log line contains %q: %s", bad, line)
				}
			}
			for _, want := range []string{`"intent":"action"`, `"actor":"counter"`, `"method":"POST"`,
				`"status":` + strconv.Itoa(tt.wantStatus), tt.wantRay} {
				if !strings.Contains(line, want) {
					t.Errorf("access log line lacks %s: %s", want, line)
				}
			}
			if tt.wantStatus == http.StatusOK && !strings.Contains(line, `"api_key_id":"backend"`) {
				t.Errorf("access log line lacks the API key id: %s", line)
			}
		})
	}
}
