package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.URL = "https://api.rivet.dev/base"
	if err := ok.Validate("upstream"); err != nil {
		t.Fatalf("defaults: got %v, want nil", err)
	}

	bad := DefaultConfig()
	bad.URL = "ws://engine"
	bad.DialTimeout = -1
	bad.MaxIdleConns = -1
	bad.MaxRequestBodyBytes = -1
	bad.WebSocket.ReadLimit = 0
	bad.WebSocket.PongTimeout = 0
	bad.WebSocket.CloseGrace = 0
	bad.WebSocket.BufferSize = 10
	err := bad.Validate("upstream")
	if err == nil {
		t.Fatal("bad config: got nil, want errors")
	}
	for _, want := range []string{
		"upstream.url: scheme must be http or https",
		"upstream.dial_timeout: must not be negative",
		"upstream.max_idle_conns: must not be negative",
		"upstream.max_request_body_bytes: must not be negative",
		"upstream.websocket.read_limit: must be positive",
		"upstream.websocket.pong_timeout: must be positive when ping_interval is set",
		"upstream.websocket.close_grace: must be positive",
		"upstream.websocket.buffer_size: must be between",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors: got %q, want one starting %q", err, want)
		}
	}

	for _, u := range []string{"", "http://", "http://engine/?q=1", "http://user:pw@engine"} {
		c := DefaultConfig()
		c.URL = u
		if err := c.Validate("upstream"); err == nil || !strings.Contains(err.Error(), "upstream.url:") {
			t.Errorf("url %q: got %v, want an upstream.url error", u, err)
		}
	}
}

func TestNewCAFile(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{notPEM, filepath.Join(dir, "missing.pem")} {
		cfg := testConfig("https://engine")
		cfg.CAFile = f
		if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "upstream.ca_file") {
			t.Errorf("CAFile %s: got %v, want an upstream.ca_file error", filepath.Base(f), err)
		}
	}
}

func TestCheckToken(t *testing.T) {
	for _, tok := range []string{"pk_live_0123", "a.b-c_d~e", "gw/tok+1", "eyJhbGciOi.eyJzdWIi.sig=="} {
		if err := CheckToken(tok); err != nil {
			t.Errorf("CheckToken(%q): got %v, want nil", tok, err)
		}
	}
	for _, tok := range []string{"", "two words", "a,b", "tab\there", "new\nline", "caf\u00e9", "del\x7f"} {
		err := CheckToken(tok)
		if err == nil {
			t.Errorf("CheckToken(%q): got nil, want an error", tok)
			continue
		}
		if tok != "" && strings.Contains(err.Error(), tok) {
			t.Errorf("CheckToken(%q): the error %q quotes the token", tok, err)
		}
	}
	cfg := DefaultConfig()
	cfg.URL = "http://engine"
	cfg.Token = "a,b"
	if err := cfg.Validate("upstream"); err == nil || !strings.Contains(err.Error(), "upstream.token: byte 2") {
		t.Errorf("Validate with a comma in the token: got %v, want an upstream.token error", err)
	}
	if _, err := New(testConfig("http://engine"), Options{}); err != nil {
		t.Errorf("New without a token: %v", err)
	}
	bad := testConfig("http://engine")
	bad.Token = "x y"
	if _, err := New(bad, Options{}); err == nil || !strings.Contains(err.Error(), "upstream.token") {
		t.Errorf("New with a space in the token: got %v, want an upstream.token error", err)
	}
}

func TestConfigValidateNamespace(t *testing.T) {
	for ns, ok := range map[string]bool{"": true, "prod": true, "my-app-prod-abc1": true, "Zoë": true, " prod": false, "prod\n": false, "a\x00b": false, "\xff": false, strings.Repeat("n", 513): false} {
		c := DefaultConfig()
		c.URL, c.Namespace = "http://engine", ns
		err := c.Validate("upstream")
		if ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "upstream.namespace:") {
			t.Errorf("namespace %q: got %v, want valid=%v", ns, err, ok)
		}
	}
}
