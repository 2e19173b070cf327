package rivetclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/gorilla/websocket"
)

// ErrClosed is returned by calls on a [Conn] (or a [Client]) after Close,
// and by actions that were still pending when Close was called.
var ErrClosed = errors.New("rivetclient: closed")

// ErrGetParamsFailed matches, with errors.Is, the error produced when a
// [HandleOptions.GetParams] callback fails. The concrete error is an
// *[ActorError] with Group "client" and Code "get_params_failed" that
// unwraps to the callback's error.
var ErrGetParamsFailed = &ActorError{Group: "client", Code: "get_params_failed"}

// ActorError is a structured RivetKit error, as sent by the engine, the
// gateway or an actor: in an HTTP error body, in an Error message on a
// connection, or in a WebSocket close reason ("group.code#rayId").
//
// Use errors.As to get one out of an error returned by this package.
// errors.Is(err, &ActorError{Group: "user", Code: "unauthorized"}) matches on
// Group and Code; an empty Code in the target matches any code of the group.
type ActorError struct {
	// Group is the error namespace, e.g. "user", "actor", "guard", "auth", "client".
	Group string
	// Code is the error code inside Group, e.g. "unauthorized".
	Code string
	// Message is the human-readable message, if any.
	Message string
	// Metadata is the error's metadata as JSON (RivetKit compat tags already
	// decoded), or nil when the error has none.
	Metadata json.RawMessage
	// RayID is the request trace id: the x-rivet-ray-id response header for
	// HTTP errors, the part after '#' in a close reason.
	RayID string
	// StatusCode is the HTTP status when the error came from an HTTP
	// response (including a refused WebSocket upgrade), else 0.
	StatusCode int

	cause error
}

// Error returns "group.code: message".
func (e *ActorError) Error() string {
	var b strings.Builder
	b.WriteString(e.Group)
	b.WriteByte('.')
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RayID != "" {
		b.WriteString(" (ray id ")
		b.WriteString(e.RayID)
		b.WriteByte(')')
	}
	return b.String()
}

// Unwrap returns the underlying cause, e.g. the error returned by GetParams.
func (e *ActorError) Unwrap() error { return e.cause }

// Is reports whether target is an *ActorError with the same Group and Code
// (an empty target Code matches any code of the group).
func (e *ActorError) Is(target error) bool {
	t, ok := target.(*ActorError)
	if !ok || t.Group == "" {
		return false
	}
	return t.Group == e.Group && (t.Code == "" || t.Code == e.Code)
}

// HTTPError is a non-2xx HTTP response whose body is not a RivetKit error.
type HTTPError struct {
	// StatusCode is the HTTP status code.
	StatusCode int
	// Body is the start of the response body (at most 4 KiB).
	Body string
	// RayID is the x-rivet-ray-id response header, if present.
	RayID string
}

