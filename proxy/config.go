package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rivet-gateway/rivet-gateway/config"
)

// Config is the `upstream:` section: the Rivet Engine endpoint every route
// is proxied to, and how.
type Config struct {
	// URL is the engine endpoint, http or https, optionally with a base
	// path (e.g. https://api.rivet.dev). Required.
	URL string `yaml:"url"`
	// Token is the namespace token the gateway owns. When set, tokens sent
	// by clients (@token in the path, rvt-token, x-rivet-token,
	// rivet_token. subprotocol, Authorization on /actors and /metadata)
	// are removed and this token is sent in their place, never in a URL:
	// Authorization: Bearer on the management API and /metadata,
	// x-rivet-token on /gateway/ HTTP requests, a rivet_token. subprotocol
	// entry on /gateway/ WebSockets. It must be printable ASCII without
	// spaces or commas (CheckToken). Empty (default): client tokens pass
	// through.
	Token string `yaml:"token"`
	// TokenFile is a file holding Token (trailing CR/LF trimmed), e.g. a
	// mounted Kubernetes Secret: read at start and on every reload, so the
	// token rotates without a restart. Exclusive with Token. The gateway
	// resolves it into Token before building the proxy.
	TokenFile string `yaml:"token_file"`
	// Namespace pins the gateway to one engine namespace. A request naming
	// another (rvt-namespace on query targets, the namespace query
	// parameter of /actors and the management routes), naming none where
	// the engine serves several (/namespaces, /datacenters), or reaching an
	// actor of another namespace is refused with 403
	// gateway.namespace_not_allowed before the engine is asked anything,
	// and actor ids are resolved in this namespace only (actors.namespaces
	// may then only name it). /health and /metadata, which the engine
	// answers alike for every namespace, stay open (CheckNamespace). Empty
	// (default): clients choose the namespace.
	Namespace string `yaml:"namespace"`
	// Host is the Host header sent upstream. Default: the URL's host, so
	// hosted engines route correctly.
	Host string `yaml:"host"`
	// ServerName is the TLS SNI name. Default: the URL's host name.
	ServerName string `yaml:"server_name"`
	// CAFile is a PEM bundle of CAs trusted for an https upstream, in
	// addition to the system roots. Read when the proxy is built: the
	// gateway builds a new one on a reload that finds the file's content
	// changed, so a rotated CA applies without a restart. Empty (default):
	// system roots only.
	CAFile string `yaml:"ca_file"`
	// DialTimeout bounds TCP connect to the engine. Default 5s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ResponseHeaderTimeout bounds the wait for the engine's response
	// headers (an actor may be waking). Default 60s; 0 means no bound.
	ResponseHeaderTimeout time.Duration `yaml:"response_header_timeout"`
	// MaxIdleConns is the number of idle keep-alive connections kept to the
	// engine. Default 256.
	MaxIdleConns int `yaml:"max_idle_conns"`
	// IdleConnTimeout closes idle upstream connections. Default 90s.
	IdleConnTimeout time.Duration `yaml:"idle_conn_timeout"`
	// Transport chooses how HTTP requests reach a plain-http engine without
	// an egress proxy: "direct" (the default) sends a request whose body is
	// in memory (at most 16 KiB, an action's) on the handler's goroutine
	// over a pooled connection; "net/http" sends every request through
	// net/http's Transport, as https engines and egress proxies always do.
	// Empty means direct.
	Transport string `yaml:"transport"`
	// MaxRequestBodyBytes rejects larger request bodies with 413.
	// Default 16 MiB; 0 means no limit.
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
	// WebSocket configures proxied WebSockets.
	WebSocket WebSocketConfig `yaml:"websocket"`
}

// WebSocketConfig configures proxied WebSockets.
type WebSocketConfig struct {
	// HandshakeTimeout bounds dialing the engine and its handshake.
	// Default 10s.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// ReadLimit is the largest message accepted from either side, in
	// bytes; a larger one closes the socket with 1009. Default 1 MiB.
	ReadLimit int64 `yaml:"read_limit"`
	// PingInterval is how often both legs are pinged so idle sockets (e.g.
	// hibernating actors) survive intermediaries. Default 30s; 0 disables
	// pings and dead-peer detection.
	PingInterval time.Duration `yaml:"ping_interval"`
	// PongTimeout: a leg silent for PingInterval+PongTimeout is dead, and
	// the socket is closed (the client with the retryable
	// guard.service_unavailable). Default 30s.
	PongTimeout time.Duration `yaml:"pong_timeout"`
	// WriteTimeout bounds writing a control frame. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// CloseGrace bounds the close handshake on each leg. Default 1s.
	CloseGrace time.Duration `yaml:"close_grace"`
	// BufferSize is the size of the relay's read buffers, in bytes, taken
	// from a pool only while a read has data (an idle WebSocket holds
	// none), and of the handshake's write buffers. Default 4096.
	BufferSize int `yaml:"buffer_size"`
	// TransientErrors are engine errors ("group.code") that mean "not
	// ready yet" while a WebSocket is opening: when the engine refuses the
	// upgrade with one, or closes the socket with one before it has sent
	// any data frame, the client is closed with the retryable
	// guard.service_unavailable instead (the engine's code is logged and
	// kept in metadata upstream_error), so RivetKit clients retry rather
	// than give up. Default DefaultTransientErrors; [] relays every engine
	// error as it is.
	TransientErrors []string `yaml:"transient_errors"`
}

