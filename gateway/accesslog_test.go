package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

const (
	jwtSecret  = "access-log-test-secret-0123456789abcdef"
	jwtIssuer  = "https://issuer.test/"
	counterKey = "?rvt-namespace=default&rvt-method=getOrCreate&rvt-key="
)

// securityGateway is a gateway in front of engineURL as a security team
// would run it: behind trusted proxies (10.0.0.0/8), JWTs from one issuer
// ("idp") bound to the counter keyed by their subject, and the API key
// "backend" (testAPIKey) allowed only actions on "reports". Its JSON logs
// go to logs.
func securityGateway(t *testing.T, engineURL string, logs io.Writer, trusted ...string) *Gateway {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Server.Listen, cfg.Admin.Listen, cfg.Upstream.URL = "127.0.0.1:0", "127.0.0.1:1", engineURL
	cfg.Server.TrustedProxies = trusted
	sum := sha256.Sum256([]byte(testAPIKey))
	cfg.Auth.APIKeys.Keys = []authn.APIKey{{ID: "backend", SHA256: hex.EncodeToString(sum[:]), Scopes: []string{"action:reports"}}}
	cfg.Auth.JWT.Issuers = []authn.IssuerConfig{{Name: "idp", Issuer: jwtIssuer, Algorithms: []string{"HS256"}, Secret: jwtSecret}}
	cfg.Auth.Rules = []authn.Rule{
		{Match: authn.Match{Actors: []string{"counter"}}, Methods: []string{"jwt"}, KeyBinding: &authn.KeyBinding{Index: 0, Claim: "sub"}},
		{Match: authn.Match{Actors: []string{"reports"}}, Scopes: []string{"action:reports"}},
	}
	cfg.Metrics.ActorNames = []string{"counter"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	g, err := New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}

func signJWT(t *testing.T, sub string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": jwtIssuer, "sub": sub, "exp": exp.Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix(),
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// accessLines returns the access-log lines in logs, decoded, without time,
// level and component.
func accessLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(logs, "\n") {
		if !strings.Contains(l, `"component":"access"`) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("access log line %q: %v", l, err)
		}
		for _, k := range []string{"time", "level", "component"} {
			delete(m, k)
		}
		out = append(out, m)
	}
	return out
}

// lastAccessLine waits for an access-log line and returns the last one.
func lastAccessLine(t *testing.T, logs *syncbuf.Buffer) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if ls := accessLines(t, logs.String()); len(ls) > 0 {
			return ls[len(ls)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access-log line in:\n%s", logs.String())
		}
	}
}

// dropMeasures checks that the duration keys present are non-negative
// numbers (milliseconds) and that there is no unitless one, then removes
// them and the byte counts, so the rest of a line compares exactly.
func dropMeasures(t *testing.T, line map[string]any) {
	t.Helper()
	for _, k := range []string{"duration_ms", "overhead_ms", "upstream_ms"} {
		if v, ok := line[k]; ok {
			if f, isNum := v.(float64); !isNum || f < 0 {
				t.Errorf("%s: got %v, want a number of milliseconds", k, v)
			}
			delete(line, k)
		}
	}
	if _, ok := line["duration_ms"]; ok {
		t.Error("duration_ms left")
	}
	for _, k := range []string{"duration", "bytes_in", "bytes_out"} {
		delete(line, k)
	}
}

