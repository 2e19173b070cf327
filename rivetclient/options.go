package rivetclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Option configures a [Client]; pass options to [New].
type Option func(*config) error

type config struct {
	namespace      string
	token          string
	header         http.Header
	httpClient     *http.Client
	logger         *slog.Logger
	poolName       string
	backoffBase    time.Duration
	backoffMax     time.Duration
	metadataLookup bool
	codec          codec
	eventBuffer    int
	maxMessage     int64
}

// Defaults, as in the RivetKit JS client.
const (
	// DefaultNamespace is the namespace used when WithNamespace is not given.
	DefaultNamespace = "default"
	// DefaultPoolName is the runner pool getOrCreate targets by default.
	DefaultPoolName = "default"
	// DefaultBackoffBase is the first reconnect delay of a Conn.
	DefaultBackoffBase = 250 * time.Millisecond
	// DefaultBackoffMax caps the reconnect delay of a Conn.
	DefaultBackoffMax = 30 * time.Second
	// DefaultEventBuffer bounds the event deliveries waiting for a Conn's
	// callbacks.
	DefaultEventBuffer = 1024
	// DefaultMaxMessageSize bounds a message or response body the client
	// reads from an actor: 16 times RivetKit's default
	// maxOutgoingMessageSize (1 MiB).
	DefaultMaxMessageSize = 16 << 20
)

// WithNamespace sets the engine namespace (default "default"). The
// endpoint URL may carry it instead, as in "https://ns:token@host".
func WithNamespace(namespace string) Option {
	return func(c *config) error {
		if namespace == "" {
			return errors.New("rivetclient: WithNamespace: empty namespace")
		}
		c.namespace = namespace
		return nil
	}
}

// WithToken sets the namespace token. As in the JS client it is sent as
// "Authorization: Bearer <token>" to the /actors and /metadata API, in the
// gateway path ("/gateway/<id>@<token>") or query (rvt-token) and, on HTTP
// gateway requests, in the x-rivet-token header. It is not a connection
// parameter: use HandleOptions.Params or GetParams for per-user credentials.
func WithToken(token string) Option {
	return func(c *config) error {
		c.token = token
		return nil
	}
}

// WithHeader adds a header sent with every HTTP request and WebSocket
// handshake the client makes. It overrides a header of the same name given
// to Handle.Fetch, as in the JS client. It may be given several times.
func WithHeader(key, value string) Option {
	return func(c *config) error {
		c.header.Add(key, value)
		return nil
	}
}

// WithHTTPClient sets the HTTP client used for every HTTP request (default:
// a client using http.DefaultTransport). When its Transport is an
// *http.Transport, WebSocket dials reuse its proxy, dialer and TLS settings,
// except that they offer only HTTP/1.1 by ALPN (a WebSocket handshake is
// an HTTP/1.1 upgrade), whatever the transport offers.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *config) error {
		if hc == nil {
			return errors.New("rivetclient: WithHTTPClient: nil client")
		}
		c.httpClient = hc
		return nil
	}
}

// WithLogger sets the logger (default: discard). The client logs
// connection attempts, retries and errors; it never logs params or tokens.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("rivetclient: WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithPoolName sets the runner pool that getOrCreate and Create select
// (rvt-runner / runner_name_selector; default "default").
func WithPoolName(name string) Option {
	return func(c *config) error {
		if name == "" {
			return errors.New("rivetclient: WithPoolName: empty name")
		}
		c.poolName = name
		return nil
	}
}

// WithReconnectBackoff sets the delay between failed connection attempts of
// a Conn: attempt n waits a random time between zero and base·2ⁿ, capped at
// max ("full jitter", so that a fleet of clients cut off together does not
// come back in lockstep; default base 250ms and cap 30s, the JS client's
// bounds, which has no jitter).
func WithReconnectBackoff(base, max time.Duration) Option {
	return func(c *config) error {
		if base <= 0 || max < base {
			return errors.New("rivetclient: WithReconnectBackoff: need 0 < base <= max")
		}
		c.backoffBase, c.backoffMax = base, max
		return nil
	}
}

