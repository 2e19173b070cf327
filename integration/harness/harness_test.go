package harness

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestReservePorts(t *testing.T) {
	tests := []struct {
		name    string
		offsets []int
	}{
		{"single", []int{0}},
		{"upstream group", []int{0, 1, 10}},
	}
	seen := map[int]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 5 {
				base, err := reservePorts(tt.offsets...)
				if err != nil {
					t.Fatal(err)
				}
				for _, off := range tt.offsets {
					port := base + off
					if port < portMin || port >= portMax {
						t.Errorf("port: got %d, want in [%d, %d)", port, portMin, portMax)
					}
					if seen[port] {
						t.Errorf("port %d handed out twice", port)
					}
					seen[port] = true
					l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
					if err != nil {
						t.Errorf("listen on reserved port %d: got %v, want success", port, err)
						continue
					}
					l.Close()
				}
			}
		})
	}
}

func TestParseResults(t *testing.T) {
	tests := []struct {
		name        string
		stdout      string
		want        []CheckResult
		wantSummary string
	}{
		{
			name:   "results between noise",
			stdout: "level=warn msg=x\n{\"check\":\"a\",\"ok\":true,\"detail\":{\"n\":1}}\n{\"level\":30}\n{\"check\":\"b\",\"ok\":false,\"detail\":\"boom\"}\n1 passed, 1 failed\n",
			want: []CheckResult{
				{Check: "a", OK: true, Detail: json.RawMessage(`{"n":1}`)},
				{Check: "b", OK: false, Detail: json.RawMessage(`"boom"`)},
			},
			wantSummary: "1 passed, 1 failed",
		},
		{
			name:   "line without ok is ignored",
			stdout: "{\"check\":\"a\",\"detail\":null}\n{\"check\":\"b\",\"ok\":true,\"detail\":null}\n",
			want:   []CheckResult{{Check: "b", OK: true, Detail: json.RawMessage(`null`)}},
		},
		{name: "empty", stdout: ""},
		{name: "truncated json", stdout: "{\"check\":\"a\",\"ok\":tr\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, summary := parseResults(tt.stdout)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("results: got %+v, want %+v", got, tt.want)
			}
			if summary != tt.wantSummary {
				t.Errorf("summary: got %q, want %q", summary, tt.wantSummary)
			}
		})
	}
}

