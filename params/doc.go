// Package params is RivetKit's getParams moved into the gateway: for every
// upstream connection it resolves connection params from a trusted source
// and writes them where the engine reads them, so browsers hold no secrets
// and stateless HTTP actions, raw fetch() and queue sends (which the
// client-side getParams never covers, rivet PR #4473) get fresh params too.
//
// # Place in the chain
//
// CORS → route classification (rivet.WithRoute) → authn → params → proxy.
// Injector.Middleware reads the route with rivet.RouteFrom and the caller
// with Options.Caller. Requests whose intent carries no params (metadata,
// actors API, inspector, health) pass untouched; with source none or policy
// passthrough the middleware is next itself.
//
// # Sources
//
//   - static: a constant object from the config.
//   - claims: an object built from the verified caller by a mapping of
//     text/template templates, e.g. {userId: "{{ .Subject }}", role:
//     "{{ .Claims.role }}"}. Templates see .Method, .Subject, .Issuer,
//     .APIKeyID, .Scopes, .Claims, .RequestID and .Route (.Intent,
//     .ActorID, .ActorName, .Method, .Key, .Namespace, .Name). A value that
//     is exactly one action keeps the JSON type of what it yields (number,
//     bool, array, object); a value with any text around its actions is a
//     string (non-strings print with Go's fmt; use {{ json .X }} for JSON).
//     Objects and arrays nest; other YAML scalars are copied. Values are
//     encoded by encoding/json, never spliced as text, so a claim can never
//     inject structure. index is strict (index .Claims "https://x/roles")
//     and json encodes its argument. A field that is absent, null or empty
//     (an anonymous caller has no .Subject) is missing: missing_claim deny
//     (default) refuses the request with 403 auth.forbidden, omit leaves
//     the key or array element out, null writes null.
//   - http: a POST to a params service, described below.
//
// # Client params policy
//
// replace (default) drops whatever the client sent; merge keeps the
// client's object as the base, removes the credential fields authn consumed
// (Options.ConsumedFields) and lets every server key win; passthrough
// injects nothing. A client can never set a key the server injects.
//
// # Carriers
//
// Dialect current (RivetKit 2.3.x): header x-rivet-conn-params with
// ASCII-only JSON on HTTP (the engine drops raw UTF-8 bytes) and the
// subprotocol entry rivet_conn_params.<url.QueryEscape(JSON)> on WebSocket
// upgrades (the engine reads '+' as space, so not PathEscape), replacing
// the client's entry and keeping rivet and rivet_encoding.* in order.
// Dialect legacy: header X-RivetKit-Conn-Params on HTTP requests and
// upgrades. Every client carrier of both dialects is removed first.
// Params that do not fit (max_header_bytes, 4096 encoded bytes for the
// subprotocol) are never truncated: see ErrTooLarge.
//
// # The params service protocol (source http)
//
// For every upstream connection (or, with cache.ttl, once per distinct
// question per TTL, concurrent identical questions sharing one request) the
// gateway sends
//
//	POST <http.url>
//	Content-Type: application/json
//	X-Request-Id: <request_id>
//	<http.headers>
//
//	{
//	  "request_id": "5f0c…",           // the client's X-Request-Id if sane, else random
//	  "caller": {                      // null for an anonymous request
//	    "method": "jwt",               // how authn identified the caller
//	    "subject": "user-123",
//	    "issuer": "https://issuer.example",
//	    "api_key_id": "",
//	    "scopes": ["actors:connect"],  // [] when none
//	    "claims": {"role": "admin"}    // only http.forward_claims ("*": all); {} when none
//	  },
//	  "route": {
//	    "intent": "connect",           // action | queue | request | connect | websocket
//	    "websocket": true,             // the request is a WebSocket upgrade
//	    "actor_id": "",                // id targets: /gateway/<id>/…
//	    "actor_name": "counter",       // query targets: /gateway/<name>/…?rvt-method=…
//	    "method": "getOrCreate",       // rvt-method: get | getOrCreate
//	    "key": ["room-1"],             // rvt-key split on ","; null when none
//	    "namespace": "default",
//	    "name": ""                     // the action or queue name
//	  },
//	  "client_params": {"theme": "dark"} // policy merge only, when the client sent params,
//	                                     // without the fields authn consumed
//	}
//
// and uses the answer:
//
//   - 2xx with a JSON object (at most http.max_response_bytes): the params.
//   - 401 or 403: a denial, not retried: 403 auth.forbidden.
//   - 5xx, 408, 429, a timeout, a refused or broken connection, a body that
//     is not JSON or not an object: retried with exponential backoff and
//     full jitter within retry.max_attempts and retry.budget, stopping at
//     once if the client goes away.
//   - anything else (3xx: redirects are not followed; other 4xx; an answer
//     over the size bound): fails at once.
//
// # Errors the client sees
//
// Exhausted retries: ErrGetParamsFailed, HTTP 503 with Retry-After and
// {"group":"client","code":"get_params_failed","message":…,"metadata":
// {"attempts":n,"reason":cause}}; on a WebSocket the upgrade is accepted
// and closed 1011 "client.get_params_failed", which the RivetKit client
// retries, calling its own getParams again. Params too large: ErrTooLarge
// (500, same group and code, reason too_large). Denials: ErrForbidden (403
// auth.forbidden, close reason "auth.forbidden": not retried). Merge with
// client params that are not an object: 400 gateway.invalid_request. A
// client that went away: 499, nothing written.
//
// Nothing here logs params, tokens or header values; Options.Observe
// reports each resolution (latency, attempts, cause, cache hits).
package params