// Error returns the status and the start of the body.
func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("rivetclient: HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.RayID != "" {
		msg += " (ray id " + e.RayID + ")"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// transportError marks a network-level failure (dial error, lost socket,
// close without a structured reason): the connection retries those.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// IsRetryable reports whether err is a transient failure that a
// [Conn] retries with backoff:
//   - *ActorError client.get_params_failed;
//   - the lifecycle signals RivetKit retries: actor.restarting, actor.stopped,
//     ws.going_away and guard.{service_unavailable, actor_wake_retries_exceeded,
//     actor_stopped_while_waiting, tunnel_request_aborted,
//     tunnel_message_timeout, tunnel_response_closed,
//     gateway_response_start_timeout};
//   - network failures (refused dial, lost socket, close without a reason)
//     and HTTP 502/503/504 without a RivetKit body.
//
// Every other error is terminal: other *ActorError codes (auth.*, user.*,
// actor.not_found, …), context cancellation, [ErrClosed], encoding errors.
// A [Conn] additionally retries, while connecting, stale-actor errors of key
// handles and, once it has been connected, what a restarting engine
// answers: namespace.not_found, actor.no_runner_config_configured, every
// guard.* code and the engine's pegboard route timeouts (isRestartSignal).
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, ErrClosed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ae *ActorError
	if errors.As(err, &ae) {
		return (ae.Group == "client" && ae.Code == "get_params_failed") || isLifecycleSignal(ae)
	}
	var he *HTTPError
	if errors.As(err, &he) {
		switch he.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// isRetryableGuardCode lists the guard codes RivetKit treats as lifecycle
// boundaries (lifecycle-errors.ts isRetryableGuardGatewayHttpError).
func isRetryableGuardCode(code string) bool {
	switch code {
	case "service_unavailable", "actor_wake_retries_exceeded", "actor_stopped_while_waiting",
		"tunnel_request_aborted", "tunnel_message_timeout", "tunnel_response_closed",
		"gateway_response_start_timeout":
		return true
	}
	return false
}

// isRequestRetrySignal reports the lifecycle errors after which RivetKit
// re-sends a stateless request (kind "request_retry").
func isRequestRetrySignal(e *ActorError) bool {
	switch {
	case e.Group == "actor" && e.Code == "restarting":
		return true
	case e.Group == "guard" && isRetryableGuardCode(e.Code):
		return true
	case e.Group == "actor" && e.Code == "internal_error" && e.Message == "Actor is stopping":
		return true // legacy form, RVT-6193
	case e.Group == "actor" && e.Code == "stopping" &&
		e.Message == "Actor stopping: Cannot accept new connections while actor is stopping":
		return true // legacy form, RVT-6193
	}
	return false
}

// isLifecycleSignal reports the errors after which RivetKit reconnects
// (isRetryableLifecycleReconnectSignal: request_retry or reconnect_only).
func isLifecycleSignal(e *ActorError) bool {
	return isRequestRetrySignal(e) ||
		(e.Group == "actor" && e.Code == "stopped") ||
		(e.Group == "ws" && e.Code == "going_away")
}

// isRestartSignal reports what engine 2.3.19 answers while it restarts,
// measured (integration TestFaultEngineRestartClients,
// TestClientReconnectEngineRestart): namespace.not_found for the first few
// hundred milliseconds (its default namespace is created anew), then
// actor.no_runner_config_configured until the runners have registered
// again, and any guard.* code (actor start timeouts, service unavailable,
// guard's own route_*_timeout codes) or pegboard route timeout while
// actors start. A Conn that was connected retries them (see
// Conn.shouldRetry); everything else treats them as terminal.
func isRestartSignal(e *ActorError) bool {
	switch {
	case e.Group == "namespace" && e.Code == "not_found",
		e.Group == "actor" && e.Code == "no_runner_config_configured",
		e.Group == "guard",
		e.Group == "pegboard" && isRouteTimeout(e.Code):
		return true
	}
	return false
}

// isRouteTimeout reports the engine's route resolution timeouts, which it
// files under pegboard (engine guard's error mapping, all 504):
// route_subscribe_timeout, route_fetch_actor_timeout,
// route_auth_check_timeout, route_wake_signal_timeout and
// route_resolve_query_timeout, the one seen on a loaded machine while a
// new actor starts.
func isRouteTimeout(code string) bool {
	return strings.HasPrefix(code, "route_") && strings.HasSuffix(code, "_timeout")
}

// isStaleActorError reports the errors meaning a key lookup pointed at an
// actor that is gone or not ready (actor-query.ts isStaleResolvedActorError):
// for key handles the request is sent again and re-resolved.
func isStaleActorError(e *ActorError) bool {
	if e.Group != "actor" {
		return false
	}
	switch e.Code {
	case "not_found", "starting", "stopping", "not_configured", "dropped_reply", "destroying":
		return true
	}
	return strings.HasPrefix(e.Code, "destroyed_")
}

// parseCloseReason parses a WebSocket close reason of the form
// "group.code" or "group.code#rayId" the way RivetKit's
// parseWebSocketCloseReason does (only the first two '.'-separated parts
// and the first '#'-separated ray id count). ok is false when group or
// code is empty.
func parseCloseReason(reason string) (group, code, rayID string, ok bool) {
	main, rest, hasRay := strings.Cut(reason, "#")
	if hasRay {
		rayID, _, _ = strings.Cut(rest, "#")
	}
	parts := strings.SplitN(main, ".", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], rayID, true
}

// closeError turns a WebSocket read error into the error reported for the
// connection: an *ActorError when the close reason is structured, else a
// transportError.
func closeError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		if group, code, ray, ok := parseCloseReason(ce.Text); ok {
			return &ActorError{Group: group, Code: code, Message: "Connection closed: " + ce.Text, RayID: ray}
		}
		return &transportError{fmt.Errorf("rivetclient: connection closed (code %d, reason %q)", ce.Code, ce.Text)}
	}
	return &transportError{fmt.Errorf("rivetclient: connection lost: %w", err)}
}

// parseErrorBody parses a RivetKit JSON error body
// {"group","code","message","metadata"?}. ok is false when body is not a
// JSON object with string group and code.
func parseErrorBody(body []byte) (ae *ActorError, ok bool) {
	return jsonCodec{}.httpError(body)
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// responseError builds the error for a non-2xx response: an *ActorError
// when the body is a RivetKit error (whatever the Content-Type, as the JS
// client parses JSON bodies), else an *HTTPError.
func responseError(status int, header http.Header, body []byte) error {
	return encodedResponseError(jsonCodec{}, status, header, body)
}

// encodedResponseError is responseError for a request sent in c's
// encoding: as in the JS client, the body is read in c unless its
// Content-Type says JSON (what the engine and the gateway always answer).
func encodedResponseError(c codec, status int, header http.Header, body []byte) error {
	ray := header.Get("x-rivet-ray-id")
	if c.binary() && !strings.Contains(header.Get("Content-Type"), "application/json") {
		if ae, ok := c.httpError(body); ok {
			ae.RayID = ray
			ae.StatusCode = status
			return ae
		}
	}
	if ae, ok := parseErrorBody(body); ok {
		ae.RayID = ray
		ae.StatusCode = status
		return ae
	}
	text := string(body)
	if len(text) > 4096 {
		text = text[:4096]
	}
	return &HTTPError{StatusCode: status, Body: strings.TrimSpace(text), RayID: ray}
}

// getParamsError wraps a GetParams failure the way the JS client does.
func getParamsError(err error) *ActorError {
	msg := err.Error()
	md, _ := json.Marshal(map[string]string{"error": msg})
	return &ActorError{
		Group:    "client",
		Code:     "get_params_failed",
		Message:  "Failed to resolve connection params: " + msg,
		Metadata: md,
		cause:    err,
	}
}
