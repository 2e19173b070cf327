package authn

import (
	"context"
	"crypto"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verified-token cache. A client sends the same JWT on every request and
// every WebSocket open for the token's lifetime; verifying it each time
// (two base64 + JSON decodes and a signature check: ~7 µs for HS256, ~75 µs
// for ES256) dominated the gateway's per-request cost. A token that
// verified is remembered, keyed by its exact text, for at most
// verifiedCacheTTL and never past its ExpiresAt, so every time-based check
// (exp, max_age) gives the answer a fresh verification would; nbf and iat
// passed already and stay passed. Only successful verifications are
// cached: nothing a client sends without a valid signature takes a slot.
// Keys of static issuers (secret, PEM) cannot change during an
// Authenticator's life (a configuration reload builds a new one); for
// JWKS issuers each hit looks the key up again and requires the same key,
// so a key that left the set is refused at once, as before.
const (
	verifiedCacheTTL = time.Minute
	verifiedCacheMax = 8192
)

type verifiedEntry struct {
	id         *Identity
	is         *issuer
	tok        *jwt.Token // JWKS issuers: the parsed header, to look the key up again
	key        any        // JWKS issuers: the key that verified the token
	verifiedAt time.Time
	until      time.Time
}

type verifiedCache struct {
	mu sync.RWMutex
	m  map[string]*verifiedEntry
}

// get returns the entry for raw that is valid at now, or nil.
func (c *verifiedCache) get(raw string, now time.Time) *verifiedEntry {
	c.mu.RLock()
	e := c.m[raw]
	c.mu.RUnlock()
	if e == nil || now.Before(e.verifiedAt) || !now.Before(e.until) {
		return nil
	}
	return e
}

func (c *verifiedCache) put(raw string, e *verifiedEntry) {
	if !e.verifiedAt.Before(e.until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*verifiedEntry)
	}
	if _, ok := c.m[raw]; !ok && len(c.m) >= verifiedCacheMax {
		// Full: first drop what has expired, then arbitrary entries (map
		// order is random) until there is room.
		for k, old := range c.m {
			if !e.verifiedAt.Before(old.until) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < verifiedCacheMax {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[raw] = e
}

// newVerifiedEntry remembers id, verified at now by is with key (JWKS).
func newVerifiedEntry(id *Identity, is *issuer, tok *jwt.Token, key any, now time.Time) *verifiedEntry {
	e := &verifiedEntry{id: id, is: is, verifiedAt: now, until: now.Add(verifiedCacheTTL)}
	if !id.ExpiresAt.IsZero() && id.ExpiresAt.Before(e.until) {
		e.until = id.ExpiresAt
	}
	if is.jwks != nil {
		if _, ok := key.(interface{ Equal(crypto.PublicKey) bool }); !ok || tok == nil {
			e.until = now // a key set or an unknown key type: not cached
		}
		e.tok, e.key = tok, key
	}
	return e
}

// keyStillValid reports whether a JWKS issuer still serves the key that
// verified e's token.
func (e *verifiedEntry) keyStillValid(ctx context.Context) bool {
	if e.is.jwks == nil {
		return true
	}
	k, err := e.is.keyfunc(ctx)(e.tok)
	if err != nil {
		return false
	}
	eq, ok := e.key.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(k)
}
