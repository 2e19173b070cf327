package rivet

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// Actor is an actor as authorization sees it: the namespace, name and key
// the engine will serve the request from, whatever form addressed it.
type Actor struct {
	// ID is the canonical (lower-case) actor id; "" for an actor named by
	// key (the query gateway, GET /actors?name=&key=, POST and PUT /actors).
	ID        string
	Namespace string
	Name      string
	// Key is the actor key's parts; empty (not nil) for the empty key.
	Key []string
}

// Route is a request's place in the RivetKit protocol, read from the bytes
// the gateway forwards (see ParseRequest).
type Route struct {
	Intent Intent

	// ActorID is set for id targets: /gateway/<id>[@token]/... (canonical).
	ActorID string
	// ActorName, Method ("get" or "getOrCreate") and Key are set for query
	// targets: /gateway/<name>/...?rvt-method=...&rvt-key=a,b
	ActorName string
	Method    string
	Key       []string
	// Namespace is rvt-namespace (query targets) or the namespace query
	// parameter (/metadata, /actors...); empty when the request names none.
	Namespace string
	// Name is the decoded action or queue name for IntentAction and
	// IntentQueue.
	Name string

	// Target is the escaped target segment without any @token suffix.
	Target string
	// Rest is the escaped path after the target segment, e.g.
	// "/action/increment" or "/request/hello/world"; it may be empty.
	Rest string
	// PathToken reports whether the target segment carried "@<token>".
	PathToken bool

	// RawPath and RawQuery are the request target exactly as received and
	// checked (SplitTarget): what the proxy forwards.
	RawPath, RawQuery string

	// IDs are the actor ids the request names, which the engine must be
	// asked about before the request can be authorized (id targets,
	// /actors/{id}..., GET /actors?actor_ids=).
	IDs []string
	// ActorInBody is set for POST and PUT /actors: the actor is named by the
	// JSON body.
	ActorInBody bool

	// Actors are the actors the request reaches, complete once Resolved:
	// rules authorize each of them. Empty for routes that reach no one
	// actor (metadata, health, list, engine administration).
	Actors []Actor
	// Resolved reports whether Actors is complete: set by ParseRequest when
	// the request names its actors itself, otherwise by the resolver
	// (package actors) once it has looked up IDs or read the body. Nothing
	// may authorize a route that is not resolved.
	Resolved bool
}

// Actor returns the one actor the route reaches, or nil when it reaches none
// or several (or is not resolved yet).
func (r *Route) Actor() *Actor {
	if len(r.Actors) == 1 {
		return &r.Actors[0]
	}
	return nil
}

// ActorLabel names the actor for logs and metrics: the name of the one
// actor the route reaches, or "".
func (r *Route) ActorLabel() string {
	if a := r.Actor(); a != nil {
		return a.Name
	}
	return r.ActorName
}

// Path rebuilds the escaped upstream path of a /gateway/ route without the
// target segment's @token, if any; for other routes it is RawPath.
func (r *Route) Path() string {
	if r.Target == "" {
		return r.RawPath
	}
	return "/gateway/" + r.Target + r.Rest
}

// ErrInvalidRoute is wrapped by the errors of a malformed /gateway/ target
// or rvt-* query and of a malformed management API query.
var ErrInvalidRoute = &Error{Status: http.StatusBadRequest, Group: "guard", Code: "query_invalid_params", Message: "Invalid actor query."}

// ErrMethodNotAllowed is the rejection of a method the route does not serve.
var ErrMethodNotAllowed = &Error{Status: http.StatusMethodNotAllowed, Group: "gateway", Code: "method_not_allowed", Message: "Method not allowed for this route."}

func invalid(msg string) *Error { return ErrInvalidRoute.With("reason", msg) }

func noRoute(msg string) *Error { return ErrNoRoute.With("reason", msg) }

func methodNotAllowed(allowed ...string) *Error {
	return ErrMethodNotAllowed.With("allowed", strings.Join(allowed, ", "))
}

