// Package rivetclient is a Go client for Rivet actors (RivetKit 2.3.x),
// for backends that call actors through a RivetKit engine or through
// rivet-gateway in front of it, the way the RivetKit JS and Rust clients do.
//
// A [Client] is created once per endpoint with [New] and functional
// options ([WithNamespace], [WithToken], [WithHeader], [WithHTTPClient],
// [WithLogger], …). It hands out [Handle]s, which address one actor:
//
//   - [Client.GetOrCreate] and [Client.Get] address an actor by name and key
//     through the engine's query gateway:
//     /gateway/<name>/<path>?rvt-namespace=…&rvt-method=getOrCreate&rvt-runner=…&rvt-key=…&rvt-crash-policy=sleep
//   - [Client.GetForID] and [Client.Create] address it by id: /gateway/<id>/<path>
//   - [Handle.Resolve] and [Client.Create] use the engine's /actors API.
//
// A handle makes stateless calls — [Handle.Action] ({args} → {output}),
// [Handle.Send] (queue messages),
// [Handle.Fetch] (raw HTTP to the actor's onRequest) and [Handle.WebSocket]
// (raw WebSocket to onWebSocket) — or opens a stateful [Conn] with
// [Handle.Connect]: the /connect WebSocket, which
// multiplexes concurrent actions, delivers subscribed events ([Conn.On]),
// reports status changes and errors, and reconnects until closed, with
// exponential backoff (up to 250ms doubling to 30s, full jitter).
//
// # Connection params and GetParams
//
// Actors receive connection params in onBeforeConnect/createConnState.
// [HandleOptions.Params] are static; [HandleOptions.GetParams] is called
// for fresh params before every WebSocket open (first connect and every
// reconnect) and before every stateless call — so a refreshed JWT is used
// everywhere, closing a gap of the JS client, whose getParams only covers
// WebSockets. Params travel as the x-rivet-conn-params header (ASCII-only
// JSON: the engine drops raw UTF-8) or the rivet_conn_params.<query-escaped
// JSON> WebSocket sub-protocol.
//
// When GetParams fails, the attempt fails with an *[ActorError]
// client.get_params_failed (reported to [Conn.OnError] and to pending
// actions) and the connection retries with backoff, as it does when the
// gateway closes the socket with client.get_params_failed, ws.going_away,
// actor.restarting, actor.stopped or a retryable guard.* reason, or when the
// network fails. Terminal errors (auth.*, user.*, …) stop the retries.
// A connection that was established once also rides out an engine restart:
// it retries what a restarting engine answers, namespace.not_found,
// actor.no_runner_config_configured, every guard.* code and pegboard's
// route_*_timeout codes (the JS client gives up there). Attempt n waits a
// random time up to base·2ⁿ, capped ([WithReconnectBackoff]; full jitter,
// so clients cut off together do not come back in lockstep).
//
// Params are encoded like arguments (compat JSON, see Values): the actor
// reads them that way.
//
// # Errors
//
// RivetKit errors — HTTP error bodies, Error messages, WebSocket close
// reasons "group.code#rayId" — are *[ActorError]; use errors.As, or
// errors.Is with a Group/Code pattern such as [ErrGetParamsFailed].
// [IsRetryable] tells transient failures from terminal ones.
//
// # Encodings
//
// Messages to and from actors are encoded as the JS client encodes them:
// bare by default (versioned BARE, client protocol v4), cbor or json,
// chosen per client with [WithEncoding]. The encoding changes the bytes on
// the wire only: values, errors and behaviour are the same in all three.
// Raw HTTP and raw WebSockets carry the caller's own bytes.
//
// # Values
//
// Arguments are marshalled with encoding/json into RivetKit's compat
// form; [BigInt], [Uint8Array], [ArrayBuffer], [Set] and [Undefined]
// produce its tagged forms (["$BigInt","…"], …), and arrays that look like
// tags are escaped. In cbor and bare that compat tree travels as CBOR, as
// RivetKit's encodeCborCompat writes it. Results, event arguments and
// error metadata reach the caller as JSON, decoded with json.Number, so
// integers keep their precision (decode BigInts into int64, uint64 or
// *big.Int); byte strings arrive as base64 strings, which decode into
// []byte. Object keys of values received in cbor or bare are sorted.
//
// # Metadata
//
// Like the JS client, a Client first asks GET /metadata?namespace=… and,
// if the answer names a clientEndpoint (serverless runners), sends its
// requests there. Unlike the JS client, a failed lookup never blocks or
// fails a call. Disable it with WithMetadataLookup(false) to pin the
// endpoint, e.g. so that a gateway cannot be bypassed.
//
// # Services
//
// [Handle.Open] returns a Conn at once and connects it in the background,
// so that handlers ([Conn.On], [Conn.Once], [Conn.OnStatusChange],
// [Conn.OnError]) are in place before the first attempt; [Conn.WaitConnected]
// waits for the connection where a service needs it. [Conn.Events] delivers
// one event on a bounded channel that drops the oldest events when the
// reader falls behind (counted by [EventStream.Dropped]), so a slow reader
// costs neither memory nor the other callbacks. Handlers registered with On
// are bounded too: when they fall behind, the oldest waiting event
// deliveries are dropped ([WithEventBuffer], [Conn.DroppedEvents]); status
// changes and errors never are. What the client reads from an actor in
// one piece, a WebSocket message or a response body, is bounded by
// [WithMaxMessageSize]. [Call] and [Subscribe] are the typed forms of
// Action and On.
//
// # The JS client and this one
//
//	RivetKit JS client 2.3.19             rivetclient
//	createClient({endpoint, namespace})   New(endpoint, WithNamespace(…))
//	client.counter.getOrCreate(key)       Client.GetOrCreate("counter", key, opts)
//	client.counter.get / getForId / create Client.Get / GetForID / Create
//	handle.increment(5)                   Handle.Action(ctx, "increment", &out, 5), Call[T]
//	handle.send(name, body)               Handle.Send
//	handle.fetch / webSocket              Handle.Fetch / WebSocket
//	handle.connect()                      Handle.Connect(ctx) (blocking), Handle.Open()
//	conn.on / once                        Conn.On / Once, Subscribe[T], Events (bounded)
//	conn.onOpen/onClose/onStatusChange    Conn.OnStatusChange
//	conn.onError                          Conn.OnError
//	getParams (WebSockets only)           HandleOptions.GetParams (every request)
//	reconnect: p-retry 250ms…30s          full jitter up to 250ms·2ⁿ, cap 30s (WithReconnectBackoff)
//	gives up on restart codes             retries them once connected
//	encodings bare (default), cbor, json  the same, WithEncoding
//
// # Lifetimes
//
// Every goroutine belongs to a [Conn] (two per connection: the socket
// reader and the callback dispatcher, plus one per open [EventStream]);
// [Conn.Close] or [Client.Close] stops them. Stateless calls start no
// goroutine of their own.
package rivetclient
