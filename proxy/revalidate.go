package proxy

import (
	"net/http"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Revalidate ends every open WebSocket whose upgrade request check now
// rejects (after a configuration reload: a revoked API key, an issuer no
// longer trusted). The client is sent 1011 with the error's RivetKit
// reason, as a rejected upgrade would be; the engine 1001 ws.going_away.
// It returns how many sessions it ended.
func (p *Proxy) Revalidate(check func(*http.Request) error) int {
	n := 0
	for _, s := range p.sessions.snapshot(false) {
		err := check(s.r)
		if err == nil {
			continue
		}
		s.terminate("revalidation_failed",
			closeErr(websocket.CloseInternalServerErr, rivet.AsError(err).Reason()),
			closeErr(websocket.CloseGoingAway, ReasonGoingAway))
		n++
	}
	return n
}