// MaxLookupIDs is the most actor ids one GET /actors may name: the engine's
// own limit (validation.too_many_actor_ids).
const MaxLookupIDs = 32

// ParseRequest classifies r by what the engine and the actor will serve for
// it. It reads the raw request target (r.RequestURI; for requests built
// in-process, r.URL.RequestURI()) the way the engine's guard does and the
// path after /gateway/<target> the way the actor's router does, and refuses
// (with a RivetKit-shaped *Error) every request it cannot classify with
// certainty: ambiguous targets (SplitTarget), unknown paths (404, never
// forwarded), methods a route does not serve (405), malformed rvt-* and
// management API queries (400). WebSocket upgrades (IsUpgrade) are only
// accepted where the actor serves one.
func ParseRequest(r *http.Request) (Route, error) {
	target := r.RequestURI
	if target == "" || !strings.HasPrefix(target, "/") && r.URL != nil && r.URL.Host == "" {
		target = r.URL.RequestURI()
	}
	return ParseTarget(r.Method, target, IsUpgrade(r))
}

// ParseTarget is ParseRequest on a method, a raw request target and whether
// the request is a WebSocket upgrade.
func ParseTarget(method, target string, websocket bool) (Route, error) {
	path, query, err := SplitTarget(target)
	if err != nil {
		return Route{}, err
	}
	if err := checkDisguisedRvt(query); err != nil {
		return Route{}, err
	}
	rt := Route{RawPath: path, RawQuery: query}
	if rest, ok := strings.CutPrefix(path, "/gateway/"); ok {
		err = rt.parseGateway(method, rest, query, websocket)
	} else if websocket {
		// The engine routes a WebSocket off /gateway/ by its subprotocols;
		// no RivetKit client route is one.
		err = noRoute("WebSockets are served under /gateway/ only")
	} else {
		err = rt.parseAPI(method, path, query)
	}
	if err != nil {
		return Route{}, err
	}
	return rt, nil
}

// parseGateway reads /gateway/<target><rest> as guard's parse_actor_path
// does: any raw query key starting with "rvt-" makes the target an actor
// name (the query gateway), otherwise it is an actor id, optionally
// followed by "@<token>".
func (rt *Route) parseGateway(method, p, query string, websocket bool) error {
	seg, rest := p, ""
	if i := strings.IndexByte(p, '/'); i >= 0 {
		seg, rest = p[:i], p[i:]
	}
	if seg == "" {
		return invalid("empty actor target")
	}
	if hasRawRvtKey(query) {
		if strings.Contains(seg, "@") {
			return invalid("query targets must not use @token")
		}
		name, ok := percentDecode(seg, false)
		if !ok || name == "" {
			return invalid("bad actor name")
		}
		q, err := parseRvtQuery(query)
		if err != nil {
			return err
		}
		rt.ActorName, rt.Method, rt.Namespace, rt.Key = name, q.method, q.namespace, SplitQueryKey(q.key)
		rt.Actors = []Actor{{Namespace: q.namespace, Name: name, Key: rt.Key}}
		rt.Resolved = true
		rt.Target = seg
	} else {
		idPart, token, hasToken := strings.Cut(seg, "@")
		if idPart == "" || hasToken && token == "" {
			return invalid("empty actor id or @token")
		}
		raw, ok := percentDecode(idPart, false)
		if !ok {
			return invalid("bad escape in actor id")
		}
		id, ok := CanonicalActorID(raw)
		if !ok {
			return invalid("not an actor id (a query target needs rvt-namespace and rvt-method)")
		}
		if _, ok := percentDecode(token, false); hasToken && !ok {
			return invalid("bad escape in @token")
		}
		rt.ActorID, rt.IDs, rt.PathToken, rt.Target = id, []string{id}, hasToken, idPart
	}
	rt.Rest = rest
	intent, name, err := actorRoute(method, rest, websocket)
	if err != nil {
		return err
	}
	rt.Intent, rt.Name = intent, name
	return nil
}