func TestAccessLogClientIP(t *testing.T) {
	engine := startRecordingEngine(t)
	action := "/gateway/reports/action/run" + counterKey + "r"
	tests := []struct {
		name      string
		trusted   []string
		peer      string
		xff       []string
		forwarded string
		wantIP    string
		wantPeer  string // "" when the line must have no peer_ip
	}{
		{name: "no trusted proxies: spoofed header ignored", peer: "10.0.0.2:4000",
			xff: []string{"1.2.3.4"}, wantIP: "10.0.0.2"},
		{name: "untrusted peer: spoofed header ignored", trusted: []string{"10.0.0.0/8"}, peer: "198.51.100.9:4000",
			xff: []string{"10.0.0.5, 1.2.3.4"}, forwarded: "for=1.2.3.4", wantIP: "198.51.100.9"},
		{name: "one trusted proxy", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:4000",
			xff: []string{"203.0.113.5"}, wantIP: "203.0.113.5", wantPeer: "10.0.0.2"},
		{name: "chain of proxies, client's own list on the left", trusted: []string{"10.0.0.0/8", "192.0.2.0/24"}, peer: "10.0.0.2:4000",
			xff: []string{"6.6.6.6, 203.0.113.5, 192.0.2.10", "10.0.0.7"}, wantIP: "203.0.113.5", wantPeer: "10.0.0.2"},
		{name: "trusted proxy that sent no header", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:4000",
			wantIP: "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			g := securityGateway(t, engine.URL, &logs, tt.trusted...)
			req := httptest.NewRequest(http.MethodPost, action, strings.NewReader(`{}`))
			req.RemoteAddr = tt.peer
			req.Header.Set("X-API-Key", testAPIKey)
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if tt.forwarded != "" {
				req.Header.Set("Forwarded", tt.forwarded)
			}
			if got := g.echo.IPExtractor(req); got != tt.wantIP {
				t.Errorf("Echo's RealIP: got %s, want %s", got, tt.wantIP)
			}
			rec := httptest.NewRecorder()
			g.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("got %d %s, want 200", rec.Code, rec.Body)
			}
			line := lastAccessLine(t, &logs)
			dropMeasures(t, line)
			want := map[string]any{"msg": "request", "ray_id": "ray-from-engine", "client_ip": tt.wantIP,
				"intent": "action", "actor": "reports", "method": "POST", "status": 200.0,
				"auth": "api_key", "api_key_id": "backend"}
			if tt.wantPeer != "" {
				want["peer_ip"] = tt.wantPeer
			}
			if !reflect.DeepEqual(line, want) {
				t.Errorf("access log line:\ngot  %v\nwant %v", line, want)
			}
			recvd := engine.received()
			up := recvd[len(recvd)-1]
			if got := up.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != tt.wantIP {
				t.Errorf("engine's X-Forwarded-For: got %q, want just %s", got, tt.wantIP)
			}
			if got := up.Header.Get("Forwarded"); got != "" {
				t.Errorf("engine's Forwarded: got %q, want none", got)
			}
		})
	}
}

