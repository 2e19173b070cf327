package gateway

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/config"
	"github.com/rivet-gateway/rivet-gateway/internal/readme"
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

// TestValidateChecksTokenFile: a token file whose content the proxy cannot
// send (empty, or with a byte that breaks the header or subprotocol it
// goes in) is reported by -check, without quoting the token.
func TestValidateChecksTokenFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "\n", "comma": "s3cr3t,x\n", "space": "s3cr3t x", "good": "pk_0123-abc\r\n"} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, name)
			if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			c := DefaultConfig()
			c.Upstream.URL = "http://127.0.0.1:1"
			c.Upstream.TokenFile = f
			err := c.Validate()
			if name == "good" {
				if err != nil && strings.Contains(err.Error(), "upstream.token_file") {
					t.Errorf("Validate() = %v, want no upstream.token_file error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "upstream.token_file: "+f+": ") {
				t.Errorf("Validate() = %v, want an upstream.token_file error naming the file", err)
			} else if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("Validate() = %v quotes the token", err)
			}
		})
	}
}

// readmeExample decodes, strictly and over the defaults, the first YAML
// block under heading (a whole line) of the README.
func readmeExample(t *testing.T, heading string) Config {
	t.Helper()
	block, err := readme.YAMLBlock(heading)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := config.Decode([]byte(block), &cfg, func(string) (string, bool) { return "", false }); err != nil {
		t.Fatalf("README example under %q: %v", heading, err)
	}
	return cfg
}

// TestReadmeCustodyExample: the upstream example of the README's section
// on the engine's token decodes strictly and validates (its token file is
// the deployment's), and pins the resolver to its namespace.
func TestReadmeCustodyExample(t *testing.T) {
	cfg := readmeExample(t, "### The engine's token, one namespace, egress proxies")
	if err := cfg.validate(false); err != nil && strings.Contains(err.Error(), "upstream") {
		t.Errorf("README example: %v", err)
	}
	if cfg.Upstream.Namespace == "" || cfg.Upstream.TokenFile == "" {
		t.Errorf("README example: got %+v, want a token file and a namespace", cfg.Upstream)
	}
	if got := cfg.actorsConfig().Namespaces; len(got) != 1 || got[0] != cfg.Upstream.Namespace {
		t.Errorf("README example: ids resolved in %q, want the pinned namespace only", got)
	}
}

// TestReadmeDeploymentExamples: the complete configurations of the README's deployment
// sections decode strictly and validate (their files are the deployment's), with no warning.
// The end-to-end tests run the same blocks (integration/readme_test.go).
func TestReadmeDeploymentExamples(t *testing.T) {
	for _, heading := range []string{"### In front of Rivet Cloud", "### Actors on Cloudflare Workers"} {
		t.Run(heading[4:], func(t *testing.T) {
			cfg := readmeExample(t, heading)
			if err := cfg.validate(false); err != nil {
				t.Errorf("README example: %v", err)
			}
			if w := cfg.Warnings(); len(w) != 0 {
				t.Errorf("README example: warnings %v", w)
			}
			if cfg.Upstream.Namespace == "" || cfg.Upstream.TokenFile == "" || cfg.Admin.ReadinessUpstream {
				t.Errorf("README example: upstream %+v, readiness_upstream %t; want a token file, a namespace, no upstream readiness",
					cfg.Upstream, cfg.Admin.ReadinessUpstream)
			}
		})
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

// brokenConfig has problems of every kind in most sections: unknown key,
// wrong types (a duration and a timestamp), invalid values, a missing
// file, a key required by another's value.
const brokenConfig = `server:
  listen: "nonsense"
  read_timeout: 30
  lissen: ":1"
upstream:
  url: "ftp://engine"
  ca_file: /nonexistent/ca.pem
  websocket:
    read_limit: -1
cors:
  allowed_origins: ["*"]
auth:
  jwt:
    issuers:
      - name: a
        issuer: https://a.example/
        algorithms: [RS256]
        jwks_url: https://a.example/jwks
      - name: b
        issuer: https://b.example/
        algorithms: [RS256]
        jwks_url: http://b.example/jwks
  api_keys:
    keys:
      - id: billing
        sha256: "3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a"
        expires: next year
log:
  level: loud
params:
  source: http
tracing:
  enabled: true
`

// TestCheckConfigReportsEveryProblemOnce: decoding problems do not hide
// validation problems of other sections; each problem comes once, with
// its path and line (a missing key at its section's), sorted by line. A
// section whose Validate returns plain errors would fail the check that
// every problem has a line.
func TestCheckConfigReportsEveryProblemOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, []byte(brokenConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`line 2: server.listen: not a host:port address: address nonsense: missing port in address`,
		`line 3: server.read_timeout: got 30, want a duration (write durations as "30s", "5m")`,
		`line 4: server.lissen: unknown key "lissen"`,
		`line 6: upstream.url: scheme must be http or https, got "ftp"`,
		`line 7: upstream.ca_file: open /nonexistent/ca.pem: no such file or directory`,
		`line 9: upstream.websocket.read_limit: must be positive`,
		`line 11: cors.allowed_origins[0]: "*" cannot be used with allow_credentials (browsers reject it): list the origins, or set allow_credentials: false`,
		`line 22: auth.jwt.issuers[1].jwks_url: must be https (http is allowed only for loopback hosts)`,
		`line 27: auth.api_keys.keys[0].expires: got "next year", want a timestamp (RFC 3339, e.g. 2027-01-01T00:00:00Z)`,
		`line 29: log.level: must be debug, info, warn or error, got "loud"`,
		`line 30: params.http.url: required with source http`,
		`line 32: tracing.endpoint: required when tracing is enabled (e.g. http://otel-collector:4318)`,
	}
	for _, tc := range []struct {
		name string
		opts CheckOptions
		want []string
	}{
		{"files opened", CheckOptions{}, want},
		{"files skipped", CheckOptions{SkipFiles: true}, slices.Delete(slices.Clone(want), 4, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckConfig(path, tc.opts)
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("got %v, want config.Problems", err)
			}
			if got := strings.Split(ps.Error(), "\n"); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\ngot\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			for _, p := range ps {
				if p.Path == "" || p.Line == 0 {
					t.Errorf("%v: got path %q, line %d; want both", p, p.Path, p.Line)
				}
			}
		})
	}
}

// TestCheckConfigSkipFiles: without the secret files, everything else is
// still checked, and Files names what was not.
func TestCheckConfigSkipFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	doc := `upstream:
  url: http://engine:6420
  token_file: /var/run/secrets/rivet/token
auth:
  api_keys:
    file: /etc/rivet-gateway/api-keys.yaml
params:
  source: http
  http:
    url: https://params.example/
    header_files: {Authorization: /secrets/params/authorization}
`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadConfig: got %v, want the missing files", err)
	}
	cfg, err := CheckConfig(path, CheckOptions{SkipFiles: true})
	if err != nil {
		t.Fatalf("CheckConfig with SkipFiles: %v", err)
	}
	want := []FileRef{
		{"upstream.token_file", "/var/run/secrets/rivet/token"},
		{"auth.api_keys.file", "/etc/rivet-gateway/api-keys.yaml"},
		{"params.http.header_files.Authorization", "/secrets/params/authorization"},
	}
	if got := cfg.Files(); !slices.Equal(got, want) {
		t.Errorf("Files() = %v, want %v", got, want)
	}
}