// actorRoute classifies the path the actor receives (the rest after
// /gateway/<target>) by what rivetkit-core 2.3.19 serves for it
// (registry/http.rs, registry/websocket.rs, the inspector in native.ts).
// SplitTarget has ruled out everything its URL normalization could change
// (dot segments, "\", "//", escaped "/" and "."), so plain prefix tests
// on the raw bytes are exact here.
//
//   - WebSocket: "/connect" is a RivetKit connection, "/inspector/connect"
//     the inspector, and any other path the actor's onWebSocket; the
//     gateway accepts "/websocket" and "/websocket/..." there (what the
//     clients send) and refuses the rest.
//   - HTTP: "/request" and "/request/..." lose "/request"; what remains goes
//     to the inspector when it starts with "/inspector/", to onRequest
//     otherwise. "/action/<name>" and "/queue/<name>" (POST) are actions
//     and queue sends, the name percent-decoded. "/inspector/..." is the
//     inspector. Everything else (the actor's /metrics, /metadata, /health,
//     its banner) is no client route.
func actorRoute(method, rest string, websocket bool) (Intent, string, error) {
	if websocket {
		switch {
		case rest == "/connect":
			return IntentConnect, "", nil
		case rest == "/inspector/connect":
			return IntentInspector, "", nil
		case rest == "/websocket" || strings.HasPrefix(rest, "/websocket/"):
			return IntentWebSocket, "", nil
		}
		return IntentUnknown, "", noRoute("no actor WebSocket route at this path")
	}
	switch {
	case rest == "/request" || strings.HasPrefix(rest, "/request/"):
		if strings.HasPrefix(rest[len("/request"):], "/inspector/") {
			return IntentInspector, "", nil
		}
		return IntentRequest, "", nil
	case strings.HasPrefix(rest, "/inspector/"):
		return IntentInspector, "", nil
	case strings.HasPrefix(rest, "/action/"), strings.HasPrefix(rest, "/queue/"):
		intent, kind, seg := IntentQueue, "queue", strings.TrimPrefix(rest, "/queue/")
		if strings.HasPrefix(rest, "/action/") {
			intent, kind, seg = IntentAction, "action", rest[len("/action/"):]
		}
		if seg == "" || strings.Contains(seg, "/") {
			return intent, "", noRoute(kind + " route needs exactly one name segment")
		}
		name, ok := percentDecode(seg, false)
		if !ok {
			return intent, "", invalid("bad escape in " + kind + " name")
		}
		if method != http.MethodPost {
			return intent, "", methodNotAllowed(http.MethodPost)
		}
		return intent, name, nil
	case rest == "/connect", rest == "/websocket", strings.HasPrefix(rest, "/websocket/"):
		return IntentUnknown, "", ErrInvalidRequest.With("reason", "this route needs a WebSocket upgrade (GET with Upgrade: websocket)")
	}
	return IntentUnknown, "", noRoute("no actor route at this path")
}

// rvtKeys are the rvt-* parameters the engine's query gateway knows
// (RvtParams, deny_unknown_fields); any other is refused by the engine.
var rvtKeys = []string{"rvt-namespace", "rvt-method", "rvt-runner", "rvt-pool", "rvt-key", "rvt-input",
	"rvt-region", "rvt-crash-policy", "rvt-token", "rvt-skip-ready-wait"}

type rvtQuery struct {
	method, namespace, key string
}

// hasRawRvtKey reports whether a raw query switches guard to the query
// gateway: some "&"-separated part's raw key starts with "rvt-".
func hasRawRvtKey(raw string) bool {
	if !strings.Contains(raw, "rvt-") {
		return false
	}
	for part := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if strings.HasPrefix(k, "rvt-") {
			return true
		}
	}
	return false
}

