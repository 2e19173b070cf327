package rivet

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
)

// Intent is what a request asks of the engine, read from its path.
type Intent uint8

// The intents, in the order the access log and metrics list them.
const (
	IntentUnknown Intent = iota
	IntentHealth
	IntentMetadata
	IntentActors
	IntentAction
	IntentQueue
	IntentRequest
	IntentConnect
	IntentWebSocket
	IntentInspector
)

var intentNames = [...]string{
	IntentUnknown:   "unknown",
	IntentHealth:    "health",
	IntentMetadata:  "metadata",
	IntentActors:    "actors",
	IntentAction:    "action",
	IntentQueue:     "queue",
	IntentRequest:   "request",
	IntentConnect:   "connect",
	IntentWebSocket: "websocket",
	IntentInspector: "inspector",
}

// String returns the intent's lower-case name, as used in config and labels.
func (i Intent) String() string {
	if int(i) < len(intentNames) {
		return intentNames[i]
	}
	return "unknown"
}

// ParseIntent returns the intent named s (as String writes it).
func ParseIntent(s string) (Intent, bool) {
	for i, n := range intentNames {
		if n == s && Intent(i) != IntentUnknown {
			return Intent(i), true
		}
	}
	return IntentUnknown, false
}

// Intents returns every known intent except IntentUnknown.
func Intents() []Intent {
	out := make([]Intent, 0, len(intentNames)-1)
	for i := range intentNames[1:] {
		out = append(out, Intent(i+1))
	}
	return out
}

// CarriesParams reports whether the engine hands connection params to the
// actor on this intent (onBeforeConnect, createConnState, c.conn.params).
func (i Intent) CarriesParams() bool {
	switch i {
	case IntentAction, IntentQueue, IntentRequest, IntentConnect, IntentWebSocket:
		return true
	}
	return false
}

// Gateway reports whether the intent is a /gateway/<target>/... route.
func (i Intent) Gateway() bool { return i >= IntentAction }

// Route is a request's place in the RivetKit protocol. Paths are kept
// escaped, exactly as the client sent them, so the proxy can rebuild the
// upstream URL without re-encoding anything the actor will see.
type Route struct {
	Intent Intent

	// ActorID is set for id targets: /gateway/<id>[@token]/...
	ActorID string
	// ActorName, Method ("get" or "getOrCreate") and Key are set for query
	// targets: /gateway/<name>/...?rvt-method=...&rvt-key=a,b
	ActorName string
	Method    string
	Key       []string
	// Namespace is rvt-namespace (query targets) or the namespace query
	// parameter (/metadata, /actors); empty when the request names none.
	Namespace string
	// Name is the action or queue name for IntentAction and IntentQueue.
	Name string

	// Target is the escaped target segment without any @token suffix.
	Target string
	// Rest is the escaped path after the target segment, e.g.
	// "/action/increment" or "/request/hello/world"; it may be empty.
	Rest string
	// PathToken reports whether the target segment carried "@<token>".
	PathToken bool
}

// ActorLabel names the actor for logs and rules: the actor name for query
// targets, otherwise empty (an id tells nothing about the actor's kind).
func (r *Route) ActorLabel() string { return r.ActorName }

// Path rebuilds the escaped upstream path, with "@"+escapedToken appended to
// the target segment when escapedToken is not empty.
func (r *Route) Path(escapedToken string) string {
	if !r.Intent.Gateway() && r.Target == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(len("/gateway/") + len(r.Target) + len(escapedToken) + 1 + len(r.Rest))
	b.WriteString("/gateway/")
	b.WriteString(r.Target)
	if escapedToken != "" {
		b.WriteByte('@')
		b.WriteString(escapedToken)
	}
	b.WriteString(r.Rest)
	return b.String()
}

// ErrInvalidRoute is wrapped by every ParseRoute failure.
var ErrInvalidRoute = errors.New("invalid gateway route")

func invalid(msg string) error { return &routeError{msg} }

type routeError struct{ msg string }

func (e *routeError) Error() string { return "invalid gateway route: " + e.msg }
func (e *routeError) Unwrap() error { return ErrInvalidRoute }

// ParseRoute classifies a request by its escaped path (URL.EscapedPath) and
// raw query. Paths it does not know get IntentUnknown and no error; a
// malformed /gateway/ path or rvt-* query is an error wrapping
// ErrInvalidRoute.
func ParseRoute(escapedPath, rawQuery string) (Route, error) {
	switch {
	case escapedPath == "/health":
		return Route{Intent: IntentHealth}, nil
	case escapedPath == "/metadata":
		return Route{Intent: IntentMetadata, Namespace: queryValue(rawQuery, "namespace")}, nil
	case escapedPath == "/actors" || strings.HasPrefix(escapedPath, "/actors/"):
		return Route{Intent: IntentActors, Namespace: queryValue(rawQuery, "namespace")}, nil
	case strings.HasPrefix(escapedPath, "/gateway/"):
		return parseGateway(escapedPath[len("/gateway/"):], rawQuery)
	}
	return Route{}, nil
}

