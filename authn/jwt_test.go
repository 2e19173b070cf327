package authn

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwtConfig has an HS256 issuer and an RS256 issuer (PEM, max_age 1h,
// sub required).
func jwtConfig(t testing.TB) Config {
	k := fixtures()
	cfg := hsConfig()
	cfg.JWT.Issuers = append(cfg.JWT.Issuers, IssuerConfig{
		Name:           "rsa",
		Issuer:         rsaIssuer,
		Audiences:      []string{testAudience},
		Algorithms:     []string{"RS256"},
		PublicKey:      pemPublic(t, &k.rsa.PublicKey),
		RequiredClaims: []string{"sub"},
		MaxAge:         time.Hour,
	})
	return cfg
}

func TestJWTRejections(t *testing.T) {
	k := fixtures()
	a := newAuth(t, jwtConfig(t))
	rsaPEM := pemPublic(t, &k.rsa.PublicKey)
	now := time.Now()
	rs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, k.rsa, c, "") }
	rsClaims := claimsFor(rsaIssuer, "alice")

	tests := []struct {
		name       string
		token      string // "" = no Authorization header
		wantStatus int
		wantReason string
	}{
		{"valid HS256", hsToken(t, "alice"), 200, ""},
		{"valid RS256", rs(rsClaims), 200, ""},
		{"missing", "", 401, "missing"},
		{"opaque garbage", "not-a-token", 401, "malformed"},
		{"three garbage segments", "a.b.c", 401, "malformed"},
		{"payload not JSON", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", 401, "malformed"},
		{"oversized", strings.Repeat("a", maxCredentialBytes) + ".b.c", 401, "malformed"},
		{"alg none, no signature", unsigned(map[string]any{"alg": "none", "typ": "JWT"}, claimsFor(localIssuer, "alice"), ""), 401, "algorithm_not_allowed"},
		{"alg None, RSA issuer", unsigned(map[string]any{"alg": "None"}, rsClaims, ""), 401, "algorithm_not_allowed"},
		{"alg missing", unsigned(map[string]any{"typ": "JWT"}, claimsFor(localIssuer, "alice"), "x"), 401, "algorithm_not_allowed"},
		// Algorithm confusion: HMAC keyed with the RSA public key's PEM,
		// which an attacker knows, presented to the RSA issuer.
		{"HS256 keyed with RSA public PEM", sign(t, jwt.SigningMethodHS256, []byte(rsaPEM), rsClaims, ""), 401, "algorithm_not_allowed"},
		{"RS384 where only RS256 allowed", sign(t, jwt.SigningMethodRS384, k.rsa, rsClaims, ""), 401, "algorithm_not_allowed"},
		{"ES256 to RSA issuer", sign(t, jwt.SigningMethodES256, k.ec, rsClaims, ""), 401, "algorithm_not_allowed"},
		{"signed by another RSA key", sign(t, jwt.SigningMethodRS256, k.rsa2, rsClaims, ""), 401, "invalid"},
		{"signed with another secret", sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("x", 32)), claimsFor(localIssuer, "alice"), ""), 401, "invalid"},
		{"tampered payload", tamper(hsToken(t, "alice"), claimsFor(localIssuer, "admin")), 401, "invalid"},
		{"unknown issuer", sign(t, jwt.SigningMethodHS256, []byte(testSecret), claimsFor("https://evil.test/", "alice"), ""), 401, "unknown_issuer"},
		{"no issuer", hsToken(t, "alice", "iss", nil), 401, "unknown_issuer"},
		{"wrong audience", hsToken(t, "alice", "aud", "other"), 401, "invalid_audience"},
		{"no audience", hsToken(t, "alice", "aud", nil), 401, "missing_claim"},
		{"audience list with ours", hsToken(t, "alice", "aud", []string{"other", testAudience}), 200, ""},
		{"expired beyond leeway", hsToken(t, "alice", "exp", now.Add(-40*time.Second).Unix()), 401, "expired"},
		{"expired within leeway", hsToken(t, "alice", "exp", now.Add(-20*time.Second).Unix()), 200, ""},
		{"nbf beyond leeway", hsToken(t, "alice", "nbf", now.Add(40*time.Second).Unix()), 401, "not_yet_valid"},
		{"nbf within leeway", hsToken(t, "alice", "nbf", now.Add(20*time.Second).Unix()), 200, ""},
		{"iat in the future", hsToken(t, "alice", "iat", now.Add(40*time.Second).Unix()), 401, "not_yet_valid"},
		{"no exp", hsToken(t, "alice", "exp", nil), 401, "missing_claim"},
		{"exp not a number", hsToken(t, "alice", "exp", "tomorrow"), 401, "invalid"},
		{"older than max_age", rs(with(rsClaims, "iat", now.Add(-2*time.Hour).Unix())), 401, "too_old"},
		{"max_age within leeway", rs(with(rsClaims, "iat", now.Add(-time.Hour+10*time.Second).Unix())), 200, ""},
		{"max_age needs iat", rs(with(rsClaims, "iat", nil)), 401, "missing_claim"},
		{"required sub missing", rs(with(rsClaims, "sub", nil)), 401, "missing_claim"},
		{"sub not a string", hsToken(t, "alice", "sub", 42), 401, "invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.token != "" {
				h = bearer(tc.token)
			}
			res := serve(t, a, newRequest(t, "POST", actionAlice, h...))
			if res.status != tc.wantStatus {
				t.Fatalf("status: got %d, want %d (body %s)", res.status, tc.wantStatus, res.raw)
			}
			if tc.wantStatus == 200 {
				if res.id == nil || res.id.Method != MethodJWT {
					t.Fatalf("identity: got %+v, want a jwt identity", res.id)
				}
				return
			}
			if res.body.Group != "auth" || res.body.Code != "unauthorized" {
				t.Errorf("error: got %s.%s, want auth.unauthorized", res.body.Group, res.body.Code)
			}
			if got := res.reason(); got != tc.wantReason {
				t.Errorf("reason: got %q, want %q", got, tc.wantReason)
			}
			if tc.token != "" && len(tc.token) > 8 && strings.Contains(res.raw, tc.token[len(tc.token)-8:]) {
				t.Errorf("response echoes the token: %s", res.raw)
			}
		})
	}
}