// checkDisguisedRvt refuses query keys that some reader may take for an
// rvt-* parameter and guard does not ("%72vt-key", "RVT-key"): only the
// exact raw spellings guard reads are allowed.
func checkDisguisedRvt(raw string) error {
	for part := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		if strings.HasPrefix(k, "rvt-") {
			continue
		}
		if len(k) < 4 {
			continue
		}
		d, ok := percentDecode(k, true)
		if !ok {
			return invalid("bad escape in a query key")
		}
		if len(d) >= 4 && strings.EqualFold(d[:4], "rvt-") {
			return invalid("query key spelled like rvt-* but not rvt-*: " + clip(k))
		}
	}
	return nil
}

// parseRvtQuery reads the rvt-* parameters as guard does (values
// form-decoded, duplicates and unknown keys refused, rvt-method get or
// getOrCreate, rvt-namespace required); the user's own parameters pass
// through to the actor untouched.
func parseRvtQuery(raw string) (rvtQuery, error) {
	var q rvtQuery
	var seen uint16 // bit i: rvtKeys[i] was read
	hasMethod, hasNamespace := false, false
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if !strings.HasPrefix(k, "rvt-") {
			continue
		}
		i := slices.Index(rvtKeys, k)
		if i < 0 {
			return q, invalid("unknown query gateway parameter " + clip(k))
		}
		if seen&(1<<i) != 0 {
			return q, invalid("duplicate " + k)
		}
		seen |= 1 << i
		if strings.Contains(v, ";") {
			// Guard keeps ";" in the value; Go's and older query parsers
			// split or drop the pair there.
			return q, invalid("raw \";\" in " + k)
		}
		val, ok := percentDecode(v, true)
		if !ok {
			return q, invalid("bad escape in " + k)
		}
		switch k {
		case "rvt-method":
			q.method, hasMethod = val, true
		case "rvt-namespace":
			q.namespace, hasNamespace = val, true
		case "rvt-key":
			q.key = val
		}
	}
	switch {
	case !hasMethod:
		return q, invalid("rvt-method is required on a query target")
	case q.method != "get" && q.method != "getOrCreate":
		return q, invalid("rvt-method must be get or getOrCreate")
	case !hasNamespace || q.namespace == "":
		return q, invalid("rvt-namespace is required on a query target")
	}
	return q, nil
}

// parseAPI classifies the engine's routes other than /gateway/: /health,
// /metadata and the management API (api-public), matched as its router
// matches them (exact paths, case-sensitive, no trailing slash).
func (rt *Route) parseAPI(method, path, query string) error {
	get := method == http.MethodGet || method == http.MethodHead
	switch path {
	case "/health":
		if !get {
			return methodNotAllowed(http.MethodGet, http.MethodHead)
		}
		rt.Intent, rt.Resolved = IntentHealth, true
		return nil
	case "/metadata":
		if !get {
			return methodNotAllowed(http.MethodGet, http.MethodHead)
		}
		rt.Intent, rt.Namespace, rt.Resolved = IntentMetadata, queryValue(query, "namespace"), true
		return nil
	case "/actors":
		return rt.parseActors(method, query)
	}
	if rest, ok := strings.CutPrefix(path, "/actors/"); ok && rest != "names" {
		return rt.parseActorByID(method, rest, query)
	}
	for _, a := range adminRoutes {
		if a.matches(path) {
			if !slices.Contains(a.methods, method) {
				return methodNotAllowed(a.methods...)
			}
			q, err := parseForm(query)
			if err != nil {
				return err
			}
			ns, err := q.single("namespace")
			if err != nil {
				return err
			}
			rt.Intent, rt.Namespace, rt.Resolved = a.intent, ns, true
			return nil
		}
	}
	return noRoute("not a RivetKit client route")
}

// adminRoute is an engine management route that names no actor.
type adminRoute struct {
	path    string // exact, or a prefix ending in "/" followed by one segment (and suffix)
	suffix  string
	methods []string
	intent  Intent
}

