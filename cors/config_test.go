package cors

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate("cors"); err != nil {
		t.Fatalf("DefaultConfig().Validate: got %v, want nil", err)
	}
	if !cfg.AllowCredentials || cfg.MaxAge != 86400*time.Second || len(cfg.AllowedOrigins) != 0 {
		t.Errorf("DefaultConfig: got %+v, want credentials on, max age 86400s, no origins", cfg)
	}
	if got, want := strings.Join(cfg.AllowedMethods, ", "), "GET, POST, PUT, DELETE, OPTIONS, PATCH"; got != want {
		t.Errorf("DefaultConfig methods: got %q, want %q", got, want)
	}
	// The defaults are copies.
	cfg.AllowedMethods[0] = "X"
	if DefaultConfig().AllowedMethods[0] != "GET" {
		t.Errorf("DefaultConfig shares its method list")
	}
	if _, err := New(DefaultConfig()); err != nil {
		t.Errorf("New(DefaultConfig()): got %v", err)
	}
}

func TestValidateOrigins(t *testing.T) {
	tests := []struct {
		origin      string
		credentials bool
		err         string // "" for valid
	}{
		{"https://app.example.com", true, ""},
		{"HTTPS://App.Example.COM", true, ""},
		{"http://localhost:5173", true, ""},
		{"http://127.0.0.1:8080", true, ""},
		{"http://[::1]:8080", true, ""},
		{"capacitor://localhost", true, ""},
		{"https://*.example.com", true, ""},
		{"https://*.example.com:8443", true, ""},
		{"http://*.localhost", true, ""},
		{"https://xn--bcher-kva.example", true, ""},
		{"*", false, ""},
		{"*", true, "allow_credentials"},
		{"null", true, `"null" cannot be allowed`},
		{"app.example.com", true, "no scheme"},
		{"*.example.com", true, "no scheme"},
		{"://example.com", true, "no scheme"},
		{"https://example.com/", true, "has a path"},
		{"https://example.com/app", true, "has a path"},
		{"https://example.com?x", true, "has a path"},
		{"https://user@example.com", true, "user info"},
		{"https://a.*.example.com", true, "leftmost label"},
		{"https://*example.com", true, "leftmost label"},
		{"https://example.*", true, "leftmost label"},
		{"https://*.*.example.com", true, "leftmost label"},
		{"https://example.com:*", true, "leftmost label"},
		{"*://example.com", true, "leftmost label"},
		{"https://*", true, "leftmost label"},
		{"https://*.com", true, "too broad"},
		{"https://*.10.0.0.1", true, "IP address"},
		{"https://exämple.com", true, "punycode"},
		{"https://example.com ", true, "printable ASCII"},
		{"https://example.com:99999", true, "not a valid origin"},
		{"https://example.com:", true, "not a valid origin"},
		{"https://example..com", true, "not a valid origin"},
		{"https://ex ample.com", true, "printable ASCII"},
		{"1https://example.com", true, "not a valid origin"},
		{"https://[::1", true, "not a valid origin"},
		{"https://", true, "not a valid origin"},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.AllowCredentials = tt.credentials
			cfg.AllowedOrigins = []string{tt.origin}
			err := cfg.Validate("cors")
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("Validate: got %v, want nil", err)
			case tt.err != "" && err == nil:
				t.Errorf("Validate: got nil, want an error containing %q", tt.err)
			case tt.err != "" && (!strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "cors.allowed_origins[0]: ")):
				t.Errorf("Validate: got %q, want cors.allowed_origins[0]: …%s…", err, tt.err)
			}
			if _, nerr := New(cfg); (nerr == nil) != (err == nil) {
				t.Errorf("New: got error %v, Validate %v; want the same verdict", nerr, err)
			}
		})
	}
}

func TestValidateEveryProblem(t *testing.T) {
	cfg := Config{
		AllowedOrigins:   []string{"https://ok.example.com", "*", "https://a.*.example.com", "null"},
		AllowCredentials: true,
		AllowedHeaders:   []string{"X-Fine", "X Bad", "*", ""},
		ExposedHeaders:   []string{"x-rivet-ray-id", "bad:header"},
		AllowedMethods:   []string{"GET", "*", "PO ST"},
		MaxAge:           -time.Second,
	}
	err := cfg.Validate("gateway.cors")
	if err == nil {
		t.Fatal("Validate: got nil, want errors")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`gateway.cors.allowed_origins[1]: "*" cannot be used with allow_credentials`,
		`gateway.cors.allowed_origins[1]: "*" must be the only entry`,
		`gateway.cors.allowed_origins[2]: "https://a.*.example.com"`,
		`gateway.cors.allowed_origins[3]: "null" cannot be allowed`,
		`gateway.cors.allowed_headers[1]: "X Bad" is not a valid header name`,
		`gateway.cors.allowed_headers[2]: "*" is not a wildcard on credentialed requests`,
		`gateway.cors.allowed_headers[3]: "" is not a valid header name`,
		`gateway.cors.exposed_headers[1]: "bad:header" is not a valid header name`,
		`gateway.cors.allowed_methods[1]: "*" is not a wildcard`,
		`gateway.cors.allowed_methods[2]: "PO ST" is not a valid method`,
		`gateway.cors.max_age: must not be negative`,
	}
	if len(lines) != len(want) {
		t.Fatalf("Validate: got %d problems, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d: got %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestValidateOther(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		err  string
	}{
		{"wildcards without credentials", func(c *Config) {
			c.AllowCredentials = false
			c.AllowedOrigins = []string{"*"}
			c.AllowedHeaders = []string{"*"}
			c.ExposedHeaders = []string{"*"}
			c.AllowedMethods = []string{"*"}
		}, ""},
		{"max age zero", func(c *Config) { c.MaxAge = 0 }, ""},
		{"max age fraction", func(c *Config) { c.MaxAge = 1500 * time.Millisecond }, "max_age: 1.5s is not a whole number of seconds"},
		{"empty methods", func(c *Config) { c.AllowedMethods = nil }, ""},
		{"custom method", func(c *Config) { c.AllowedMethods = []string{"PROPFIND"} }, ""},
		{"no path prefix", func(c *Config) { c.AllowedOrigins = []string{"x"} }, "allowed_origins[0]: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mod(&cfg)
			path := "cors"
			if tt.name == "no path prefix" {
				path = ""
			}
			err := cfg.Validate(path)
			if tt.err == "" {
				if err != nil {
					t.Errorf("Validate: got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Validate: got %v, want an error containing %q", err, tt.err)
			}
			if path == "" && !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("Validate(\"\"): got %q, want it to start with %q", err, tt.err)
			}
		})
	}
}
