package gateway

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
)

// Each file the configuration references is rotated here (or in
// reload_test.go) the way an operator rotates it: the file is rewritten,
// the far side (engine, params service, token issuer) starts wanting the
// new one, requests fail until the reload, and succeed after it; a broken
// file is then refused by name. TestEveryFileKeyHasARotationTest keeps the
// list complete.

// fileKeyTests names, for every *_file key of Config, the test that rotates
// it.
var fileKeyTests = map[string]string{
	"server.tls_cert_file":               "TestReloadRotatesTLSCertificate",
	"server.tls_key_file":                "TestReloadRotatesTLSCertificate",
	"upstream.token_file":                "TestReloadRotatesUpstreamTokenFile",
	"upstream.ca_file":                   "TestReloadRotatesUpstreamCA",
	"auth.jwt.issuers[].secret_file":     "TestReloadRotatesJWTKeyFiles",
	"auth.jwt.issuers[].public_key_file": "TestReloadRotatesJWTKeyFiles",
	"auth.api_keys.file":                 "TestWatchReloadsOnKubernetesVolumeSwap",
	"params.http.header_files.*":         "TestReloadRotatesParamsHeaderFile",
	"params.http.ca_file":                "TestReloadRotatesParamsCA",
	"params.http.cert_file":              "TestReloadRotatesParamsClientCertificate",
	"params.http.key_file":               "TestReloadRotatesParamsClientCertificate",
}

