package authn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

const jwksIssuer = "https://idp.test/"

// jwksServer is an IdP whose key set can be rotated or taken down.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    map[string]*ecdsa.PrivateKey // kid → key, served as public JWKs
	body    []byte
	down    atomic.Bool
	fetches atomic.Int32
}

func newJWKSServer(t testing.TB, tls bool) *jwksServer {
	t.Helper()
	s := &jwksServer{keys: map[string]*ecdsa.PrivateKey{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if s.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	if tls {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

// serveKeys replaces the served set with kids, generating missing keys.
func (s *jwksServer) serveKeys(t testing.TB, kids ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	store := jwkset.NewMemoryStorage()
	for _, kid := range kids {
		k := s.keys[kid]
		if k == nil {
			var err error
			if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
				t.Fatal(err)
			}
			s.keys[kid] = k
		}
		jwk, err := jwkset.NewJWKFromKey(&k.PublicKey, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.AlgES256, USE: jwkset.UseSig},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.KeyWrite(context.Background(), jwk); err != nil {
			t.Fatal(err)
		}
	}
	body, err := store.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s.body = body
}

// token signs for kid (which must have been served once).
func (s *jwksServer) token(t testing.TB, kid string) string {
	t.Helper()
	s.mu.Lock()
	k := s.keys[kid]
	s.mu.Unlock()
	if k == nil {
		var err error
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	return sign(t, jwt.SigningMethodES256, k, claimsFor(jwksIssuer, "alice"), kid)
}

func jwksConfig(url string, refresh, refetch time.Duration) Config {
	cfg := DefaultConfig()
	cfg.JWT.Issuers = []IssuerConfig{{
		Name:                "idp",
		Issuer:              jwksIssuer,
		Audiences:           []string{testAudience},
		Algorithms:          []string{"ES256"},
		JWKSURL:             url,
		JWKSRefresh:         refresh,
		JWKSRefetchInterval: refetch,
		JWKSTimeout:         2 * time.Second,
	}}
	return cfg
}

func expectStatus(t *testing.T, a *Authenticator, tok string, want int, wantReason string) {
	t.Helper()
	res := serve(t, a, newRequest(t, "POST", actionAlice, bearer(tok)...))
	if res.status != want {
		t.Fatalf("status: got %d, want %d (%s)", res.status, want, res.raw)
	}
	if got := res.reason(); got != wantReason {
		t.Fatalf("reason: got %q, want %q", got, wantReason)
	}
}

func TestJWKSKeyRotation(t *testing.T) {
	srv := newJWKSServer(t, true)
	srv.serveKeys(t, "k1")
	const refetch = 400 * time.Millisecond
	a := newAuth(t, jwksConfig(srv.URL+"/jwks", time.Hour, refetch), Options{HTTPClient: srv.Client()})
	fetches := func(want int32) {
		t.Helper()
		if got := srv.fetches.Load(); got != want {
			t.Fatalf("JWKS fetches: got %d, want %d", got, want)
		}
	}
	fetches(1) // New fetched once

	expectStatus(t, a, srv.token(t, "k1"), 200, "")
	fetches(1) // served from cache

	// The IdP rotates to k2: the first k2 token triggers a refetch.
	srv.serveKeys(t, "k2")
	expectStatus(t, a, srv.token(t, "k2"), 200, "")
	fetches(2)
	// k1 left the set with that refetch.
	expectStatus(t, a, srv.token(t, "k1"), 401, "unknown_key")
	fetches(2) // rate-limited: no fetch, no wait

	// Rotation to k3 within the refetch interval: rejected at once.
	srv.serveKeys(t, "k2", "k3")
	start := time.Now()
	expectStatus(t, a, srv.token(t, "k3"), 401, "unknown_key")
	if d := time.Since(start); d > refetch/2 {
		t.Errorf("unknown kid waited %s for the rate limiter, want an immediate answer", d)
	}
	fetches(2)

	// After the interval, the refetch happens and k3 is accepted.
	time.Sleep(refetch + 50*time.Millisecond)
	expectStatus(t, a, srv.token(t, "k3"), 200, "")
	fetches(3)
	expectStatus(t, a, srv.token(t, "k2"), 200, "")
	fetches(3)

	// A made-up kid costs at most one fetch per interval.
	time.Sleep(refetch + 50*time.Millisecond)
	for range 20 {
		expectStatus(t, a, srv.token(t, "forged"), 401, "unknown_key")
	}
	fetches(4)
}

func TestJWKSDownKeepsLastGoodKeys(t *testing.T) {
	srv := newJWKSServer(t, true)
	srv.serveKeys(t, "k1")
	a := newAuth(t, jwksConfig(srv.URL+"/jwks", 30*time.Millisecond, time.Hour), Options{HTTPClient: srv.Client()})
	expectStatus(t, a, srv.token(t, "k1"), 200, "")

	srv.down.Store(true)
	before := srv.fetches.Load()
	waitFor(t, 3*time.Second, "two failed background refreshes", func() bool { return srv.fetches.Load() >= before+2 })
	expectStatus(t, a, srv.token(t, "k1"), 200, "")

	// Back up with a rotated set: the background refresh picks it up.
	srv.serveKeys(t, "k2")
	srv.down.Store(false)
	waitFor(t, 3*time.Second, "k2 accepted after refresh", func() bool {
		res := serve(t, a, newRequest(t, "POST", actionAlice, bearer(srv.token(t, "k2"))...))
		return res.status == 200
	})
}

func TestJWKSDownAtStart(t *testing.T) {
	srv := newJWKSServer(t, true)
	srv.serveKeys(t, "k1")
	srv.down.Store(true)
	const refetch = 200 * time.Millisecond
	a := newAuth(t, jwksConfig(srv.URL+"/jwks", time.Hour, refetch), Options{HTTPClient: srv.Client()})
	expectStatus(t, a, srv.token(t, "k1"), 401, "unknown_key") // refetch tried, still down
	srv.down.Store(false)
	time.Sleep(refetch + 50*time.Millisecond)
	expectStatus(t, a, srv.token(t, "k1"), 200, "")
}

func TestJWKSOversizedResponse(t *testing.T) {
	srv := newJWKSServer(t, true)
	srv.serveKeys(t, "k1")
	srv.mu.Lock()
	// A valid set, after more than maxJWKSBytes of valid padding.
	srv.body = append(append([]byte(`{"pad":"`), bytes.Repeat([]byte("a"), maxJWKSBytes)...), append([]byte(`",`), srv.body[1:]...)...)
	srv.mu.Unlock()
	a := newAuth(t, jwksConfig(srv.URL+"/jwks", time.Hour, time.Hour), Options{HTTPClient: srv.Client()})
	expectStatus(t, a, srv.token(t, "k1"), 401, "unknown_key")
}
