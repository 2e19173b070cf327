package metrics

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
	"github.com/rivet-gateway/rivet-gateway/proxy"
)

// hijacker is a ResponseWriter whose connection can be hijacked, as a
// WebSocket upgrade does.
type hijacker struct{ *httptest.ResponseRecorder }

func (hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, _ := net.Pipe()
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}

// TestWebSocketOutlivesHandler: a WebSocket announced open when its handler
// returns is counted and logged once, by NoteWebSocket, with its stats and
// the time to its end; one that ended before the handler returned is
// counted by the handler's return, as before.
func TestWebSocketOutlivesHandler(t *testing.T) {
	for _, open := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		m, err := New(reg, DefaultConfig(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		var logs syncbuf.Buffer
		al, err := NewAccessLog(DefaultAccessLogConfig(), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		st := proxy.Stats{Duration: 50 * time.Millisecond, MessagesIn: 3, ClientCloseCode: 1000}
		ended := make(chan struct{})
		var endReq *http.Request
		h := Middleware(m, al, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, _, err := http.NewResponseController(w).Hijack(); err != nil {
				t.Fatal(err)
			}
			if !open {
				NoteWebSocket(r, st)
				return
			}
			NoteWebSocketOpen(r)
			endReq = r // the relay keeps the request, whose context ends with the handler
		}))
		h.ServeHTTP(hijacker{httptest.NewRecorder()}, httptest.NewRequest(http.MethodGet, "/gateway/a/connect", nil))
		if open {
			if n := testutil.CollectAndCount(m.wsDuration); n != 0 {
				t.Fatalf("open socket counted when its handler returned")
			}
			go func() {
				time.Sleep(20 * time.Millisecond)
				NoteWebSocket(endReq, st)
				close(ended)
			}()
			<-ended
		}
		if got := testutil.ToFloat64(m.wsMessages.WithLabelValues("in")); got != 3 {
			t.Errorf("open=%v: messages in: got %v, want 3", open, got)
		}
		if got := testutil.ToFloat64(m.wsCloses.WithLabelValues("1000")); got != 1 {
			t.Errorf("open=%v: closes 1000: got %v, want 1", open, got)
		}
		if got := testutil.ToFloat64(m.requests.WithLabelValues("unknown", "none", "1xx")); got != 1 {
			t.Errorf("open=%v: requests 1xx: got %v, want 1", open, got)
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], "msg=websocket") || !strings.Contains(lines[0], "close_code=1000") {
			t.Errorf("open=%v: access log: got %q, want one websocket line", open, lines)
		}
	}
}