// TestEveryFileKeyHasARotationTest: a new *_file key fails here until a
// test rotates it (fileKeyTests), so no file is read once and forgotten.
func TestEveryFileKeyHasARotationTest(t *testing.T) {
	var keys []string
	var walk func(ty reflect.Type, path, key string)
	walk = func(ty reflect.Type, path, key string) {
		switch ty.Kind() {
		case reflect.Struct:
			for i := range ty.NumField() {
				if f := ty.Field(i); f.IsExported() {
					name := yamlName(f)
					walk(f.Type, strings.TrimPrefix(path+"."+name, "."), name)
				}
			}
		case reflect.Slice:
			walk(ty.Elem(), path+"[]", key)
		case reflect.Pointer:
			walk(ty.Elem(), path, key)
		case reflect.Map:
			if strings.HasSuffix(key, "_files") {
				keys = append(keys, path+".*")
			}
		case reflect.String:
			if key == "file" || strings.HasSuffix(key, "_file") {
				keys = append(keys, path)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", "")

	var src strings.Builder
	tests, _ := filepath.Glob("*_test.go")
	for _, f := range tests {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for _, k := range keys {
		name, ok := fileKeyTests[k]
		if !ok {
			t.Errorf("%s: no test rotates it; write one and list it in fileKeyTests", k)
		} else if !strings.Contains(src.String(), "func "+name+"(") {
			t.Errorf("%s: fileKeyTests names %s, which does not exist", k, name)
		}
	}
	for k := range fileKeyTests {
		if !slices.Contains(keys, k) {
			t.Errorf("fileKeyTests lists %s, which is no *_file key of Config", k)
		}
	}
}

// TestReloadRotatesUpstreamCA: the engine moves to a certificate from a
// new CA and upstream.ca_file to that CA. Until the reload, HTTP and
// WebSocket requests fail with unknown authority; the reload rebuilds the
// proxy (the ca_file path is unchanged, its content is not) and both
// work. A WebSocket opened before stays open on the replaced proxy.
func TestReloadRotatesUpstreamCA(t *testing.T) {
	checkGoroutines(t)
	ca1, ca2 := newTestCA(t, "engine CA 1"), newTestCA(t, "engine CA 2")
	engine := startTLSService(t, (&recordingEngine{}).handler(), ca1.issue(t, "engine").tls)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "engine-ca.pem")
	writeFile(t, caFile, ca1.pem)
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, strings.Replace(reloadConfig(engine.url, []string{keyA}, ""),
		"upstream: {url: ", fmt.Sprintf("upstream: {ca_file: %q, url: ", caFile), 1))
	s := serveFile(t, path)
	ws := s.dial(t, keyA)

	fileRotation{
		files:   []string{"upstream.ca_file"},
		rebuilt: map[string]string{"proxy": "rebuilt", "actor_resolver": "rebuilt", "params_client": "kept"},
		probes:  []func(*testing.T) error{s.actionErr, s.webSocketErr},
		cause:   "certificate signed by unknown authority",
		rotate: func(t *testing.T) {
			engine.cert.Store(new(ca2.issue(t, "engine").tls))
			writeFile(t, caFile, ca2.pem)
		},
		corrupt:    func(t *testing.T) { writeFile(t, caFile, "not a certificate\n") },
		corruptKey: "upstream.ca_file",
	}.check(t, s, path)

	echoOK(t, ws)
	// The probes' sockets are closed by now, but the gateway may not have
	// seen their ends yet.
	waitFor(t, "OpenWebSockets to count the one socket on the replaced proxy", func() bool { return s.OpenWebSockets() == 1 })
}

// TestReloadRotatesParamsCA: the params service moves to a certificate
// from a new CA and params.http.ca_file to that CA; fetches fail until the
// reload rebuilds the params client, and only it.
func TestReloadRotatesParamsCA(t *testing.T) {
	checkGoroutines(t)
	ca1, ca2 := newTestCA(t, "params CA 1"), newTestCA(t, "params CA 2")
	svc := startTLSService(t, paramsService(), ca1.issue(t, "params").tls)
	engine := fakeEngine(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "params-ca.pem")
	writeFile(t, caFile, ca1.pem)
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, reloadConfig(engine.URL, []string{keyA}, fmt.Sprintf(
		"params:\n  source: http\n  retry: {max_attempts: 1}\n  http: {url: %q, ca_file: %q}\n", svc.url, caFile)))
	s := serveFile(t, path)

	fileRotation{
		files:   []string{"params.http.ca_file"},
		rebuilt: map[string]string{"proxy": "kept", "actor_resolver": "kept", "params_client": "rebuilt"},
		probes:  []func(*testing.T) error{s.actionErr},
		cause:   "certificate signed by unknown authority",
		rotate: func(t *testing.T) {
			svc.cert.Store(new(ca2.issue(t, "params").tls))
			writeFile(t, caFile, ca2.pem)
		},
		corrupt:    func(t *testing.T) { writeFile(t, caFile, "not a certificate\n") },
		corruptKey: "params.http.ca_file",
	}.check(t, s, path)
}

// TestReloadRotatesParamsClientCertificate: the params service requires a
// client certificate and moves to trusting a new client CA; the gateway's
// params.http.cert_file and key_file are rewritten with a certificate from
// that CA. The service refuses the old one until the reload.
func TestReloadRotatesParamsClientCertificate(t *testing.T) {
	checkGoroutines(t)
	serverCA := newTestCA(t, "params server CA")
	client1, client2 := newTestCA(t, "client CA 1"), newTestCA(t, "client CA 2")
	svc := startTLSService(t, paramsService(), serverCA.issue(t, "params").tls)
	svc.clientCAs.Store(client1.pool())
	engine := fakeEngine(t)
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	writeFile(t, caFile, serverCA.pem)
	writeLeaf := func(l leaf) {
		writeFile(t, certFile, l.certPEM)
		writeFile(t, keyFile, l.keyPEM)
	}
	writeLeaf(client1.issue(t, "gateway"))
	path := filepath.Join(dir, "config.yaml")
	writeFile(t, path, reloadConfig(engine.URL, []string{keyA}, fmt.Sprintf(
		"params:\n  source: http\n  retry: {max_attempts: 1}\n  http: {url: %q, ca_file: %q, cert_file: %q, key_file: %q}\n",
		svc.url, caFile, certFile, keyFile)))
	s := serveFile(t, path)

	fileRotation{
		files:   []string{"params.http.cert_file", "params.http.key_file"},
		rebuilt: map[string]string{"proxy": "kept", "actor_resolver": "kept", "params_client": "rebuilt"},
		probes:  []func(*testing.T) error{s.actionErr},
		cause:   "remote error: tls",
		rotate: func(t *testing.T) {
			svc.clientCAs.Store(client2.pool())
			writeLeaf(client2.issue(t, "gateway"))
		},
		corrupt:    func(t *testing.T) { writeFile(t, keyFile, "not a key\n") },
		corruptKey: "params.http.cert_file",
	}.check(t, s, path)
}

// TestReloadRotatesJWTKeyFiles: an issuer's HMAC secret or public key,
// read from a file, rotates on reload: tokens signed with the new key are
// refused until then, accepted after. Authentication is rebuilt on every
// reload; the proxy and the params client are not.
func TestReloadRotatesJWTKeyFiles(t *testing.T) {
	hmacKey := func(gen int) []byte { return fmt.Appendf(nil, "hmac-secret-%d-0123456789abcdef0123456789", gen) }
	ecKeys, ecPEM := map[int]*ecdsa.PrivateKey{1: genKey(t), 2: genKey(t)}, map[int]string{}
	for gen, k := range ecKeys {
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		ecPEM[gen] = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	tests := []struct {
		name, key, alg string
		content        func(gen int) string
		sign           func(claims jwt.Claims, gen int) (string, error)
		broken         string
	}{
		{
			name: "secret_file", key: "secret_file", alg: "HS256",
			content: func(gen int) string { return string(hmacKey(gen)) + "\n" },
			sign: func(c jwt.Claims, gen int) (string, error) {
				return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(hmacKey(gen))
			},
			broken: "too-short\n",
		},
		{
			name: "public_key_file", key: "public_key_file", alg: "ES256",
			content: func(gen int) string { return ecPEM[gen] },
			sign: func(c jwt.Claims, gen int) (string, error) {
				return jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(ecKeys[gen])
			},
			broken: "not a key\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkGoroutines(t)
			engine := fakeEngine(t)
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "issuer-key")
			writeFile(t, keyFile, tt.content(1))
			path := filepath.Join(dir, "config.yaml")
			writeFile(t, path, reloadConfig(engine.URL, []string{keyA}, fmt.Sprintf(
				"  jwt:\n    issuers:\n      - {name: web, issuer: \"https://issuer.test\", algorithms: [%s], %s: %q}\n",
				tt.alg, tt.key, keyFile)))
			s := serveFile(t, path)

			gen := 1
			probe := func(t *testing.T) error {
				t.Helper()
				token, err := tt.sign(jwt.RegisteredClaims{
					Issuer: "https://issuer.test", Subject: "user-1",
					ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
				}, gen)
				if err != nil {
					t.Fatal(err)
				}
				if got := s.status(t, token); got != http.StatusOK {
					return fmt.Errorf("action with a token of key %d: got %d, want 200", gen, got)
				}
				return nil
			}
			fileRotation{
				files:   []string{"auth.jwt.issuers[0]." + tt.key},
				rebuilt: map[string]string{"proxy": "kept", "actor_resolver": "kept", "params_client": "kept"},
				probes:  []func(*testing.T) error{probe},
				cause:   "got 401",
				rotate: func(t *testing.T) {
					gen = 2
					writeFile(t, keyFile, tt.content(2))
				},
				corrupt:    func(t *testing.T) { writeFile(t, keyFile, tt.broken) },
				corruptKey: "auth.jwt.issuers[0]." + tt.key,
			}.check(t, s, path)
		})
	}
}

