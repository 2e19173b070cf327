package cors

import (
	"net/http/httptest"
	"testing"
)

func mustNew(t testing.TB, cfg Config) *Policy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestAllowOrigin(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowedOrigins = []string{
		"https://app.example.com",
		"https://*.example.com",
		"http://localhost:5173",
		"capacitor://localhost",
		"http://[::1]:8080",
		"https://x.example.org:443",
		"HTTPS://Upper.Example.NET",
	}
	p := mustNew(t, cfg)
	tests := []struct {
		origin string
		want   bool
	}{
		{"", true}, // not a browser's cross-origin request
		{"https://app.example.com", true},
		{"HTTPS://APP.Example.COM", true},
		{"https://app.example.com:443", true},
		{"https://upper.example.net", true},
		{"https://app.example.com:8443", false},
		{"http://app.example.com", false},
		{"wss://app.example.com", false},

		// one-label wildcard
		{"https://a.example.com", true},
		{"https://A-1.EXAMPLE.com", true},
		{"https://xn--bcher-kva.example.com", true},
		{"https://example.com", false},
		{"https://a.b.example.com", false},
		{"https://.example.com", false},
		{"https://*.example.com", false},
		{"http://a.example.com", false},
		{"https://a.example.com:444", false},

		// look-alikes
		{"https://evil-example.com", false},
		{"https://evilexample.com", false},
		{"https://example.com.evil.com", false},
		{"https://app.example.com.evil.com", false},
		{"https://a.example.com.evil.com", false},
		{"https://app.example.com@evil.com", false},
		{"https://evil.com#.example.com", false},
		{"https://evil.com/.example.com", false},
		{"https://evil.com?.example.com", false},
		{"https://app.example.com/", false},
		{"https://app.example.com.", false},
		{"https://app.example.com ", false},
		{" https://app.example.com", false},
		{"https://app.example.com%2eevil.com", false},
		{"https://app.example.com\x00", false},
		{"null", false},
		{"app.example.com", false},
		{"https://", false},

		// ports
		{"http://localhost:5173", true},
		{"http://localhost:05173", false},
		{"http://localhost:5174", false},
		{"http://localhost", false},
		{"http://localhost:80", false},
		{"https://x.example.org", true},
		{"https://x.example.org:443", true},

		// other schemes and IPv6
		{"capacitor://localhost", true},
		{"capacitor://localhost:80", false},
		{"http://[::1]:8080", true},
		{"http://[::1]", false},
		{"http://[::1%25eth0]:8080", false},
	}
	for _, tt := range tests {
		if got := p.AllowOrigin(tt.origin); got != tt.want {
			t.Errorf("AllowOrigin(%q): got %v, want %v", tt.origin, got, tt.want)
		}
	}
}

func TestAllowOriginDefaultAndAny(t *testing.T) {
	none := mustNew(t, DefaultConfig())
	for _, o := range []string{"https://app.example.com", "http://localhost:3000", "null"} {
		if none.AllowOrigin(o) {
			t.Errorf("default policy: AllowOrigin(%q): got true, want false", o)
		}
	}
	cfg := DefaultConfig()
	cfg.AllowCredentials = false
	cfg.AllowedOrigins = []string{"*"}
	anyp := mustNew(t, cfg)
	for _, o := range []string{"https://app.example.com", "http://localhost:3000", "null", "chrome-extension://abc"} {
		if !anyp.AllowOrigin(o) {
			t.Errorf(`"*" policy: AllowOrigin(%q): got false, want true`, o)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AllowedOrigins = []string{"https://app.example.com"}
	p := mustNew(t, cfg)
	tests := []struct {
		name    string
		host    string
		origins []string
		want    bool
	}{
		{"no origin", "gw.example.com", nil, true},
		{"empty origin", "gw.example.com", []string{""}, true},
		{"allowed", "gw.example.com", []string{"https://app.example.com"}, true},
		{"disallowed", "gw.example.com", []string{"https://evil.com"}, false},
		{"same origin", "gw.example.com", []string{"https://gw.example.com"}, true},
		{"same origin with port", "gw.example.com:8443", []string{"https://GW.example.com:8443"}, true},
		{"same origin default port in host", "gw.example.com:443", []string{"https://gw.example.com"}, true},
		{"same origin http", "localhost:8080", []string{"http://localhost:8080"}, true},
		{"same host other port", "gw.example.com:8443", []string{"https://gw.example.com"}, false},
		{"host look-alike", "gw.example.com", []string{"https://gw.example.com.evil.com"}, false},
		{"ipv6 same origin", "[::1]:8080", []string{"http://[::1]:8080"}, true},
		{"two origins", "gw.example.com", []string{"https://app.example.com", "https://app.example.com"}, false},
		{"null", "gw.example.com", []string{"null"}, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://"+tt.host+"/gateway/abc/connect", nil)
		r.Host = tt.host
		for _, o := range tt.origins {
			r.Header.Add("Origin", o)
		}
		if got := p.CheckOrigin(r); got != tt.want {
			t.Errorf("%s: CheckOrigin(Host %q, Origin %q): got %v, want %v", tt.name, tt.host, tt.origins, got, tt.want)
		}
	}
}
