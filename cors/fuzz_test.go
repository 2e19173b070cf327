package cors

import (
	"strings"
	"testing"
)

func FuzzOriginMatch(f *testing.F) {
	seeds := [][2]string{
		{"https://*.example.com", "https://a.example.com"},
		{"https://*.example.com", "http://a.example.com"},
		{"https://*.example.com", "https://a.b.example.com"},
		{"https://*.example.com:8443", "https://a.example.com:8443"},
		{"https://app.example.com", "HTTPS://APP.EXAMPLE.COM:443"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"capacitor://localhost", "capacitor://localhost"},
		{"http://*.localhost", "http://x.localhost"},
		{"https://example.com", "https://example.com.evil.com"},
		{"https://*.example.com", "https://evil.com/.example.com"},
		{"null", "null"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, allowed, origin string) {
		cfg := DefaultConfig()
		cfg.AllowedOrigins = []string{allowed}
		if allowed == "*" {
			return
		}
		p, err := New(cfg)
		if err != nil {
			return // an invalid entry is a config error, nothing to match
		}
		// Also try the pattern with its "*" replaced by the fuzzed origin,
		// so that near-misses of the wildcard are explored.
		for _, o := range []string{origin, strings.Replace(allowed, "*", origin, 1)} {
			checkMatch(t, p, allowed, o)
		}
	})
}

// checkMatch checks the invariants of a match of origin against the single
// entry allowed.
func checkMatch(t *testing.T, p *Policy, allowed, origin string) {
	t.Helper()
	if !p.AllowOrigin(origin) || origin == "" {
		return
	}
	o, ok := parseOrigin(origin)
	if !ok {
		t.Fatalf("%q allows %q, which is not a valid origin", allowed, origin)
	}
	scheme, rest, _ := strings.Cut(allowed, "://")
	if !strings.EqualFold(scheme, o.scheme) {
		t.Fatalf("%q allows %q: different scheme", allowed, origin)
	}
	if wild, ok := strings.CutPrefix(rest, "*."); ok {
		suffix := strings.ToLower(wild)
		if i := strings.LastIndexByte(suffix, ':'); i >= 0 {
			suffix = suffix[:i]
		}
		label, found := strings.CutSuffix(o.host, "."+suffix)
		if !found || label == "" || strings.Contains(label, ".") {
			t.Fatalf("%q allows %q: host is not exactly one label under %q", allowed, origin, suffix)
		}
	} else if o.String() != mustEntry(t, allowed).exact {
		t.Fatalf("%q allows %q, normalized %q", allowed, origin, o.String())
	}
	if again, ok := parseOrigin(o.String()); !ok || again != o {
		t.Fatalf("normalizing %q is not idempotent: %q then %q", origin, o, again)
	}
}

func mustEntry(t *testing.T, s string) entry {
	t.Helper()
	e, err := parseEntry(s)
	if err != nil {
		t.Fatalf("parseEntry(%q): %v", s, err)
	}
	return e
}
