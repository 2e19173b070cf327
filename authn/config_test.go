package authn

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// readmeJWKS and readmeAPIKeys are the examples in the README; they must
// decode strictly and validate.
const readmeJWKS = `
auth:
  # Where credentials are looked for, first match wins. Browsers cannot set
  # headers on a WebSocket, so the RivetKit client's connection params
  # (createClient / getOrCreate({params: {authToken}}), or getParams for
  # fresh tokens on every reconnect) carry the token there.
  credentials: [bearer, conn_params]
  conn_params_field: authToken
  close_on_expiry: true        # close a WebSocket when its token expires (ws.going_away: the client reconnects)
  jwt:
    leeway: 30s
    issuers:
      - name: auth0
        issuer: https://example.eu.auth0.com/       # exact iss claim
        audiences: [https://rivet.example.com]
        algorithms: [RS256]
        jwks_url: https://example.eu.auth0.com/.well-known/jwks.json
        jwks_refresh: 15m               # background refresh
        jwks_refetch_interval: 1m       # at most one refetch per minute for unknown kids
        required_claims: [sub]
        max_age: 24h
  rules:
    # Each user reaches only the counter whose key starts with their sub:
    # client.counter.getOrCreate([userId]).
    - match: {actors: [counter]}
      allow: authenticated
      claims: {"https://example.com/role": [member, admin]}
      key_binding: {index: 0, claim: sub}
    # Built-ins follow: /health and /metadata anonymous; the inspector,
    # listing, destroy, KV and engine administration denied; everything
    # else needs a valid token.
`

const readmeAPIKeys = `
auth:
  credentials: [bearer, api_key_header, conn_params]
  api_key_header: X-API-Key
  api_keys:
    keys:
      # sha256 of the key: tr -d '\n' < key | sha256sum. Never the key itself.
      - id: billing-backend
        sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
        expires: 2027-01-01T00:00:00Z
        scopes: ["action:counter", "queue:*"]    # <intent>:<actor>, * = any
      - id: ops
        sha256: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
        scopes: ["*"]
    file: /etc/rivet-gateway/api-keys.yaml   # same list format, e.g. a mounted Kubernetes Secret
    file_reload: 30s                         # removed keys are refused within this
  rules:
    - match: {intents: [inspector]}
      allow: authenticated
      methods: [api_key]
      scopes: ["inspector:*"]
`

func decodeStrict(t *testing.T, doc string) Config {
	t.Helper()
	var wrapper struct {
		Auth Config `yaml:"auth"`
	}
	wrapper.Auth = DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&wrapper); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return wrapper.Auth
}