func TestIsScriptFile(t *testing.T) {
	tests := []struct {
		script string
		want   bool
	}{
		{"checks.mjs", true},
		{"/abs/x.js", true},
		{"x.cjs", true},
		{`console.log("a.mjs")`, false},
		{"import x from 'y';\nconsole.log(1)", false},
		{"checks", false},
	}
	for _, tt := range tests {
		if got := isScriptFile(tt.script); got != tt.want {
			t.Errorf("isScriptFile(%q): got %v, want %v", tt.script, got, tt.want)
		}
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"a\nb\nc\n", 2, "[... 1 lines cut ...]\nb\nc\n"},
		{"a\nb\nc", 1, "[... 2 lines cut ...]\nc"},
		{"", 3, ""},
		{strings.Repeat("x", maxLineLen+5) + "\ny", 5, strings.Repeat("x", maxLineLen) + " [...]\ny"},
	}
	for _, tt := range tests {
		if got := tail(tt.in, tt.n); got != tt.want {
			t.Errorf("tail(%q, %d): got %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestCheckUpstreamDir(t *testing.T) {
	empty := t.TempDir()
	err := checkUpstreamDir(empty)
	if err == nil || !strings.Contains(err.Error(), "npm install") {
		t.Errorf("checkUpstreamDir(empty dir): got %v, want an error telling to run npm install", err)
	}
	installed := t.TempDir()
	if err := os.MkdirAll(filepath.Join(installed, "node_modules", "rivetkit"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(installed, "node_modules", "rivetkit", "package.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkUpstreamDir(installed); err != nil {
		t.Errorf("checkUpstreamDir(installed): got %v, want nil", err)
	}
}

var fakeGateway struct {
	once sync.Once
	bin  string
	err  error
}

// buildFakeGateway builds testdata/fakegateway, a stand-in for rivet-gateway.
func buildFakeGateway(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	fakeGateway.once.Do(func() {
		fakeGateway.bin, fakeGateway.err = buildBinary(root, "./integration/harness/testdata/fakegateway", "fakegateway")
	})
	if fakeGateway.err != nil {
		t.Fatal(fakeGateway.err)
	}
	return fakeGateway.bin
}

// TestGatewayLifecycle checks placeholder substitution, readiness, Signal and Wait against the
// fake gateway.
func TestGatewayLifecycle(t *testing.T) {
	t.Parallel()
	g := startGateway(t, buildFakeGateway(t), "", `
server:
  listen: "{{LISTEN}}"
admin:
  listen: "{{ADMIN}}"
upstream:
  url: "http://127.0.0.1:1"
`)
	config, err := os.ReadFile(g.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{strings.TrimPrefix(g.URL, "http://"), strings.TrimPrefix(g.AdminURL, "http://")} {
		if !strings.Contains(string(config), want) {
			t.Errorf("config: got\n%s\nwant it to contain %s", config, want)
		}
	}
	if filepath.Dir(g.ConfigPath) == "" || strings.Contains(string(config), "{{") {
		t.Errorf("config: got\n%s\nwant no placeholders left", config)
	}
	if _, err := g.Wait(100 * time.Millisecond); err == nil {
		t.Errorf("Wait on a running gateway: got nil error, want timeout")
	}
	if err := g.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := g.Wait(10 * time.Second)
	if err != nil || code != 0 {
		t.Errorf("Wait after SIGTERM: got (%d, %v), want (0, nil)", code, err)
	}
	if !strings.Contains(g.Logs(), "shutting down") {
		t.Errorf("Logs: got %q, want it to contain %q", g.Logs(), "shutting down")
	}
	g.Stop(t) // no-op on an exited gateway
}

// TestThroughFakeGateway runs the real client through a plain reverse proxy in front of the
// real upstream: the whole chain the gateway tests use, and RunNode in both modes.
func TestThroughFakeGateway(t *testing.T) {
	t.Parallel()
	up := StartUpstream(t)
	g := startGateway(t, buildFakeGateway(t), "", `
server: {listen: "{{LISTEN}}"}
admin: {listen: "{{ADMIN}}"}
upstream: {url: "`+up.URL+`"}
`)
	results := RunChecks(t, g.URL, map[string]string{"ENC": "json"}, "stateless-action", "connect-event", "raw-websocket", "whoami-http")
	if got := len(results); got != 4 {
		t.Errorf("results: got %d, want 4", got)
	}

	out, err := RunNode(t, `
const res = await fetch(process.env.URL + "/health");
console.log(JSON.stringify({status: res.status, body: await res.json()}));
`, map[string]string{"URL": g.URL}, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var health struct {
		Status int `json:"status"`
		Body   struct {
			Runtime string `json:"runtime"`
		} `json:"body"`
	}
	if err := json.Unmarshal([]byte(out), &health); err != nil || health.Status != 200 || health.Body.Runtime != "engine" {
		t.Errorf("GET /health via RunNode: got %q (%v), want status 200 from the engine", out, err)
	}

	out, err = RunNode(t, "checks.mjs", map[string]string{"RIVET_ENDPOINT_URL": g.URL, "CHECKS": "whoami-http"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := parseResults(out); len(got) != 1 || !got[0].OK {
		t.Errorf("RunNode checks.mjs: got %q, want one passing result", out)
	}

	if _, err := RunNode(t, `process.exit(3)`, nil, 10*time.Second); err == nil {
		t.Errorf("RunNode exit 3: got nil error, want one")
	}
	if _, err := RunNode(t, `setTimeout(() => {}, 60000)`, nil, time.Second); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("RunNode over time: got %v, want a timeout error", err)
	}
}
