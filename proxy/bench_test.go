package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// BenchmarkHTTPProxy measures a keep-alive POST of 1 KiB through the proxy
// to a local upstream, against the same request sent directly. Allocations
// are the whole process's: client, proxy and upstream.
func BenchmarkHTTPProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"output":1}`)
	}))
	b.Cleanup(up.Close)
	_, front := startProxy(b, testConfig(up.URL), Options{})
	body := bytes.Repeat([]byte("a"), 1024)

	for _, bc := range []struct{ name, url string }{
		{"direct", up.URL},
		{"proxied", front.URL},
	} {
		b.Run(bc.name, func(b *testing.B) {
			client := testClient(b)
			u := bc.url + "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k"
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}

// BenchmarkWebSocketRoundTrip measures one 1 KiB binary message echoed back
// over an established WebSocket, directly to the upstream and through the
// proxy.
func BenchmarkWebSocketRoundTrip(b *testing.B) {
	up := newWSUpstream(b, func(c *websocket.Conn, r *http.Request) {
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
	_, front := startProxy(b, testConfig(up.URL), Options{})
	msg := bytes.Repeat([]byte{7}, 1024)

	for _, bc := range []struct {
		name string
		srv  *httptest.Server
	}{
		{"direct", up.Server},
		{"proxied", front},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := mustDialWS(b, bc.srv, actorPath+"/connect", nil, rivetProtocols...)
			_ = c.SetReadDeadline(time.Time{})
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
					b.Fatal(err)
				}
				if _, got, err := c.ReadMessage(); err != nil || len(got) != len(msg) {
					b.Fatalf("echo: %d bytes, %v", len(got), err)
				}
			}
			b.StopTimer()
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
			_ = c.SetReadDeadline(time.Now().Add(wait))
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					break
				}
			}
		})
	}
}