// TestAccessLogRejections: 401/403 lines carry the gateway's error,
// authn's reason, and the verified caller when there was one (on a 403:
// the subject or API key id, never the token); the answer's
// X-Rivet-Ray-Id is the line's ray_id.
func TestAccessLogRejections(t *testing.T) {
	engine := fakeEngine(t)
	alice := signJWT(t, "alice", time.Now().Add(time.Hour))
	expired := signJWT(t, "alice", time.Now().Add(-time.Hour))
	tests := []struct {
		name       string
		target     string
		header     []string
		wantStatus int
		want       map[string]any
	}{
		{
			name:   "403 key binding: subject and issuer",
			target: "/gateway/counter/action/increment" + counterKey + "bob", header: []string{"Authorization", "Bearer " + alice},
			wantStatus: http.StatusForbidden,
			want: map[string]any{"intent": "action", "actor": "counter", "status": 403.0, "error": "auth.forbidden",
				"auth_reason": "key_binding", "auth": "jwt", "subject": "alice", "issuer": "idp"},
		},
		{
			name:   "403 missing scope: API key id",
			target: "/gateway/reports/queue/jobs" + counterKey + "r", header: []string{"X-API-Key", testAPIKey},
			wantStatus: http.StatusForbidden,
			want: map[string]any{"intent": "queue", "actor": "reports", "status": 403.0, "error": "auth.forbidden",
				"auth_reason": "missing_scope", "auth": "api_key", "api_key_id": "backend"},
		},
		{
			name:   "403 method not allowed: the API key that tried",
			target: "/gateway/counter/action/increment" + counterKey + "alice", header: []string{"X-API-Key", testAPIKey},
			wantStatus: http.StatusForbidden,
			want: map[string]any{"intent": "action", "actor": "counter", "status": 403.0, "error": "auth.forbidden",
				"auth_reason": "method_not_allowed", "auth": "api_key", "api_key_id": "backend"},
		},
		{
			name:   "401 expired: no caller",
			target: "/gateway/counter/action/increment" + counterKey + "alice", header: []string{"Authorization", "Bearer " + expired},
			wantStatus: http.StatusUnauthorized,
			want: map[string]any{"intent": "action", "actor": "counter", "status": 401.0, "error": "auth.unauthorized",
				"auth_reason": "expired"},
		},
		{
			name:       "401 missing",
			target:     "/gateway/counter/action/increment" + counterKey + "alice",
			wantStatus: http.StatusUnauthorized,
			want: map[string]any{"intent": "action", "actor": "counter", "status": 401.0, "error": "auth.unauthorized",
				"auth_reason": "missing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			g := securityGateway(t, engine.URL, &logs)
			req := httptest.NewRequest(http.MethodPost, tt.target+"&rvt-token=query-secret", strings.NewReader(`{}`))
			req.RemoteAddr = "203.0.113.5:4000"
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			rec := httptest.NewRecorder()
			g.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			raw := logs.String()
			for _, secret := range []string{alice, expired, testAPIKey, "query-secret", jwtSecret} {
				if strings.Contains(raw, secret) {
					t.Errorf("the log contains a credential %.12q…:\n%s", secret, raw)
				}
			}
			line := lastAccessLine(t, &logs)
			ray := rec.Header().Get(rivet.HeaderRayID)
			if !strings.HasPrefix(ray, "gw-") || line["ray_id"] != ray {
				t.Errorf("ray id: answer has %q, line has %v; want the same gw- id", ray, line["ray_id"])
			}
			var body struct{ Metadata map[string]any }
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Metadata["reason"] != tt.want["auth_reason"] {
				t.Errorf("body %s: want metadata.reason %v, as logged", rec.Body, tt.want["auth_reason"])
			}
			dropMeasures(t, line)
			want := map[string]any{"msg": "request", "ray_id": ray, "client_ip": "203.0.113.5", "method": "POST"}
			for k, v := range tt.want {
				want[k] = v
			}
			if !reflect.DeepEqual(line, want) {
				t.Errorf("access log line:\ngot  %v\nwant %v", line, want)
			}
		})
	}
}

// TestAccessLogRefusedWebSocket: a WebSocket the gateway accepts only to
// close it is logged with the close code and reason it got, the error and
// the reason (and the caller, for a 403), not as status=101; the 101
// carries the line's ray id.
func TestAccessLogRefusedWebSocket(t *testing.T) {
	engine := fakeEngine(t)
	alice := signJWT(t, "alice", time.Now().Add(time.Hour))
	tests := []struct {
		name   string
		key    string
		header http.Header
		want   map[string]any
	}{
		{
			name: "no credential", key: "alice",
			want: map[string]any{"close_code": 1011.0, "close_reason": "auth.unauthorized", "error": "auth.unauthorized",
				"auth_reason": "missing"},
		},
		{
			name: "someone else's actor", key: "bob", header: http.Header{"Authorization": {"Bearer " + alice}},
			want: map[string]any{"close_code": 1011.0, "close_reason": "auth.forbidden", "error": "auth.forbidden",
				"auth_reason": "key_binding", "auth": "jwt", "subject": "alice", "issuer": "idp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			g := securityGateway(t, engine.URL, &logs)
			front := httptest.NewServer(g.echo)
			defer front.Close()
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"rivet", "rivet_encoding.json"}}
			c, res, err := d.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/gateway/counter/connect"+counterKey+tt.key, tt.header)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			ray := res.Header.Get(rivet.HeaderRayID)
			_, _, err = c.ReadMessage()
			c.Close()
			// The close reads "group.code#rayId", as the engine's; the log line
			// has the reason and the ray id apart.
			if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != 1011 || ce.Text != tt.want["close_reason"].(string)+"#"+ray {
				t.Fatalf("close: got %v, want 1011 %v#%s", err, tt.want["close_reason"], ray)
			}
			line := lastAccessLine(t, &logs)
			if !strings.HasPrefix(ray, "gw-") || line["ray_id"] != ray {
				t.Errorf("ray id: 101 has %q, line has %v; want the same gw- id", ray, line["ray_id"])
			}
			if _, ok := line["status"]; ok {
				t.Errorf("refused WebSocket logged with a status: %v", line)
			}
			for _, k := range []string{"messages_in", "messages_out"} {
				if line[k] != 0.0 {
					t.Errorf("%s: got %v, want 0", k, line[k])
				}
				delete(line, k)
			}
			dropMeasures(t, line)
			want := map[string]any{"msg": "websocket", "ray_id": ray, "client_ip": "127.0.0.1",
				"intent": "connect", "actor": "counter", "method": "GET"}
			for k, v := range tt.want {
				want[k] = v
			}
			if !reflect.DeepEqual(line, want) {
				t.Errorf("access log line:\ngot  %v\nwant %v", line, want)
			}
			if strings.Contains(logs.String(), alice) {
				t.Errorf("the log contains the token")
			}
		})
	}
}

