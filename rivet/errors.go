package rivet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Error is a rejection the gateway answers itself, in the shape RivetKit
// clients parse into a typed ActorError: {"group","code","message","metadata"}.
// Err, the cause, goes to the log and never to the client.
type Error struct {
	Status   int
	Group    string
	Code     string
	Message  string
	Metadata map[string]any
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration
	// Retryable makes a WebSocket rejection close with
	// "guard.service_unavailable" when Group.Code itself is not one the
	// RivetKit client retries on.
	Retryable bool
	Err       error
}

func (e *Error) Error() string {
	s := e.Group + "." + e.Code + ": " + e.Message
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is matches another *Error with the same group and code, so sentinels like
// ErrUpstreamUnavailable work with errors.Is after With/Wrap.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Group == e.Group && t.Code == e.Code
}

// Wrap returns a copy of e with cause err.
func (e *Error) Wrap(err error) *Error {
	c := *e
	c.Err = err
	return &c
}

// With returns a copy of e with metadata key set to value.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Metadata = make(map[string]any, len(e.Metadata)+1)
	for k, v := range e.Metadata {
		c.Metadata[k] = v
	}
	c.Metadata[key] = value
	return &c
}

// Reason is the WebSocket close reason for e: "group.code", or the retryable
// "guard.service_unavailable" when e is Retryable and its own code is not
// retried by RivetKit clients. Always at most 123 bytes.
func (e *Error) Reason() string {
	r := e.Group + "." + e.Code
	if e.Retryable && !RetryableReason(r) {
		r = "guard.service_unavailable"
	}
	if len(r) > maxCloseReason {
		r = r[:maxCloseReason]
	}
	return r
}

const maxCloseReason = 123

// WithRayID appends "#" and rayID to a close reason, the form the engine
// closes with and RivetKit clients read into the error they report
// ("group.code#rayId"), so that a client-side error leads to the gateway's
// log line. The reason is returned as is when either is empty or both
// would not fit in a close frame.
func WithRayID(reason, rayID string) string {
	if reason == "" || rayID == "" || len(reason)+1+len(rayID) > maxCloseReason {
		return reason
	}
	return reason + "#" + rayID
}

// SplitRayID splits a close reason of the form "group.code#rayId" (the
// gateway's, from WithRayID, or the engine's) into the reason and the ray
// id; rayID is empty when there is none.
func SplitRayID(text string) (reason, rayID string) {
	reason, rayID, _ = strings.Cut(text, "#")
	return reason, rayID
}

// retryableReasons are the close reasons RivetKit 2.3.19's client retries
// with backoff, calling getParams again (actor-conn.ts
// #shouldRetryConnectionOpenError).
var retryableReasons = map[string]bool{
	"client.get_params_failed":             true,
	"actor.restarting":                     true,
	"actor.stopped":                        true,
	"ws.going_away":                        true,
	"guard.service_unavailable":            true,
	"guard.actor_wake_retries_exceeded":    true,
	"guard.actor_stopped_while_waiting":    true,
	"guard.tunnel_request_aborted":         true,
	"guard.tunnel_message_timeout":         true,
	"guard.tunnel_response_closed":         true,
	"guard.gateway_response_start_timeout": true,
}

// RetryableReason reports whether the RivetKit client retries a connection
// closed with reason ("group.code", optionally followed by "#rayId").
func RetryableReason(reason string) bool {
	if i := strings.IndexByte(reason, '#'); i >= 0 {
		reason = reason[:i]
	}
	return retryableReasons[reason]
}

// The gateway's own rejections. Use Wrap or With to add a cause or metadata.
var (
	ErrInvalidRequest      = &Error{Status: http.StatusBadRequest, Group: "gateway", Code: "invalid_request", Message: "Invalid request."}
	ErrNoRoute             = &Error{Status: http.StatusNotFound, Group: "guard", Code: "no_route", Message: "No route for this path."}
	ErrQueryInvalid        = &Error{Status: http.StatusBadRequest, Group: "guard", Code: "query_invalid_params", Message: "Invalid actor query."}
	ErrOriginNotAllowed    = &Error{Status: http.StatusForbidden, Group: "cors", Code: "origin_not_allowed", Message: "Origin not allowed."}
	ErrRequestTooLarge     = &Error{Status: http.StatusRequestEntityTooLarge, Group: "gateway", Code: "request_too_large", Message: "Request too large."}
	ErrUpstreamUnavailable = &Error{Status: http.StatusBadGateway, Group: "guard", Code: "service_unavailable", Message: "Upstream engine unavailable.", Retryable: true}
	ErrUpstreamTimeout     = &Error{Status: http.StatusGatewayTimeout, Group: "guard", Code: "gateway_response_start_timeout", Message: "Upstream engine timed out.", Retryable: true}
	ErrShuttingDown        = &Error{Status: http.StatusServiceUnavailable, Group: "ws", Code: "going_away", Message: "Gateway is shutting down.", Retryable: true, RetryAfter: time.Second}
	ErrClientClosed        = &Error{Status: StatusClientClosedRequest, Group: "gateway", Code: "client_closed_request", Message: "Client closed the request."}
	ErrInternal            = &Error{Status: http.StatusInternalServerError, Group: "gateway", Code: "internal_error", Message: "Internal gateway error."}
)

