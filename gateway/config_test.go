package gateway

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/config"
)

// yamlPaths lists every key path of t, e.g. "upstream.websocket.read_limit".
func yamlPaths(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		*out = append(*out, p)
		yamlPaths(f.Type, p, out)
	}
}

// TestExampleDocumentsEveryKey: config.example.yaml names every key of the
// configuration (as a key or in a comment), so it stays the reference.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	var paths []string
	yamlPaths(reflect.TypeOf(Config{}), "", &paths)
	for _, p := range paths {
		leaf := p[strings.LastIndexByte(p, '.')+1:]
		if !regexp.MustCompile(`(?m)^[\s#-]*` + regexp.QuoteMeta(leaf) + `:`).MatchString(text) {
			t.Errorf("config.example.yaml does not document %s", p)
		}
	}
}

// TestExampleIsValid: the example loads, validates and runs the demo as-is
// (with the demo's JWT secret in the environment).
func TestExampleIsValid(t *testing.T) {
	t.Setenv("JWT_SECRET", "0123456789abcdef0123456789abcdef")
	if _, err := LoadConfig("../config.example.yaml"); err != nil {
		t.Fatalf("config.example.yaml: %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg := DefaultConfig()
	doc := `
server: {listen: "nope", max_header_bytes: 10, shutdown_timeout: -1s}
admin: {listen: "nope2"}
log: {level: loud, format: xml}
upstream: {url: "ftp://x"}
`
	if err := config.Decode([]byte(doc), &cfg, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken config")
	}
	for _, want := range []string{"server.listen:", "server.max_header_bytes:", "server.shutdown_timeout:", "admin.listen:", "log.level:", "log.format:", "upstream.url:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}

// TestValidateChecksReferencedFiles: -check reports a missing secret or
// key file with its YAML path, before a deployment finds out.
func TestValidateChecksReferencedFiles(t *testing.T) {
	c := DefaultConfig()
	c.Upstream.URL = "http://127.0.0.1:1"
	c.Auth.APIKeys.File = "/nonexistent/keys.yaml"
	c.Upstream.TokenFile = "/nonexistent/token"
	err := c.Validate()
	for _, want := range []string{"auth.api_keys.file: open /nonexistent/keys.yaml", "upstream.token_file: open /nonexistent/token"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to report %q", err, want)
		}
	}
}

// TestValidateTrustedProxies: every bad trusted proxy is reported with its
// YAML path, a bad header by name; trusting every peer is valid but warned
// about.
func TestValidateTrustedProxies(t *testing.T) {
	cfg := DefaultConfig()
	doc := `
server:
  trusted_proxies: ["10.0.0.0/8", "10.1.2.3/8", "ingress.local", "::1"]
  client_ip_header: x-real-ip
`
	if err := config.Decode([]byte(doc), &cfg, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatal(err)
	}
	err := cfg.Validate()
	for _, want := range []string{
		`server.trusted_proxies[1]: "10.1.2.3/8" has host bits set (the network is 10.0.0.0/8)`,
		`server.trusted_proxies[2]: "ingress.local" is neither a CIDR nor an IP address`,
		`server.client_ip_header: must be x-forwarded-for or forwarded, got "x-real-ip"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
	for _, unwanted := range []string{"trusted_proxies[0]", "trusted_proxies[3]"} {
		if err != nil && strings.Contains(err.Error(), unwanted) {
			t.Errorf("a good entry is reported (%s):\n%v", unwanted, err)
		}
	}

	ok := DefaultConfig()
	ok.Server.TrustedProxies = []string{"0.0.0.0/0", "10.0.0.0/8", "::/0"}
	ok.Server.ClientIPHeader = "Forwarded"
	if err := ok.Validate(); err != nil && strings.Contains(err.Error(), "server.") {
		t.Errorf("valid server section rejected: %v", err)
	}
	w := strings.Join(ok.Warnings(), "\n")
	for _, want := range []string{"server.trusted_proxies[0]: 0.0.0.0/0 trusts every peer", "server.trusted_proxies[2]: ::/0 trusts every peer"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
	if strings.Contains(w, "trusted_proxies[1]") {
		t.Errorf("10.0.0.0/8 warned about:\n%s", w)
	}
}
