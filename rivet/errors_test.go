package rivet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// refusedDial returns the error of dialing a port nobody listens on.
func refusedDial(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Skip("dial to a closed port succeeded")
	}
	return err
}

func TestAsError(t *testing.T) {
	if got := AsError(nil); got != nil {
		t.Fatalf("AsError(nil): got %v, want nil", got)
	}
	custom := &Error{Status: http.StatusTeapot, Group: "auth", Code: "teapot", Message: "short"}
	tests := []struct {
		name   string
		err    error
		status int
		is     *Error
	}{
		{"canceled", context.Canceled, StatusClientClosedRequest, ErrClientClosed},
		{"wrapped canceled", fmt.Errorf("proxy: %w", context.Canceled), StatusClientClosedRequest, ErrClientClosed},
		{"deadline", context.DeadlineExceeded, http.StatusGatewayTimeout, ErrUpstreamTimeout},
		{"os deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), http.StatusGatewayTimeout, ErrUpstreamTimeout},
		{"net timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}, http.StatusGatewayTimeout, ErrUpstreamTimeout},
		{"dial refused", refusedDial(t), http.StatusBadGateway, ErrUpstreamUnavailable},
		{"dial op error", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, http.StatusBadGateway, ErrUpstreamUnavailable},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), http.StatusBadGateway, ErrUpstreamUnavailable},
		{"eof", io.EOF, http.StatusBadGateway, ErrUpstreamUnavailable},
		{"unexpected eof", fmt.Errorf("body: %w", io.ErrUnexpectedEOF), http.StatusBadGateway, ErrUpstreamUnavailable},
		{"bad handshake", websocket.ErrBadHandshake, http.StatusBadGateway, ErrUpstreamUnavailable},
		{"own error", ErrOriginNotAllowed, http.StatusForbidden, ErrOriginNotAllowed},
		{"wrapped own error", fmt.Errorf("cors: %w", ErrOriginNotAllowed.With("origin", "https://evil.com")), http.StatusForbidden, ErrOriginNotAllowed},
		{"own error with cancel cause", ErrUpstreamUnavailable.Wrap(context.Canceled), http.StatusBadGateway, ErrUpstreamUnavailable},
		{"custom error", fmt.Errorf("x: %w", custom), http.StatusTeapot, custom},
		{"other", errors.New("boom"), http.StatusInternalServerError, ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AsError(tt.err)
			if got.Status != tt.status {
				t.Errorf("AsError(%v).Status: got %d, want %d", tt.err, got.Status, tt.status)
			}
			if !errors.Is(got, tt.is) {
				t.Errorf("AsError(%v): got %s.%s, want %s.%s", tt.err, got.Group, got.Code, tt.is.Group, tt.is.Code)
			}
			var own *Error
			if errors.As(tt.err, &own) {
				// An *Error in the chain is returned as it is (outer
				// wrapping text is not kept).
				if got != own {
					t.Errorf("AsError(%v): got %p, want the *Error in the chain %p", tt.err, got, own)
				}
			} else if !errors.Is(got, tt.err) {
				t.Errorf("AsError(%v): got %v, which does not wrap the cause", tt.err, got)
			}
		})
	}
}

func TestErrorMethods(t *testing.T) {
	cause := errors.New("dial tcp: refused")
	e := ErrUpstreamUnavailable.Wrap(cause)
	if got, want := e.Error(), "guard.service_unavailable: Upstream engine unavailable.: dial tcp: refused"; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
	if ErrUpstreamUnavailable.Err != nil {
		t.Errorf("Wrap mutated the sentinel: Err = %v", ErrUpstreamUnavailable.Err)
	}
	if !errors.Is(e, ErrUpstreamUnavailable) || !errors.Is(e, cause) || errors.Is(e, ErrUpstreamTimeout) {
		t.Errorf("errors.Is on a wrapped sentinel: got wrong answers")
	}

	base := ErrInvalidRequest.With("a", 1)
	with := base.With("b", 2)
	if len(base.Metadata) != 1 || len(with.Metadata) != 2 || ErrInvalidRequest.Metadata != nil {
		t.Errorf("With shares metadata: base %v, with %v, sentinel %v", base.Metadata, with.Metadata, ErrInvalidRequest.Metadata)
	}
}

func TestReason(t *testing.T) {
	long := strings.Repeat("g", 100)
	tests := []struct {
		name string
		e    *Error
		want string
	}{
		{"terminal", ErrOriginNotAllowed, "cors.origin_not_allowed"},
		{"retryable own code", ErrShuttingDown, "ws.going_away"},
		{"retryable timeout code", ErrUpstreamTimeout, "guard.gateway_response_start_timeout"},
		{"retryable service unavailable", ErrUpstreamUnavailable, "guard.service_unavailable"},
		{"retryable custom code", &Error{Group: "auth", Code: "jwks_unavailable", Retryable: true}, "guard.service_unavailable"},
		{"not retryable", &Error{Group: "auth", Code: "unauthorized"}, "auth.unauthorized"},
		{"capped", &Error{Group: long, Code: long}, (long + "." + long)[:123]},
	}
	for _, tt := range tests {
		got := tt.e.Reason()
		if got != tt.want {
			t.Errorf("%s: Reason(): got %q, want %q", tt.name, got, tt.want)
		}
		if len(got) > 123 {
			t.Errorf("%s: Reason() is %d bytes, want at most 123", tt.name, len(got))
		}
	}
}

