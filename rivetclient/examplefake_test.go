package rivetclient_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// exampleEngine is a minimal in-process stand-in for a RivetKit engine
// hosting one "counter" actor, so that the examples run. Actions:
// increment(n) (broadcasts newCount), whoami() (returns params.token).
type exampleEngine struct {
	*httptest.Server
	mu    sync.Mutex
	count int
	conns map[*websocket.Conn]*exampleConn
}

type exampleConn struct {
	mu   sync.Mutex // one writer
	subs map[string]bool
	enc  rivetclient.Encoding
}

// send writes a JSON-shaped message in the connection's encoding; the
// caller holds c.mu.
func (c *exampleConn) send(ws *websocket.Conn, msg []byte) {
	data, _ := rivetclient.ServerEncode(c.enc, "ToClient", msg)
	frame := websocket.BinaryMessage
	if c.enc == rivetclient.EncodingJSON {
		frame = websocket.TextMessage
	}
	ws.WriteMessage(frame, data)
}

func startExampleEngine() *exampleEngine {
	e := &exampleEngine{conns: map[*websocket.Conn]*exampleConn{}}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	return e
}

// DropConnections closes every connection the way a restarting gateway
// does ("ws.going_away"), so clients reconnect.
func (e *exampleEngine) DropConnections() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for ws, c := range e.conns {
		c.mu.Lock()
		ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(1011, "ws.going_away"))
		c.mu.Unlock()
	}
}

func (e *exampleEngine) run(action string, args []json.RawMessage, params string) any {
	switch action {
	case "increment":
		var n int
		json.Unmarshal(args[0], &n)
		e.mu.Lock()
		e.count += n
		count := e.count
		for ws, c := range e.conns {
			c.mu.Lock()
			if c.subs["newCount"] {
				c.send(ws, fmt.Appendf(nil, `{"body":{"tag":"Event","val":{"name":"newCount","args":[%d]}}}`, count))
			}
			c.mu.Unlock()
		}
		e.mu.Unlock()
		return count
	case "whoami":
		var p struct{ Token string }
		json.Unmarshal([]byte(params), &p)
		return p.Token
	}
	return nil
}

func (e *exampleEngine) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/metadata":
		io.WriteString(w, `{"runtime":"engine"}`)
	case strings.HasPrefix(r.URL.Path, "/gateway/counter/action/"):
		enc := rivetclient.Encoding(r.Header.Get("x-rivet-encoding"))
		body, _ := io.ReadAll(r.Body)
		body, _ = rivetclient.ServerDecode(enc, "HttpActionRequest", body)
		var req struct{ Args []json.RawMessage }
		json.Unmarshal(body, &req)
		out, _ := json.Marshal(e.run(strings.TrimPrefix(r.URL.Path, "/gateway/counter/action/"), req.Args, r.Header.Get("x-rivet-conn-params")))
		resp, _ := rivetclient.ServerEncode(enc, "HttpActionResponse", fmt.Appendf(nil, `{"output":%s}`, out))
		w.Write(resp)
	case r.URL.Path == "/gateway/counter/connect":
		var params string
		c := &exampleConn{subs: map[string]bool{}}
		for _, p := range strings.Split(r.Header.Get("Sec-WebSocket-Protocol"), ",") {
			if v, ok := strings.CutPrefix(p, "rivet_conn_params."); ok {
				params, _ = url.QueryUnescape(v)
			}
			if v, ok := strings.CutPrefix(p, "rivet_encoding."); ok {
				c.enc = rivetclient.Encoding(v)
			}
		}
		up := websocket.Upgrader{Subprotocols: []string{"rivet"}}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		e.mu.Lock()
		e.conns[ws] = c
		e.mu.Unlock()
		defer func() { e.mu.Lock(); delete(e.conns, ws); e.mu.Unlock() }()
		c.mu.Lock()
		c.send(ws, []byte(`{"body":{"tag":"Init","val":{"actorId":"a1","connectionId":"c1"}}}`))
		c.mu.Unlock()
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var msg struct {
				Body struct {
					Tag string
					Val struct {
						ID        json.RawMessage
						Name      string
						Args      []json.RawMessage
						EventName string
						Subscribe bool
					}
				}
			}
			data, _ = rivetclient.ServerDecode(c.enc, "ToServer", data)
			json.Unmarshal(data, &msg)
			v := msg.Body.Val
			if msg.Body.Tag == "SubscriptionRequest" {
				c.mu.Lock()
				c.subs[v.EventName] = v.Subscribe
				c.mu.Unlock()
				continue
			}
			out, _ := json.Marshal(e.run(v.Name, v.Args, params))
			c.mu.Lock()
			c.send(ws, fmt.Appendf(nil, `{"body":{"tag":"ActionResponse","val":{"id":%s,"output":%s}}}`, v.ID, out))
			c.mu.Unlock()
		}
	default:
		http.NotFound(w, r)
	}
}