// TestReloadLogSaysWhatChanged: each reload's log line names the keys
// that changed (never their values) and says which of the proxy, the
// params client and the actor resolver were rebuilt; what did not change
// is kept.
func TestReloadLogSaysWhatChanged(t *testing.T) {
	checkGoroutines(t)
	e1, e2 := fakeEngine(t), fakeEngine(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	const static = "params: {source: static, static: {role: viewer}}\n"
	writeFile(t, path, reloadConfig(e1.URL, []string{keyA}, ""))
	s := serveFile(t, path)

	steps := []struct {
		name    string
		config  string
		changed []string
		rebuilt map[string]string
	}{
		{"nothing", reloadConfig(e1.URL, []string{keyA}, ""), nil,
			map[string]string{"proxy": "kept", "params_client": "kept", "actor_resolver": "kept"}},
		{"cors", reloadConfig(e1.URL, []string{keyA}, "cors: {allowed_origins: [\"https://app.example\"]}\n"), []string{"cors.allowed_origins"},
			map[string]string{"proxy": "kept", "params_client": "kept", "actor_resolver": "kept"}},
		{"actors", reloadConfig(e1.URL, []string{keyA}, "actors: {cache_ttl: 1m}\n"), []string{"actors.cache_ttl", "cors.allowed_origins"},
			map[string]string{"proxy": "kept", "params_client": "kept", "actor_resolver": "rebuilt"}},
		{"params", reloadConfig(e1.URL, []string{keyA}, "actors: {cache_ttl: 1m}\n"+static), []string{"params.source", "params.static"},
			map[string]string{"proxy": "kept", "params_client": "rebuilt", "actor_resolver": "kept"}},
		{"api key", reloadConfig(e1.URL, []string{keyA, keyB}, "actors: {cache_ttl: 1m}\n"+static), []string{"auth.api_keys.keys"},
			map[string]string{"proxy": "kept", "params_client": "kept", "actor_resolver": "kept"}},
		{"upstream", reloadConfig(e2.URL, []string{keyA, keyB}, "actors: {cache_ttl: 1m}\n"+static), []string{"upstream.url"},
			map[string]string{"proxy": "rebuilt", "params_client": "kept", "actor_resolver": "rebuilt"}},
	}
	for _, st := range steps {
		writeFile(t, path, st.config)
		if err := s.Reload(path, TriggerSignal); err != nil {
			t.Fatalf("%s: reload: %v", st.name, err)
		}
		line := lastReloadLine(t, s.logs)
		if got := strings.Join(sortedStrings(line["changed"]), " "); got != strings.Join(slices.Sorted(slices.Values(st.changed)), " ") {
			t.Errorf("%s: changed = %q, want %q", st.name, got, st.changed)
		}
		if got := sortedStrings(line["files_changed"]); len(got) != 0 {
			t.Errorf("%s: files_changed = %q, want none", st.name, got)
		}
		for k, want := range st.rebuilt {
			if line[k] != want {
				t.Errorf("%s: %s = %v, want %s", st.name, k, line[k], want)
			}
		}
		if got := s.status(t, keyA); got != http.StatusOK {
			t.Errorf("%s: action after the reload: got %d, want 200", st.name, got)
		}
	}
	if strings.Contains(s.logs.String(), "viewer") {
		t.Error("a reload logged a configuration value")
	}
}

func TestChangedKeys(t *testing.T) {
	base := DefaultConfig()
	base.Auth.JWT.Issuers = []authn.IssuerConfig{{Name: "web", SecretFile: "/a"}, {Name: "app", Secret: "one"}}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"nothing", func(*Config) {}, []string{}},
		{"a field of a list element", func(c *Config) {
			c.Auth.JWT.Issuers = slices.Clone(c.Auth.JWT.Issuers)
			c.Auth.JWT.Issuers[0].SecretFile = "/b"
			c.Auth.JWT.Issuers[1].Secret = "two"
		}, []string{"auth.jwt.issuers[0].secret_file", "auth.jwt.issuers[1].secret"}},
		{"a longer list", func(c *Config) {
			c.Auth.JWT.Issuers = append(slices.Clone(c.Auth.JWT.Issuers), authn.IssuerConfig{Name: "new"})
		}, []string{"auth.jwt.issuers"}},
		{"a map and a nested field", func(c *Config) {
			c.Params.HTTP.Headers = map[string]string{"Authorization": "Bearer secret"}
			c.Upstream.WebSocket.PingInterval = time.Second
		}, []string{"upstream.websocket.ping_interval", "params.http.headers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base
			tt.change(&next)
			if got := changedKeys(base, next); !slices.Equal(got, tt.want) {
				t.Errorf("changedKeys = %q, want %q", got, tt.want)
			}
		})
	}
}