// tamper swaps the payload of a signed token.
func tamper(tok string, claims jwt.MapClaims) string {
	parts := strings.Split(tok, ".")
	forged := strings.Split(unsigned(map[string]any{"alg": "HS256"}, claims, ""), ".")
	return parts[0] + "." + forged[1] + "." + parts[2]
}

// TestAlgorithmConfusionKeyfunc checks the second line of defence: even if
// the allow-list let HS256 through, an RSA issuer has no key for it.
func TestAlgorithmConfusionKeyfunc(t *testing.T) {
	k := fixtures()
	a := newAuth(t, jwtConfig(t))
	is := a.byIss[rsaIssuer]
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512, jwt.SigningMethodES256, jwt.SigningMethodEdDSA} {
		_, err := is.keyfunc(context.Background())(&jwt.Token{Method: m, Header: map[string]any{"alg": m.Alg()}})
		if !errors.Is(err, ErrUnknownKey) {
			t.Errorf("%s: got %v, want ErrUnknownKey", m.Alg(), err)
		}
	}
	rsaPEM := []byte(pemPublic(t, &k.rsa.PublicKey))
	cases := []struct {
		alg string
		key any
	}{
		{"HS256", &k.rsa.PublicKey},
		{"RS256", rsaPEM}, // the PEM bytes as an HMAC secret
		{"ES512", &k.ec.PublicKey},
		{"ES256", &k.ec384.PublicKey},
		{"EdDSA", &k.rsa.PublicKey},
		{"none", []byte(testSecret)},
		{"HS512", []byte(testSecret)}, // 32 bytes is too short for HS512
	}
	for _, c := range cases {
		if keyFits(c.alg, c.key) {
			t.Errorf("keyFits(%s, %s): got true, want false", c.alg, keyKind(c.key))
		}
	}
}

