package authn

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// ownedStacks returns the stacks of goroutines an Authenticator starts.
func ownedStacks() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "MicahParks/jwkset") || strings.Contains(g, "authn.(*apiKeys).watch") {
			out = append(out, g)
		}
	}
	return out
}

func TestCloseStopsGoroutines(t *testing.T) {
	// Plain-http JWKS servers on loopback, so the Authenticator uses its
	// own transport (HTTPClient nil), which Close must release too.
	srv1, srv2 := newJWKSServer(t, false), newJWKSServer(t, false)
	srv1.serveKeys(t, "k1")
	srv2.serveKeys(t, "k2")
	if n := len(ownedStacks()); n != 0 {
		t.Fatalf("%d owned goroutines before the test", n)
	}
	base := runtime.NumGoroutine()

	cfg := jwksConfig(srv1.URL+"/jwks", 10*time.Millisecond, time.Hour)
	second := cfg.JWT.Issuers[0]
	second.Name, second.Issuer, second.JWKSURL = "idp2", "https://idp2.test/", srv2.URL+"/jwks"
	cfg.JWT.Issuers = append(cfg.JWT.Issuers, second)
	cfg.APIKeys.File = writeTemp(t, "- id: a\n  sha256: "+hashHex("k")+"\n")
	cfg.APIKeys.FileReload = 10 * time.Millisecond

	a, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, a, srv1.token(t, "k1"), 200, "")
	waitFor(t, 2*time.Second, "background refreshes", func() bool { return srv1.fetches.Load() >= 3 && srv2.fetches.Load() >= 3 })
	if n := len(ownedStacks()); n != 3 { // two JWKS refreshers, one file watcher
		t.Errorf("owned goroutines while running: got %d, want 3", n)
	}

	a.Close()
	a.Close() // idempotent
	waitFor(t, 5*time.Second, "goroutines to end after Close", func() bool {
		return len(ownedStacks()) == 0 && runtime.NumGoroutine() <= base
	})
	fetches := srv1.fetches.Load()
	time.Sleep(50 * time.Millisecond)
	if got := srv1.fetches.Load(); got != fetches {
		t.Errorf("JWKS fetched after Close: %d, then %d", fetches, got)
	}
}