// fileRotation is the rotation of files the configuration references,
// checked against a gateway served from the config at path.
type fileRotation struct {
	// files are the YAML paths of the files rotate rewrites, as the reload
	// log's files_changed names them.
	files []string
	// rebuilt is what the reload log must say of each component, e.g.
	// {"proxy": "rebuilt"}.
	rebuilt map[string]string
	// probes each make a request that needs the files' current
	// generation, and return nil when it succeeds.
	probes []func(*testing.T) error
	// cause is in a probe's error, or in what the gateway logged during
	// it, when the probe fails after rotate and before the reload.
	cause string
	// rotate writes the files' next generation and makes the far side
	// (engine, params service, token issuer) want it.
	rotate func(*testing.T)
	// corrupt writes a file the next reload must refuse with an error
	// naming corruptKey.
	corrupt    func(*testing.T)
	corruptKey string
}

func (r fileRotation) check(t *testing.T, s *served, path string) {
	t.Helper()
	for i, p := range r.probes {
		if err := p(t); err != nil {
			t.Fatalf("probe %d before the rotation: %v", i, err)
		}
	}
	r.rotate(t)
	for i, p := range r.probes {
		logged := len(s.logs.String())
		err := p(t)
		switch {
		case err == nil:
			t.Errorf("probe %d after the rotation, before the reload: succeeded, want a failure (files are read at load time)", i)
		case r.cause != "" && !strings.Contains(err.Error(), r.cause) && !strings.Contains(s.logs.String()[logged:], r.cause):
			t.Errorf("probe %d before the reload failed with %v, and neither it nor the log says %q", i, err, r.cause)
		}
	}
	if err := s.Reload(path, TriggerSignal); err != nil {
		t.Fatalf("reload: %v", err)
	}
	line := lastReloadLine(t, s.logs)
	if got := sortedStrings(line["files_changed"]); !slices.Equal(got, r.files) {
		t.Errorf("reload log files_changed = %q, want %q", got, r.files)
	}
	if got := sortedStrings(line["changed"]); len(got) != 0 {
		t.Errorf("reload log changed = %q, want none: only file contents changed", got)
	}
	for k, want := range r.rebuilt {
		if line[k] != want {
			t.Errorf("reload log %s = %v, want %s", k, line[k], want)
		}
	}
	for i, p := range r.probes {
		if err := p(t); err != nil {
			t.Errorf("probe %d after the reload: %v", i, err)
		}
	}
	r.corrupt(t)
	if err := s.Reload(path, TriggerSignal); err == nil || !strings.Contains(err.Error(), r.corruptKey) {
		t.Errorf("reload with a broken file = %v, want an error naming %s", err, r.corruptKey)
	}
	for i, p := range r.probes {
		if err := p(t); err != nil {
			t.Errorf("probe %d after a rejected reload: %v", i, err)
		}
	}
}