func TestJWTKeyFormats(t *testing.T) {
	k := fixtures()
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)}))
	tests := []struct {
		name   string
		method jwt.SigningMethod
		signer any
		pem    string
	}{
		{"RS256 PKIX", jwt.SigningMethodRS256, k.rsa, pemPublic(t, &k.rsa.PublicKey)},
		{"RS256 PKCS1", jwt.SigningMethodRS256, k.rsa, pkcs1},
		{"RS256 certificate", jwt.SigningMethodRS256, k.rsa, pemCert(t, k.rsa)},
		{"PS256 PKIX", jwt.SigningMethodPS256, k.rsa, pemPublic(t, &k.rsa.PublicKey)},
		{"PS256 certificate", jwt.SigningMethodPS256, k.rsa, pemCert(t, k.rsa)},
		{"ES256 PKIX", jwt.SigningMethodES256, k.ec, pemPublic(t, &k.ec.PublicKey)},
		{"ES256 certificate", jwt.SigningMethodES256, k.ec, pemCert(t, k.ec)},
		{"ES384 PKIX", jwt.SigningMethodES384, k.ec384, pemPublic(t, &k.ec384.PublicKey)},
		{"EdDSA PKIX", jwt.SigningMethodEdDSA, k.ed, pemPublic(t, k.ed.Public())},
		{"EdDSA certificate", jwt.SigningMethodEdDSA, k.ed, pemCert(t, k.ed)},
		{"rotation: second block", jwt.SigningMethodRS256, k.rsa, pemPublic(t, &k.rsa2.PublicKey) + pemPublic(t, &k.rsa.PublicKey)},
	}
	for _, tc := range tests {
		for _, fromFile := range []bool{false, true} {
			name := tc.name
			if fromFile {
				name += " file"
			}
			t.Run(name, func(t *testing.T) {
				ic := IssuerConfig{Name: "pem", Issuer: rsaIssuer, Algorithms: []string{tc.method.Alg()}}
				if fromFile {
					ic.PublicKeyFile = filepath.Join(t.TempDir(), "key.pem")
					if err := os.WriteFile(ic.PublicKeyFile, []byte(tc.pem), 0o600); err != nil {
						t.Fatal(err)
					}
				} else {
					ic.PublicKey = tc.pem
				}
				cfg := DefaultConfig()
				cfg.JWT.Issuers = []IssuerConfig{ic}
				a := newAuth(t, cfg)
				tok := sign(t, tc.method, tc.signer, claimsFor(rsaIssuer, "alice"), "")
				res := serve(t, a, newRequest(t, "POST", actionAlice, bearer(tok)...))
				if res.status != 200 {
					t.Fatalf("status: got %d, want 200 (%s)", res.status, res.raw)
				}
				if res.id.Subject != "alice" || res.id.Issuer != rsaIssuer || res.id.IssuerName() != "pem" {
					t.Errorf("identity: got %+v, want alice from pem", res.id)
				}
			})
		}
	}
}

