package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rivet-gateway/rivet-gateway/actors"
	"github.com/rivet-gateway/rivet-gateway/authn"
	"github.com/rivet-gateway/rivet-gateway/clientip"
	"github.com/rivet-gateway/rivet-gateway/config"
	"github.com/rivet-gateway/rivet-gateway/cors"
	"github.com/rivet-gateway/rivet-gateway/metrics"
	"github.com/rivet-gateway/rivet-gateway/params"
	"github.com/rivet-gateway/rivet-gateway/proxy"
	"github.com/rivet-gateway/rivet-gateway/tracing"
)

// Config is the whole configuration file. Each section is owned by the
// package that uses it.
type Config struct {
	Server   ServerConfig   `yaml:"server"`
	Admin    AdminConfig    `yaml:"admin"`
	Log      LogConfig      `yaml:"log"`
	Upstream proxy.Config   `yaml:"upstream"`
	Actors   actors.Config  `yaml:"actors"`
	CORS     cors.Config    `yaml:"cors"`
	Auth     authn.Config   `yaml:"auth"`
	Params   params.Config  `yaml:"params"`
	Metrics  metrics.Config `yaml:"metrics"`
	Tracing  tracing.Config `yaml:"tracing"`
	Reload   ReloadConfig   `yaml:"reload"`
}

// ServerConfig is the `server:` section: the public listener.
type ServerConfig struct {
	// Listen is the public address. Default ":8080".
	Listen string `yaml:"listen"`
	// TLSCertFile and TLSKeyFile, when both set, serve HTTPS. Default: plain
	// HTTP (TLS terminated in front of the gateway).
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// ReadHeaderTimeout bounds reading request headers (slowloris).
	// Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included. Default
	// 60s; 0 means no bound. WebSockets are not affected once upgraded.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line and headers. Default 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ShutdownTimeout bounds the whole shutdown: in-flight HTTP requests
	// finish and WebSockets are closed with ws.going_away within it, then
	// whatever is left is cut. Default 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long the gateway keeps serving, with /readyz
	// unready and keep-alives off, after SIGTERM and before the shutdown
	// sequence starts: the time Kubernetes needs to take the pod out of
	// its Service endpoints. Default 0 (shut down at once); the Kubernetes
	// manifests set 5s.
	DrainDelay time.Duration `yaml:"drain_delay"`
	// TrustedProxies are the proxies in front of the gateway (an Ingress
	// controller, a load balancer), as CIDRs ("10.0.0.0/8") or single
	// addresses, whose ClientIPHeader is believed. A request's client
	// address is its TCP peer's unless the peer is one of them; then it is
	// read from that header from the right, past every trusted hop
	// (clientip.Resolver). It is what the access log names and what the
	// engine gets in X-Forwarded-For. Default: none, so no header a client
	// sends can change it.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ClientIPHeader is the header the trusted proxies write the client
	// address to: "x-forwarded-for" (default: nginx, Traefik, Envoy, cloud
	// load balancers) or "forwarded" (RFC 7239). Only this one is read:
	// clients can send the other, which proxies pass on untouched.
	ClientIPHeader string `yaml:"client_ip_header"`
}

// AdminConfig is the `admin:` section: the listener for probes (and
// metrics), kept apart from the public one.
type AdminConfig struct {
	// Listen is the admin address. Default ":9090"; "" disables it.
	Listen string `yaml:"listen"`
	// ReadinessInterval is how often /readyz may check the upstream's
	// /health; answers in between reuse the last result. Default 5s.
	ReadinessInterval time.Duration `yaml:"readiness_interval"`
	// ReadinessTimeout bounds one upstream health check. Default 2s.
	ReadinessTimeout time.Duration `yaml:"readiness_timeout"`
	// ReadinessUpstream makes /readyz also require the upstream's /health
	// to answer. Default true. Turn it off in front of a hosted engine: an
	// engine outage then leaves the gateway in its Service, answering
	// clients with RivetKit-shaped 502s they retry, rather than taking
	// every replica out and leaving clients with refused connections.
	ReadinessUpstream bool `yaml:"readiness_upstream"`
	// ReadinessJWKS makes /readyz also require every JWKS issuer to have
	// loaded its key set at least once (since start or the last reload):
	// until then every token of that issuer is refused with unknown_key.
	// A refresh failing later keeps the last good set and readiness.
	// Default true.
	ReadinessJWKS bool `yaml:"readiness_jwks"`
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin
	// listener. Default false: profiles reveal internals and cost CPU.
	Pprof bool `yaml:"pprof"`
}

