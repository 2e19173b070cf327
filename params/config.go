package params

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/rivet-gateway/rivet-gateway/config"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Source names, as written in params.source.
const (
	SourceNone   = "none"
	SourceStatic = "static"
	SourceClaims = "claims"
	SourceHTTP   = "http"
)

// Policy names, as written in params.policy.
const (
	PolicyReplace     = "replace"
	PolicyMerge       = "merge"
	PolicyPassthrough = "passthrough"
)

// Missing-claim modes, as written in params.missing_claim.
const (
	MissingDeny = "deny"
	MissingOmit = "omit"
	MissingNull = "null"
)

// ForwardAllClaims in params.http.forward_claims sends every claim.
const ForwardAllClaims = "*"

// Config is the `params:` section: where connection params come from and how
// they replace what the client sent. The zero value is the layer switched off
// (source none), like DefaultConfig.
type Config struct {
	// Source is where params come from: "none" (the layer is off and passes
	// every request through untouched), "static", "claims" or "http".
	// Default and zero: "none".
	Source string `yaml:"source"`

	// Policy decides what happens to the params the client sent:
	// "replace" drops them; "merge" keeps them as the base, minus the
	// credential fields authn consumed, and lets every server key win;
	// "passthrough" injects nothing. Default and zero: "replace".
	Policy string `yaml:"policy"`

	// Dialect is where params are written: "current" (RivetKit 2.3.x: header
	// x-rivet-conn-params on HTTP, subprotocol rivet_conn_params.<form-encoded
	// JSON> on WebSocket) or "legacy" (header X-RivetKit-Conn-Params on HTTP
	// requests and WebSocket upgrades). Default and zero: "current".
	Dialect string `yaml:"dialect"`

	// MaxHeaderBytes bounds the params JSON written to a header carrier.
	// Params that do not fit are an error, never truncated. The WebSocket
	// subprotocol carrier has its own fixed bound, rivet.MaxProtocolParams
	// (4096 encoded bytes). Default 8192; zero means the default.
	MaxHeaderBytes int `yaml:"max_header_bytes"`

	// Static is the constant params object for source "static". Values may
	// come from ${ENV}; strings are taken literally (no templates).
	// Required (may be {}) with source static; must be empty otherwise.
	Static map[string]any `yaml:"static"`

	// Claims is the mapping for source "claims": an object whose string
	// leaves may be text/template templates over the caller (see the package
	// doc for fields and typing rules). Objects and arrays nest; other
	// scalars are copied. Required with source claims; must be empty
	// otherwise.
	Claims map[string]any `yaml:"claims"`

	// MissingClaim is what a claims template does when what it references is
	// absent, null or empty for this caller: "deny" refuses the request
	// (403 auth.forbidden), "omit" leaves the key (or array element) out,
	// "null" writes null. Default and zero: "deny".
	MissingClaim string `yaml:"missing_claim"`

	// HTTP configures source "http".
	HTTP HTTPConfig `yaml:"http"`

	// Retry bounds the retries of a failing params service (source http).
	Retry RetryConfig `yaml:"retry"`

	// Cache optionally keeps params service answers (source http).
	Cache CacheConfig `yaml:"cache"`
}

// HTTPConfig is the params service of source "http".
type HTTPConfig struct {
	// URL is the absolute http or https URL the gateway POSTs to. Required
	// with source http; must be empty otherwise. Redirects are not followed.
	URL string `yaml:"url"`

	// Headers are sent with every request, e.g. {Authorization: "Bearer
	// ${PARAMS_TOKEN}"}. Never logged. Zero: none.
	Headers map[string]string `yaml:"headers"`

	// HeaderFiles are headers whose values are read from files (trailing
	// CR/LF trimmed), e.g. {Authorization: /secrets/params/authorization}
	// with the file holding "Bearer …": a Kubernetes Secret rotates the
	// file and the reload that follows (the watcher sees the change) sends
	// the new value. A header is in headers or header_files, not both.
	// Never logged. Zero: none.
	HeaderFiles map[string]string `yaml:"header_files"`

	// Timeout bounds one attempt (connect, request, response body).
	// Default 2s; zero means the default.
	Timeout time.Duration `yaml:"timeout"`

	// CAFile is a PEM bundle that replaces the system roots for an https
	// URL. Read by New; the gateway builds a new injector on a reload that
	// finds the content of this or another params file changed. Zero: the
	// system roots.
	CAFile string `yaml:"ca_file"`

	// CertFile and KeyFile are a PEM client certificate and key presented
	// to the service (mutual TLS), read like CAFile, so a rotated client
	// certificate applies from the next reload. Both or neither. Zero: no
	// client cert.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`

	// MaxResponseBytes bounds the response body; a longer answer fails with
	// cause too_large and is not retried. Default 65536; zero means the
	// default.
	MaxResponseBytes int64 `yaml:"max_response_bytes"`

	// ForwardClaims names the caller's claims sent in caller.claims; "*"
	// sends them all. Zero: none (subject, issuer, API key id and scopes are
	// always sent).
	ForwardClaims []string `yaml:"forward_claims"`
}