// DefaultTransientErrors are the errors a Rivet Engine (2.3.19) answers
// WebSocket upgrades with while it (re)starts, measured on the real engine:
// namespace.not_found for the first few hundred milliseconds after it
// listens (the default namespace does not exist yet), then
// actor.no_runner_config_configured until the actor server has registered
// again. Both are also what a misconfigured client gets (an unknown
// namespace or runner pool): with them in the list such a client retries
// with backoff instead of failing at once; HTTP requests still see them.
var DefaultTransientErrors = []string{
	"actor.no_runner_config_configured",
	"namespace.not_found",
}

// The values of Config.Transport.
const (
	TransportDirect  = "direct"
	TransportNetHTTP = "net/http"
)

// DefaultConfig returns the defaults; URL has none.
func DefaultConfig() Config {
	return Config{
		DialTimeout:           5 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		MaxIdleConns:          256,
		IdleConnTimeout:       90 * time.Second,
		Transport:             TransportDirect,
		MaxRequestBodyBytes:   16 << 20,
		WebSocket: WebSocketConfig{
			HandshakeTimeout: 10 * time.Second,
			ReadLimit:        1 << 20,
			PingInterval:     30 * time.Second,
			PongTimeout:      30 * time.Second,
			WriteTimeout:     10 * time.Second,
			CloseGrace:       time.Second,
			BufferSize:       4096,
			TransientErrors:  slices.Clone(DefaultTransientErrors),
		},
	}
}

// Validate reports every problem, each a *config.PathError under path
// (e.g. "upstream.url"). It reads no files: New reports an unreadable
// CAFile, and the gateway's validation opens every referenced file.
func (c *Config) Validate(path string) error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, config.Errorf(path+"."+key, format, a...))
	}
	if c.Token != "" && c.TokenFile != "" {
		bad("token_file", "token and token_file are exclusive")
	}
	if c.Token != "" {
		if err := CheckToken(c.Token); err != nil {
			bad("token", "%v", err)
		}
	}
	if c.Namespace != "" && !validNamespace(c.Namespace) {
		bad("namespace", "must be at most 512 bytes of UTF-8 text without control characters or surrounding spaces")
	}
	if c.URL == "" {
		bad("url", "is required")
	} else if u, err := url.Parse(c.URL); err != nil {
		bad("url", "not a URL: %v", err)
	} else if u.Scheme != "http" && u.Scheme != "https" {
		bad("url", "scheme must be http or https, got %q", u.Scheme)
	} else if u.Host == "" {
		bad("url", "has no host")
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		bad("url", "must not carry a query, fragment or user info")
	}
	nonNeg := func(key string, d time.Duration) {
		if d < 0 {
			bad(key, "must not be negative")
		}
	}
	nonNeg("dial_timeout", c.DialTimeout)
	nonNeg("response_header_timeout", c.ResponseHeaderTimeout)
	nonNeg("idle_conn_timeout", c.IdleConnTimeout)
	if c.MaxIdleConns < 0 {
		bad("max_idle_conns", "must not be negative")
	}
	if c.Transport != "" && c.Transport != TransportDirect && c.Transport != TransportNetHTTP {
		bad("transport", "must be %q or %q, got %q", TransportDirect, TransportNetHTTP, c.Transport)
	}
	if c.MaxRequestBodyBytes < 0 {
		bad("max_request_body_bytes", "must not be negative")
	}
	ws := c.WebSocket
	nonNeg("websocket.ping_interval", ws.PingInterval)
	if ws.HandshakeTimeout <= 0 {
		bad("websocket.handshake_timeout", "must be positive")
	}
	if ws.ReadLimit <= 0 {
		bad("websocket.read_limit", "must be positive")
	}
	if ws.PingInterval > 0 && ws.PongTimeout <= 0 {
		bad("websocket.pong_timeout", "must be positive when ping_interval is set")
	}
	if ws.WriteTimeout <= 0 {
		bad("websocket.write_timeout", "must be positive")
	}
	if ws.CloseGrace <= 0 {
		bad("websocket.close_grace", "must be positive")
	}
	if ws.BufferSize < 256 || ws.BufferSize > 1<<20 {
		bad("websocket.buffer_size", "must be between 256 and 1048576")
	}
	for i, e := range ws.TransientErrors {
		group, code, ok := strings.Cut(e, ".")
		if !ok || !validErrorPart(group) || !validErrorPart(code) {
			bad(fmt.Sprintf("websocket.transient_errors[%d]", i), "%q is not a RivetKit error \"group.code\"", e)
		}
	}
	return errors.Join(errs...)
}

// validNamespace reports whether s can name an engine namespace as the
// gateway compares it: the decoded value of rvt-namespace or namespace=,
// byte for byte. Names the engine would trim or could not store can
// never match a request, so they are a configuration mistake.
func validNamespace(s string) bool {
	if len(s) > 512 || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validErrorPart reports whether s can be the group or the code of a
// RivetKit error: 1 to 64 letters, digits, '_' or '-'. Nothing that would
// break the "group.code#rayId" form of a close reason.
func validErrorPart(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