// ReloadConfig is the `reload:` section: applying a changed configuration
// without a restart. SIGHUP always reloads.
type ReloadConfig struct {
	// Watch reloads when the config file or a file it references (secret
	// files, key files, TLS files) changes, including Kubernetes' symlink
	// swap of ConfigMap and Secret volumes. Default true.
	Watch bool `yaml:"watch"`
	// Debounce is how long changes must settle before a reload, so a
	// burst of writes is one reload. Default 1s.
	Debounce time.Duration `yaml:"debounce"`
	// RevalidateWebSockets re-checks every open WebSocket's identity
	// against the new configuration and closes those whose API key was
	// removed, replaced or expired, or whose JWT issuer is gone. Default
	// true.
	RevalidateWebSockets bool `yaml:"revalidate_websockets"`
}

// LogConfig is the `log:` section.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
	// Access is the access log: one line per request and per WebSocket.
	Access metrics.AccessLogConfig `yaml:"access"`
}

// DefaultConfig returns every default, in this one place.
func DefaultConfig() Config {
	return Config{
		Server: ServerConfig{
			Listen:            ":8080",
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ShutdownTimeout:   30 * time.Second,
			ClientIPHeader:    clientip.HeaderXForwardedFor,
		},
		Admin: AdminConfig{
			Listen:            ":9090",
			ReadinessInterval: 5 * time.Second,
			ReadinessTimeout:  2 * time.Second,
			ReadinessUpstream: true,
			ReadinessJWKS:     true,
		},
		Log:      LogConfig{Level: "info", Format: "text", Access: metrics.DefaultAccessLogConfig()},
		Upstream: proxy.DefaultConfig(),
		Actors:   actors.DefaultConfig(),
		CORS:     cors.DefaultConfig(),
		Auth:     authn.DefaultConfig(),
		Params:   params.DefaultConfig(),
		Metrics:  metrics.DefaultConfig(),
		Tracing:  tracing.DefaultConfig(),
		Reload:   ReloadConfig{Watch: true, Debounce: time.Second, RevalidateWebSockets: true},
	}
}

// LoadConfig reads the file at path over the defaults and validates it,
// opening every file it references. The error is config.Problems, every
// problem of the file each once with its YAML path and line, or the
// reason the file could not be read or parsed.
func LoadConfig(path string) (Config, error) {
	return CheckConfig(path, CheckOptions{})
}

// CheckOptions changes what CheckConfig checks.
type CheckOptions struct {
	// SkipFiles leaves out opening the files the configuration references
	// (every *_file key, auth.api_keys.file, params.http.header_files):
	// for checking a configuration without its secrets, e.g. in the CI of
	// the repository holding it. Everything else is checked.
	SkipFiles bool
}

// CheckConfig is LoadConfig with options: it decodes what it can of the
// file at path over the defaults, validates what was decoded, and returns
// the problems of both stages together (see config.Check).
func CheckConfig(path string, opts CheckOptions) (Config, error) {
	cfg := DefaultConfig()
	err := config.Load(path, &cfg, func() error { return cfg.validate(!opts.SkipFiles) })
	return cfg, err
}

// Validate reports every problem in cfg, each a *config.PathError naming
// its YAML path. It opens every file cfg references, so that a missing
// secret is found before a deployment does.
func (c *Config) Validate() error {
	return c.validate(true)
}

// FileRef is a file the configuration references, and the YAML path
// naming it.
type FileRef struct {
	Path string // e.g. "upstream.token_file"
	File string
}

// Files lists the files c references (see CheckOptions.SkipFiles), in
// the order of Config's fields.
func (c *Config) Files() []FileRef {
	refs := fileRefs(*c)
	out := make([]FileRef, len(refs))
	for i, r := range refs {
		out[i] = FileRef{Path: r.path, File: r.file}
	}
	return out
}