// WithMetadataLookup enables or disables the GET /metadata?namespace=
// request the client makes once before its first request (default
// enabled, like the JS client). If the response names a clientEndpoint
// (serverless runners do), the client switches to it, together with
// clientNamespace and clientToken when present. Disable the lookup to pin
// the client to the configured endpoint, e.g. behind a gateway that must
// not be bypassed. A failed lookup never fails a call: it is logged, and
// tried again on the next call unless the endpoint answered with a 4xx
// status (then the endpoint is used as configured).
func WithMetadataLookup(enabled bool) Option {
	return func(c *config) error {
		c.metadataLookup = enabled
		return nil
	}
}

// WithEncoding sets the encoding of the messages exchanged with actors
// (default [DefaultEncoding], bare, as in the JS client): the /connect
// WebSocket's rivet_encoding sub-protocol, and the x-rivet-encoding header
// and bodies of stateless actions and queue sends. Values are the same in
// every encoding. Raw HTTP and raw WebSockets are not affected.
func WithEncoding(e Encoding) Option {
	return func(c *config) error {
		cd, ok := codecFor(e)
		if !ok {
			return fmt.Errorf("rivetclient: WithEncoding: unknown encoding %q (want bare, cbor or json)", string(e))
		}
		c.codec = cd
		return nil
	}
}

// WithEventBuffer bounds how many event deliveries may wait for a Conn's
// callbacks (default [DefaultEventBuffer]). The callbacks run one at a time;
// when handlers fall behind and n deliveries wait, the oldest waiting one
// is dropped for the newest, counted by [Conn.DroppedEvents] and logged,
// so a slow handler costs events, never unbounded memory. Status changes
// and errors are never dropped. [Conn.Events] streams have their own
// buffer.
func WithEventBuffer(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return errors.New("rivetclient: WithEventBuffer: n must be at least 1")
		}
		c.eventBuffer = n
		return nil
	}
}

// WithMaxMessageSize bounds, in bytes, what the client reads from an actor
// in one piece (default [DefaultMaxMessageSize]): a WebSocket message on a
// Conn or a RawWebSocket, the body of an action's or a queue send's
// response. A larger WebSocket message closes the socket with 1009 (a Conn
// then reconnects, failing the actions in flight); a larger response fails
// the call. Fetch's response body is the caller's to read and is not
// bounded here.
func WithMaxMessageSize(n int64) Option {
	return func(c *config) error {
		if n < 1 {
			return errors.New("rivetclient: WithMaxMessageSize: n must be at least 1")
		}
		c.maxMessage = n
		return nil
	}
}

// HandleOptions configures a [Handle] and the connections opened from it.
// The zero value is valid.
type HandleOptions struct {
	// Params are the static connection parameters the actor receives in
	// onBeforeConnect / createConnState (c.conn.params). They are sent as
	// the x-rivet-conn-params header on stateless calls and as the
	// rivet_conn_params.* WebSocket sub-protocol on connections. They must
	// marshal to JSON. Ignored when GetParams is set.
	Params any

	// GetParams, when set, is called for fresh connection parameters before
	// every WebSocket open (the first connect and every reconnect, and each
	// raw WebSocket) and before every stateless call (Action, Send, Fetch)
	// — unlike the JS client, whose getParams only covers WebSockets. A
	// typical use is to return a freshly refreshed JWT.
	//
	// The context is the call's context for stateless calls and the
	// connection's context (cancelled by Close) for connections. When
	// GetParams fails, the call fails (stateless) or the attempt fails and
	// is retried with backoff (connections); the error is an *ActorError
	// client.get_params_failed wrapping the returned error. A nil result
	// means "no params".
	GetParams func(ctx context.Context) (any, error)

	// CreateWithInput is the input given to the actor if GetOrCreate
	// creates it. It is sent CBOR-encoded in the rvt-input query parameter
	// (at most 4 KiB encoded). GetOrCreate only.
	CreateWithInput any

	// CreateInRegion is the region (datacenter) the actor is created in if
	// it does not exist. GetOrCreate and Create only.
	CreateInRegion string

	// PoolName overrides the client's runner pool for creation.
	// GetOrCreate and Create only.
	PoolName string
}
