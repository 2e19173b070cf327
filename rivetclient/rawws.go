package rivetclient

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// MessageType is the type of a raw WebSocket message.
type MessageType int

// The data message types ([websocket.TextMessage], [websocket.BinaryMessage]).
const (
	TextMessage   MessageType = websocket.TextMessage
	BinaryMessage MessageType = websocket.BinaryMessage
)

// RawWebSocket is a raw WebSocket to an actor's onWebSocket handler,
// opened by [Handle.WebSocket]. Reads must come from one goroutine at a
// time; writes and Close may come from any. The caller closes it.
type RawWebSocket struct {
	ws  *websocket.Conn
	wmu sync.Mutex
}

// Subprotocol returns the sub-protocol the actor accepted.
func (r *RawWebSocket) Subprotocol() string { return r.ws.Subprotocol() }

// CloseError is the close a raw WebSocket's peer sent, when its reason is
// not a RivetKit error (those are *ActorError).
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("rivetclient: websocket closed (code %d, reason %q)", e.Code, e.Reason)
}

// ReadMessage reads the next data message; pings are answered. A close
// from the peer is an *ActorError when its reason is a RivetKit error
// ("group.code#rayId"), a *CloseError otherwise; a lost connection is
// another error.
func (r *RawWebSocket) ReadMessage() (MessageType, []byte, error) {
	mt, data, err := r.ws.ReadMessage()
	if err != nil {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if _, _, _, ok := parseCloseReason(ce.Text); !ok {
				return 0, nil, &CloseError{Code: ce.Code, Reason: ce.Text}
			}
		}
		return 0, nil, closeError(err)
	}
	return MessageType(mt), data, nil
}

// WriteMessage writes one data message.
func (r *RawWebSocket) WriteMessage(mt MessageType, data []byte) error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.ws.WriteMessage(int(mt), data)
}

// SetReadDeadline bounds the next reads (zero: no bound).
func (r *RawWebSocket) SetReadDeadline(t time.Time) error { return r.ws.SetReadDeadline(t) }

// SetWriteDeadline bounds the next writes (zero: no bound).
func (r *RawWebSocket) SetWriteDeadline(t time.Time) error { return r.ws.SetWriteDeadline(t) }

// CloseWithReason sends a close frame with code and reason (at most 123
// bytes), then closes the connection without waiting for the answer.
func (r *RawWebSocket) CloseWithReason(code int, reason string) error {
	r.wmu.Lock()
	err := r.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeGrace))
	r.wmu.Unlock()
	if cerr := r.ws.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close sends a normal close (1000) and closes the connection.
func (r *RawWebSocket) Close() error {
	return r.CloseWithReason(websocket.CloseNormalClosure, "")
}