// RetryConfig is the per-connection retry budget for the params service:
// attempts are spaced by exponential backoff with full jitter and stop at the
// first of MaxAttempts, Budget, a non-retryable answer or the client leaving.
type RetryConfig struct {
	// MaxAttempts is the number of attempts, the first included; 1 means no
	// retry. Default 4; zero means the default.
	MaxAttempts int `yaml:"max_attempts"`

	// InitialBackoff caps the first pause; the cap doubles per retry up to
	// MaxBackoff and each pause is uniform in [0, cap]. Default 100ms; zero
	// means the default.
	InitialBackoff time.Duration `yaml:"initial_backoff"`

	// MaxBackoff is the largest pause cap. Default 1s; zero means the
	// default.
	MaxBackoff time.Duration `yaml:"max_backoff"`

	// Budget bounds the whole fetch, attempts and pauses together.
	// Default 5s; zero means the default.
	Budget time.Duration `yaml:"budget"`
}

// CacheConfig is the optional cache of params service answers, keyed by the
// whole description sent to the service (caller, route, kept client params).
// While it is on, concurrent identical fetches share one request.
type CacheConfig struct {
	// TTL is how long an answer is reused. Default and zero: 0, the cache is
	// off and no two connections ever share a fetch.
	TTL time.Duration `yaml:"ttl"`

	// MaxEntries bounds the cache; when full, expired entries go first, then
	// arbitrary ones. Default 10000; zero means the default.
	MaxEntries int `yaml:"max_entries"`
}

// DefaultConfig returns the defaults: source none (the layer is off), policy
// replace, dialect current, 8 KiB header bound, missing claims deny, a 2s
// timeout and 64 KiB answers for the http source, 4 attempts within 5s with
// backoff from 100ms to 1s, and no cache.
func DefaultConfig() Config {
	return Config{
		Source:         SourceNone,
		Policy:         PolicyReplace,
		Dialect:        rivet.DialectCurrent.String(),
		MaxHeaderBytes: 8192,
		MissingClaim:   MissingDeny,
		HTTP: HTTPConfig{
			Timeout:          2 * time.Second,
			MaxResponseBytes: 64 << 10,
		},
		Retry: RetryConfig{
			MaxAttempts:    4,
			InitialBackoff: 100 * time.Millisecond,
			MaxBackoff:     time.Second,
			Budget:         5 * time.Second,
		},
		Cache: CacheConfig{MaxEntries: 10000},
	}
}

