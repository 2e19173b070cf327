package rivet

import (
	"context"
	mrand "math/rand/v2"
	"net/http"
)

// Exchange is what the gateway itself says on one request: the ray id it
// answers with, and the rejection it answered when it refused the request
// itself. The first layer of the chain creates it (WithExchange); the
// error writers (WriteError, WriteHTTPError, RejectWebSocket) send its ray
// id and fill in the rest; the access log reads it once the handler has
// returned. The writers run in the handler's goroutine, so the fields need
// no lock for a reader that runs after the handler.
type Exchange struct {
	// RayID is sent as X-Rivet-Ray-Id on every answer the gateway makes
	// itself (RivetKit clients report it as the error's rayId) and names
	// the request in the access log when the engine sent no ray id of its
	// own.
	RayID string
	// Rejection is the error the gateway answered with; nil when the
	// request was not refused by the gateway itself.
	Rejection *Error
	// CloseCode and CloseReason are the close sent on a WebSocket the
	// gateway accepted only to refuse it (RejectWebSocket): 1011 and the
	// rejection's Reason. 0 and "" otherwise.
	CloseCode   int
	CloseReason string
}

type exchangeKey struct{}

// WithExchange returns ctx carrying x.
func WithExchange(ctx context.Context, x *Exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, x)
}

// ExchangeFrom returns the Exchange stored by WithExchange, or nil.
func ExchangeFrom(ctx context.Context) *Exchange {
	x, _ := ctx.Value(exchangeKey{}).(*Exchange)
	return x
}

// NewRayID returns a fresh ray id for a request: "gw-" and 16 hex digits,
// within what RivetKit accepts as one (at most 30 of [A-Za-z0-9_-]) and
// told apart from the engine's at a glance. It correlates an answer with
// a log line; it is no secret, so a fast generator does.
func NewRayID() string {
	var b [3 + 16]byte
	copy(b[:], "gw-")
	v := mrand.Uint64()
	const hex = "0123456789abcdef"
	for i := len(b) - 1; i >= 3; i-- {
		b[i] = hex[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// exchangeOf returns r's Exchange, nil without a request or one.
func exchangeOf(r *http.Request) *Exchange {
	if r == nil {
		return nil
	}
	return ExchangeFrom(r.Context())
}

// rayHeader sets X-Rivet-Ray-Id on h to x's ray id, if any.
func (x *Exchange) rayHeader(h http.Header) {
	if x != nil && x.RayID != "" {
		h.Set(HeaderRayID, x.RayID)
	}
}

// rejected records e as the answer, keeping the first one.
func (x *Exchange) rejected(e *Error) {
	if x != nil && x.Rejection == nil {
		x.Rejection = e
	}
}