func (a adminRoute) matches(path string) bool {
	if !strings.HasSuffix(a.path, "/") {
		return path == a.path
	}
	seg, ok := strings.CutPrefix(path, a.path)
	if !ok {
		return false
	}
	seg, ok = strings.CutSuffix(seg, a.suffix)
	return ok && seg != "" && !strings.Contains(seg, "/")
}

// adminRoutes are engine 2.3.19's other public routes: not used by RivetKit
// clients, served only to a rule that grants their intent explicitly.
var adminRoutes = []adminRoute{
	{path: "/actors/names", methods: []string{http.MethodGet}, intent: IntentList},
	{path: "/namespaces", methods: []string{http.MethodGet, http.MethodPost}, intent: IntentAdmin},
	{path: "/runner-configs", methods: []string{http.MethodGet}, intent: IntentAdmin},
	{path: "/runner-configs/serverless-health-check", methods: []string{http.MethodPost}, intent: IntentAdmin},
	{path: "/runner-configs/", suffix: "/refresh-metadata", methods: []string{http.MethodPost}, intent: IntentAdmin},
	{path: "/runner-configs/", methods: []string{http.MethodPut, http.MethodDelete}, intent: IntentAdmin},
	{path: "/runners", methods: []string{http.MethodGet}, intent: IntentAdmin},
	{path: "/runners/names", methods: []string{http.MethodGet}, intent: IntentAdmin},
	{path: "/envoys", methods: []string{http.MethodGet}, intent: IntentAdmin},
	{path: "/datacenters", methods: []string{http.MethodGet}, intent: IntentAdmin},
	{path: "/health/fanout", methods: []string{http.MethodGet}, intent: IntentAdmin},
}

// parseActors reads /actors: GET is a lookup when it names its actors (by
// ids, or by name and key) and a listing otherwise; POST creates and PUT
// gets or creates the actor its body names.
func (rt *Route) parseActors(method, query string) error {
	q, err := parseForm(query)
	if err != nil {
		return err
	}
	switch method {
	case http.MethodPost, http.MethodPut:
		if err := q.only("namespace"); err != nil {
			return err
		}
		ns, err := q.required("namespace")
		if err != nil {
			return err
		}
		rt.Intent, rt.Namespace, rt.ActorInBody = IntentCreate, ns, true
		if method == http.MethodPut {
			rt.Intent = IntentGetOrCreate
		}
		return nil
	case http.MethodGet:
	default:
		return methodNotAllowed(http.MethodGet, http.MethodPost, http.MethodPut)
	}
	if err := q.only("namespace", "name", "key", "actor_ids", "actor_id", "include_destroyed", "limit", "cursor"); err != nil {
		return err
	}
	ns, err := q.required("namespace")
	if err != nil {
		return err
	}
	rt.Namespace = ns
	for _, k := range []string{"name", "key", "actor_ids", "include_destroyed", "limit", "cursor"} {
		if _, err := q.single(k); err != nil {
			return err
		}
	}
	var ids []string
	if list, ok := q.get("actor_ids"); ok {
		for s := range strings.SplitSeq(list[0], ",") {
			id, ok := CanonicalActorID(s)
			if !ok {
				return invalid("actor_ids: not an actor id: " + clip(s))
			}
			ids = append(ids, id)
		}
	}
	for _, s := range q.values["actor_id"] {
		id, ok := CanonicalActorID(s)
		if !ok {
			return invalid("actor_id: not an actor id: " + clip(s))
		}
		ids = append(ids, id)
	}
	name, _ := q.single("name")
	key, _ := q.single("key")
	switch {
	case len(ids) > 0:
		if name != "" || key != "" {
			return invalid("actor ids and name/key are exclusive")
		}
		if len(ids) > MaxLookupIDs {
			return invalid("too many actor ids")
		}
		rt.Intent, rt.IDs = IntentLookup, ids
	case name != "" && key != "":
		parts, ok := ParseSerializedKey(key)
		if !ok {
			return invalid("key is not a canonical serialized actor key")
		}
		rt.Intent, rt.Resolved = IntentLookup, true
		rt.Actors = []Actor{{Namespace: ns, Name: name, Key: parts}}
	default:
		// The engine reads an empty key as none: every actor of the name.
		rt.Intent, rt.Resolved = IntentList, true
	}
	return nil
}