func TestReadmeExamples(t *testing.T) {
	for name, doc := range map[string]string{"jwks": readmeJWKS, "api keys": readmeAPIKeys} {
		t.Run(name, func(t *testing.T) {
			cfg := decodeStrict(t, doc)
			if err := cfg.Validate("auth"); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
	cfg := decodeStrict(t, readmeJWKS)
	is := cfg.JWT.Issuers[0]
	if is.JWKSRefresh != 15*time.Minute || is.MaxAge != 24*time.Hour || cfg.JWT.Leeway != 30*time.Second {
		t.Errorf("durations: got refresh %s, max_age %s, leeway %s", is.JWKSRefresh, is.MaxAge, cfg.JWT.Leeway)
	}
	if !cfg.CloseOnExpiry || cfg.CookieName != DefaultCookieName {
		t.Errorf("defaults lost in decoding: %+v", cfg)
	}
	keys := decodeStrict(t, readmeAPIKeys).APIKeys.Keys
	if want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC); !keys[0].Expires.Equal(want) {
		t.Errorf("expires: got %v, want %v", keys[0].Expires, want)
	}
}

func TestValidate(t *testing.T) {
	k := fixtures()
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}))
	issuer := func(mod func(*IssuerConfig)) func(*Config) {
		return func(c *Config) { mod(&c.JWT.Issuers[0]) }
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // substrings, each must appear
	}{
		{"valid", func(*Config) {}, nil},
		{"no sources", func(c *Config) { c.Credentials = nil }, []string{"auth.credentials: must list"}},
		{"unknown source", func(c *Config) { c.Credentials = []string{"bearer", "header"} }, []string{`auth.credentials[1]: unknown source "header"`}},
		{"duplicate source", func(c *Config) { c.Credentials = []string{"bearer", "bearer"} }, []string{"auth.credentials[1]: duplicate"}},
		{"query without a name", func(c *Config) { c.Credentials = []string{"query"}; c.QueryParam = "" }, []string{"auth.query_param: required"}},
		{"bad header name", func(c *Config) { c.APIKeyHeader = "X API Key" }, []string{"auth.api_key_header:"}},
		{"api key header is Authorization", func(c *Config) { c.APIKeyHeader = "authorization" }, []string{"auth.api_key_header: must not be Authorization"}},
		{"leeway", func(c *Config) { c.JWT.Leeway = time.Hour }, []string{"auth.jwt.leeway:"}},
		{"issuer name and iss", issuer(func(i *IssuerConfig) { i.Name, i.Issuer = "", "" }), []string{"auth.jwt.issuers[0].name: required", "auth.jwt.issuers[0].issuer: required"}},
		{"alg none", issuer(func(i *IssuerConfig) { i.Algorithms = []string{"HS256", "none"} }), []string{`auth.jwt.issuers[0].algorithms[1]: "none" is never allowed`}},
		{"unknown alg", issuer(func(i *IssuerConfig) { i.Algorithms = []string{"HS1"} }), []string{"auth.jwt.issuers[0].algorithms[0]: unknown algorithm"}},
		{"no algs", issuer(func(i *IssuerConfig) { i.Algorithms = nil }), []string{"auth.jwt.issuers[0].algorithms: required"}},
		{"RS256 with a secret", issuer(func(i *IssuerConfig) { i.Algorithms = []string{"RS256"} }), []string{"auth.jwt.issuers[0].algorithms[0]: RS256 needs a public key"}},
		{"HS256 with a public key", issuer(func(i *IssuerConfig) { i.Secret, i.PublicKey = "", pemPublic(t, &k.rsa.PublicKey) }), []string{"auth.jwt.issuers[0].algorithms[0]: HS256 needs a shared secret"}},
		{"HS256 with JWKS", issuer(func(i *IssuerConfig) { i.Secret, i.JWKSURL = "", "https://idp.test/jwks" }), []string{"HS256 needs a shared secret"}},
		{"short secret", issuer(func(i *IssuerConfig) { i.Secret = "short" }), []string{"auth.jwt.issuers[0].secret: must be at least 32 bytes"}},
		{"short secret for HS512", issuer(func(i *IssuerConfig) { i.Algorithms = []string{"HS512"} }), []string{"auth.jwt.issuers[0].secret: must be at least 64 bytes"}},
		{"unexpanded env", issuer(func(i *IssuerConfig) { i.Secret = "${JWT_SECRET}" }), []string{"auth.jwt.issuers[0].secret: looks like an unexpanded"}},
		{"two key sources", issuer(func(i *IssuerConfig) { i.SecretFile = "/x" }), []string{"auth.jwt.issuers[0]: set exactly one of"}},
		{"no key source", issuer(func(i *IssuerConfig) { i.Secret = "" }), []string{"auth.jwt.issuers[0]: set exactly one of"}},
		{"private key PEM", issuer(func(i *IssuerConfig) { i.Secret, i.PublicKey, i.Algorithms = "", privPEM, []string{"ES256"} }), []string{"auth.jwt.issuers[0].public_key: PEM block 1 is a private key"}},
		{"jwks over http", issuer(func(i *IssuerConfig) {
			i.Secret, i.JWKSURL, i.Algorithms = "", "http://idp.example.com/jwks", []string{"RS256"}
		}), []string{"auth.jwt.issuers[0].jwks_url: must be https"}},
		{"jwks over http on loopback", issuer(func(i *IssuerConfig) {
			i.Secret, i.JWKSURL, i.Algorithms = "", "http://127.0.0.1:8080/jwks", []string{"RS256"}
		}), nil},
		{"jwks relative", issuer(func(i *IssuerConfig) {
			i.Secret, i.JWKSURL, i.Algorithms = "", "/jwks", []string{"RS256"}
		}), []string{"auth.jwt.issuers[0].jwks_url: must be an absolute https URL"}},
		{"negative durations", issuer(func(i *IssuerConfig) { i.MaxAge, i.JWKSRefresh = -1, -1 }), []string{"issuers[0].max_age: must not be negative", "issuers[0].jwks_refresh: must not be negative"}},
		{"duplicate issuers", func(c *Config) { c.JWT.Issuers = append(c.JWT.Issuers, c.JWT.Issuers[0]) }, []string{`auth.jwt.issuers[1].name: duplicate issuer name "local"`, "auth.jwt.issuers[1].issuer: duplicate issuer"}},
		{"api key hash", func(c *Config) {
			c.APIKeys.Keys = []APIKey{{ID: "a", SHA256: "plaintext-key"}, {ID: "a", SHA256: hashHex("x"), Scopes: []string{"fly:*"}}}
		}, []string{"auth.api_keys.keys[0].sha256: must be 64 hex digits", `auth.api_keys.keys[1].id: duplicate id "a"`, "auth.api_keys.keys[1].scopes[0]:"}},
		{"same hash twice", func(c *Config) {
			c.APIKeys.Keys = []APIKey{{ID: "a", SHA256: hashHex("x")}, {ID: "b", SHA256: strings.ToUpper(hashHex("x"))}}
		}, []string{"auth.api_keys.keys[1].sha256: same hash as another key"}},
		{"rules", func(c *Config) {
			c.Rules = []Rule{
				{Match: Match{Intents: []string{"acton"}, Targets: []string{"name"}}, Allow: "maybe"},
				{Allow: AllowAnonymous, Claims: map[string][]string{"role": {"x"}}},
				{Issuers: []string{"nobody"}, Methods: []string{"password"}, KeyBinding: &KeyBinding{Index: -1}},
				{Claims: map[string][]string{"role": nil}},
			}
		}, []string{
			`auth.rules[0].match.intents[0]: unknown intent "acton"`,
			`auth.rules[0].match.targets[0]: unknown target "name"`,
			`auth.rules[0].allow: unknown value "maybe"`,
			"auth.rules[1]: methods, issuers, claims, scopes and key_binding apply only to allow: authenticated",
			`auth.rules[2].issuers[0]: no issuer named "nobody"`,
			`auth.rules[2].methods[0]: unknown method "password"`,
			"auth.rules[2].key_binding.index: must not be negative",
			"auth.rules[2].key_binding.claim: required",
			"auth.rules[3].claims.role: list at least one accepted value",
		}},
		{"nothing can authenticate", func(c *Config) { c.JWT.Issuers = nil }, []string{"auth: no credential can ever be valid"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hsConfig()
			tc.mod(&cfg)
			err := cfg.Validate("auth")
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: got nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: got\n%v\nwant it to contain %q", err, w)
				}
			}
			if _, err := New(cfg, Options{}); err == nil {
				t.Errorf("New accepted a config Validate rejects")
			}
		})
	}
}

