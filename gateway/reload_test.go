package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

const (
	keyA = "reload-key-a-0123456789abcdef0123456789"
	keyB = "reload-key-b-0123456789abcdef0123456789"
)

// reloadConfig is a gateway config in front of engineURL accepting the
// given API keys (id = the key's sixth character: a, b), plus extra YAML.
func reloadConfig(engineURL string, keys []string, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server: {listen: \"127.0.0.1:0\", shutdown_timeout: 5s}\nadmin: {listen: \"127.0.0.1:0\"}\n")
	fmt.Fprintf(&b, "upstream: {url: %q}\nreload: {debounce: 50ms}\nauth:\n  api_keys:\n    keys:\n", engineURL)
	for _, k := range keys {
		sum := sha256.Sum256([]byte(k))
		fmt.Fprintf(&b, "      - {id: %s, sha256: %s}\n", k[11:12], hex.EncodeToString(sum[:]))
	}
	b.WriteString(extra)
	return b.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// served is a gateway serving on loopback, shut down at cleanup.
type served struct {
	*Gateway
	url, admin string
	logs       *syncbuf.Buffer
}

func serveFile(t *testing.T, path string) *served {
	t.Helper()
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	g, err := New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(pub, adm) }()
	t.Cleanup(func() {
		_ = g.Shutdown(context.Background())
		<-done
	})
	return &served{Gateway: g, url: "http://" + pub.Addr().String(), admin: "http://" + adm.Addr().String(), logs: logs}
}

const actionPath = "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k"

