package rivetclient

import (
	"crypto/x509"
	"net/http"
	"slices"
	"testing"
)

// TestWebSocketOverHTTP2CapableTLS connects over wss to a server that
// offers h2 by ALPN (issue 12): the WebSocket dials must offer http/1.1
// only, whatever the HTTP transport's TLS config offers, and leave that
// config as it was.
func TestWebSocketOverHTTP2CapableTLS(t *testing.T) {
	tests := []struct {
		name      string
		transport func(t *testing.T, f *fakeEngine) *http.Transport
	}{
		{"cloned default transport", func(t *testing.T, f *fakeEngine) *http.Transport {
			// The usual way to trust a CA: its config offers h2 already.
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.TLSClientConfig.RootCAs = x509.NewCertPool()
			tr.TLSClientConfig.RootCAs.AddCert(f.srv.Certificate())
			return tr
		}},
		{"transport that has spoken HTTP/2", func(t *testing.T, f *fakeEngine) *http.Transport {
			hc := f.srv.Client()
			res, err := hc.Get(f.URL() + "/metadata")
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.ProtoMajor != 2 {
				t.Fatalf("GET /metadata: got %s, want HTTP/2 (the server must offer h2)", res.Proto)
			}
			return hc.Transport.(*http.Transport)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEngineTLS(t)
			tr := tt.transport(t, f)
			defer tr.CloseIdleConnections()
			c := newTestClient(t, f, WithHTTPClient(&http.Client{Transport: tr}))
			ctx := testContext(t)
			h := c.GetOrCreate("counter", []string{"k"}, HandleOptions{Params: map[string]string{"token": "t"}})

			var n int
			if err := h.Action(ctx, "increment", &n, 2); err != nil || n != 2 {
				t.Fatalf("stateless increment(2): got %d, %v; want 2", n, err)
			}
			conn, err := h.Connect(ctx)
			if err != nil {
				t.Fatalf("Connect over wss: %v", err)
			}
			if err := conn.Action(ctx, "increment", &n, 3); err != nil || n != 5 {
				t.Errorf("increment(3) over the connection: got %d, %v; want 5", n, err)
			}
			conn.Close()
			ws, err := h.WebSocket(ctx, "/raw")
			if err != nil {
				t.Fatalf("WebSocket over wss: %v", err)
			}
			ws.WriteMessage(TextMessage, []byte("ping"))
			ws.Close()

			if protos := c.dialer.TLSClientConfig.NextProtos; !slices.Equal(protos, []string{"http/1.1"}) {
				t.Errorf("dialer ALPN: got %q, want [http/1.1]", protos)
			}
			if tr.TLSClientConfig.NextProtos != nil && !slices.Contains(tr.TLSClientConfig.NextProtos, "h2") {
				t.Errorf("the transport's ALPN: got %q, want it untouched (h2 offered)", tr.TLSClientConfig.NextProtos)
			}
		})
	}
}
