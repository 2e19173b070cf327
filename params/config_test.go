package params

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDefaultConfigValid(t *testing.T) {
	for name, c := range map[string]Config{"default": DefaultConfig(), "zero": {}} {
		if err := c.Validate("params"); err != nil {
			t.Errorf("%s: Validate: got %v, want nil", name, err)
		}
	}
	inj, err := New(Config{}, Options{})
	if err != nil {
		t.Fatalf("New(zero): %v", err)
	}
	defer inj.Close()
	if inj.src != nil {
		t.Errorf("zero config: got source %T, want the layer off", inj.src)
	}
}

func TestValidateReportsEveryProblemWithPath(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"unknown source", func(c *Config) { c.Source = "vault" }, []string{"params.source: unknown source"}},
		{"unknown policy", func(c *Config) { c.Policy = "union" }, []string{"params.policy: unknown policy"}},
		{"passthrough with a source", func(c *Config) { c.Source = SourceStatic; c.Static = map[string]any{}; c.Policy = PolicyPassthrough }, []string{"params.policy: passthrough"}},
		{"unknown dialect", func(c *Config) { c.Dialect = "v1" }, []string{"params.dialect:"}},
		{"negative header", func(c *Config) { c.MaxHeaderBytes = -1 }, []string{"params.max_header_bytes:"}},
		{"missing mode", func(c *Config) { c.MissingClaim = "skip" }, []string{"params.missing_claim:"}},
		{"static missing", func(c *Config) { c.Source = SourceStatic }, []string{"params.static: required"}},
		{"static unused", func(c *Config) { c.Static = map[string]any{"a": 1} }, []string{"params.static: set, but source"}},
		{"static bad key", func(c *Config) {
			c.Source = SourceStatic
			c.Static = map[string]any{"a": map[any]any{1: "x"}}
		}, []string{"params.static: a: key 1 is not a string"}},
		{"claims missing", func(c *Config) { c.Source = SourceClaims }, []string{"params.claims: required"}},
		{"claims bad template", func(c *Config) {
			c.Source = SourceClaims
			c.Claims = map[string]any{"a": "{{ .Subject ", "b": map[string]any{"c": []any{"x", "{{ .Nope }}"}}}
		}, []string{"params.claims.a:", `params.claims.b.c[1]: unknown field "Nope"`}},
		{"http url missing", func(c *Config) { c.Source = SourceHTTP }, []string{"params.http.url: required"}},
		{"http url relative", func(c *Config) { c.Source = SourceHTTP; c.HTTP.URL = "/params" }, []string{"params.http.url: must be an absolute"}},
		{"http url scheme", func(c *Config) { c.Source = SourceHTTP; c.HTTP.URL = "ftp://x/params" }, []string{"params.http.url: must be an absolute"}},
		{"http url userinfo", func(c *Config) { c.Source = SourceHTTP; c.HTTP.URL = "https://u:p@x/params" }, []string{"params.http.url: must not carry credentials"}},
		{"http url unused", func(c *Config) { c.HTTP.URL = "http://x" }, []string{"params.http.url: set, but source"}},
		{"http header injection", func(c *Config) {
			c.Source = SourceHTTP
			c.HTTP.URL = "http://x"
			c.HTTP.Headers = map[string]string{"X-A": "v\r\nX-Evil: 1", "Bad Name": "v"}
		}, []string{"params.http.headers.X-A: value contains control", `params.http.headers: invalid header name "Bad Name"`}},
		{"http header files", func(c *Config) {
			c.Source = SourceHTTP
			c.HTTP.URL = "http://x"
			c.HTTP.Headers = map[string]string{"Authorization": "Bearer x"}
			c.HTTP.HeaderFiles = map[string]string{"authorization": "/secrets/a", "X-B": "", "Bad Name": "/f"}
		}, []string{"params.http.header_files.authorization: also set in http.headers", "params.http.header_files.X-B: empty file name",
			`params.http.header_files: invalid header name "Bad Name"`}},
		{"http cert without key", func(c *Config) { c.Source = SourceHTTP; c.HTTP.URL = "https://x"; c.HTTP.CertFile = "c.pem" }, []string{"params.http.cert_file:"}},
		{"http negatives", func(c *Config) {
			c.Source = SourceHTTP
			c.HTTP.URL = "https://x"
			c.HTTP.Timeout = -1
			c.HTTP.MaxResponseBytes = -1
			c.HTTP.ForwardClaims = []string{"sub", ""}
		}, []string{"params.http.timeout:", "params.http.max_response_bytes:", "params.http.forward_claims[1]:"}},
		{"retry", func(c *Config) {
			c.Retry = RetryConfig{MaxAttempts: -1, InitialBackoff: time.Second, MaxBackoff: time.Millisecond, Budget: -time.Second}
		}, []string{"params.retry.max_attempts:", "params.retry.max_backoff:", "params.retry.budget:"}},
		{"cache without http", func(c *Config) { c.Cache.TTL = time.Second }, []string{"params.cache.ttl: the cache applies to source http"}},
		{"cache negatives", func(c *Config) { c.Cache.TTL = -1; c.Cache.MaxEntries = -1 }, []string{"params.cache.ttl:", "params.cache.max_entries:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate("params")
			if err == nil {
				t.Fatalf("Validate: got nil, want errors containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: got %q, want it to contain %q", err, w)
				}
			}
			if _, err := New(c, Options{}); err == nil {
				t.Errorf("New: got nil error, want one")
			}
		})
	}
}

