package authn

import (
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rivet-gateway/rivet-gateway/config"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// maxLeeway bounds JWTConfig.Leeway: more is a misconfiguration, not skew.
const maxLeeway = 5 * time.Minute

// problems collects Validate's findings, each a *config.PathError.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, config.Errorf(path, format, args...))
}

// Validate reports every problem in c at once (errors.Join), each a
// *config.PathError naming its YAML path below path, e.g.
// "auth.jwt.issuers[1].jwks_url: must be https". It reads no files and
// makes no requests; New does that.
func (c *Config) Validate(path string) error {
	var p problems
	c.validateSources(&p, path)
	c.JWT.validate(&p, path+".jwt")
	names := make(map[string]bool, len(c.JWT.Issuers))
	for _, is := range c.JWT.Issuers {
		names[is.Name] = true
	}
	c.APIKeys.validate(&p, path+".api_keys")
	for i, r := range c.Rules {
		r.validate(&p, fmt.Sprintf("%s.rules[%d]", path, i), names)
	}
	if len(c.JWT.Issuers) == 0 && len(c.APIKeys.Keys) == 0 && c.APIKeys.File == "" {
		p.add(path, "no credential can ever be valid: configure jwt.issuers, api_keys.keys or api_keys.file")
	}
	return errors.Join(p...)
}

func (c *Config) validateSources(p *problems, path string) {
	if len(c.Credentials) == 0 {
		p.add(path+".credentials", "must list at least one source")
	}
	seen := make(map[string]bool, len(c.Credentials))
	for i, s := range c.Credentials {
		sp := fmt.Sprintf("%s.credentials[%d]", path, i)
		if _, ok := parseSource(s); !ok {
			p.add(sp, "unknown source %q (want bearer, api_key_header, conn_params, cookie or query)", s)
		}
		if seen[s] {
			p.add(sp, "duplicate source %q", s)
		}
		seen[s] = true
	}
	need := func(source, field, value string) {
		if seen[source] && value == "" {
			p.add(path+"."+field, "required when credentials lists %s", source)
		}
	}
	need(SourceAPIKeyHeader, "api_key_header", c.APIKeyHeader)
	need(SourceConnParams, "conn_params_field", c.ConnParamsField)
	need(SourceCookie, "cookie_name", c.CookieName)
	need(SourceQuery, "query_param", c.QueryParam)
	if c.APIKeyHeader != "" && !validHeaderName(c.APIKeyHeader) {
		p.add(path+".api_key_header", "%q is not a valid header name", c.APIKeyHeader)
	}
	if seen[SourceAPIKeyHeader] && strings.EqualFold(c.APIKeyHeader, "Authorization") {
		p.add(path+".api_key_header", "must not be Authorization (use the bearer source)")
	}
}

func (j *JWTConfig) validate(p *problems, path string) {
	if j.Leeway < 0 || j.Leeway > maxLeeway {
		p.add(path+".leeway", "must be between 0s and %s", maxLeeway)
	}
	names := make(map[string]bool, len(j.Issuers))
	issuers := make(map[string]bool, len(j.Issuers))
	for i, is := range j.Issuers {
		ip := fmt.Sprintf("%s.issuers[%d]", path, i)
		is.validate(p, ip)
		if is.Name != "" && names[is.Name] {
			p.add(ip+".name", "duplicate issuer name %q", is.Name)
		}
		names[is.Name] = true
		if is.Issuer != "" && issuers[is.Issuer] {
			p.add(ip+".issuer", "duplicate issuer %q: tokens are routed to an issuer by their iss claim", is.Issuer)
		}
		issuers[is.Issuer] = true
	}
}

func (c *IssuerConfig) validate(p *problems, path string) {
	if c.Name == "" {
		p.add(path+".name", "required")
	}
	if c.Issuer == "" {
		p.add(path+".issuer", "required (the exact iss claim of this issuer's tokens)")
	}
	for i, a := range c.Audiences {
		if a == "" {
			p.add(fmt.Sprintf("%s.audiences[%d]", path, i), "must not be empty")
		}
	}

	sources := 0
	for _, set := range []bool{c.Secret != "", c.SecretFile != "", c.PublicKey != "", c.PublicKeyFile != "", c.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		p.add(path, "set exactly one of secret, secret_file, public_key, public_key_file and jwks_url (got %d)", sources)
	}
	symmetric := c.Secret != "" || c.SecretFile != ""

	if len(c.Algorithms) == 0 {
		p.add(path+".algorithms", "required (e.g. [RS256])")
	}
	for i, a := range c.Algorithms {
		ap := fmt.Sprintf("%s.algorithms[%d]", path, i)
		fam, ok := algFamilyOf(a)
		switch {
		case strings.EqualFold(a, "none"):
			p.add(ap, `"none" is never allowed`)
		case !ok:
			p.add(ap, "unknown algorithm %q (want HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA)", a)
		case sources == 1 && symmetric && fam != familyHMAC:
			p.add(ap, "%s needs a public key; a secret verifies only HS256, HS384 and HS512", a)
		case sources == 1 && !symmetric && fam == familyHMAC:
			p.add(ap, "%s needs a shared secret; public keys and JWKS verify only asymmetric algorithms", a)
		}
	}
	if c.Secret != "" {
		s := string(c.Secret)
		if strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}") {
			p.add(path+".secret", "looks like an unexpanded environment variable")
		} else if need := minSecretLen(c.Algorithms); len(s) < need {
			p.add(path+".secret", "must be at least %d bytes for %s", need, strings.Join(c.Algorithms, ", "))
		}
	}
	if c.PublicKey != "" {
		if _, err := parsePublicKeys([]byte(c.PublicKey)); err != nil {
			p.add(path+".public_key", "%v", err)
		}
	}
	if c.JWKSURL != "" {
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			p.add(path+".jwks_url", "%v", err)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"jwks_refresh", c.JWKSRefresh}, {"jwks_refetch_interval", c.JWKSRefetchInterval}, {"jwks_timeout", c.JWKSTimeout}, {"max_age", c.MaxAge}} {
		if d.v < 0 {
			p.add(path+"."+d.name, "must not be negative")
		}
	}
	for i, cl := range c.RequiredClaims {
		if cl == "" {
			p.add(fmt.Sprintf("%s.required_claims[%d]", path, i), "must not be empty")
		}
	}
}