// withDefaults returns c with every zero field that has a default set to
// it: the one place zero values are interpreted.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDefault(&c.Source, d.Source)
	setDefault(&c.Policy, d.Policy)
	setDefault(&c.Dialect, d.Dialect)
	setDefault(&c.MaxHeaderBytes, d.MaxHeaderBytes)
	setDefault(&c.MissingClaim, d.MissingClaim)
	setDefault(&c.HTTP.Timeout, d.HTTP.Timeout)
	setDefault(&c.HTTP.MaxResponseBytes, d.HTTP.MaxResponseBytes)
	setDefault(&c.Retry.MaxAttempts, d.Retry.MaxAttempts)
	setDefault(&c.Retry.InitialBackoff, d.Retry.InitialBackoff)
	setDefault(&c.Retry.MaxBackoff, d.Retry.MaxBackoff)
	setDefault(&c.Retry.Budget, d.Retry.Budget)
	setDefault(&c.Cache.MaxEntries, d.Cache.MaxEntries)
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports every problem in c at once, each a *config.PathError
// naming its YAML path under path (e.g. "params.http.url: required with
// source http"). It reads no files: New reports unreadable CA or
// certificate files.
func (c *Config) Validate(path string) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, config.Errorf(path+"."+field, format, args...))
	}
	cfg := c.withDefaults()

	switch cfg.Source {
	case SourceNone, SourceStatic, SourceClaims, SourceHTTP:
	default:
		bad("source", "unknown source %q (want none, static, claims or http)", c.Source)
	}
	switch cfg.Policy {
	case PolicyReplace, PolicyMerge:
	case PolicyPassthrough:
		if cfg.Source != SourceNone {
			bad("policy", "passthrough injects nothing, so source %q would never be used; set source: none", cfg.Source)
		}
	default:
		bad("policy", "unknown policy %q (want replace, merge or passthrough)", c.Policy)
	}
	if _, err := rivet.ParseDialect(cfg.Dialect); err != nil {
		bad("dialect", "%v", err)
	}
	if c.MaxHeaderBytes < 0 {
		bad("max_header_bytes", "must not be negative")
	}
	switch cfg.MissingClaim {
	case MissingDeny, MissingOmit, MissingNull:
	default:
		bad("missing_claim", "unknown mode %q (want deny, omit or null)", c.MissingClaim)
	}

	// Static.
	switch {
	case cfg.Source == SourceStatic && c.Static == nil:
		bad("static", "required with source static (use {} for an empty object)")
	case cfg.Source != SourceStatic && len(c.Static) > 0:
		bad("static", "set, but source is %q", cfg.Source)
	case c.Static != nil:
		if _, err := normalize(c.Static); err != nil {
			bad("static", "%v", err)
		}
	}

	// Claims.
	switch {
	case cfg.Source == SourceClaims && len(c.Claims) == 0:
		bad("claims", "required with source claims")
	case cfg.Source != SourceClaims && len(c.Claims) > 0:
		bad("claims", "set, but source is %q", cfg.Source)
	case len(c.Claims) > 0:
		if _, err := compileMapping(c.Claims, path+".claims"); err != nil {
			errs = append(errs, err)
		}
	}

	// HTTP.
	h := c.HTTP
	hp := "http."
	if cfg.Source == SourceHTTP {
		if h.URL == "" {
			bad(hp+"url", "required with source http")
		} else if u, err := url.Parse(h.URL); err != nil {
			bad(hp+"url", "not a URL")
		} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(hp+"url", "must be an absolute http or https URL")
		} else if u.User != nil {
			bad(hp+"url", "must not carry credentials; use http.headers")
		}
	} else if h.URL != "" {
		bad(hp+"url", "set, but source is %q", cfg.Source)
	}
	for name, v := range h.Headers {
		if !validHeaderName(name) {
			bad(hp+"headers", "invalid header name %q", name)
		}
		if !validHeaderValue(v) {
			bad(hp+"headers."+name, "value contains control characters")
		}
	}
	for name, file := range h.HeaderFiles {
		if !validHeaderName(name) {
			bad(hp+"header_files", "invalid header name %q", name)
		}
		if file == "" {
			bad(hp+"header_files."+name, "empty file name")
		}
		for other := range h.Headers {
			if strings.EqualFold(name, other) {
				bad(hp+"header_files."+name, "also set in http.headers")
			}
		}
	}
	if h.Timeout < 0 {
		bad(hp+"timeout", "must not be negative")
	}
	if (h.CertFile == "") != (h.KeyFile == "") {
		bad(hp+"cert_file", "cert_file and key_file go together")
	}
	if h.MaxResponseBytes < 0 {
		bad(hp+"max_response_bytes", "must not be negative")
	}
	for n, name := range h.ForwardClaims {
		if name == "" {
			bad(fmt.Sprintf("%sforward_claims[%d]", hp, n), "empty claim name")
		}
	}

	// Retry.
	r := cfg.Retry
	if c.Retry.MaxAttempts < 0 {
		bad("retry.max_attempts", "must not be negative")
	}
	if c.Retry.InitialBackoff < 0 {
		bad("retry.initial_backoff", "must not be negative")
	}
	if c.Retry.MaxBackoff < 0 {
		bad("retry.max_backoff", "must not be negative")
	} else if r.MaxBackoff < r.InitialBackoff {
		bad("retry.max_backoff", "%v is less than initial_backoff %v", r.MaxBackoff, r.InitialBackoff)
	}
	if c.Retry.Budget < 0 {
		bad("retry.budget", "must not be negative")
	}

	// Cache.
	if c.Cache.TTL < 0 {
		bad("cache.ttl", "must not be negative")
	} else if c.Cache.TTL > 0 && cfg.Source != SourceHTTP {
		bad("cache.ttl", "the cache applies to source http only, source is %q", cfg.Source)
	}
	if c.Cache.MaxEntries < 0 {
		bad("cache.max_entries", "must not be negative")
	}
	return errors.Join(errs...)
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// validHeaderValue rejects control characters (CR and LF above all), which
// would let a value split the request.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
