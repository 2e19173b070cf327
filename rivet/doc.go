// Package rivet is the RivetKit 2.3.x wire protocol as the gateway sees it:
// which route a request takes (Route, ParseRoute), where connection params and
// namespace tokens travel (headers and WebSocket subprotocols), and the error
// shape RivetKit clients turn into a typed ActorError (Error, WriteError).
//
// It knows nothing about configuration or policy; the cors, authn, params and
// proxy packages build on it. What it encodes was measured on the wire
// against rivetkit 2.3.19 and its engine; the end-to-end tests in
// integration/ hold it to them (TestParserAgreesWithEngine compares route
// parsing with the engine's, target by target).
package rivet
