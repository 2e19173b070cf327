package authn

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures a request through the Middleware: "none" is the
// floor (an anonymous rule, no credential), the others verify a bearer
// token with the given algorithm and strip it.
func BenchmarkVerify(b *testing.B) {
	k := fixtures()
	ecIssuer := IssuerConfig{Name: "ec", Issuer: "https://ec.test/", Algorithms: []string{"ES256"}, PublicKey: pemPublic(b, &k.ec.PublicKey)}
	rsIssuer := IssuerConfig{Name: "rs", Issuer: rsaIssuer, Algorithms: []string{"RS256"}, PublicKey: pemPublic(b, &k.rsa.PublicKey)}
	cfg := hsConfig()
	cfg.JWT.Issuers = append(cfg.JWT.Issuers, rsIssuer, ecIssuer)

	anon := hsConfig()
	anon.Rules = []Rule{{Allow: AllowAnonymous}}

	claims := func(iss string) jwt.MapClaims { c := claimsFor(iss, "alice"); delete(c, "aud"); return c }
	cases := []struct {
		name  string
		cfg   Config
		token string
	}{
		{"none", anon, ""},
		{"HS256", cfg, sign(b, jwt.SigningMethodHS256, []byte(testSecret), claimsFor(localIssuer, "alice"), "")},
		{"RS256", cfg, sign(b, jwt.SigningMethodRS256, k.rsa, claims(rsaIssuer), "")},
		{"ES256", cfg, sign(b, jwt.SigningMethodES256, k.ec, claims("https://ec.test/"), "")},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			a := newAuth(b, bc.cfg)
			ok := 0
			h := a.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ok++ }))
			var headers []string
			if bc.token != "" {
				headers = bearer(bc.token)
			}
			r := newRequest(b, "POST", actionAlice, headers...)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				h.ServeHTTP(w, r)
			}
			b.StopTimer()
			if ok != b.N {
				b.Fatalf("passed %d of %d requests (status %d: %s)", ok, b.N, w.Code, w.Body)
			}
		})
	}
}