// TestRayIDOnGatewayAnswers: every answer the gateway makes itself
// carries X-Rivet-Ray-Id, the ray id of its access-log line.
func TestRayIDOnGatewayAnswers(t *testing.T) {
	engine := fakeEngine(t)
	gone := fakeEngine(t)
	gone.Close()
	tests := []struct {
		name       string
		engine     string
		method     string
		target     string
		header     []string
		wantStatus int
		wantError  string
	}{
		{"no route", engine.URL, "GET", "/nowhere", nil, http.StatusNotFound, "guard.no_route"},
		{"invalid request", engine.URL, "POST", "/gateway/counter/action/x" + counterKey + "a",
			[]string{"X-Rivet-Conn-Params", "{not json"}, http.StatusBadRequest, "gateway.invalid_request"},
		{"unauthorized", engine.URL, "POST", "/gateway/counter/action/x" + counterKey + "a", nil, http.StatusUnauthorized, "auth.unauthorized"},
		{"engine gone", gone.URL, "POST", "/gateway/reports/action/run" + counterKey + "r",
			[]string{"X-API-Key", testAPIKey}, http.StatusBadGateway, "guard.service_unavailable"},
		{"preflight refused", engine.URL, "OPTIONS", "/gateway/counter/action/x" + counterKey + "a",
			[]string{"Origin", "https://evil.example", "Access-Control-Request-Method", "POST"}, http.StatusForbidden, "cors.origin_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncbuf.Buffer
			g := securityGateway(t, tt.engine, &logs)
			front := httptest.NewServer(g.echo)
			defer front.Close()
			req, _ := http.NewRequest(tt.method, front.URL+tt.target, strings.NewReader(`{}`))
			for i := 0; i+1 < len(tt.header); i += 2 {
				req.Header.Set(tt.header[i], tt.header[i+1])
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != tt.wantStatus || res.Header.Get(rivet.HeaderError) != tt.wantError {
				t.Fatalf("got %d %s, want %d %s", res.StatusCode, res.Header.Get(rivet.HeaderError), tt.wantStatus, tt.wantError)
			}
			ray := res.Header.Values(rivet.HeaderRayID)
			line := lastAccessLine(t, &logs)
			if len(ray) != 1 || !strings.HasPrefix(ray[0], "gw-") || line["ray_id"] != ray[0] {
				t.Errorf("X-Rivet-Ray-Id: got %q, line has %v; want one gw- id, the same", ray, line["ray_id"])
			}
			if line["error"] != tt.wantError {
				t.Errorf("error: got %v, want %s", line["error"], tt.wantError)
			}
		})
	}
}