func (c *Config) validate(checkFiles bool) error {
	var errs []error
	bad := func(path, format string, a ...any) {
		errs = append(errs, config.Errorf(path, format, a...))
	}
	checkAddr := func(path, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(path, "not a host:port address: %v", err)
		}
	}
	checkAddr("server.listen", c.Server.Listen)
	if c.Admin.Listen != "" {
		checkAddr("admin.listen", c.Admin.Listen)
		if c.Admin.Listen == c.Server.Listen && !strings.HasSuffix(c.Admin.Listen, ":0") {
			bad("admin.listen", "must differ from server.listen")
		}
	}
	if (c.Server.TLSCertFile == "") != (c.Server.TLSKeyFile == "") {
		bad("server.tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	// Every referenced file must be readable now, so -check catches a
	// missing secret before a deployment does (unless -skip-files: the
	// secrets are not where the check runs).
	if checkFiles {
		for _, f := range fileRefs(*c) {
			fh, err := os.Open(f.file)
			if err != nil {
				bad(f.path, "%w", err)
				continue
			}
			fh.Close()
			if f.path == "upstream.token_file" {
				// A token the proxy cannot send would fail the start.
				if _, err := resolveUpstream(c.Upstream); err != nil {
					bad(f.path, "%s", strings.TrimPrefix(err.Error(), f.path+": "))
				}
			}
		}
	}
	if c.Server.ReadHeaderTimeout <= 0 {
		bad("server.read_header_timeout", "must be positive")
	}
	if c.Server.ReadTimeout < 0 {
		bad("server.read_timeout", "must not be negative")
	}
	if c.Server.IdleTimeout <= 0 {
		bad("server.idle_timeout", "must be positive")
	}
	if c.Server.MaxHeaderBytes < 4096 {
		bad("server.max_header_bytes", "must be at least 4096")
	}
	if c.Server.ShutdownTimeout <= 0 {
		bad("server.shutdown_timeout", "must be positive")
	}
	if c.Server.DrainDelay < 0 {
		bad("server.drain_delay", "must not be negative")
	}
	if _, err := c.Server.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	if _, err := clientip.New(nil, c.Server.ClientIPHeader); err != nil {
		bad("server.client_ip_header", "must be x-forwarded-for or forwarded, got %q", c.Server.ClientIPHeader)
	}
	if c.Reload.Debounce <= 0 {
		bad("reload.debounce", "must be positive")
	}
	if c.Admin.ReadinessInterval <= 0 {
		bad("admin.readiness_interval", "must be positive")
	}
	if c.Admin.ReadinessTimeout <= 0 {
		bad("admin.readiness_timeout", "must be positive")
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	if ns := c.Upstream.Namespace; ns != "" && !slices.Equal(c.Actors.Namespaces, []string{ns}) &&
		!slices.Equal(c.Actors.Namespaces, actors.DefaultConfig().Namespaces) {
		bad("actors.namespaces", "must be left out, or list only %q, when upstream.namespace pins the gateway: ids are resolved in that namespace only", ns)
	}
	errs = append(errs,
		c.Upstream.Validate("upstream"),
		c.Actors.Validate("actors"),
		c.CORS.Validate("cors"),
		c.Auth.Validate("auth"),
		c.Params.Validate("params"),
		c.Log.Access.Validate("log.access"),
		c.Metrics.Validate("metrics"),
		c.Tracing.Validate("tracing"),
	)
	return errors.Join(errs...)
}

// actorsConfig is the actors section the resolver runs with: when
// upstream.namespace pins the gateway, ids are resolved in that namespace
// only (validate allows actors.namespaces to be left at its default or to
// name the pinned namespace).
func (c *Config) actorsConfig() actors.Config {
	a := c.Actors
	if ns := c.Upstream.Namespace; ns != "" {
		a.Namespaces = []string{ns}
	}
	return a
}

// Warnings reports what is valid but leaves a way around a rule (see
// authn.Config.Warnings), or lets any client choose the address it is
// logged under, each naming its YAML path. -check prints them; the
// gateway logs them at start and on every reload.
func (c *Config) Warnings() []string {
	w := c.Auth.Warnings("auth")
	ps, _ := c.Server.trustedProxies()
	for i, p := range ps {
		if p.Bits() == 0 {
			w = append(w, fmt.Sprintf("server.trusted_proxies[%d]: %s trusts every peer: any client can choose the address it is logged under", i, p))
		}
	}
	return w
}

// trustedProxies parses TrustedProxies, reporting every bad entry with its
// YAML path.
func (s *ServerConfig) trustedProxies() ([]netip.Prefix, error) {
	var errs []error
	out := make([]netip.Prefix, 0, len(s.TrustedProxies))
	for i, v := range s.TrustedProxies {
		p, err := clientip.ParsePrefix(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("server.trusted_proxies[%d]: %w", i, err))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// clientIPResolver builds the resolver server.trusted_proxies and
// server.client_ip_header describe.
func (s *ServerConfig) clientIPResolver() (*clientip.Resolver, error) {
	ps, err := s.trustedProxies()
	if err != nil {
		return nil, err
	}
	rs, err := clientip.New(ps, s.ClientIPHeader)
	if err != nil {
		return nil, fmt.Errorf("server.client_ip_header: %w", err)
	}
	return rs, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(strings.ToUpper(s)))
	if err != nil {
		return l, fmt.Errorf("must be debug, info, warn or error, got %q", s)
	}
	return l, nil
}