func TestSecretNeverFormatted(t *testing.T) {
	cfg := hsConfig()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, cfg); strings.Contains(s, testSecret) {
			t.Errorf("%s prints the secret: %s", verb, s)
		}
	}
}

// TestLogsNeverHoldCredentials runs rejections and passes with a debug
// logger and checks no credential reaches it.
func TestLogsNeverHoldCredentials(t *testing.T) {
	var buf bytes.Buffer
	cfg := hsConfig()
	cfg.APIKeys.Keys = []APIKey{{ID: "full", SHA256: hashHex(fullKey)}}
	a := newAuth(t, cfg, Options{Logger: newDebugLogger(&buf)})
	tok := hsToken(t, "alice", "exp", 1)
	secrets := []string{tok, fullKey, fullKey + "x", testSecret, "conn-secret"}
	for _, h := range [][]string{
		bearer(tok),
		{"X-API-Key", fullKey},
		{"X-API-Key", fullKey + "x"},
		{"X-Rivet-Conn-Params", `{"authToken":"conn-secret"}`},
		{"X-Rivet-Conn-Params", `{"authToken":123}`},
	} {
		serve(t, a, newRequest(t, "POST", actionAlice, h...))
		serve(t, a, newRequest(t, "GET", inspector, h...))
	}
	if !strings.Contains(buf.String(), "request rejected") {
		t.Fatalf("no rejection logged at debug level: %s", buf.String())
	}
	for _, s := range secrets {
		if strings.Contains(buf.String(), s) {
			t.Errorf("log holds a credential (%.12s...):\n%s", s, buf.String())
		}
	}
}

func newDebugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
