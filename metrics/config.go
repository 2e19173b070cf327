package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/rivet-gateway/rivet-gateway/config"
)

// Config is the `metrics:` section.
type Config struct {
	// Enabled serves Prometheus metrics on the admin listener. Default
	// true; false serves none (the access log still works).
	Enabled bool `yaml:"enabled"`
	// ActorNames are the actor names that get their own value of the
	// `actor` label; every other actor name is counted as "other", so a
	// client cannot grow the series count. Default: none (all "other").
	ActorNames []string `yaml:"actor_names"`
	// Path is where the admin listener serves the metrics. Default
	// "/metrics".
	Path string `yaml:"path"`
}

// DefaultConfig returns the section's defaults.
func DefaultConfig() Config {
	return Config{Enabled: true, Path: "/metrics"}
}

// Validate reports every problem in c, each a *config.PathError under path
// (the section's YAML path, e.g. "metrics").
func (c *Config) Validate(path string) error {
	var errs []error
	if !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, config.Errorf(path+".path", "must start with /, got %q", c.Path))
	}
	if c.Path == "/healthz" || c.Path == "/readyz" {
		errs = append(errs, config.Errorf(path+".path", "%q is taken by a probe", c.Path))
	}
	seen := map[string]bool{}
	for i, n := range c.ActorNames {
		switch {
		case n == "" || n == labelOther || n == labelNone:
			errs = append(errs, config.Errorf(fmt.Sprintf("%s.actor_names[%d]", path, i), "%q is not a usable actor name", n))
		case seen[n]:
			errs = append(errs, config.Errorf(fmt.Sprintf("%s.actor_names[%d]", path, i), "duplicate %q", n))
		}
		seen[n] = true
	}
	return errors.Join(errs...)
}

// AccessLogConfig is the `log.access:` section.
type AccessLogConfig struct {
	// Enabled writes one line per HTTP request and one per WebSocket (when
	// it closes). Default true.
	Enabled bool `yaml:"enabled"`
	// Sample is the fraction (0..1) of successful requests logged: status
	// below 400, WebSockets closed 1000, 1001 or 1005. Errors are always
	// logged. Default 1 (all); 0 logs errors only.
	Sample float64 `yaml:"sample"`
	// Level is the level of the lines: debug, info, warn or error. Default
	// info.
	Level string `yaml:"level"`
}

// DefaultAccessLogConfig returns the section's defaults.
func DefaultAccessLogConfig() AccessLogConfig {
	return AccessLogConfig{Enabled: true, Sample: 1, Level: "info"}
}

// Validate reports every problem in c, each a *config.PathError under path.
func (c *AccessLogConfig) Validate(path string) error {
	var errs []error
	if c.Sample < 0 || c.Sample > 1 {
		errs = append(errs, config.Errorf(path+".sample", "must be within 0..1, got %v", c.Sample))
	}
	if _, err := parseLevel(c.Level); err != nil {
		errs = append(errs, config.Errorf(path+".level", "%w", err))
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return l, fmt.Errorf("must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}