// StatusClientClosedRequest is nginx's 499: the client went away first.
const StatusClientClosedRequest = 499

// AsError maps any error to the rejection the client sees. This is the one
// place that decides statuses: an *Error keeps its own; a client that went
// away is 499; a timeout 504; a failure to reach, trust or read from the
// upstream 502; anything else 500.
func AsError(err error) *Error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.Canceled):
		return ErrClientClosed.Wrap(err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), isTimeout(err):
		return ErrUpstreamTimeout.Wrap(err)
	case isDialOrEOF(err):
		return ErrUpstreamUnavailable.Wrap(err)
	}
	return ErrInternal.Wrap(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isDialOrEOF(err error) bool {
	var (
		op   *net.OpError
		cert *tls.CertificateVerificationError
		rec  tls.RecordHeaderError
		ua   x509.UnknownAuthorityError
		hn   x509.HostnameError
	)
	return errors.As(err, &op) || errors.As(err, &cert) || errors.As(err, &rec) || errors.As(err, &ua) || errors.As(err, &hn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, websocket.ErrBadHandshake)
}

type errorBody struct {
	Group    string         `json:"group"`
	Code     string         `json:"code"`
	Message  string         `json:"message"`
	Metadata map[string]any `json:"metadata,omitempty"`
}

// WriteHTTPError writes e as a JSON error response to r. RivetKit clients
// parse any application/json error body as an ActorError, whatever
// encoding they asked for, and take its rayId from X-Rivet-Ray-Id: the
// ray id of r's Exchange, which also records e.
func WriteHTTPError(w http.ResponseWriter, r *http.Request, e *Error) {
	body, err := json.Marshal(errorBody{e.Group, e.Code, e.Message, e.Metadata})
	if err != nil { // metadata that does not marshal: drop it, keep the error
		body, _ = json.Marshal(errorBody{e.Group, e.Code, e.Message, nil})
	}
	x := exchangeOf(r)
	x.rejected(e)
	h := w.Header()
	x.rayHeader(h)
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(HeaderError, e.Group+"."+e.Code)
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// rejectUpgrader accepts any origin: a rejection forwards nothing, it only
// tells the client why, which a refused handshake cannot (the client would
// see a bare 1006).
var rejectUpgrader = websocket.Upgrader{
	ReadBufferSize:  512,
	WriteBufferSize: 512,
	CheckOrigin:     func(*http.Request) bool { return true },
	Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		WriteHTTPError(w, r, ErrInvalidRequest.With("reason", reason.Error()))
	},
}

// CloseWait bounds how long a rejection waits for the client's close frame.
const CloseWait = time.Second

// RejectWebSocket accepts the upgrade, closes the socket with code 1011 and
// e.Reason() followed by "#" and r's ray id, and waits briefly for the
// client's close frame so the reason is not lost to a reset. RivetKit
// clients turn the reason into an ActorError (and retry when it is a
// retryable reason). The 101 carries
// r's ray id (X-Rivet-Ray-Id), and r's Exchange records e and the close.
func RejectWebSocket(w http.ResponseWriter, r *http.Request, e *Error) {
	x := exchangeOf(r)
	resp := http.Header{}
	x.rayHeader(resp)
	for _, p := range Subprotocols(r.Header) {
		if p == ProtocolRivet {
			resp.Set(HeaderWebSocketProtocol, ProtocolRivet)
			break
		}
	}
	conn, err := rejectUpgrader.Upgrade(w, r, resp)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	reason := e.Reason()
	wire := reason
	x.rejected(e)
	if x != nil {
		x.CloseCode, x.CloseReason = websocket.CloseInternalServerErr, reason
		wire = WithRayID(reason, x.RayID)
	}
	CloseWebSocket(conn, websocket.CloseInternalServerErr, wire)
}

// CloseWebSocket sends a close frame with code and reason, waits up to
// CloseWait for the peer's close, and closes the connection.
func CloseWebSocket(conn *websocket.Conn, code int, reason string) {
	deadline := time.Now().Add(CloseWait)
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
	_ = conn.SetReadDeadline(deadline)
	for range 64 { // bounded: a peer may send a few data frames before its close
		if _, _, err := conn.NextReader(); err != nil {
			break
		}
	}
	_ = conn.Close()
}

// WriteError answers r with err in RivetKit's shape: a JSON body for HTTP, an
// accepted-then-closed socket for WebSocket upgrades.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		err = ErrInternal
	}
	e := AsError(err)
	if e.Status == StatusClientClosedRequest {
		// Nobody is listening; still record the status for logs.
		exchangeOf(r).rejected(e)
		w.WriteHeader(e.Status)
		return
	}
	if IsUpgrade(r) {
		RejectWebSocket(w, r, e)
		return
	}
	WriteHTTPError(w, r, e)
}