// lastReloadLine is the last "configuration reloaded" line in logs (JSON).
func lastReloadLine(t *testing.T, logs *syncbuf.Buffer) map[string]any {
	t.Helper()
	var last map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "configuration reloaded" {
			last = line
		}
	}
	if last == nil {
		t.Fatal("no configuration reloaded line in the log")
	}
	return last
}

// sortedStrings is a JSON list of strings, sorted.
func sortedStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, s := range list {
		out = append(out, fmt.Sprint(s))
	}
	slices.Sort(out)
	return out
}

// actionErr sends one action with key a: nil when it gets 200.
func (s *served) actionErr(t *testing.T) error {
	t.Helper()
	if got := s.status(t, keyA); got != http.StatusOK {
		return fmt.Errorf("action: got %d, want 200", got)
	}
	return nil
}

// webSocketErr opens a WebSocket with key a and echoes one message
// through it: nil when that works. The socket is closed on return.
func (s *served) webSocketErr(t *testing.T) error {
	t.Helper()
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k"
	c, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + keyA}, "Sec-WebSocket-Protocol": {"rivet"}})
	if err != nil {
		return fmt.Errorf("websocket dial: %w", err)
	}
	resp.Body.Close()
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
		return fmt.Errorf("websocket write: %w", err)
	}
	if _, msg, err := c.ReadMessage(); err != nil {
		return fmt.Errorf("websocket read: %w", err)
	} else if string(msg) != "ping" {
		return fmt.Errorf("websocket echo: got %q, want ping", msg)
	}
	return nil
}

// paramsService answers every params request with {"role":"viewer"}.
func paramsService() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"role":"viewer"}`)
	})
}

// tlsService serves a handler over TLS on loopback with a certificate
// that may change between handshakes, and, once clientCAs holds a pool,
// requires a client certificate from it. Keep-alives are off, so every
// request is a new handshake that sees the current certificates.
type tlsService struct {
	*httptest.Server
	url       string // https://127.0.0.1:port
	cert      atomic.Pointer[tls.Certificate]
	clientCAs atomic.Pointer[x509.CertPool]
}

func startTLSService(t *testing.T, h http.Handler, cert tls.Certificate) *tlsService {
	t.Helper()
	s := &tlsService{Server: httptest.NewUnstartedServer(h)}
	s.cert.Store(&cert)
	// httptest's StartTLS would serve its own certificate to clients that
	// send no SNI (an IP address): the listener does the TLS instead.
	s.Listener = tls.NewListener(s.Listener, &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*s.cert.Load()}}
			if pool := s.clientCAs.Load(); pool != nil {
				c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
			}
			return c, nil
		},
	})
	s.Config.SetKeepAlivesEnabled(false)
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	s.Start()
	s.url = "https://" + s.Listener.Addr().String()
	t.Cleanup(s.Close)
	return s
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string // the CA certificate
}

// leaf is a certificate for 127.0.0.1 that serves and authenticates
// clients, with its key.
type leaf struct {
	tls             tls.Certificate
	certPEM, keyPEM string
}

var testSerial atomic.Int64

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := genKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(testSerial.Add(1)),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

// issue signs a new leaf named cn.
func (ca *testCA) issue(t *testing.T, cn string) leaf {
	t.Helper()
	key := genKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(testSerial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	l := leaf{
		certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		keyPEM:  string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})),
	}
	if l.tls, err = tls.X509KeyPair([]byte(l.certPEM), []byte(l.keyPEM)); err != nil {
		t.Fatal(err)
	}
	return l
}

// pool is a pool holding ca alone.
func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func genKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// waitFor waits, at most 5s, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkGoroutines fails the test when, once every later cleanup has run
// (the gateway's shutdown among them), more goroutines run than at the
// call. Call it first so its cleanup runs last. Tests in this package do
// not run in parallel, so the count is this test's.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := goruntime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for goruntime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines: got %d, want at most %d\n%s", goruntime.NumGoroutine(), base, buf[:goruntime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