// status sends one action with key as bearer token.
func (s *served) status(t *testing.T, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+actionPath, strings.NewReader(`{"args":[]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// dial opens a proxied WebSocket with key and checks it echoes.
func (s *served) dial(t *testing.T, key string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k"
	c, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + key}, "Sec-WebSocket-Protocol": {"rivet"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	echoOK(t, c)
	return c
}

func echoOK(t *testing.T, c *websocket.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "ping" {
		t.Fatalf("echo = %q, %v", msg, err)
	}
}

// withoutRayID checks that a close the gateway sent carries its ray id,
// "group.code#gw-…" as the engine's closes read, and returns the close
// with the reason alone.
func withoutRayID(t *testing.T, ce *websocket.CloseError) *websocket.CloseError {
	t.Helper()
	reason, ray := rivet.SplitRayID(ce.Text)
	if !strings.HasPrefix(ray, "gw-") {
		t.Errorf("close %d %q: want the reason followed by #gw-<ray id>", ce.Code, ce.Text)
	}
	return &websocket.CloseError{Code: ce.Code, Text: reason}
}

// closedWith reads from c until it closes and returns the close error.
func closedWith(t *testing.T, c *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 100 {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok {
			t.Fatalf("socket ended with %v, want a close frame", err)
		}
		return withoutRayID(t, ce)
	}
	t.Fatal("no close after 100 messages")
	return nil
}

func TestReloadSwapsConfigAndRevalidatesWebSockets(t *testing.T) {
	engine := fakeEngine(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, path, reloadConfig(engine.URL, []string{keyA, keyB}, ""))
	s := serveFile(t, path)

	wsA, wsB := s.dial(t, keyA), s.dial(t, keyB)
	if got := s.status(t, keyA); got != http.StatusOK {
		t.Fatalf("key a before reload: %d", got)
	}

	writeFile(t, path, reloadConfig(engine.URL, []string{keyB}, ""))
	if err := s.Reload(path, TriggerSignal); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got := s.status(t, keyA); got != http.StatusUnauthorized {
		t.Errorf("key a after its removal: %d, want 401", got)
	}
	if got := s.status(t, keyB); got != http.StatusOK {
		t.Errorf("key b after reload: %d, want 200", got)
	}
	if ce := closedWith(t, wsA); ce.Code != websocket.CloseInternalServerErr || ce.Text != "auth.unauthorized" {
		t.Errorf("revoked key's socket closed with %d %q, want 1011 auth.unauthorized", ce.Code, ce.Text)
	}
	echoOK(t, wsB) // the other socket is untouched

	// The client has the close frame before the gateway is done with the
	// socket: the session ends (and leaves the open count) once the
	// engine's leg has closed too.
	waitMetrics(t, s.Gateway,
		`rivet_gateway_config_reloads_total{result="success",trigger="signal"} 1`,
		`rivet_gateway_config_last_reload_successful 1`,
		`rivet_gateway_websocket_revalidation_closes_total 1`,
		`rivet_gateway_websockets_open 1`,
	)
}

func TestReloadRejectsBadFileAndKeepsRunningConfig(t *testing.T) {
	engine := fakeEngine(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	good := reloadConfig(engine.URL, []string{keyA}, "")
	writeFile(t, path, good)
	s := serveFile(t, path)
	ws := s.dial(t, keyA)

	tests := []struct {
		name, content, wantErr string
	}{
		{"unknown key", good + "bogus: 1\n", "bogus"},
		{"invalid value", strings.Replace(good, "debounce: 50ms", "debounce: -1s", 1), "reload.debounce"},
		{"not yaml", "server: [\n", "yaml"},
		{"restart-only change", strings.Replace(good, "shutdown_timeout: 5s", "shutdown_timeout: 6s", 1), "server.shutdown_timeout"},
		{"missing key file", strings.Replace(good, "    keys:\n", "    file: /nonexistent/keys.yaml\n    keys:\n", 1), "/nonexistent/keys.yaml"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, path, tt.content)
			err := s.Reload(path, TriggerSignal)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("reload error = %v, want one mentioning %q", err, tt.wantErr)
			}
			if got := s.status(t, keyA); got != http.StatusOK {
				t.Errorf("after a rejected reload key a gets %d, want 200", got)
			}
			echoOK(t, ws)
			m := scrape(t, s.Gateway)
			for _, want := range []string{
				fmt.Sprintf(`rivet_gateway_config_reloads_total{result="failure",trigger="signal"} %d`, i+1),
				`rivet_gateway_config_last_reload_successful 0`,
			} {
				if !strings.Contains(m, want+"\n") {
					t.Errorf("metrics lack %s", want)
				}
			}
		})
	}
	if !strings.Contains(s.logs.String(), "configuration reload rejected") {
		t.Error("rejections are not logged")
	}
}

// TestReloadNewUpstreamKeepsOldWebSockets: a reload that changes the
// upstream moves new connections to it while sockets on the old one stay
// open, and shutdown still closes those with ws.going_away.
func TestReloadNewUpstreamKeepsOldWebSockets(t *testing.T) {
	e1, e2 := fakeEngine(t), fakeEngine(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, path, reloadConfig(e1.URL, []string{keyA}, ""))
	s := serveFile(t, path)
	old := s.dial(t, keyA)

	writeFile(t, path, reloadConfig(e2.URL, []string{keyA}, ""))
	if err := s.Reload(path, TriggerSignal); err != nil {
		t.Fatal(err)
	}
	e1.Config.Handler = http.NotFoundHandler() // new requests must not reach e1
	if got := s.status(t, keyA); got != http.StatusOK {
		t.Errorf("action after the upstream moved: %d", got)
	}
	echoOK(t, old)
	nw := s.dial(t, keyA)
	if n := s.OpenWebSockets(); n != 2 {
		t.Errorf("OpenWebSockets = %d, want 2 (one per proxy)", n)
	}
	go func() { _ = s.Shutdown(context.Background()) }()
	for _, c := range []*websocket.Conn{old, nw} {
		if ce := closedWith(t, c); ce.Code != websocket.CloseGoingAway || ce.Text != "ws.going_away" {
			t.Errorf("shutdown closed a socket with %d %q, want 1001 ws.going_away", ce.Code, ce.Text)
		}
	}
}

// kubeVolume lays out dir as kubelet does for a ConfigMap or Secret
// volume: the data in a timestamped directory, ..data pointing at it, and
// each file a symlink through ..data. Calling it again swaps atomically.
func kubeVolume(t *testing.T, dir string, gen int, files map[string]string) {
	t.Helper()
	ts := filepath.Join(dir, fmt.Sprintf("..2026_11_25_%02d", gen))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		writeFile(t, filepath.Join(ts, name), content)
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// TestWatchReloadsOnKubernetesVolumeSwap: the config in a ConfigMap-style
// volume and the API keys in a Secret-style one; swapping either reloads.
func TestWatchReloadsOnKubernetesVolumeSwap(t *testing.T) {
	engine := fakeEngine(t)
	cmDir, secDir := t.TempDir(), t.TempDir()
	keysFile := filepath.Join(secDir, "keys.yaml")
	keysYAML := func(keys ...string) string {
		var b strings.Builder
		for _, k := range keys {
			sum := sha256.Sum256([]byte(k))
			fmt.Fprintf(&b, "- {id: file-%s, sha256: %s}\n", k[11:12], hex.EncodeToString(sum[:]))
		}
		return b.String()
	}
	// file_reload 0: only the gateway's watcher can notice the key change.
	cfgYAML := reloadConfig(engine.URL, nil, "") + fmt.Sprintf("    file: %q\n    file_reload: 0s\n", keysFile)
	cfgYAML = strings.Replace(cfgYAML, "    keys:\n", "", 1)
	kubeVolume(t, secDir, 1, map[string]string{"keys.yaml": keysYAML(keyA)})
	kubeVolume(t, cmDir, 1, map[string]string{"config.yaml": cfgYAML})
	path := filepath.Join(cmDir, "config.yaml")
	s := serveFile(t, path)
	startWatch(t, s, path)
	if got := s.status(t, keyA); got != http.StatusOK {
		t.Fatalf("key a at start: %d", got)
	}
	ws := s.dial(t, keyA)

	waitStatus := func(key string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for got := s.status(t, key); got != want; got = s.status(t, key) {
			if time.Now().After(deadline) {
				t.Fatalf("key %s: status %d, want %d after the swap", key[11:12], got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// A Secret update: key a rotated out, key b in.
	kubeVolume(t, secDir, 2, map[string]string{"keys.yaml": keysYAML(keyB)})
	waitStatus(keyB, http.StatusOK)
	waitStatus(keyA, http.StatusUnauthorized)
	if ce := closedWith(t, ws); ce.Text != "auth.unauthorized" {
		t.Errorf("rotated-out key's socket closed with %q", ce.Text)
	}

	// A ConfigMap update: a bad config is rejected and the old one kept;
	// fixing it applies.
	kubeVolume(t, cmDir, 2, map[string]string{"config.yaml": cfgYAML + "bogus: true\n"})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrape(t, s.Gateway), `rivet_gateway_config_reloads_total{result="failure",trigger="watch"} 1`) {
		if time.Now().After(deadline) {
			t.Fatal("the bad ConfigMap was never tried")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitStatus(keyB, http.StatusOK)
	kubeVolume(t, cmDir, 3, map[string]string{"config.yaml": strings.Replace(cfgYAML, "reload: {debounce: 50ms}", "reload: {debounce: 50ms}\ncors: {allowed_origins: [\"https://app.example\"]}", 1)})
	deadline = time.Now().Add(10 * time.Second)
	for len(s.live.Load().cfg.CORS.AllowedOrigins) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fixed ConfigMap was never applied")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reload counts a reload after swapping it in: wait for the count too.
	m := waitMetrics(t, s.Gateway,
		`rivet_gateway_config_reloads_total{result="success",trigger="watch"} 2`,
		`rivet_gateway_config_last_reload_successful 1`,
	)
	// Keys from the keys file are labelled by their ids, not "other".
	if !strings.Contains(m, `rivet_gateway_auth_outcomes_total{api_key_id="file-b",issuer="none",method="api_key",reason="none",result="ok"}`) {
		t.Errorf("no auth outcome labelled with the file key's id:\n%s", grepLines(m, "rivet_gateway_auth_outcomes_total"))
	}
}

func TestDrainTurnsUnreadyButServes(t *testing.T) {
	engine := fakeEngine(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, path, strings.Replace(reloadConfig(engine.URL, []string{keyA}, ""), "shutdown_timeout: 5s", "shutdown_timeout: 5s, drain_delay: 300ms", 1))
	s := serveFile(t, path)
	drained := make(chan struct{})
	start := time.Now()
	go func() { s.Drain(context.Background()); close(drained) }()
	deadline := time.Now().Add(5 * time.Second)
	for !s.draining.Load() {
		if time.Now().After(deadline) {
			t.Fatal("never draining")
		}
		time.Sleep(time.Millisecond)
	}
	resp, err := http.Get(s.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, s.url+actionPath, strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+keyA)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("request while draining: %d, Connection: close = %v; want 200 and close", resp.StatusCode, resp.Close)
	}
	<-drained
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Drain returned after %v, before drain_delay", d)
	}
}

func TestRestartOnlyAndReferencedFiles(t *testing.T) {
	a := DefaultConfig()
	b := a
	b.Server.Listen, b.Admin.Pprof, b.Metrics.ActorNames = ":8081", true, []string{"x"}
	b.Server.TLSCertFile, b.Server.TLSKeyFile = "", ""
	err := restartOnly(a, b)
	for _, want := range []string{"server.listen", "admin.pprof", "metrics.actor_names"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("restartOnly error %v lacks %s", err, want)
		}
	}
	c := a
	c.CORS.AllowedOrigins = []string{"https://x"}
	if err := restartOnly(a, c); err != nil {
		t.Errorf("a CORS change needs no restart: %v", err)
	}

	d := DefaultConfig()
	d.Server.TLSCertFile, d.Server.TLSKeyFile = "/tls/crt", "/tls/key"
	d.Auth.APIKeys.File = "/keys.yaml"
	d.Params.HTTP.CAFile = "/ca.pem"
	got := referencedFiles(d)
	for _, want := range []string{"/tls/crt", "/tls/key", "/keys.yaml", "/ca.pem"} {
		if !slices.Contains(got, want) {
			t.Errorf("referencedFiles = %v, lacks %s", got, want)
		}
	}
}

// selfSigned writes a fresh self-signed certificate for 127.0.0.1 to
// certFile and keyFile and returns its serial number.
func selfSigned(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "rivet-gateway-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})))
}

// TestReloadRotatesTLSCertificate: new handshakes after a reload present
// the new certificate; the listener is never restarted.
func TestReloadRotatesTLSCertificate(t *testing.T) {
	engine := fakeEngine(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	selfSigned(t, certFile, keyFile, 1)
	path := filepath.Join(dir, "config.yaml")
	cfg := strings.Replace(reloadConfig(engine.URL, []string{keyA}, ""), "shutdown_timeout: 5s",
		fmt.Sprintf("shutdown_timeout: 5s, tls_cert_file: %q, tls_key_file: %q", certFile, keyFile), 1)
	writeFile(t, path, cfg)
	s := serveFile(t, path)
	addr := strings.TrimPrefix(s.url, "http://")

	serial := func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test checks which certificate is served
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 1 {
		t.Fatalf("serial before rotation = %d, want 1", got)
	}
	selfSigned(t, certFile, keyFile, 2)
	if got := serial(); got != 1 {
		t.Errorf("serial before the reload = %d, want 1 (read at load time)", got)
	}
	if err := s.Reload(path, TriggerSignal); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != 2 {
		t.Errorf("serial after the reload = %d, want 2", got)
	}

	writeFile(t, keyFile, "not a key")
	if err := s.Reload(path, TriggerSignal); err == nil || !strings.Contains(err.Error(), "server.tls_cert_file") {
		t.Errorf("reload with a broken key = %v, want a server.tls_cert_file error", err)
	}
	if got := serial(); got != 2 {
		t.Errorf("serial after a rejected reload = %d, want 2", got)
	}
}

// TestReloadRotatesUpstreamTokenFile: the namespace token read from
// upstream.token_file changes on reload, without a restart.
func TestReloadRotatesUpstreamTokenFile(t *testing.T) {
	tokens := make(chan string, 4)
	engine := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens <- r.Header.Get("X-Rivet-Token")
		_, _ = io.WriteString(w, `{"output":1}`)
	}))
	defer engine.Close()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "rivet-token")
	writeFile(t, tokenFile, "token-one\n")
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, strings.Replace(reloadConfig(engine.URL, []string{keyA}, ""),
		"upstream: {url: ", fmt.Sprintf("upstream: {token_file: %q, url: ", tokenFile), 1))
	checkSecretFileRotates(t, serveFile(t, path), path, tokenFile, "upstream.token_file", tokens, "token-one", "token-two")
}

// checkSecretFileRotates drives the rotation of file, which holds a secret
// the gateway sends (got receives it, one value per action): it starts as
// one; after the file is rewritten with two and the gateway reloaded, two
// is sent; an emptied file is rejected by the reload with an error naming
// key, and two is still sent.
func checkSecretFileRotates(t *testing.T, s *served, path, file, key string, got <-chan string, one, two string) {
	t.Helper()
	sent := func() string {
		t.Helper()
		if status := s.status(t, keyA); status != http.StatusOK {
			t.Fatalf("action: %d", status)
		}
		select {
		case v := <-got:
			return v
		case <-time.After(5 * time.Second):
			t.Fatal("the secret was not sent")
			return ""
		}
	}
	if v := sent(); v != one {
		t.Fatalf("sent %q, want %q", v, one)
	}
	writeFile(t, file, two+"\n")
	if err := s.Reload(path, TriggerSignal); err != nil {
		t.Fatal(err)
	}
	if v := sent(); v != two {
		t.Errorf("after the reload sent %q, want %q", v, two)
	}
	writeFile(t, file, "")
	if err := s.Reload(path, TriggerSignal); err == nil || !strings.Contains(err.Error(), key) {
		t.Errorf("reload with an empty file = %v, want an error naming %s", err, key)
	}
	if v := sent(); v != two {
		t.Errorf("after a rejected reload sent %q, want %q", v, two)
	}
}

// TestReloadRotatesParamsHeaderFile: a params service credential read from
// params.http.header_files changes on reload (the watcher reloads when a
// referenced file changes), without a restart; an empty file is rejected.
func TestReloadRotatesParamsHeaderFile(t *testing.T) {
	auths := make(chan string, 4)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auths <- r.Header.Get("Authorization")
		_, _ = io.WriteString(w, `{"role":"viewer"}`)
	}))
	defer svc.Close()
	engine := fakeEngine(t)
	dir := t.TempDir()
	authFile := filepath.Join(dir, "params-authorization")
	writeFile(t, authFile, "Bearer one\n")
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, reloadConfig(engine.URL, []string{keyA}, fmt.Sprintf(
		"params:\n  source: http\n  http: {url: %q, header_files: {Authorization: %q}}\n", svc.URL, authFile)))
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(referencedFiles(cfg), authFile) {
		t.Fatalf("referencedFiles lacks %s: the watcher would not see it change", authFile)
	}
	checkSecretFileRotates(t, serveFile(t, path), path, authFile, "params.http.header_files.Authorization", auths, "Bearer one", "Bearer two")
}

func TestReadinessWithoutUpstream(t *testing.T) {
	for _, tt := range []struct {
		upstream bool
		want     int
	}{{true, http.StatusServiceUnavailable}, {false, http.StatusOK}} {
		engine := fakeEngine(t)
		path := filepath.Join(t.TempDir(), "config.yaml")
		writeFile(t, path, strings.Replace(reloadConfig(engine.URL, []string{keyA}, ""), `admin: {listen: "127.0.0.1:0"}`,
			fmt.Sprintf(`admin: {listen: "127.0.0.1:0", readiness_upstream: %v}`, tt.upstream), 1))
		s := serveFile(t, path)
		engine.Close()
		resp, err := http.Get(s.admin + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("readiness_upstream %v, engine down: /readyz = %d, want %d", tt.upstream, resp.StatusCode, tt.want)
		}
	}
}

// TestReadinessWaitsForJWKS: with a JWKS issuer whose endpoint is down from
// the start, every token of it would get 401 unknown_key: /readyz answers
// 503 naming the issuer until a refresh loads the key set, the change is
// logged both ways, and readiness_jwks: false turns the check off.
func TestReadinessWaitsForJWKS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, err := key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwk := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256","x":%q,"y":%q}]}`, b64(point[1:33]), b64(point[33:]))
	var up atomic.Bool
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, jwk)
	}))
	t.Cleanup(jwks.Close)
	engine := fakeEngine(t)
	for _, check := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "config.yaml")
		writeFile(t, path, strings.Replace(reloadConfig(engine.URL, []string{keyA}, fmt.Sprintf(`  jwt:
    issuers:
      - {name: idp, issuer: "https://idp.test/", algorithms: [ES256], jwks_url: %q, jwks_refresh: 50ms}
`, jwks.URL)), `admin: {listen: "127.0.0.1:0"}`,
			fmt.Sprintf(`admin: {listen: "127.0.0.1:0", readiness_upstream: false, readiness_jwks: %v}`, check), 1))
		up.Store(false)
		s := serveFile(t, path)
		code, body := getBody(t, s.admin+"/readyz")
		if !check {
			if code != http.StatusOK {
				t.Errorf("readiness_jwks false, JWKS down: /readyz = %d %q, want 200", code, body)
			}
			continue
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "idp") {
			t.Fatalf("JWKS down: /readyz = %d %q, want 503 naming issuer idp", code, body)
		}
		up.Store(true)
		deadline := time.Now().Add(10 * time.Second)
		for code != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatalf("JWKS up: /readyz still %d %q after 10s", code, body)
			}
			time.Sleep(10 * time.Millisecond)
			code, body = getBody(t, s.admin+"/readyz")
		}
		logs := s.logs.String()
		notReady, ready := strings.Index(logs, `"msg":"gateway not ready"`), strings.Index(logs, `"msg":"gateway ready"`)
		if notReady < 0 || ready < notReady || !strings.Contains(logs, "JWKS never loaded") {
			t.Errorf("logs: want \"gateway not ready\" (with the reason) then \"gateway ready\", got:\n%s", logs)
		}
		if n := strings.Count(logs, `"msg":"gateway not ready"`); n != 1 {
			t.Errorf("logged \"gateway not ready\" %d times, want once (only changes are logged)", n)
		}
		_, metrics := getBody(t, s.admin+"/metrics")
		for _, want := range []string{`rivet_gateway_jwks_fetches_total{issuer="idp",result="failure"}`,
			`rivet_gateway_jwks_fetches_total{issuer="idp",result="success"}`, `rivet_gateway_jwks_keys{issuer="idp"} 1`,
			`rivet_gateway_jwks_last_success_timestamp_seconds{issuer="idp"}`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	}
}

