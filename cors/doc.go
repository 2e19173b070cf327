// Package cors is the gateway's CORS policy: it answers preflights itself,
// decides which browser origins may call the engine through the gateway, and
// makes sure a browser sees exactly one set of Access-Control-* headers.
//
// It is the first link of the chain (CORS → route classification → authn →
// params → proxy) so that every answer, including the gateway's own errors,
// carries the CORS headers a browser needs to read it, and so that a request
// from a disallowed origin never reaches the actor. The engine sends its own,
// permissive CORS headers (Access-Control-Allow-Origin: *, expose *); the
// proxy removes them with StripUpstream and the Middleware sets the
// gateway's. The WebSocket origin check (CheckOrigin) applies the same
// policy.
package cors
