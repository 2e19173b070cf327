package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/rivet-gateway/rivet-gateway/config"
)

// Config is the actors: section: how actor ids are resolved.
type Config struct {
	// Namespaces are where an actor named by id alone is looked up
	// (/gateway/<id>/... carries no namespace), in order; the first that
	// knows the id wins. Routes that name their namespace (/actors/{id}
	// ?namespace=) are looked up there only. Default [default], the
	// RivetKit client's default namespace. Empty is an error. When
	// upstream.namespace pins the gateway, ids are looked up there only,
	// and this list may only be left out or name that namespace.
	Namespaces []string `yaml:"namespaces"`

	// CacheTTL is how long a resolved id is remembered. An id never changes
	// its namespace, name or key; the TTL only bounds how long a destroyed
	// actor's entry lingers. Default 10m; zero is an error.
	CacheTTL time.Duration `yaml:"cache_ttl"`

	// CacheSize bounds the ids remembered (least recently used first out).
	// Default 100000 (about 20 MiB at most); zero is an error.
	CacheSize int `yaml:"cache_size"`

	// NotFoundTTL is how long an id the engine does not know is answered
	// without asking again. Default 2s; zero asks every time.
	NotFoundTTL time.Duration `yaml:"not_found_ttl"`

	// Timeout bounds one lookup at the engine. Default 5s.
	Timeout time.Duration `yaml:"timeout"`

	// MaxBodyBytes bounds the JSON body of POST and PUT /actors, which is
	// read whole to learn the actor it names. Larger bodies get 413.
	// Default 1048576 (1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Defaults, in this one place.
const (
	DefaultCacheTTL     = 10 * time.Minute
	DefaultCacheSize    = 100_000
	DefaultNotFoundTTL  = 2 * time.Second
	DefaultTimeout      = 5 * time.Second
	DefaultMaxBodyBytes = 1 << 20
)

// DefaultConfig returns the configuration with every default set.
func DefaultConfig() Config {
	return Config{
		Namespaces:   []string{"default"},
		CacheTTL:     DefaultCacheTTL,
		CacheSize:    DefaultCacheSize,
		NotFoundTTL:  DefaultNotFoundTTL,
		Timeout:      DefaultTimeout,
		MaxBodyBytes: DefaultMaxBodyBytes,
	}
}

// Validate reports every problem in c, each a *config.PathError naming its
// YAML path under path.
func (c *Config) Validate(path string) error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf(path+"."+key, format, args...))
	}
	if len(c.Namespaces) == 0 {
		add("namespaces", "list at least one namespace (ids are looked up there)")
	}
	seen := map[string]bool{}
	for i, ns := range c.Namespaces {
		switch {
		case ns == "":
			add(fmt.Sprintf("namespaces[%d]", i), "must not be empty")
		case seen[ns]:
			add(fmt.Sprintf("namespaces[%d]", i), "%q is listed twice", ns)
		}
		seen[ns] = true
	}
	if c.CacheTTL <= 0 {
		add("cache_ttl", "must be positive (e.g. 10m)")
	}
	if c.CacheSize <= 0 {
		add("cache_size", "must be positive (e.g. 100000)")
	}
	if c.NotFoundTTL < 0 {
		add("not_found_ttl", "must not be negative")
	}
	if c.Timeout <= 0 {
		add("timeout", "must be positive (e.g. 5s)")
	}
	if c.MaxBodyBytes <= 0 {
		add("max_body_bytes", "must be positive (e.g. 1048576)")
	}
	return errors.Join(errs...)
}
