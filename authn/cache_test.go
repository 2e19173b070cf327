package authn

import (
	"testing"
	"time"
)

// TestVerifiedCache checks that a token that verified is served from the
// cache with the same identity, and that the cache never answers where a
// fresh verification would not: after the token expires, or at a time
// before it was verified (a clock moved back, before nbf or iat).
func TestVerifiedCache(t *testing.T) {
	a := newAuth(t, hsConfig())
	base := time.Now()
	a.now = func() time.Time { return base }
	tok := hsToken(t, "alice", "nbf", base.Unix(), "exp", base.Add(30*time.Second).Unix())

	first := serve(t, a, newRequest(t, "POST", actionAlice, bearer(tok)...))
	if first.status != 200 {
		t.Fatalf("status: got %d, want 200", first.status)
	}
	second := serve(t, a, newRequest(t, "POST", actionAlice, bearer(tok)...))
	if second.status != 200 || second.id != first.id {
		t.Fatalf("second request: status %d, identity shared %v; want 200 from the cache", second.status, second.id == first.id)
	}

	// Before nbf (and before the cached verification): verified afresh.
	a.now = func() time.Time { return base.Add(-time.Hour) }
	expectStatus(t, a, tok, 401, "not_yet_valid")

	// Past exp + leeway: the entry ended at exp.
	a.now = func() time.Time { return base.Add(30*time.Second + DefaultConfig().JWT.Leeway + time.Second) }
	expectStatus(t, a, tok, 401, "expired")

	// A token that failed is never cached.
	a.now = time.Now
	bad := tok[:len(tok)-2] + "xx"
	for range 2 {
		expectStatus(t, a, bad, 401, "invalid")
	}
	if n := len(a.verified.m); n > 1 {
		t.Errorf("cache holds %d entries, want at most 1", n)
	}
}

// TestVerifiedCacheBounded fills the cache past its bound.
func TestVerifiedCacheBounded(t *testing.T) {
	var c verifiedCache
	now := time.Now()
	is := &issuer{}
	for i := range verifiedCacheMax + 100 {
		c.put(string(rune(i))+"tok", newVerifiedEntry(&Identity{}, is, nil, nil, now))
	}
	if n := len(c.m); n > verifiedCacheMax {
		t.Errorf("cache holds %d entries, bound %d", n, verifiedCacheMax)
	}
}
