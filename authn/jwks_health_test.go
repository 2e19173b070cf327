package authn

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestKeysReady: a JWKS issuer whose endpoint is down from the start is not
// ready (its tokens all fail with unknown_key) until a refresh loads a key
// set; a later failure keeps the last good set and readiness. Every fetch is
// reported, with the number of keys on success.
func TestKeysReady(t *testing.T) {
	srv := newJWKSServer(t, true)
	srv.serveKeys(t, "k1", "k2")
	srv.down.Store(true)
	events := make(chan JWKSFetch, 1024)
	cfg := jwksConfig(srv.URL, 20*time.Millisecond, time.Hour)
	a := newAuth(t, cfg, Options{HTTPClient: srv.Client(), ObserveJWKS: func(f JWKSFetch) {
		select {
		case events <- f:
		default: // the test reads what it needs; refreshes go on
		}
	}})
	next := func(what string) JWKSFetch {
		t.Helper()
		select {
		case f := <-events:
			if f.Issuer != "idp" || f.At.IsZero() {
				t.Errorf("fetch %+v: want issuer idp and a time", f)
			}
			return f
		case <-time.After(10 * time.Second):
			t.Fatalf("no JWKS fetch reported while waiting for %s", what)
			return JWKSFetch{}
		}
	}
	if f := next("the first fetch"); f.OK {
		t.Fatalf("first fetch with the endpoint down: %+v, want a failure", f)
	}
	err := a.KeysReady()
	if !errors.Is(err, ErrKeysNotLoaded) || !strings.Contains(err.Error(), "idp") {
		t.Fatalf("KeysReady with the JWKS down: got %v, want ErrKeysNotLoaded naming idp", err)
	}
	expectStatus(t, a, srv.token(t, "k1"), 401, "unknown_key")

	srv.down.Store(false)
	for f := next("a success"); !f.OK; f = next("a success") {
	}
	if err := a.KeysReady(); err != nil {
		t.Fatalf("KeysReady after a key set loaded: %v", err)
	}
	expectStatus(t, a, srv.token(t, "k1"), 200, "")

	srv.down.Store(true)
	for f := next("a failure"); f.OK; f = next("a failure") {
		if f.Keys != 2 {
			t.Errorf("successful fetch with %d keys, want 2", f.Keys)
		}
	}
	if err := a.KeysReady(); err != nil {
		t.Errorf("KeysReady after a failed refresh: %v, want ready (last good set kept)", err)
	}
}

// TestKeysReadyStaticKeys: issuers with static keys are always ready.
func TestKeysReadyStaticKeys(t *testing.T) {
	a := newAuth(t, hsConfig())
	if err := a.KeysReady(); err != nil {
		t.Errorf("KeysReady: %v, want nil", err)
	}
}
