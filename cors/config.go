package cors

import (
	"errors"
	"strconv"
	"time"

	"github.com/rivet-gateway/rivet-gateway/config"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Config is the `cors:` section of the gateway configuration. Start from
// DefaultConfig; Validate reports every problem at once.
type Config struct {
	// AllowedOrigins lists the browser origins allowed to call the gateway
	// cross-origin. Default: none, which allows same-origin requests only
	// (the Origin's host equals the request's Host). Each entry is one of
	//   - an exact origin, "https://app.example.com" or
	//     "http://localhost:5173" (scheme://host[:port], no path; scheme and
	//     host are compared case-insensitively, a default port is ignored);
	//   - a pattern "https://*.example.com" whose "*" stands for exactly one
	//     DNS label: it matches https://a.example.com, but neither
	//     https://example.com nor https://a.b.example.com (one label is the
	//     safer reading: a deeper subdomain is often delegated elsewhere).
	//     "*" is only allowed as the leftmost label, and the rest must have
	//     at least two labels (or be "localhost");
	//   - "*", any origin. Browsers refuse "*" on credentialed requests, so
	//     it needs allow_credentials: false, and must be the only entry.
	// The "null" origin (sandboxed iframes, file: pages) cannot be listed:
	// any site can produce it.
	AllowedOrigins []string `yaml:"allowed_origins"`

	// AllowCredentials sends Access-Control-Allow-Credentials: true, which
	// the RivetKit client needs: it fetches with credentials: "include".
	// Default: true.
	AllowCredentials bool `yaml:"allow_credentials"`

	// AllowedHeaders are request headers allowed on top of the defaults:
	// RivetKit's ALLOWED_PUBLIC_HEADERS and the legacy X-RivetKit-* headers
	// (rivet.AllowedPublicHeaders), Authorization, X-API-Key, and the headers
	// the RivetKit client adds on its own (traceparent, tracestate,
	// x-rivet-ray-id, x-rivet-internal-original-request-url). Headers a
	// browser asks for that are not listed are simply not allowed. Default:
	// none. "*" (a wildcard only without credentials) needs
	// allow_credentials: false.
	AllowedHeaders []string `yaml:"allowed_headers"`

	// ExposedHeaders are response headers browser code may read on top of
	// x-rivet-ray-id, x-rivet-actor, x-rivet-actor-generation,
	// x-rivet-actor-key and x-rivet-error. Default: none. "*" needs
	// allow_credentials: false.
	ExposedHeaders []string `yaml:"exposed_headers"`

	// AllowedMethods are the methods preflights allow. Default (and when
	// empty): GET, POST, PUT, DELETE, OPTIONS, PATCH, as the engine answers.
	// "*" needs allow_credentials: false.
	AllowedMethods []string `yaml:"allowed_methods"`

	// MaxAge is how long browsers may cache a preflight answer
	// (Access-Control-Max-Age), in whole seconds. Default: 86400s (browsers
	// cap it: Chromium at 2h, Firefox at 24h). 0 omits the header.
	MaxAge time.Duration `yaml:"max_age"`
}

// defaultMethods is what the engine's own preflight answers allow.
var defaultMethods = []string{"GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}

// defaultExposedHeaders are the response headers RivetKit reads or a user
// needs to report a problem (the ray id).
var defaultExposedHeaders = []string{
	rivet.HeaderRayID,
	"x-rivet-actor",
	"x-rivet-actor-generation",
	"x-rivet-actor-key",
	rivet.HeaderError,
}

// defaultAllowedHeaders returns the request headers allowed by default.
func defaultAllowedHeaders() []string {
	h := append([]string(nil), rivet.AllowedPublicHeaders...)
	return append(h,
		"Authorization", // API calls with createClient({token})
		"X-API-Key",
		// Sent by RivetKit 2.3.19 beyond ALLOWED_PUBLIC_HEADERS: trace context
		// and ray id (client/outbound-telemetry.ts) and the original URL of a
		// raw fetch() called with a URL or Request (client/raw-utils.ts).
		"traceparent",
		"tracestate",
		"x-rivet-ray-id",
		"x-rivet-internal-original-request-url",
	)
}

// DefaultConfig returns the defaults documented on Config's fields.
func DefaultConfig() Config {
	return Config{
		AllowCredentials: true,
		AllowedMethods:   append([]string(nil), defaultMethods...),
		MaxAge:           24 * time.Hour,
	}
}

// Validate checks c without changing it and returns every problem at once,
// each a *config.PathError naming its YAML path under path (e.g.
// "cors.allowed_origins[2]: ...").
func (c *Config) Validate(path string) error {
	field := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	var errs []error
	add := func(p, format string, args ...any) {
		errs = append(errs, config.Errorf(p, format, args...))
	}

	for i, o := range c.AllowedOrigins {
		p := field("allowed_origins") + "[" + strconv.Itoa(i) + "]"
		if o == "*" {
			if c.AllowCredentials {
				add(p, `"*" cannot be used with allow_credentials (browsers reject it): list the origins, or set allow_credentials: false`)
			}
			if len(c.AllowedOrigins) > 1 {
				add(p, `"*" must be the only entry`)
			}
			continue
		}
		if _, err := parseEntry(o); err != nil {
			add(p, "%v", err)
		}
	}

	lists := []struct {
		name string
		list []string
		kind string
	}{
		{"allowed_headers", c.AllowedHeaders, "header name"},
		{"exposed_headers", c.ExposedHeaders, "header name"},
		{"allowed_methods", c.AllowedMethods, "method"},
	}
	for _, l := range lists {
		for i, v := range l.list {
			p := field(l.name) + "[" + strconv.Itoa(i) + "]"
			switch {
			case v == "*":
				if c.AllowCredentials {
					add(p, `"*" is not a wildcard on credentialed requests (browsers read it as a literal name): list the names, or set allow_credentials: false`)
				}
			case !isToken(v):
				add(p, "%q is not a valid %s", v, l.kind)
			}
		}
	}

	if c.MaxAge < 0 {
		add(field("max_age"), "must not be negative (0 omits the header)")
	} else if c.MaxAge%time.Second != 0 {
		add(field("max_age"), "%v is not a whole number of seconds", c.MaxAge)
	}
	return errors.Join(errs...)
}

// isToken reports whether s is an RFC 9110 token: what header names and
// methods are made of.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || isTokenSymbol(c)) {
			return false
		}
	}
	return true
}

func isTokenSymbol(c byte) bool {
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
