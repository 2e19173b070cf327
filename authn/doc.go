// Package authn authenticates every request to the Rivet engine once, in
// front of it: the open-source engine validates no tokens, and RivetKit's
// own hooks (onBeforeConnect, createConnState) run only after an actor is
// reached.
//
// In the chain it sits after route classification (rivet.WithRoute) and
// before connection-params injection and the proxy:
//
//	CORS → route → authn.Middleware → params → proxy
//
// A credential is read from the first configured source that carries one
// (Authorization: Bearer, an API-key header, a field of the RivetKit
// connection params, which is how browsers authenticate WebSockets, a
// cookie, or a query parameter) and verified as a JWT (golang-jwt, with
// keys from secrets, PEM or JWKS via keyfunc) or as an API key (SHA-256
// hashes, compared in constant time). Ordered rules, matched on the
// RivetKit route (intent, actor name, namespace), then decide: anonymous,
// authenticated with claim, scope and actor-key checks, or denied.
// Rejections take RivetKit's error shape (auth.unauthorized,
// auth.forbidden), on WebSockets as an accepted socket closed with 1011,
// so the client surfaces an ActorError.
//
// The verified caller travels in the request context (IdentityFrom);
// credentials are stripped before forwarding, so actors never see raw
// tokens. SessionDeadline tells the proxy when a WebSocket's credential
// expires.
package authn