func TestRetryableReason(t *testing.T) {
	tests := []struct {
		reason string
		want   bool
	}{
		{"ws.going_away", true},
		{"guard.service_unavailable", true},
		{"actor.stopped#lnnxabc", true},
		{"guard.actor_wake_retries_exceeded#ray", true},
		{"client.get_params_failed", true},
		{"user.unauthorized", false},
		{"user.unauthorized#ray", false},
		{"actor.not_found#ray", false},
		{"guard.service_unavailablex", false},
		{"#ws.going_away", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := RetryableReason(tt.reason); got != tt.want {
			t.Errorf("RetryableReason(%q): got %v, want %v", tt.reason, got, tt.want)
		}
	}
}

func TestWriteHTTPError(t *testing.T) {
	tests := []struct {
		name       string
		e          *Error
		body       string
		retryAfter string
	}{
		{"plain", ErrOriginNotAllowed,
			`{"group":"cors","code":"origin_not_allowed","message":"Origin not allowed."}`, ""},
		{"metadata", ErrInvalidRequest.With("reason", "x"),
			`{"group":"gateway","code":"invalid_request","message":"Invalid request.","metadata":{"reason":"x"}}`, ""},
		{"bad metadata dropped", ErrInvalidRequest.With("ch", make(chan int)),
			`{"group":"gateway","code":"invalid_request","message":"Invalid request."}`, ""},
		{"retry after whole", ErrShuttingDown,
			`{"group":"ws","code":"going_away","message":"Gateway is shutting down."}`, "1"},
		{"retry after rounds up", &Error{Status: 503, Group: "g", Code: "c", Message: "m", RetryAfter: 1500 * time.Millisecond},
			`{"group":"g","code":"c","message":"m"}`, "2"},
		{"retry after tiny", &Error{Status: 503, Group: "g", Code: "c", Message: "m", RetryAfter: time.Nanosecond},
			`{"group":"g","code":"c","message":"m"}`, "1"},
		{"retry after exact", &Error{Status: 503, Group: "g", Code: "c", Message: "m", RetryAfter: 3 * time.Second},
			`{"group":"g","code":"c","message":"m"}`, "3"},
		{"retry after negative", &Error{Status: 503, Group: "g", Code: "c", Message: "m", RetryAfter: -time.Second},
			`{"group":"g","code":"c","message":"m"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			x := &Exchange{RayID: "gw-test"}
			WriteHTTPError(rec, httptest.NewRequest("POST", "/", nil).WithContext(WithExchange(context.Background(), x)), tt.e)
			res := rec.Result()
			if got := res.Header.Get("X-Rivet-Ray-Id"); got != "gw-test" {
				t.Errorf("X-Rivet-Ray-Id: got %q, want the exchange's gw-test", got)
			}
			if x.Rejection != tt.e {
				t.Errorf("exchange rejection: got %v, want %v", x.Rejection, tt.e)
			}
			if res.StatusCode != tt.e.Status {
				t.Errorf("status: got %d, want %d", res.StatusCode, tt.e.Status)
			}
			if got := rec.Body.String(); got != tt.body {
				t.Errorf("body: got %s, want %s", got, tt.body)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", got)
			}
			if got, want := res.Header.Get("X-Rivet-Error"), tt.e.Group+"."+tt.e.Code; got != want {
				t.Errorf("X-Rivet-Error: got %q, want %q", got, want)
			}
			if got := res.Header.Get("Content-Length"); got != fmt.Sprint(len(tt.body)) {
				t.Errorf("Content-Length: got %q, want %d", got, len(tt.body))
			}
			if got := res.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After: got %q, want %q", got, tt.retryAfter)
			}
		})
	}
}

func TestIsUpgrade(t *testing.T) {
	tests := []struct {
		name              string
		method, conn, upg string
		want              bool
	}{
		{"websocket", "GET", "Upgrade", "websocket", true},
		{"token list and case", "GET", "keep-alive, UPGRADE", "WebSocket", true},
		{"post", "POST", "Upgrade", "websocket", false},
		{"no connection", "GET", "", "websocket", false},
		{"other protocol", "GET", "Upgrade", "h2c", false},
		{"token look-alike", "GET", "upgraded", "websocket", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, "/gateway/abc/connect", nil)
		if tt.conn != "" {
			r.Header.Set("Connection", tt.conn)
		}
		r.Header.Set("Upgrade", tt.upg)
		if got := IsUpgrade(r); got != tt.want {
			t.Errorf("%s: IsUpgrade: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// dialReject dials a server that answers every request with WriteError(err)
// and returns the handshake response and the close error it then sees, and
// the request's Exchange once the handler has returned.
func dialReject(t *testing.T, err error, protocols []string) (*http.Response, string, *Exchange, error) {
	t.Helper()
	x := &Exchange{RayID: "gw-test"}
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		WriteError(w, r.WithContext(WithExchange(r.Context(), x)), err)
	}))
	defer srv.Close()
	d := websocket.Dialer{Subprotocols: protocols, HandshakeTimeout: 5 * time.Second}
	conn, res, dialErr := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/gateway/abc/connect", nil)
	if dialErr != nil {
		t.Fatalf("Dial: got error %v (response %v), want a completed handshake", dialErr, res)
	}
	defer conn.Close()
	proto := conn.Subprotocol()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, readErr := conn.ReadMessage()
	<-done
	return res, proto, x, readErr
}

func TestWithRayID(t *testing.T) {
	long := strings.Repeat("x", 100)
	for _, tt := range []struct{ reason, ray, want string }{
		{"auth.unauthorized", "gw-0123456789abcdef", "auth.unauthorized#gw-0123456789abcdef"},
		{"auth.unauthorized", "", "auth.unauthorized"},
		{"", "gw-1", ""},
		{long, "gw-0123456789abcdef", long + "#gw-0123456789abcdef"},
		{long + "xxx", "gw-0123456789abcdef", long + "xxx#gw-0123456789abcdef"}, // 123 bytes: fits
		{long + "xxxx", "gw-0123456789abcdef", long + "xxxx"},                   // 124 would not
	} {
		got := WithRayID(tt.reason, tt.ray)
		if got != tt.want || len(got) > maxCloseReason {
			t.Errorf("WithRayID(%q, %q) = %q (%d bytes), want %q", tt.reason, tt.ray, got, len(got), tt.want)
		}
	}
}

func TestRejectWebSocket(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		protocols []string
		proto     string
		reason    string
	}{
		{"rivet client", ErrOriginNotAllowed, []string{"rivet", "rivet_encoding.json"}, "rivet", "cors.origin_not_allowed"},
		{"retryable", ErrUpstreamUnavailable.Wrap(io.EOF), []string{"rivet", "rivet_encoding.bare"}, "rivet", "guard.service_unavailable"},
		{"mapped error", errors.New("boom"), []string{"rivet"}, "rivet", "gateway.internal_error"},
		{"no rivet offered", ErrOriginNotAllowed, []string{"chat"}, "", "cors.origin_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, proto, x, err := dialReject(t, tt.err, tt.protocols)
			if res.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("handshake status: got %d, want 101", res.StatusCode)
			}
			if got := res.Header.Get("X-Rivet-Ray-Id"); got != "gw-test" {
				t.Errorf("101 X-Rivet-Ray-Id: got %q, want the exchange's gw-test", got)
			}
			if x.CloseCode != websocket.CloseInternalServerErr || x.CloseReason != tt.reason || x.Rejection == nil {
				t.Errorf("exchange: got close %d %q, rejection %v, want 1011 %q and the error", x.CloseCode, x.CloseReason, x.Rejection, tt.reason)
			}
			if proto != tt.proto {
				t.Errorf("subprotocol: got %q, want %q", proto, tt.proto)
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("read: got %v, want a close frame", err)
			}
			// On the wire the reason carries the ray id, as the engine's do.
			if want := tt.reason + "#gw-test"; ce.Code != websocket.CloseInternalServerErr || ce.Text != want {
				t.Errorf("close: got %d %q, want 1011 %q", ce.Code, ce.Text, want)
			}
		})
	}
}

func TestWriteError(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteError(rec, httptest.NewRequest("POST", "/gateway/abc/action/x", nil), fmt.Errorf("x: %w", ErrOriginNotAllowed))
		if rec.Code != http.StatusForbidden {
			t.Errorf("status: got %d, want 403", rec.Code)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["code"] != "origin_not_allowed" {
			t.Errorf("body: got %s (%v), want the origin_not_allowed error", rec.Body, err)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteError(rec, httptest.NewRequest("GET", "/", nil), context.Canceled)
		if rec.Code != StatusClientClosedRequest || rec.Body.Len() != 0 {
			t.Errorf("got %d %q, want 499 and no body", rec.Code, rec.Body)
		}
	})
	t.Run("upgrade refused by the upgrader", func(t *testing.T) {
		// IsUpgrade holds but the handshake is invalid (no key): the
		// upgrader answers with a JSON 400.
		r := httptest.NewRequest("GET", "/gateway/abc/connect", nil)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		rec := httptest.NewRecorder()
		WriteError(rec, r, ErrOriginNotAllowed)
		if rec.Code != http.StatusBadRequest || rec.Header().Get("X-Rivet-Error") != "gateway.invalid_request" {
			t.Errorf("got %d %q %s, want 400 gateway.invalid_request", rec.Code, rec.Header().Get("X-Rivet-Error"), rec.Body)
		}
	})
}

func TestAsErrorUpstreamTLS(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("dial: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
		x509.HostnameError{Certificate: &x509.Certificate{}, Host: "engine"},
		tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"},
	} {
		if e := AsError(err); e.Status != http.StatusBadGateway || e.Code != "service_unavailable" {
			t.Errorf("AsError(%T) = %d %s.%s, want 502 guard.service_unavailable", err, e.Status, e.Group, e.Code)
		}
	}
}
