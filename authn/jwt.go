package authn

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// issuer verifies the tokens of one IssuerConfig.
type issuer struct {
	name     string
	iss      string
	algs     map[string]bool
	parser   *jwt.Parser
	required []string
	maxAge   time.Duration
	leeway   time.Duration

	// Exactly one of static and jwks is set.
	static jwt.Keyfunc
	jwks   keyfunc.Keyfunc
	// health is the JWKS's state; nil for static keys.
	health *jwksHealth
}

// newIssuer loads cfg's keys (reading files, fetching the JWKS once). path
// is the issuer's YAML path, for errors.
func newIssuer(ctx context.Context, path string, cfg IssuerConfig, leeway time.Duration, now func() time.Time, client *http.Client, log *slog.Logger, observe func(JWKSFetch)) (*issuer, error) {
	cfg = cfg.withDefaults()
	is := &issuer{
		name:     cfg.Name,
		iss:      cfg.Issuer,
		algs:     make(map[string]bool, len(cfg.Algorithms)),
		required: cfg.RequiredClaims,
		maxAge:   cfg.MaxAge,
		leeway:   leeway,
	}
	for _, a := range cfg.Algorithms {
		is.algs[a] = true
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(cfg.Algorithms), // checked again here, after our own check
		jwt.WithLeeway(leeway),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(now),
	}
	if len(cfg.Audiences) > 0 {
		opts = append(opts, jwt.WithAudience(cfg.Audiences...))
	}
	if !cfg.AllowMissingExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	is.parser = jwt.NewParser(opts...)

	if cfg.JWKSURL != "" {
		is.health = &jwksHealth{issuer: cfg.Name, now: now, observe: observe}
		kf, err := newJWKS(ctx, cfg, client, log, is.health)
		if err != nil {
			return nil, fmt.Errorf("%s.jwks_url: %w", path, err)
		}
		is.jwks = kf
		return is, nil
	}

	var keys []any
	switch {
	case cfg.Secret != "":
		keys = []any{[]byte(cfg.Secret)}
	case cfg.SecretFile != "":
		b, err := os.ReadFile(cfg.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("%s.secret_file: %w", path, err)
		}
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		if need := minSecretLen(cfg.Algorithms); len(b) < need {
			return nil, fmt.Errorf("%s.secret_file: secret must be at least %d bytes, got %d", path, need, len(b))
		}
		keys = []any{b}
	case cfg.PublicKey != "":
		k, err := parsePublicKeys([]byte(cfg.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("%s.public_key: %w", path, err)
		}
		keys = k
	case cfg.PublicKeyFile != "":
		b, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.public_key_file: %w", path, err)
		}
		k, err := parsePublicKeys(b)
		if err != nil {
			return nil, fmt.Errorf("%s.public_key_file: %w", path, err)
		}
		keys = k
	}
	byAlg := make(map[string]jwt.VerificationKeySet, len(cfg.Algorithms))
	for _, a := range cfg.Algorithms {
		var set jwt.VerificationKeySet
		for _, k := range keys {
			if keyFits(a, k) {
				set.Keys = append(set.Keys, k)
			}
		}
		if len(set.Keys) == 0 {
			kinds := make([]string, len(keys))
			for i, k := range keys {
				kinds[i] = keyKind(k)
			}
			return nil, fmt.Errorf("%s.algorithms: no configured key fits %s (keys: %s)", path, a, strings.Join(kinds, ", "))
		}
		byAlg[a] = set
	}
	is.static = func(t *jwt.Token) (any, error) {
		set, ok := byAlg[t.Method.Alg()]
		if !ok {
			return nil, ErrUnknownKey
		}
		if len(set.Keys) == 1 {
			return set.Keys[0], nil
		}
		return set, nil
	}
	return is, nil
}

// keyfunc returns the jwt.Keyfunc for a request: only keys that fit the
// token's algorithm are ever returned (keyFits).
func (is *issuer) keyfunc(ctx context.Context) jwt.Keyfunc {
	if is.static != nil {
		return is.static
	}
	lookup := is.jwks.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		alg := t.Method.Alg()
		k, err := lookup(t)
		if err != nil {
			return nil, wrap(ErrUnknownKey, err)
		}
		if set, ok := k.(jwt.VerificationKeySet); ok { // token without kid: try every fitting key
			var fit jwt.VerificationKeySet
			for _, key := range set.Keys {
				if keyFits(alg, key) {
					fit.Keys = append(fit.Keys, key)
				}
			}
			if len(fit.Keys) == 0 {
				return nil, wrap(ErrUnknownKey, fmt.Errorf("no JWKS key fits %s", alg))
			}
			return fit, nil
		}
		if !keyFits(alg, k) {
			return nil, wrap(ErrUnknownKey, fmt.Errorf("JWKS key (%s) does not fit %s", keyKind(k), alg))
		}
		return k, nil
	}
}