// TestConfigYAML decodes the README examples strictly, as the config loader
// does.
func TestConfigYAML(t *testing.T) {
	docs := map[string]string{
		"http": `
params:
  source: http
  policy: merge
  dialect: current
  max_header_bytes: 8192
  http:
    url: http://127.0.0.1:8081/params
    headers: {Authorization: "Bearer s3cret"}
    timeout: 2s
    ca_file: ""
    max_response_bytes: 65536
    forward_claims: [sub, role]
  retry: {max_attempts: 4, initial_backoff: 100ms, max_backoff: 1s, budget: 5s}
  cache: {ttl: 30s, max_entries: 1000}
`,
		"claims": `
params:
  source: claims
  missing_claim: omit
  claims:
    userId: "{{ .Subject }}"
    role: "{{ .Claims.role }}"
    org:
      id: "{{ index .Claims \"https://example.com/org\" }}"
      label: "org-{{ .Claims.org }}"
    groups: "{{ .Claims.groups }}"
    actor: "{{ .Route.ActorName }}"
    version: 2
`,
		"static": `
params:
  source: static
  dialect: legacy
  static: {tenant: acme, limits: {rps: 10, burst: [1, 2]}, flag: true}
`,
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			var file struct {
				Params Config `yaml:"params"`
			}
			file.Params = DefaultConfig()
			dec := yaml.NewDecoder(bytes.NewReader([]byte(doc)))
			dec.KnownFields(true)
			if err := dec.Decode(&file); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if err := file.Params.Validate("params"); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			inj, err := New(file.Params, Options{})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			inj.Close()
			if name == "http" {
				if got, want := file.Params.Retry.InitialBackoff, 100*time.Millisecond; got != want {
					t.Errorf("retry.initial_backoff: got %v, want %v", got, want)
				}
				if got, want := file.Params.Cache.TTL, 30*time.Second; got != want {
					t.Errorf("cache.ttl: got %v, want %v", got, want)
				}
			}
		})
	}
	t.Run("unknown key", func(t *testing.T) {
		var c Config
		dec := yaml.NewDecoder(strings.NewReader("sorce: http\n"))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err == nil {
			t.Fatal("got nil, want an unknown-field error")
		}
	})
}

func TestNewReadsTLSFiles(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{"missing": filepath.Join(dir, "nope.pem"), "not pem": bad} {
		t.Run(name, func(t *testing.T) {
			c := httpConfig("https://127.0.0.1:1/params")
			c.HTTP.CAFile = file
			_, err := New(c, Options{})
			if err == nil || !strings.Contains(err.Error(), "params.http.ca_file") {
				t.Fatalf("got %v, want a params.http.ca_file error", err)
			}
		})
	}
}
