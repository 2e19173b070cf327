package rivet

import (
	"net/http"
	"strings"
)

// Headers that steer the engine or the actor to something other than what
// the request target names. The engine routes by x-rivet-target/
// x-rivet-actor (HTTP) and rivet_target./rivet_actor. (WebSocket) when the
// path is not a gateway path, and the actor replaces the request's URL
// with x-rivet-internal-original-request-url in onRequest, onBeforeConnect,
// createConnState, onConnect and onWebSocket. SanitizeRequest removes them.
var steeringHeaders = []string{
	HeaderTarget,
	HeaderActor,
	"X-Rivet-Internal-Original-Request-Url",
	"X-Rivetkit-Actor",
}

var steeringProtocols = []string{ProtocolTargetPrefix, ProtocolActorPrefix}

// ProtocolInspectorTokenPrefix is the subprotocol entry carrying an actor's
// inspector token on its inspector WebSocket.
const ProtocolInspectorTokenPrefix = "rivet_inspector_token."

// connectionTokens are the Connection header tokens a client may send: any
// other names a header the next hop must drop, and a client must not
// choose which of the headers the gateway sets (params, identity, the
// namespace token) never reach the engine.
var connectionTokens = []string{"keep-alive", "close", "upgrade", "te"}

// allowedMethods are the methods RivetKit clients and the engine's routes
// use; anything else (CONNECT, TRACE, extension methods) is refused.
var allowedMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodDelete, http.MethodPatch, http.MethodOptions}

// SanitizeRequest makes r's headers read the same by the gateway, the engine
// and the actor, or refuses r (with a RivetKit-shaped *Error) when they
// cannot:
//
//   - methods outside GET, HEAD, POST, PUT, DELETE, PATCH and OPTIONS are
//     refused;
//   - an Upgrade header or a Connection: upgrade token is only accepted as
//     a WebSocket upgrade (GET, one Upgrade: websocket); anything else would
//     be tunnelled past every WebSocket check;
//   - Connection may only carry keep-alive, close, upgrade and te, so no
//     header the gateway sets can be made hop-by-hop;
//   - an x-rivet-* or X-RivetKit-* header may appear once: the engine reads
//     the first value, the actor the last;
//   - Sec-WebSocket-Protocol lines are joined into one (the engine reads
//     only the first line, the actor only the last);
//   - steering headers and subprotocol entries (x-rivet-target,
//     x-rivet-actor, x-rivet-internal-original-request-url, rivet_target.,
//     rivet_actor.) are removed.
func SanitizeRequest(r *http.Request) error {
	if !containsString(allowedMethods, r.Method) {
		return ErrMethodNotAllowed.With("reason", "method not served")
	}
	h := r.Header
	upgrade := len(h.Values("Upgrade")) > 0 || headerHasToken(h, "Connection", "upgrade")
	if upgrade && !IsUpgrade(r) {
		return ErrInvalidRequest.With("reason", "only GET with Upgrade: websocket may upgrade")
	}
	for _, v := range h.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			tok = strings.ToLower(strings.TrimSpace(tok))
			if tok != "" && !containsString(connectionTokens, tok) {
				return ErrInvalidRequest.With("reason", "Connection may only name keep-alive, close, upgrade or te")
			}
		}
	}
	for name, vals := range h {
		if len(vals) > 1 && (strings.HasPrefix(name, "X-Rivet-") || strings.HasPrefix(name, "X-Rivetkit-")) {
			return ErrInvalidRequest.With("reason", "repeated header "+name)
		}
	}
	for _, name := range steeringHeaders {
		h.Del(name)
	}
	if len(h.Values(HeaderWebSocketProtocol)) > 0 {
		list := Subprotocols(h)
		kept := list[:0]
		for _, p := range list {
			if !hasAnyPrefix(p, steeringProtocols) {
				kept = append(kept, p)
			}
		}
		SetSubprotocols(h, kept)
	}
	return nil
}

// IsUpgrade reports whether r is a WebSocket upgrade: GET, Connection:
// upgrade, and exactly one Upgrade value, "websocket".
func IsUpgrade(r *http.Request) bool {
	up := r.Header.Values("Upgrade")
	return r.Method == http.MethodGet && len(up) == 1 && strings.EqualFold(strings.TrimSpace(up[0]), "websocket") &&
		headerHasToken(r.Header, "Connection", "upgrade")
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
