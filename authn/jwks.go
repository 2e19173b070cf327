package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// maxJWKSBytes bounds a JWKS response; a larger body fails the fetch (and
// the last good key set stays).
const maxJWKSBytes = 1 << 20

// newJWKS returns a keyfunc over the JWKS at cfg.JWKSURL, using
// github.com/MicahParks/jwkset for fetching, caching and background
// refresh (its goroutine ends when ctx is cancelled). It fetches once
// before returning; a failure is logged and leaves the set empty until the
// next refresh.
//
// Unknown kids: jwkset's own unknown-kid refetch makes a caller wait on a
// rate limiter, which would let a flood of made-up kids queue up behind
// it. kidGate asks the rate limiter without waiting instead, so a token
// naming an unknown kid between two allowed refetches is rejected at once.
//
// Every fetch is reported to health: a success when jwkset replaces the key
// set (with the number of keys), a failure when it reports an error of a
// fetch (the first one, and the background refreshes).
func newJWKS(ctx context.Context, cfg IssuerConfig, client *http.Client, log *slog.Logger, health *jwksHealth) (keyfunc.Keyfunc, error) {
	store, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       ctx,
		HTTPTimeout:               cfg.JWKSTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshInterval:           cfg.JWKSRefresh,
		Storage:                   observedStorage{Storage: jwkset.NewMemoryStorage(), health: health},
		RefreshErrorHandler: func(_ context.Context, err error) {
			if ctx.Err() != nil {
				return // shutting down
			}
			health.failed()
			log.Warn("JWKS fetch failed; keeping the last good key set", "issuer", cfg.Name, "error", err)
		},
	})
	if err != nil {
		return nil, err
	}
	refetching, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:         map[string]jwkset.Storage{cfg.JWKSURL: store},
		RateLimitWaitMax: cfg.JWKSTimeout, // also bounds the refetch itself
		// Never waits: kidGate has already taken a token from the real limiter.
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		return nil, err
	}
	gate := kidGate{
		Storage: refetching,
		cached:  store,
		limiter: rate.NewLimiter(rate.Every(cfg.JWKSRefetchInterval), 1),
	}
	return keyfunc.New(keyfunc.Options{
		Ctx:     ctx,
		Storage: gate,
		// Keys marked for encryption never verify signatures.
		UseWhitelist: []jwkset.USE{jwkset.UseSig, ""},
	})
}

// observedStorage is jwkset's memory storage that tells health when a
// fetched key set replaces the stored one: jwkset's only success signal.
type observedStorage struct {
	jwkset.Storage
	health *jwksHealth
}

func (s observedStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	err := s.Storage.KeyReplaceAll(ctx, given)
	if err == nil {
		s.health.loaded(len(given))
	}
	return err
}

// jwksHealth is what an issuer knows of its JWKS: whether a key set was
// ever loaded, and the report hook.
type jwksHealth struct {
	issuer  string
	now     func() time.Time
	observe func(JWKSFetch)
	ever    atomic.Bool
}

// JWKSFetch is one fetch of an issuer's JWKS, for metrics.
type JWKSFetch struct {
	// Issuer is the issuer's configured name.
	Issuer string
	// OK reports a key set loaded; Keys is how many keys it holds (0 on
	// failure). At is when.
	OK   bool
	Keys int
	At   time.Time
}

func (h *jwksHealth) loaded(n int) {
	if n > 0 {
		h.ever.Store(true)
	}
	if h.observe != nil {
		h.observe(JWKSFetch{Issuer: h.issuer, OK: true, Keys: n, At: h.now()})
	}
}

func (h *jwksHealth) failed() {
	if h.observe != nil {
		h.observe(JWKSFetch{Issuer: h.issuer, At: h.now()})
	}
}

// kidGate is a jwkset.Storage that reads known kids from the cached set and
// lets an unknown kid trigger a refetch only when the limiter allows one
// now.
type kidGate struct {
	jwkset.Storage                // refetches on an unknown kid
	cached         jwkset.Storage // the last good set, read only
	limiter        *rate.Limiter
}

func (g kidGate) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	if jwk, err := g.cached.KeyRead(ctx, kid); err == nil {
		return jwk, nil
	}
	if !g.limiter.Allow() {
		return jwkset.JWK{}, fmt.Errorf("%w: kid %q (refetch rate-limited)", jwkset.ErrKeyNotFound, kid)
	}
	return g.Storage.KeyRead(ctx, kid)
}

// jwksClient returns a copy of c (or of a client with its own clone of the
// default transport, and no keep-alive: a fetch every few minutes gains
// nothing from idle connections, which would outlive Close) that caps
// response bodies and refuses redirects to plain http.
func jwksClient(c *http.Client) (*http.Client, *http.Transport) {
	var own *http.Transport
	if c == nil {
		own = http.DefaultTransport.(*http.Transport).Clone()
		own.DisableKeepAlives = true
		c = &http.Client{Transport: own}
	}
	cc := *c
	base := cc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cc.Transport = limitedTransport{base}
	next := cc.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkJWKSURL(req.URL.String()); err != nil {
			return fmt.Errorf("JWKS redirect to %s: %w", redacted(req.URL), err)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 5 {
			return errors.New("JWKS: too many redirects")
		}
		return nil
	}
	return &cc, own
}

func redacted(u *url.URL) string {
	v := *u
	v.RawQuery, v.User = "", nil
	return v.String()
}

type limitedTransport struct{ base http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{io.LimitReader(resp.Body, maxJWKSBytes), resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}
