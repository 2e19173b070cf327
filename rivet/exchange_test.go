package rivet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

func TestNewRayID(t *testing.T) {
	// RivetKit's client keeps a ray id of at most 30 of [A-Za-z0-9_-].
	re := regexp.MustCompile(`^gw-[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewRayID()
		if !re.MatchString(id) || len(id) > 30 {
			t.Fatalf("NewRayID() = %q, want gw- and 16 hex digits", id)
		}
		if seen[id] {
			t.Fatalf("NewRayID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestWriteErrorRecordsExchange(t *testing.T) {
	t.Run("no exchange: no ray id, no panic", func(t *testing.T) {
		rec := httptest.NewRecorder()
		WriteError(rec, httptest.NewRequest("GET", "/", nil), ErrNoRoute)
		if got := rec.Header().Get(HeaderRayID); got != "" {
			t.Errorf("X-Rivet-Ray-Id: got %q, want none without an exchange", got)
		}
	})
	t.Run("client gone is recorded", func(t *testing.T) {
		x := &Exchange{RayID: "gw-1"}
		r := httptest.NewRequest("GET", "/", nil).WithContext(WithExchange(context.Background(), x))
		WriteError(httptest.NewRecorder(), r, context.Canceled)
		if x.Rejection == nil || x.Rejection.Code != ErrClientClosed.Code {
			t.Errorf("rejection: got %v, want client_closed_request", x.Rejection)
		}
	})
	t.Run("first answer wins", func(t *testing.T) {
		x := &Exchange{RayID: "gw-1"}
		r := httptest.NewRequest("GET", "/", nil).WithContext(WithExchange(context.Background(), x))
		WriteHTTPError(httptest.NewRecorder(), r, ErrNoRoute)
		WriteHTTPError(httptest.NewRecorder(), r, ErrInternal)
		if x.Rejection != ErrNoRoute {
			t.Errorf("rejection: got %v, want the first one written", x.Rejection)
		}
	})
	t.Run("bad handshake answered over HTTP", func(t *testing.T) {
		x := &Exchange{RayID: "gw-1"}
		r := httptest.NewRequest("GET", "/gateway/abc/connect", nil).WithContext(WithExchange(context.Background(), x))
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		rec := httptest.NewRecorder()
		WriteError(rec, r, ErrOriginNotAllowed)
		if rec.Code != http.StatusBadRequest || rec.Header().Get(HeaderRayID) != "gw-1" {
			t.Errorf("got %d with ray id %q, want 400 with gw-1", rec.Code, rec.Header().Get(HeaderRayID))
		}
		if x.Rejection == nil || x.Rejection.Code != "invalid_request" || x.CloseCode != 0 {
			t.Errorf("exchange: got %v close %d, want the 400 that was sent and no close", x.Rejection, x.CloseCode)
		}
	})
}
