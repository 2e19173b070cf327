package rivet

// Intent is the capability a request exercises on the engine or an actor:
// what the engine and the actor will actually serve for it, whatever
// spelling the client used (ParseRequest decides it).
type Intent uint8

// The intents, in the order the access log and metrics list them.
const (
	IntentUnknown Intent = iota
	// IntentHealth is GET /health (the engine's).
	IntentHealth
	// IntentMetadata is GET /metadata, which every RivetKit client awaits
	// first.
	IntentMetadata
	// IntentLookup is GET /actors naming its actors: by name and key, or by
	// ids (actor_ids=, actor_id=).
	IntentLookup
	// IntentCreate is POST /actors (client.x.create).
	IntentCreate
	// IntentGetOrCreate is PUT /actors (resolve() of getOrCreate).
	IntentGetOrCreate
	// IntentList is GET /actors without a key or ids (every actor of a
	// name) and GET /actors/names. Privileged.
	IntentList
	// IntentDestroy is DELETE /actors/{id}. Privileged.
	IntentDestroy
	// IntentKV is GET /actors/{id}/kv/keys/{key}: the actor's storage,
	// its inspector token included. Privileged.
	IntentKV
	// IntentAdmin is every other engine management route: namespaces,
	// runner configs, runners, envoys, datacenters, /actors/{id}/sleep and
	// /reschedule, /health/fanout. Privileged.
	IntentAdmin
	// IntentAction is POST /gateway/<target>/action/<name>.
	IntentAction
	// IntentQueue is POST /gateway/<target>/queue/<name>.
	IntentQueue
	// IntentRequest is /gateway/<target>/request/<path>: the actor's
	// onRequest.
	IntentRequest
	// IntentConnect is the WebSocket /gateway/<target>/connect: a RivetKit
	// connection.
	IntentConnect
	// IntentWebSocket is the WebSocket /gateway/<target>/websocket/<path>:
	// the actor's onWebSocket.
	IntentWebSocket
	// IntentInspector is the actor's inspector, however it is reached
	// (/inspector/..., /request/inspector/..., the WebSocket
	// /inspector/connect). Privileged.
	IntentInspector
)

var intentNames = [...]string{
	IntentUnknown:     "unknown",
	IntentHealth:      "health",
	IntentMetadata:    "metadata",
	IntentLookup:      "lookup",
	IntentCreate:      "create",
	IntentGetOrCreate: "get_or_create",
	IntentList:        "list",
	IntentDestroy:     "destroy",
	IntentKV:          "kv",
	IntentAdmin:       "admin",
	IntentAction:      "action",
	IntentQueue:       "queue",
	IntentRequest:     "request",
	IntentConnect:     "connect",
	IntentWebSocket:   "websocket",
	IntentInspector:   "inspector",
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

// Gateway reports whether the intent is served by an actor through
// /gateway/<target>/...
func (i Intent) Gateway() bool { return i >= IntentAction }

// Privileged reports whether the intent reaches beyond one user's use of an
// actor: the inspector (state, every connection's params, SQL), listing,
// destroying, the actor's raw storage, and engine administration. Only a
// rule that names such an intent explicitly can grant it.
func (i Intent) Privileged() bool {
	switch i {
	case IntentList, IntentDestroy, IntentKV, IntentAdmin, IntentInspector:
		return true
	}
	return false
}

// API reports whether the intent is one of the engine's management API
// routes (/actors...), as opposed to /gateway/ routes, /health and
// /metadata.
func (i Intent) API() bool { return i >= IntentLookup && i <= IntentAdmin }