func TestIssuerKeyMismatchFailsNew(t *testing.T) {
	k := fixtures()
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ic   IssuerConfig
		want string
	}{
		{"ES256 with an RSA key", IssuerConfig{Algorithms: []string{"ES256"}, PublicKey: pemPublic(t, &k.rsa.PublicKey)}, "no configured key fits ES256"},
		{"ES384 with a P-256 key", IssuerConfig{Algorithms: []string{"ES384"}, PublicKey: pemPublic(t, &k.ec.PublicKey)}, "no configured key fits ES384"},
		{"private key", IssuerConfig{Algorithms: []string{"ES256"}, PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))}, "private key"},
		{"no PEM", IssuerConfig{Algorithms: []string{"RS256"}, PublicKey: "hello"}, "no PEM block"},
		{"missing file", IssuerConfig{Algorithms: []string{"RS256"}, PublicKeyFile: "/nonexistent/key.pem"}, "public_key_file"},
		{"short secret file", IssuerConfig{Algorithms: []string{"HS256"}, SecretFile: writeTemp(t, "short\n")}, "at least 32 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.ic.Name, tc.ic.Issuer = "x", "https://x.test/"
			cfg := DefaultConfig()
			cfg.JWT.Issuers = []IssuerConfig{tc.ic}
			_, err := New(cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func writeTemp(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretFile(t *testing.T) {
	ic := hsIssuer()
	ic.Secret, ic.SecretFile = "", writeTemp(t, testSecret+"\n") // as `echo` writes it
	cfg := DefaultConfig()
	cfg.JWT.Issuers = []IssuerConfig{ic}
	a := newAuth(t, cfg)
	res := serve(t, a, newRequest(t, "POST", actionAlice, bearer(hsToken(t, "alice"))...))
	if res.status != 200 {
		t.Fatalf("status: got %d, want 200 (%s)", res.status, res.raw)
	}
}

func TestJWTIdentity(t *testing.T) {
	a := newAuth(t, hsConfig())
	exp := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	tok := hsToken(t, "alice", "exp", exp.Unix(), "scope", "read write", "role", "member")
	res := serve(t, a, newRequest(t, "POST", actionAlice, bearer(tok)...))
	if res.status != 200 {
		t.Fatalf("status: got %d, want 200 (%s)", res.status, res.raw)
	}
	id := res.id
	if id.Method != MethodJWT || id.Subject != "alice" || id.Issuer != localIssuer || id.APIKeyID != "" {
		t.Errorf("identity: got %+v", id)
	}
	if !id.ExpiresAt.Equal(exp) {
		t.Errorf("ExpiresAt: got %v, want %v", id.ExpiresAt, exp)
	}
	if strings.Join(id.Scopes, ",") != "read,write" {
		t.Errorf("Scopes: got %v, want [read write]", id.Scopes)
	}
	if id.Claims["role"] != "member" {
		t.Errorf("Claims[role]: got %v, want member", id.Claims["role"])
	}
	if got := a.SessionDeadline(res.fwd); !got.Equal(exp) {
		t.Errorf("SessionDeadline: got %v, want %v", got, exp)
	}
}

func TestSessionDeadline(t *testing.T) {
	k := fixtures()
	now := time.Now().Truncate(time.Second)
	cfg := jwtConfig(t)
	cfg.APIKeys.Keys = []APIKey{{ID: "k", SHA256: hashHex("api-key-1"), Expires: now.Add(time.Hour)}}
	tests := []struct {
		name    string
		closeOn bool
		header  []string
		want    time.Time
	}{
		{"jwt exp", true, bearer(hsToken(t, "alice", "exp", now.Add(5*time.Minute).Unix())), now.Add(5 * time.Minute)},
		{"max_age sooner than exp", true, bearer(sign(t, jwt.SigningMethodRS256, k.rsa, with(claimsFor(rsaIssuer, "a"), "iat", now.Add(-50*time.Minute).Unix(), "exp", now.Add(10*time.Hour).Unix()), "")), now.Add(10 * time.Minute)},
		{"api key expiry", true, []string{"X-API-Key", "api-key-1"}, now.Add(time.Hour)},
		{"close_on_expiry off", false, bearer(hsToken(t, "alice")), time.Time{}},
		{"anonymous", true, nil, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.CloseOnExpiry = tc.closeOn
			a := newAuth(t, c)
			method, target := "POST", actionAlice
			if tc.header == nil {
				method, target = "GET", "/metadata"
			}
			res := serve(t, a, newRequest(t, method, target, tc.header...))
			if res.status != 200 {
				t.Fatalf("status: got %d, want 200 (%s)", res.status, res.raw)
			}
			if got := a.SessionDeadline(res.fwd); !got.Equal(tc.want) {
				t.Errorf("SessionDeadline: got %v, want %v", got, tc.want)
			}
		})
	}
	a := newAuth(t, cfg)
	if got := a.SessionDeadline(httptestRequest()); !got.IsZero() {
		t.Errorf("SessionDeadline without identity: got %v, want zero", got)
	}
}

func httptestRequest() *http.Request {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	return r
}

func TestRevalidateJWT(t *testing.T) {
	a := newAuth(t, jwtConfig(t))
	res := serve(t, a, newRequest(t, "POST", actionAlice, bearer(hsToken(t, "alice"))...))
	if res.status != 200 {
		t.Fatalf("status: got %d, want 200", res.status)
	}
	if err := a.Revalidate(res.id); err != nil {
		t.Errorf("Revalidate: got %v, want nil", err)
	}
	// A reload that drops the issuer.
	cfg := DefaultConfig()
	cfg.JWT.Issuers = jwtConfig(t).JWT.Issuers[1:]
	b := newAuth(t, cfg)
	if err := b.Revalidate(res.id); !errors.Is(err, ErrUnknownIssuer) {
		t.Errorf("Revalidate after issuer removal: got %v, want ErrUnknownIssuer", err)
	}
	a.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if err := a.Revalidate(res.id); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("Revalidate after expiry: got %v, want ErrTokenExpired", err)
	}
	if err := a.Revalidate(&Identity{Method: MethodAnonymous}); err != nil {
		t.Errorf("Revalidate(anonymous): got %v, want nil", err)
	}
	if err := a.Revalidate(nil); !errors.Is(err, ErrNoCredential) {
		t.Errorf("Revalidate(nil): got %v, want ErrNoCredential", err)
	}
}
