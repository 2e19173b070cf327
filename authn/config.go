package authn

import (
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Config is the auth: section of the gateway's configuration. Start from
// DefaultConfig: its zero value has no credential sources and fails
// Validate.
type Config struct {
	// Credentials lists where a credential is looked for, in order; the
	// first source that carries one is the one verified. Sources: "bearer"
	// (Authorization: Bearer), "api_key_header" (APIKeyHeader),
	// "conn_params" (field ConnParamsField of the RivetKit connection
	// params: x-rivet-conn-params on HTTP, the rivet_conn_params.
	// subprotocol on WebSocket, which is how browsers authenticate
	// WebSockets), "cookie" (CookieName) and "query" (QueryParam).
	// Default [bearer, api_key_header, conn_params, cookie]: the query
	// source is off unless listed, because URLs end up in logs. Empty is
	// an error.
	Credentials []string `yaml:"credentials"`

	// APIKeyHeader is the request header carrying an API key. Default
	// "X-API-Key". Used only when "api_key_header" is listed.
	APIKeyHeader string `yaml:"api_key_header"`

	// ConnParamsField is the connection-params field carrying a token or
	// API key. Default "authToken". Used only when "conn_params" is listed.
	ConnParamsField string `yaml:"conn_params_field"`

	// CookieName is the cookie carrying a token or API key. Default
	// "rivet_auth". Used only when "cookie" is listed.
	CookieName string `yaml:"cookie_name"`

	// QueryParam is the query parameter carrying a token or API key.
	// Default "access_token" (RFC 6750 §2.3). Used only when "query" is
	// listed in Credentials.
	QueryParam string `yaml:"query_param"`

	// ForwardCredentials keeps credentials in the forwarded request. Default
	// false: every credential found in a configured source (the header, the
	// cookie, the conn-params field, the query parameter) is removed, so
	// actors never see raw tokens.
	ForwardCredentials bool `yaml:"forward_credentials"`

	// CloseOnExpiry makes SessionDeadline report when a WebSocket's
	// credential expires, so the proxy closes the socket then with the
	// retryable reason ws.going_away and the RivetKit client reconnects
	// with fresh params. Default true; false lets sockets outlive tokens.
	CloseOnExpiry bool `yaml:"close_on_expiry"`

	// JWT configures bearer-token verification. No issuers: no JWTs.
	JWT JWTConfig `yaml:"jwt"`

	// APIKeys configures API keys. No keys and no file: no API keys.
	APIKeys APIKeysConfig `yaml:"api_keys"`

	// Rules decide, in order, what each route requires; the first whose
	// match fits the request applies. The built-in rules (BuiltinRules)
	// always follow them: /health and /metadata anonymous, the inspector
	// denied, everything else authenticated. Empty: the built-ins alone.
	Rules []Rule `yaml:"rules"`
}

// JWTConfig configures JWT verification.
type JWTConfig struct {
	// Leeway is the clock skew allowed on exp, nbf, iat and max_age.
	// Default 30s; zero allows none; at most 5m.
	Leeway time.Duration `yaml:"leeway"`

	// Issuers are the trusted token issuers; a token is verified by the
	// one whose Issuer equals its iss claim. Empty: JWTs are not accepted.
	Issuers []IssuerConfig `yaml:"issuers"`
}

// IssuerConfig is one trusted JWT issuer. Exactly one key source must be
// set: Secret, SecretFile, PublicKey, PublicKeyFile or JWKSURL.
type IssuerConfig struct {
	// Name identifies the issuer in logs, metrics and rules. Required,
	// unique.
	Name string `yaml:"name"`

	// Issuer is the exact iss claim of this issuer's tokens. Required:
	// tokens without iss are never accepted.
	Issuer string `yaml:"issuer"`

	// Audiences, when not empty, requires the aud claim to contain at least
	// one of them. Empty: aud is not checked.
	Audiences []string `yaml:"audiences"`

	// Algorithms is the allow-list of signing algorithms: HS256, HS384,
	// HS512 (secrets only), RS256/384/512, PS256/384/512, ES256/384/512 and
	// EdDSA (public keys and JWKS only). Required; "none" is never allowed.
	// A key only ever verifies the algorithms of its own type, so an RSA
	// key can never verify an HMAC token.
	Algorithms []string `yaml:"algorithms"`

	// Secret is the HMAC secret, at least as long as the hash (32 bytes for
	// HS256, 48 for HS384, 64 for HS512). Write it as ${ENV}; never logged.
	Secret Secret `yaml:"secret"`

	// SecretFile is a file holding the HMAC secret (trailing CR/LF
	// trimmed), e.g. a mounted Kubernetes Secret. Read at start and on
	// every configuration reload (a change to the file triggers one).
	SecretFile string `yaml:"secret_file"`

	// PublicKey is inline PEM: one or more PUBLIC KEY, RSA PUBLIC KEY or
	// CERTIFICATE blocks (RSA of at least 2048 bits, ECDSA P-256/384/521,
	// Ed25519). Several blocks allow key rotation.
	PublicKey string `yaml:"public_key"`

	// PublicKeyFile is a file holding PEM as for PublicKey. Read at start
	// and on every configuration reload (a change to the file triggers one).
	PublicKeyFile string `yaml:"public_key_file"`

	// JWKSURL is the issuer's JSON Web Key Set. Must be https (http only
	// for loopback hosts). Fetched at start-up (a failure is logged, not
	// fatal), refreshed in the background every JWKSRefresh, and refetched
	// when a token names an unknown kid, at most once per
	// JWKSRefetchInterval. A failed fetch keeps the last good key set.
	JWKSURL string `yaml:"jwks_url"`

	// JWKSRefresh is the background refresh interval. Zero: 15m.
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`

	// JWKSRefetchInterval is the least time between two refetches caused by
	// tokens naming an unknown kid (a rotation at the issuer); tokens with
	// an unknown kid arriving in between are rejected at once rather than
	// queued. Zero: 1m.
	JWKSRefetchInterval time.Duration `yaml:"jwks_refetch_interval"`

	// JWKSTimeout bounds each JWKS fetch. Zero: 10s.
	JWKSTimeout time.Duration `yaml:"jwks_timeout"`

	// RequiredClaims must be present (and not null) in every token, e.g.
	// [sub]. Empty: none beyond exp.
	RequiredClaims []string `yaml:"required_claims"`

	// AllowMissingExp accepts tokens without an exp claim. Default false:
	// a token that never expires is rejected (reason missing_claim).
	AllowMissingExp bool `yaml:"allow_missing_exp"`

	// MaxAge, when positive, rejects tokens issued (iat) longer ago than
	// this, whatever their exp, and makes iat required. Zero: no limit.
	MaxAge time.Duration `yaml:"max_age"`
}

// APIKeysConfig configures API keys. A presented key is hashed with
// SHA-256 and compared, in constant time, with every configured hash.
type APIKeysConfig struct {
	// Keys are API keys given inline.
	Keys []APIKey `yaml:"keys"`

	// File is a YAML file holding a list of APIKey entries (the same
	// format as Keys), merged with them: mount a Kubernetes Secret here.
	// Empty: no file. It must be readable at start-up.
	File string `yaml:"file"`

	// FileReload is how often File is re-read; keys removed from it are
	// refused from the next request on. A file that no longer parses is
	// logged and the last good keys are kept. Default 30s; zero reads the
	// file once.
	FileReload time.Duration `yaml:"file_reload"`
}

// APIKey is one API key, stored as the SHA-256 of the key. Generate one
// with `openssl rand -hex 32 > key` and hash it with
// `tr -d '\n' < key | sha256sum`.
type APIKey struct {
	// ID names the key in logs, metrics and the Identity. Required, unique.
	ID string `yaml:"id"`

	// SHA256 is the hex SHA-256 of the key's bytes (64 hex digits). Never
	// the key itself.
	SHA256 string `yaml:"sha256"`

	// Expires is when the key stops working (RFC 3339). Zero: never.
	Expires time.Time `yaml:"expires"`

	// Scopes limits what the key may do: each scope is "<intent>:<actor>"
	// with "*" a wildcard in either part ("action:counter", "connect:*",
	// "*:chat"); "<intent>" alone means "<intent>:*" and "*" means
	// everything. Intents: health, metadata, lookup, create, get_or_create,
	// list, destroy, kv, admin, action, queue, request, connect, websocket,
	// inspector. The actor part is the name of the actor the request
	// reaches, however it is addressed (an id is resolved to its actor's
	// name); a request that reaches no one actor (list, admin) only matches
	// "*". Empty: no limit (rules still apply: privileged intents need a
	// rule that names them).
	Scopes []string `yaml:"scopes"`
}

// Rule decides what the requests it matches require.
type Rule struct {
	// Match selects the requests the rule applies to. Empty: all.
	Match Match `yaml:"match"`

	// Allow is "anonymous" (no credential needed; a valid one still sets
	// the Identity, an invalid one is ignored), "authenticated" (a valid
	// credential that passes the checks below) or "deny" (403 for
	// everyone). Default "authenticated".
	Allow string `yaml:"allow"`

	// Methods limits accepted credentials to "jwt" and/or "api_key".
	// Empty: either.
	Methods []string `yaml:"methods"`

	// Issuers limits accepted JWTs to these issuer names. Empty: any
	// configured issuer.
	Issuers []string `yaml:"issuers"`

	// Claims requires, for each claim name, that the claim (or, if it is a
	// list, one of its elements) equal one of the values, e.g.
	// {role: [member, admin]}. A dotted name walks nested objects when no
	// claim has the literal name. API keys have no claims.
	Claims map[string][]string `yaml:"claims"`

	// Scopes requires the caller to hold each of these scopes (API-key
	// scopes, or a JWT's scope/scp claim), compared as in APIKey.Scopes.
	Scopes []string `yaml:"scopes"`

	// KeyBinding, when set, requires an element of the actor key to equal a
	// claim, so a user reaches only their own actor: the key of the actor
	// the request reaches, whether it came in the rvt-key query, the key
	// query parameter or body of /actors, or from the engine for an actor
	// addressed by id. Requests that reach no one actor (list, admin) are
	// refused by such a rule.
	KeyBinding *KeyBinding `yaml:"key_binding"`
}

// Match selects requests by their RivetKit route. Each non-empty list must
// contain the request's value.
type Match struct {
	// Intents: health, metadata, lookup, create, get_or_create, list,
	// destroy, kv, admin, action, queue, request, connect, websocket,
	// inspector. Empty: any intent but the privileged ones (inspector,
	// list, destroy, kv, admin), which only a rule naming them matches.
	Intents []string `yaml:"intents"`

	// Actors are names of the actor the request reaches, however it is
	// addressed (by key, by id, through /actors). Empty: any actor, and
	// requests that reach none.
	Actors []string `yaml:"actors"`

	// Namespaces: the namespace of the actor the request reaches, or the
	// namespace query parameter of a request that reaches none. Empty: any.
	Namespaces []string `yaml:"namespaces"`

	// Targets: "key" for actors addressed by name and key (the query
	// gateway, /actors lookups by key and bodies), "id" for actors addressed
	// by id (/gateway/<id>/..., /actors/<id>, actor_ids=). Empty: any form,
	// and requests that reach no actor. Narrowing it lets the other form
	// fall through to later rules (-check warns).
	Targets []string `yaml:"targets"`
}

// KeyBinding ties an actor-key element to a claim.
type KeyBinding struct {
	// Index is the actor-key element compared, from 0.
	Index int `yaml:"index"`

	// Claim is the claim it must equal; "sub" is the Identity's subject.
	// Required.
	Claim string `yaml:"claim"`
}

// Secret is a string that formats as "[redacted]", so a logged or printed
// Config never shows it.
type Secret string

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString returns the same as String, for %#v.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// Credential source names, as written in Config.Credentials.
const (
	SourceBearer       = "bearer"
	SourceAPIKeyHeader = "api_key_header"
	SourceConnParams   = "conn_params"
	SourceCookie       = "cookie"
	SourceQuery        = "query"
)

// Rule.Allow values.
const (
	AllowAnonymous     = "anonymous"
	AllowAuthenticated = "authenticated"
	AllowDeny          = "deny"
)

// Identity.Method values, also used in Rule.Methods (except anonymous).
const (
	MethodJWT       = "jwt"
	MethodAPIKey    = "api_key"
	MethodAnonymous = "anonymous"
)

// Defaults. DefaultConfig and the per-issuer zero values use these; they
// are the only place defaults live.
const (
	DefaultAPIKeyHeader        = "X-API-Key"
	DefaultConnParamsField     = "authToken"
	DefaultCookieName          = "rivet_auth"
	DefaultQueryParam          = "access_token"
	DefaultLeeway              = 30 * time.Second
	DefaultJWKSRefresh         = 15 * time.Minute
	DefaultJWKSRefetchInterval = time.Minute
	DefaultJWKSTimeout         = 10 * time.Second
	DefaultAPIKeyFileReload    = 30 * time.Second
)

// DefaultConfig returns the configuration with every default set: the
// built-in rules only, no issuers and no API keys (so, until one is
// configured, Validate fails).
func DefaultConfig() Config {
	return Config{
		Credentials:     []string{SourceBearer, SourceAPIKeyHeader, SourceConnParams, SourceCookie},
		APIKeyHeader:    DefaultAPIKeyHeader,
		ConnParamsField: DefaultConnParamsField,
		CookieName:      DefaultCookieName,
		QueryParam:      DefaultQueryParam,
		CloseOnExpiry:   true,
		JWT:             JWTConfig{Leeway: DefaultLeeway},
		APIKeys:         APIKeysConfig{FileReload: DefaultAPIKeyFileReload},
	}
}

// BuiltinRules returns the rules that follow Config.Rules: the RivetKit
// client awaits GET /metadata before anything else and retries it forever,
// so it never requires a credential; the privileged intents (the
// inspector, listing, destroying, an actor's raw storage, engine
// administration) are denied; every other request needs a valid
// credential. A user rule matches a privileged intent only when it names
// it, so the deny effectively runs before every rule that does not.
func BuiltinRules() []Rule {
	return []Rule{
		{Match: Match{Intents: []string{"health", "metadata"}}, Allow: AllowAnonymous},
		{Match: Match{Intents: PrivilegedIntents()}, Allow: AllowDeny},
		{Allow: AllowAuthenticated},
	}
}

// PrivilegedIntents names the intents only an explicit rule can grant.
func PrivilegedIntents() []string {
	var out []string
	for _, i := range rivet.Intents() {
		if i.Privileged() {
			out = append(out, i.String())
		}
	}
	return out
}

// withDefaults returns c with the zero-valued JWKS settings defaulted.
func (c IssuerConfig) withDefaults() IssuerConfig {
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = DefaultJWKSRefresh
	}
	if c.JWKSRefetchInterval == 0 {
		c.JWKSRefetchInterval = DefaultJWKSRefetchInterval
	}
	if c.JWKSTimeout == 0 {
		c.JWKSTimeout = DefaultJWKSTimeout
	}
	return c
}