// peekToken reads alg and iss from a compact JWS without verifying it, to
// pick the issuer (whose keys then verify it) and refuse an algorithm
// before any key is touched.
func peekToken(raw string) (alg, iss string, err error) {
	h, rest, ok1 := strings.Cut(raw, ".")
	p, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return "", "", errors.New("not a compact JWS")
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(h, &hdr); err != nil {
		return "", "", fmt.Errorf("header: %w", err)
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := decodeSegment(p, &claims); err != nil {
		return "", "", fmt.Errorf("claims: %w", err)
	}
	return hdr.Alg, claims.Iss, nil
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("bad base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errors.New("bad JSON")
	}
	return nil
}

// looksLikeJWT reports whether s has the two dots of a compact JWS; other
// credentials are API keys.
func looksLikeJWT(s string) bool { return strings.Count(s, ".") == 2 }

// verifyJWT verifies raw and returns its Identity.
func (a *Authenticator) verifyJWT(ctx context.Context, raw string) (*Identity, error) {
	if e := a.verified.get(raw, a.now()); e != nil && e.keyStillValid(ctx) {
		return e.id, nil
	}
	alg, iss, err := peekToken(raw)
	if err != nil {
		return nil, wrap(ErrTokenMalformed, err)
	}
	is := a.byIss[iss]
	if is == nil {
		return nil, ErrUnknownIssuer
	}
	if !is.algs[alg] {
		return nil, ErrAlgorithmNotAllowed
	}
	claims := jwt.MapClaims{}
	keyfunc := is.keyfunc(ctx)
	var usedKey any
	if is.jwks != nil {
		kf := keyfunc
		keyfunc = func(t *jwt.Token) (any, error) {
			k, err := kf(t)
			usedKey = k
			return k, err
		}
	}
	tok, err := is.parser.ParseWithClaims(raw, claims, keyfunc)
	if err != nil {
		return nil, jwtError(err)
	}
	for _, c := range is.required {
		if v, ok := claims[c]; !ok || v == nil {
			return nil, wrap(ErrMissingClaim, fmt.Errorf("claim %q", c))
		}
	}
	sub, err := claims.GetSubject()
	if err != nil {
		return nil, wrap(ErrTokenInvalid, err)
	}
	var expires time.Time
	if exp, _ := claims.GetExpirationTime(); exp != nil { // type checked by the parser
		expires = exp.Time
	}
	if is.maxAge > 0 {
		iat, _ := claims.GetIssuedAt()
		if iat == nil {
			return nil, wrap(ErrMissingClaim, errors.New(`claim "iat" (max_age is set)`))
		}
		limit := iat.Add(is.maxAge)
		if !a.now().Before(limit.Add(is.leeway)) {
			return nil, ErrTokenTooOld
		}
		if expires.IsZero() || limit.Before(expires) {
			expires = limit
		}
	}
	id := &Identity{
		Method:     MethodJWT,
		Subject:    sub,
		Issuer:     iss,
		Claims:     claims,
		Scopes:     jwtScopes(claims),
		ExpiresAt:  expires,
		issuerName: is.name,
	}
	a.verified.put(raw, newVerifiedEntry(id, is, tok, usedKey, a.now()))
	return id, nil
}

// jwtError maps a golang-jwt error to our sentinels. Signature failures
// come first: claims of a token that does not verify mean nothing.
func jwtError(err error) error {
	var re *reasonError
	if errors.As(err, &re) { // from our keyfunc
		return wrap(re, err)
	}
	var s error
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		s = ErrTokenMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		s = ErrTokenInvalid
	case errors.Is(err, jwt.ErrTokenExpired):
		s = ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		s = ErrTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		s = ErrInvalidAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		s = ErrMissingClaim
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		s = ErrUnknownIssuer
	default:
		s = ErrTokenInvalid
	}
	return wrap(s, err)
}

// jwtScopes reads the OAuth scope claim (space separated, RFC 8693 §4.2)
// and the scp claim (a list or a string).
func jwtScopes(c jwt.MapClaims) []string {
	var out []string
	if s, ok := c["scope"].(string); ok {
		out = append(out, strings.Fields(s)...)
	}
	switch v := c["scp"].(type) {
	case string:
		out = append(out, strings.Fields(v)...)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