func parseGateway(p, rawQuery string) (Route, error) {
	var rt Route
	seg, rest := p, ""
	if i := strings.IndexByte(p, '/'); i >= 0 {
		seg, rest = p[:i], p[i:]
	}
	if i := strings.IndexByte(seg, '@'); i >= 0 {
		seg, rt.PathToken = seg[:i], true
	}
	if seg == "" {
		return rt, invalid("empty actor target")
	}
	target, err := url.PathUnescape(seg)
	if err != nil {
		return rt, invalid("bad escape in actor target")
	}
	rt.Target, rt.Rest = seg, rest

	q, err := parseRvtQuery(rawQuery)
	if err != nil {
		return rt, err
	}
	switch {
	case q.hasMethod:
		if rt.PathToken {
			return rt, invalid("query targets must not use @token")
		}
		if q.method != "get" && q.method != "getOrCreate" {
			return rt, invalid("rvt-method must be get or getOrCreate")
		}
		if q.namespace == "" {
			return rt, invalid("rvt-namespace is required with rvt-method")
		}
		rt.ActorName, rt.Method, rt.Namespace = target, q.method, q.namespace
		if q.hasKey {
			rt.Key = strings.Split(q.key, ",")
		}
	case q.any:
		return rt, invalid("rvt-* parameters without rvt-method")
	default:
		rt.ActorID = target
	}

	intent, name, err := parseRest(rest)
	if err != nil {
		return rt, err
	}
	rt.Intent, rt.Name = intent, name
	return rt, nil
}

func parseRest(rest string) (Intent, string, error) {
	if rest == "" || rest == "/" {
		return IntentUnknown, "", nil
	}
	first, tail := rest[1:], ""
	if i := strings.IndexByte(first, '/'); i >= 0 {
		first, tail = first[:i], first[i+1:]
	}
	switch first {
	case "action", "queue":
		intent := IntentAction
		if first == "queue" {
			intent = IntentQueue
		}
		if tail == "" || strings.Contains(tail, "/") {
			return intent, "", invalid(first + " route needs exactly one name segment")
		}
		name, err := url.PathUnescape(tail)
		if err != nil {
			return intent, "", invalid("bad escape in " + first + " name")
		}
		return intent, name, nil
	case "request":
		return IntentRequest, "", nil
	case "connect":
		return IntentConnect, "", nil
	case "websocket":
		return IntentWebSocket, "", nil
	case "inspector":
		return IntentInspector, "", nil
	}
	return IntentUnknown, "", nil
}

type rvtQuery struct {
	method, namespace, key string
	hasMethod, hasKey, any bool
}

// parseRvtQuery reads the rvt-* parameters; the user's own parameters are
// passed through to the actor untouched and may be malformed.
func parseRvtQuery(raw string) (rvtQuery, error) {
	var q rvtQuery
	var seen []string // the engine rejects any repeated rvt-* key
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if !strings.HasPrefix(k, "rvt-") {
			continue
		}
		q.any = true
		val, err := url.QueryUnescape(v)
		if err != nil {
			return q, invalid("bad escape in " + k)
		}
		if slices.Contains(seen, k) {
			return q, invalid("duplicate " + k)
		}
		seen = append(seen, k)
		switch k {
		case "rvt-method":
			q.method, q.hasMethod = val, true
		case "rvt-namespace":
			q.namespace = val
		case "rvt-key":
			q.key, q.hasKey = val, true
		}
	}
	return q, nil
}

// queryValue returns the first unescaped value of key in raw, or "".
func queryValue(raw, key string) string {
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if k == key {
			if val, err := url.QueryUnescape(v); err == nil {
				return val
			}
			return ""
		}
	}
	return ""
}

// RemoveQueryParam drops every key=value pair named key from a raw query,
// leaving the other pairs byte-for-byte and in order.
func RemoveQueryParam(raw, key string) string {
	if !strings.Contains(raw, key) {
		return raw
	}
	var b strings.Builder
	for part := range strings.SplitSeq(raw, "&") {
		if k, _, _ := strings.Cut(part, "="); k == key || part == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}

// AppendQueryParam appends key=QueryEscape(value) to a raw query.
func AppendQueryParam(raw, key, value string) string {
	pair := key + "=" + url.QueryEscape(value)
	if raw == "" {
		return pair
	}
	return raw + "&" + pair
}

type routeKey struct{}

// WithRoute returns ctx carrying rt.
func WithRoute(ctx context.Context, rt *Route) context.Context {
	return context.WithValue(ctx, routeKey{}, rt)
}

// RouteFrom returns the route stored by WithRoute, or nil.
func RouteFrom(ctx context.Context) *Route {
	rt, _ := ctx.Value(routeKey{}).(*Route)
	return rt
}