// getBody GETs u and returns the status and body.
func getBody(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWatchSeesChangesBeforeItStarts: a referenced file, or the config
// file itself, that changes after the running configuration was loaded
// but before Watch begins is reloaded at once, not taken as the starting
// point (which would leave the gateway on the old content until the next
// change).
func TestWatchSeesChangesBeforeItStarts(t *testing.T) {
	for _, what := range []string{"keys file", "config file"} {
		t.Run(what, func(t *testing.T) {
			engine := fakeEngine(t)
			dir := t.TempDir()
			keysFile := filepath.Join(dir, "keys.yaml")
			keyLine := func(k string) string {
				sum := sha256.Sum256([]byte(k))
				return fmt.Sprintf("- {id: file-%s, sha256: %s}\n", k[11:12], hex.EncodeToString(sum[:]))
			}
			writeFile(t, keysFile, keyLine(keyA))
			cfgYAML := strings.Replace(reloadConfig(engine.URL, nil, "")+fmt.Sprintf("    file: %q\n    file_reload: 0s\n", keysFile), "    keys:\n", "", 1)
			path := filepath.Join(dir, "config.yaml")
			writeFile(t, path, cfgYAML)
			s := serveFile(t, path)
			if got := s.status(t, keyB); got != http.StatusUnauthorized {
				t.Fatalf("key b before the change: %d, want 401", got)
			}
			// The change lands before the watch begins.
			if what == "keys file" {
				writeFile(t, keysFile, keyLine(keyA)+keyLine(keyB))
			} else {
				writeFile(t, path, strings.Replace(cfgYAML, "    file: ", "    keys:\n"+"      - {id: b, sha256: "+sha256Hex(keyB)+"}\n    file: ", 1))
			}
			startWatch(t, s, path)
			deadline := time.Now().Add(10 * time.Second)
			for got := s.status(t, keyB); got != http.StatusOK; got = s.status(t, keyB) {
				if time.Now().After(deadline) {
					t.Fatalf("key b: status %d 10 s after Watch began, want 200 (the change before it was missed)", got)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// startWatch runs s.Watch on path until the test ends.
func startWatch(t *testing.T, s *served, path string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- s.Watch(ctx, path) }()
	t.Cleanup(func() {
		cancel()
		if err := <-watched; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
}