// checkJWKSURL requires https, except for loopback hosts (a local IdP in
// development): keys fetched over plain HTTP could be swapped in transit.
func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	switch {
	case u.Host == "":
		return errors.New("must be an absolute https URL")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return errors.New("must be https (http is allowed only for loopback hosts)")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *APIKeysConfig) validate(p *problems, path string) {
	if c.FileReload < 0 {
		p.add(path+".file_reload", "must not be negative")
	}
	validateKeys(p, path+".keys", c.Keys)
}

// validateKeys checks a list of keys, inline or from the keys file.
func validateKeys(p *problems, path string, keys []APIKey) {
	ids := make(map[string]bool, len(keys))
	hashes := make(map[string]bool, len(keys))
	for i, k := range keys {
		kp := fmt.Sprintf("%s[%d]", path, i)
		if k.ID == "" {
			p.add(kp+".id", "required")
		} else if ids[k.ID] {
			p.add(kp+".id", "duplicate id %q", k.ID)
		}
		ids[k.ID] = true
		h := strings.ToLower(k.SHA256)
		if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
			p.add(kp+".sha256", "must be 64 hex digits (the SHA-256 of the key, never the key)")
		} else if hashes[h] {
			p.add(kp+".sha256", "same hash as another key")
		}
		hashes[h] = true
		for j, s := range k.Scopes {
			if _, err := parseScope(s); err != nil {
				p.add(fmt.Sprintf("%s.scopes[%d]", kp, j), "%v", err)
			}
		}
	}
}

func (r *Rule) validate(p *problems, path string, issuers map[string]bool) {
	for i, s := range r.Match.Intents {
		if _, ok := rivet.ParseIntent(s); !ok {
			p.add(fmt.Sprintf("%s.match.intents[%d]", path, i), "unknown intent %q%s", s, intentHint(s))
		}
	}
	for i, t := range r.Match.Targets {
		if t != "id" && t != "key" {
			p.add(fmt.Sprintf("%s.match.targets[%d]", path, i), "unknown target %q (want id or key)", t)
		}
	}
	checks := len(r.Methods) > 0 || len(r.Issuers) > 0 || len(r.Claims) > 0 || len(r.Scopes) > 0 || r.KeyBinding != nil
	switch r.Allow {
	case "", AllowAuthenticated:
	case AllowAnonymous, AllowDeny:
		if checks {
			p.add(path, "methods, issuers, claims, scopes and key_binding apply only to allow: authenticated")
		}
	default:
		p.add(path+".allow", "unknown value %q (want anonymous, authenticated or deny)", r.Allow)
	}
	for i, m := range r.Methods {
		if m != MethodJWT && m != MethodAPIKey {
			p.add(fmt.Sprintf("%s.methods[%d]", path, i), "unknown method %q (want jwt or api_key)", m)
		}
	}
	for i, n := range r.Issuers {
		if !issuers[n] {
			p.add(fmt.Sprintf("%s.issuers[%d]", path, i), "no issuer named %q in jwt.issuers", n)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Claims)) {
		if name == "" {
			p.add(path+".claims", "claim name must not be empty")
		}
		if len(r.Claims[name]) == 0 {
			p.add(fmt.Sprintf("%s.claims.%s", path, name), "list at least one accepted value")
		}
	}
	for i, s := range r.Scopes {
		if s == "" {
			p.add(fmt.Sprintf("%s.scopes[%d]", path, i), "must not be empty")
		}
	}
	if b := r.KeyBinding; b != nil {
		if b.Index < 0 {
			p.add(path+".key_binding.index", "must not be negative")
		}
		if b.Claim == "" {
			p.add(path+".key_binding.claim", "required (e.g. sub)")
		}
	}
}

// intentHint explains an intent name that no longer exists.
func intentHint(s string) string {
	if s == "actors" {
		return " (the management API is split by what it does: lookup, create, get_or_create, list, destroy, kv, admin)"
	}
	return " (want one of " + intentList() + ")"
}

func intentList() string {
	names := make([]string, 0, 16)
	for _, i := range rivet.Intents() {
		names = append(names, i.String())
	}
	return strings.Join(names, ", ")
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