// parseActorByID reads /actors/{id}...: DELETE destroys; /kv/keys/{key}
// reads the actor's storage; /sleep and /reschedule (POST) administer it.
func (rt *Route) parseActorByID(method, rest, query string) error {
	segs := strings.Split(rest, "/")
	raw, ok := percentDecode(segs[0], false)
	if !ok {
		return invalid("bad escape in actor id")
	}
	id, ok := CanonicalActorID(raw)
	if !ok {
		return noRoute("not an actor id")
	}
	var intent Intent
	var want string
	switch {
	case len(segs) == 1:
		intent, want = IntentDestroy, http.MethodDelete
	case len(segs) == 4 && segs[1] == "kv" && segs[2] == "keys" && segs[3] != "":
		intent, want = IntentKV, http.MethodGet
	case len(segs) == 2 && (segs[1] == "sleep" || segs[1] == "reschedule"):
		intent, want = IntentAdmin, http.MethodPost
	default:
		return noRoute("not a RivetKit client route")
	}
	if method != want && !(want == http.MethodGet && method == http.MethodHead) {
		return methodNotAllowed(want)
	}
	q, err := parseForm(query)
	if err != nil {
		return err
	}
	if err := q.only("namespace"); err != nil {
		return err
	}
	ns, err := q.required("namespace")
	if err != nil {
		return err
	}
	rt.Intent, rt.Namespace, rt.IDs = intent, ns, []string{id}
	return nil
}

// form is a query read as the engine's API reads it (serde_urlencoded):
// keys and values form-decoded, empty parts skipped.
type form struct {
	keys   []string // in order, without repeats
	values map[string][]string
}

// parseForm decodes raw strictly: a malformed escape or invalid UTF-8
// (which the engine reads leniently, and Go differently) is refused.
func parseForm(raw string) (form, error) {
	f := form{values: map[string][]string{}}
	if raw == "" {
		return f, nil
	}
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, ok1 := percentDecode(k, true)
		dv, ok2 := percentDecode(v, true)
		if !ok1 || !ok2 {
			return f, invalid("bad escape in the query")
		}
		if _, seen := f.values[dk]; !seen {
			f.keys = append(f.keys, dk)
		}
		f.values[dk] = append(f.values[dk], dv)
	}
	return f, nil
}

func (f form) get(k string) ([]string, bool) {
	v, ok := f.values[k]
	return v, ok
}

// single returns k's value ("" when absent); a repeated key is refused, as
// the engine refuses it.
func (f form) single(k string) (string, error) {
	v := f.values[k]
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		return v[0], nil
	}
	return "", invalid("duplicate query parameter " + clip(k))
}

func (f form) required(k string) (string, error) {
	v, err := f.single(k)
	if err == nil && v == "" {
		err = invalid("query parameter " + k + " is required")
	}
	return v, err
}

// only refuses keys outside allowed: the engine's query structs deny
// unknown fields.
func (f form) only(allowed ...string) error {
	for _, k := range f.keys {
		if !slices.Contains(allowed, k) {
			return invalid("unknown query parameter " + clip(k))
		}
	}
	return nil
}

// clip shortens client text quoted in an error's metadata.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// queryValue returns the first form-decoded value of key in raw, or "".
func queryValue(raw, key string) string {
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if dk, ok := percentDecode(k, true); ok && dk == key {
			if val, ok := percentDecode(v, true); ok {
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
