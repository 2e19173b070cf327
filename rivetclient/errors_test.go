package rivetclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestParseCloseReason(t *testing.T) {
	tests := []struct {
		reason, group, code, ray string
		ok                       bool
	}{
		{"user.unauthorized", "user", "unauthorized", "", true},
		{"guard.actor_runner_failed#t1s80so6h3irenp8ymzltfoittcl00", "guard", "actor_runner_failed", "t1s80so6h3irenp8ymzltfoittcl00", true},
		{"client.get_params_failed", "client", "get_params_failed", "", true},
		{"a.b.c", "a", "b", "", true}, // like JS: only the first two parts
		{"a.b#r1#r2", "a", "b", "r1", true},
		{"Disposed", "", "", "", false},
		{"", "", "", "", false},
		{".code", "", "", "", false},
		{"group.", "", "", "", false},
		{"#ray", "", "", "", false},
	}
	for _, tt := range tests {
		g, c, r, ok := parseCloseReason(tt.reason)
		if g != tt.group || c != tt.code || r != tt.ray || ok != tt.ok {
			t.Errorf("parseCloseReason(%q): got %q %q %q %t, want %q %q %q %t", tt.reason, g, c, r, ok, tt.group, tt.code, tt.ray, tt.ok)
		}
	}
}

func TestCloseError(t *testing.T) {
	err := closeError(&websocket.CloseError{Code: 1011, Text: "auth.unauthorized#ray1"})
	var ae *ActorError
	if !errors.As(err, &ae) || ae.Group != "auth" || ae.Code != "unauthorized" || ae.RayID != "ray1" ||
		ae.Message != "Connection closed: auth.unauthorized#ray1" {
		t.Fatalf("got %#v", err)
	}
	if IsRetryable(err) {
		t.Errorf("auth.unauthorized: got retryable, want terminal")
	}
	plain := closeError(&websocket.CloseError{Code: 1000, Text: "Disposed"})
	if errors.As(plain, &ae) || !IsRetryable(plain) {
		t.Errorf("unstructured close: got %v (retryable %t), want a retryable non-ActorError", plain, IsRetryable(plain))
	}
	if lost := closeError(io.ErrUnexpectedEOF); !IsRetryable(lost) {
		t.Errorf("lost socket: got terminal, want retryable")
	}
}

func TestParseErrorBody(t *testing.T) {
	ae, ok := parseErrorBody([]byte(`{"actor":{"actorId":"x"},"code":"custom_fail","group":"user","message":"boom","metadata":{"a":1,"b":["$BigInt","2"]}}`))
	if !ok || ae.Group != "user" || ae.Code != "custom_fail" || ae.Message != "boom" || string(ae.Metadata) != `{"a":1,"b":2}` {
		t.Fatalf("got %#v, %t", ae, ok)
	}
	ae, ok = parseErrorBody([]byte(`{"group":"g","code":"c","metadata":null}`))
	if !ok || ae.Metadata != nil {
		t.Errorf("null metadata: got %#v", ae)
	}
	for _, bad := range []string{``, `null`, `[]`, `{"group":"g"}`, `{"code":"c"}`, `{"group":1,"code":"c"}`, `<html>`} {
		if _, ok := parseErrorBody([]byte(bad)); ok {
			t.Errorf("parseErrorBody(%q): got ok, want not ok", bad)
		}
	}
	h := http.Header{"X-Rivet-Ray-Id": {"ray9"}}
	err := responseError(503, h, []byte("upstream down"))
	var he *HTTPError
	if !errors.As(err, &he) || he.StatusCode != 503 || he.RayID != "ray9" || !IsRetryable(err) {
		t.Errorf("non-JSON 503: got %#v", err)
	}
	err = responseError(401, h, []byte(`{"group":"auth","code":"unauthorized","message":"no"}`))
	var ae2 *ActorError
	if !errors.As(err, &ae2) || ae2.StatusCode != 401 || ae2.RayID != "ray9" || IsRetryable(err) {
		t.Errorf("JSON 401: got %#v", err)
	}
}

func TestIsRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{getParamsError(errors.New("x")), true},
		{&ActorError{Group: "ws", Code: "going_away"}, true},
		{&ActorError{Group: "actor", Code: "restarting"}, true},
		{&ActorError{Group: "actor", Code: "stopped"}, true},
		{&ActorError{Group: "guard", Code: "service_unavailable"}, true},
		{&ActorError{Group: "guard", Code: "actor_wake_retries_exceeded"}, true},
		{&ActorError{Group: "guard", Code: "actor_stopped_while_waiting"}, true},
		{&ActorError{Group: "guard", Code: "tunnel_request_aborted"}, true},
		{&ActorError{Group: "guard", Code: "tunnel_message_timeout"}, true},
		{&ActorError{Group: "guard", Code: "tunnel_response_closed"}, true},
		{&ActorError{Group: "guard", Code: "gateway_response_start_timeout"}, true},
		{&ActorError{Group: "actor", Code: "internal_error", Message: "Actor is stopping"}, true},
		{&ActorError{Group: "actor", Code: "internal_error", Message: "other"}, false},
		{&ActorError{Group: "auth", Code: "unauthorized"}, false},
		{&ActorError{Group: "user", Code: "unauthorized"}, false},
		{&ActorError{Group: "guard", Code: "no_route"}, false},
		{&ActorError{Group: "actor", Code: "not_found"}, false},
		{fmt.Errorf("wrapped: %w", &ActorError{Group: "ws", Code: "going_away"}), true},
		{ErrClosed, false},
		{context.Canceled, false},
		{errors.Join(context.DeadlineExceeded, getParamsError(errors.New("x"))), false},
		{&transportError{errors.New("dial tcp: refused")}, true},
		{&HTTPError{StatusCode: 502}, true},
		{&HTTPError{StatusCode: 404}, false},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		if got := IsRetryable(tt.err); got != tt.want {
			t.Errorf("IsRetryable(%v): got %t, want %t", tt.err, got, tt.want)
		}
	}
}

func TestActorErrorIs(t *testing.T) {
	cause := errors.New("token service down")
	err := fmt.Errorf("call: %w", getParamsError(cause))
	if !errors.Is(err, ErrGetParamsFailed) {
		t.Errorf("errors.Is(get_params_failed, ErrGetParamsFailed): got false")
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(err, cause): got false, want true (Unwrap)")
	}
	if !errors.Is(err, &ActorError{Group: "client"}) {
		t.Errorf("group-only pattern: got false")
	}
	if errors.Is(err, &ActorError{Group: "client", Code: "other"}) || errors.Is(err, &ActorError{}) {
		t.Errorf("non-matching pattern: got true")
	}
	var ae *ActorError
	errors.As(err, &ae)
	if ae.Message != "Failed to resolve connection params: token service down" || string(ae.Metadata) != `{"error":"token service down"}` {
		t.Errorf("got message %q metadata %s", ae.Message, ae.Metadata)
	}
	if got, want := (&ActorError{Group: "g", Code: "c", Message: "m", RayID: "r"}).Error(), "g.c: m (ray id r)"; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
}

func FuzzParseCloseReason(f *testing.F) {
	for _, s := range []string{"user.unauthorized", "guard.actor_runner_failed#t1s8", "a.b.c#d#e", "Disposed", "", ".", "#", "a.#", "\xff.\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reason string) {
		group, code, ray, ok := parseCloseReason(reason)
		if !ok {
			if group != "" || code != "" || ray != "" {
				t.Fatalf("not ok but got %q %q %q", group, code, ray)
			}
			return
		}
		if group == "" || code == "" || strings.ContainsAny(group+code, ".#") || strings.Contains(ray, "#") {
			t.Fatalf("parseCloseReason(%q) = %q %q %q", reason, group, code, ray)
		}
		if !strings.HasPrefix(reason, group+"."+code) {
			t.Fatalf("parseCloseReason(%q): %q.%q is not a prefix", reason, group, code)
		}
		err := closeError(&websocket.CloseError{Code: 1011, Text: reason})
		var ae *ActorError
		if !errors.As(err, &ae) || ae.Group != group || ae.Code != code || ae.RayID != ray {
			t.Fatalf("closeError(%q) = %#v", reason, err)
		}
		_ = IsRetryable(err)
	})
}

func FuzzParseErrorBody(f *testing.F) {
	for _, s := range []string{
		`{"group":"user","code":"unauthorized","message":"missing token"}`,
		`{"code":"custom_fail","group":"user","message":"boom","metadata":{"a":1}}`,
		`{"group":"g","code":"c","metadata":["$BigInt","1"]}`,
		`{"group":"g","code":"c","metadata":["$Nope",1]}`,
		`{"group":"g"}`, `null`, `[]`, `{`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ae, ok := parseErrorBody(body)
		if !ok {
			if ae != nil {
				t.Fatalf("not ok but got %#v", ae)
			}
			var he *HTTPError
			if err := responseError(500, http.Header{}, body); !errors.As(err, &he) || len(he.Body) > 4096 {
				t.Fatalf("responseError = %#v", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("ok for invalid JSON %q", body)
		}
		if ae.Metadata != nil && !json.Valid(ae.Metadata) {
			t.Fatalf("invalid metadata JSON %q", ae.Metadata)
		}
		if !strings.HasPrefix(ae.Error(), ae.Group+"."+ae.Code) {
			t.Fatalf("Error() = %q", ae.Error())
		}
	})
}
