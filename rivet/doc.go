// Package rivet is the RivetKit 2.3.x wire protocol as the gateway sees it:
// which route a request takes (Route, ParseRoute), where connection params and
// namespace tokens travel (headers and WebSocket subprotocols), and the error
// shape RivetKit clients turn into a typed ActorError (Error, WriteError).
//
// It knows nothing about configuration or policy; the cors, authn, params and
// proxy packages build on it. See shared/rivet-protocol.md for the measured
// protocol this package encodes.
package rivet
