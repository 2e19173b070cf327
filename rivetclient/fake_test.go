package rivetclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeEngine is a small stand-in for the RivetKit engine's gateway and
// API, speaking the JSON protocol of rivet-protocol.md §6. It hosts
// "counter"-like actors:
//
//	increment(n)  count += n, broadcasts newCount [count], returns count
//	getCount()    returns count
//	echo(args…)   returns the args list
//	whoami()      returns {"params": <conn params>}
//	slow(ms, v)   returns v after ms milliseconds (for out-of-order replies)
//	raw(json)     returns the JSON text verbatim (to test the codec)
//	fail()        error user.custom_fail "boom" {"a":1}
type fakeEngine struct {
	t   *testing.T
	srv *httptest.Server

	mu              sync.Mutex
	actors          map[string]*fakeActor // by rvt-key or by id
	nextActor       int
	conns           map[*fakeConn]struct{}
	requests        []recordedRequest
	connectAttempts int
	// connectHook, when set, decides per /connect attempt (1-based) whether
	// to reject it: accept the upgrade, send errMsg if non-nil, close with
	// reason (code 1011).
	connectHook  func(attempt int, r *http.Request) *rejection
	requireToken bool   // actor rejects params without "token"
	metadata     string // JSON body of GET /metadata
	httpHook     func(w http.ResponseWriter, r *http.Request) bool
	handlers     sync.WaitGroup
}

type rejection struct {
	reason string
	errMsg map[string]any
}

type recordedRequest struct {
	Method      string
	RequestURI  string
	Header      http.Header
	Subprotocol []string
	Body        string
}

type fakeActor struct {
	id    string
	count int64
}

type fakeConn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex
	mu      sync.Mutex
	subs    map[string]bool
	params  json.RawMessage
	actor   *fakeActor
	enc     Encoding // of the rivet_encoding sub-protocol
}

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	return startFakeEngine(t, false)
}

// newFakeEngineTLS is newFakeEngine over TLS (httptest's certificate: trust
// srv.Certificate()), offering h2 and http/1.1 by ALPN like Rivet Cloud or
// the gateway with a TLS certificate.
func newFakeEngineTLS(t *testing.T) *fakeEngine {
	t.Helper()
	return startFakeEngine(t, true)
}

func startFakeEngine(t *testing.T, tls bool) *fakeEngine {
	t.Helper()
	f := &fakeEngine{
		t:        t,
		actors:   map[string]*fakeActor{},
		conns:    map[*fakeConn]struct{}{},
		metadata: `{"runtime":"engine","version":"fake"}`,
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serveHTTP))
	if tls {
		f.srv.EnableHTTP2 = true
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.close)
	return f
}

func (f *fakeEngine) URL() string { return f.srv.URL }

func (f *fakeEngine) close() {
	f.dropConns()
	f.srv.Close()
	f.handlers.Wait()
}

// dropConns closes every /connect socket abruptly (no close frame).
func (f *fakeEngine) dropConns() {
	f.mu.Lock()
	conns := make([]*fakeConn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.ws.Close()
	}
}

// closeConns closes every /connect socket with a close frame.
func (f *fakeEngine) closeConns(code int, reason string) {
	f.mu.Lock()
	conns := make([]*fakeConn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.writeMu.Lock()
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		c.writeMu.Unlock()
	}
}

func (f *fakeEngine) connCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

func (f *fakeEngine) recorded() []recordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recordedRequest(nil), f.requests...)
}

// lastRequest returns the last recorded request whose URI contains part.
func (f *fakeEngine) lastRequest(part string) (recordedRequest, bool) {
	reqs := f.recorded()
	for i := len(reqs) - 1; i >= 0; i-- {
		if strings.Contains(reqs[i].RequestURI, part) {
			return reqs[i], true
		}
	}
	return recordedRequest{}, false
}

func writeJSONError(w http.ResponseWriter, status int, group, code, message string, metadata any) {
	body := map[string]any{"group": group, "code": code, "message": message}
	if metadata != nil {
		body["metadata"] = metadata
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-rivet-ray-id", "ray-"+code)
	w.Header().Set("x-rivet-error", group+"."+code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// writeEncoded answers a gateway request in the encoding it asked for, as
// the actor does (the engine's own errors are always JSON).
func (f *fakeEngine) writeEncoded(w http.ResponseWriter, enc Encoding, kind string, status int, msg []byte) {
	body, err := serverEncode(enc, kind, msg)
	if err != nil {
		f.t.Errorf("fake engine: encode %s %s: %v", enc, kind, err)
		w.WriteHeader(500)
		return
	}
	if enc == EncodingJSON {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// requestEncoding is the encoding of a gateway request (JSON without the
// header, as the engine reads it).
func requestEncoding(r *http.Request) Encoding {
	if e := Encoding(r.Header.Get("x-rivet-encoding")); e != "" {
		return e
	}
	return EncodingJSON
}

func (f *fakeEngine) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.handlers.Add(1)
	defer f.handlers.Done()
	var body []byte
	if r.Body != nil && !websocket.IsWebSocketUpgrade(r) {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	var protos []string
	for _, p := range strings.Split(r.Header.Get("Sec-Websocket-Protocol"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			protos = append(protos, p)
		}
	}
	f.mu.Lock()
	f.requests = append(f.requests, recordedRequest{
		Method: r.Method, RequestURI: r.RequestURI, Header: r.Header.Clone(), Subprotocol: protos, Body: string(body),
	})
	hook := f.httpHook
	f.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}

	switch {
	case r.URL.Path == "/metadata":
		w.Header().Set("Content-Type", "application/json")
		f.mu.Lock()
		md := f.metadata
		f.mu.Unlock()
		io.WriteString(w, md)
	case r.URL.Path == "/actors":
		f.serveActorsAPI(w, r, body)
	case strings.HasPrefix(r.URL.Path, "/gateway/"):
		f.serveGateway(w, r, protos, body)
	default:
		writeJSONError(w, 404, "guard", "no_route", "no route", nil)
	}
}

func (f *fakeEngine) serveActorsAPI(w http.ResponseWriter, r *http.Request, body []byte) {
	if r.URL.Query().Get("namespace") == "" {
		writeJSONError(w, 400, "api", "bad_request", "missing namespace", nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodPost, http.MethodPut:
		var req struct {
			Name string `json:"name"`
			Key  string `json:"key"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSONError(w, 400, "api", "bad_request", err.Error(), nil)
			return
		}
		f.mu.Lock()
		a, exists := f.actors["api:"+req.Key]
		if exists && r.Method == http.MethodPost {
			f.mu.Unlock()
			writeJSONError(w, 400, "actor", "duplicate_key", "exists", nil)
			return
		}
		if !exists {
			f.nextActor++
			a = &fakeActor{id: fmt.Sprintf("actor%04d", f.nextActor)}
			f.actors["api:"+req.Key] = a
			f.actors[a.id] = a
		}
		f.mu.Unlock()
		fmt.Fprintf(w, `{"actor":{"actor_id":%q,"name":%q,"key":%q},"created":%t}`, a.id, req.Name, req.Key, !exists)
	case http.MethodGet:
		f.mu.Lock()
		a, ok := f.actors["api:"+r.URL.Query().Get("key")]
		f.mu.Unlock()
		if !ok {
			io.WriteString(w, `{"actors":[]}`)
			return
		}
		fmt.Fprintf(w, `{"actors":[{"actor_id":%q,"name":%q}]}`, a.id, r.URL.Query().Get("name"))
	}
}

// actorFor finds the actor a gateway target addresses.
func (f *fakeEngine) actorFor(seg string, q url.Values) (*fakeActor, *ActorError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q.Get("rvt-method") == "" {
		id, _, _ := strings.Cut(seg, "@")
		a, ok := f.actors[id]
		if !ok {
			return nil, &ActorError{Group: "actor", Code: "not_found", Message: "Actor not found"}
		}
		return a, nil
	}
	if q.Get("rvt-namespace") == "" {
		return nil, &ActorError{Group: "guard", Code: "query_invalid_params", Message: "missing namespace"}
	}
	k := "api:" + serializeActorKey(strings.Split(q.Get("rvt-key"), ","))
	a, ok := f.actors[k]
	if !ok {
		if q.Get("rvt-method") == "get" {
			return nil, &ActorError{Group: "actor", Code: "not_found", Message: "Actor not found"}
		}
		f.nextActor++
		a = &fakeActor{id: fmt.Sprintf("actor%04d", f.nextActor)}
		f.actors[k] = a
		f.actors[a.id] = a
	}
	return a, nil
}

func (f *fakeEngine) serveGateway(w http.ResponseWriter, r *http.Request, protos []string, body []byte) {
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/gateway/")
	seg, actorPath, _ := strings.Cut(rest, "/")
	a, aerr := f.actorFor(seg, r.URL.Query())
	if websocket.IsWebSocketUpgrade(r) {
		f.serveWebSocket(w, r, a, aerr, actorPath, protos)
		return
	}
	if aerr != nil {
		writeJSONError(w, 404, aerr.Group, aerr.Code, aerr.Message, nil)
		return
	}
	params := json.RawMessage(r.Header.Get("x-rivet-conn-params"))
	enc := requestEncoding(r)
	if strings.HasPrefix(actorPath, "action/") || strings.HasPrefix(actorPath, "queue/") {
		kind := "HttpActionRequest"
		if strings.HasPrefix(actorPath, "queue/") {
			kind = "HttpQueueSendRequest"
		}
		decoded, err := serverDecode(enc, kind, body)
		if err != nil {
			writeJSONError(w, 400, "core", "internal_error", err.Error(), nil)
			return
		}
		body = decoded
	}
	switch {
	case strings.HasPrefix(actorPath, "action/"):
		if r.Method != http.MethodPost {
			w.WriteHeader(405)
			return
		}
		if f.requireToken && !hasToken(params) {
			writeJSONError(w, 500, "user", "unauthorized", "missing token", nil)
			return
		}
		name, _ := url.PathUnescape(strings.TrimPrefix(actorPath, "action/"))
		var req struct {
			Args []json.RawMessage `json:"args"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSONError(w, 400, "core", "internal_error", err.Error(), nil)
			return
		}
		out, aerr := f.runAction(a, name, req.Args, params)
		if aerr != nil {
			status := 500
			if aerr.Code == "action_not_found" {
				status = 404
			}
			msg, _ := json.Marshal(map[string]any{"group": aerr.Group, "code": aerr.Code, "message": aerr.Message, "metadata": aerr.Metadata})
			w.Header().Set("x-rivet-ray-id", "ray-"+aerr.Code)
			f.writeEncoded(w, enc, "HttpResponseError", status, msg)
			return
		}
		f.writeEncoded(w, enc, "HttpActionResponse", 200, fmt.Appendf(nil, `{"output":%s}`, out))
	case strings.HasPrefix(actorPath, "queue/"):
		var req struct {
			Name string          `json:"name"`
			Body json.RawMessage `json:"body"`
			Wait bool            `json:"wait"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			writeJSONError(w, 400, "core", "internal_error", err.Error(), nil)
			return
		}
		if req.Wait {
			f.writeEncoded(w, enc, "HttpQueueSendResponse", 200, fmt.Appendf(nil, `{"status":"completed","response":%s}`, req.Body))
			return
		}
		f.writeEncoded(w, enc, "HttpQueueSendResponse", 200, []byte(`{"status":"completed"}`))
	case strings.HasPrefix(actorPath, "request/") || actorPath == "request":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Actor-Path", "/"+strings.TrimPrefix(actorPath, "request/"))
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "path": "/" + strings.TrimPrefix(actorPath, "request/"),
			"query": r.URL.RawQuery, "params": r.Header.Get("x-rivet-conn-params"),
			"custom": r.Header.Get("X-Custom"), "body": string(body),
		})
	default:
		writeJSONError(w, 404, "guard", "no_route", "no route", nil)
	}
}

func hasToken(params json.RawMessage) bool {
	var p struct {
		Token string `json:"token"`
	}
	return json.Unmarshal(params, &p) == nil && p.Token != ""
}

// runAction runs an action of the fake actor; out is the raw JSON output.
func (f *fakeEngine) runAction(a *fakeActor, name string, args []json.RawMessage, params json.RawMessage) (json.RawMessage, *ActorError) {
	argNum := func(i int) int64 {
		if i >= len(args) {
			return 0
		}
		n, _ := strconv.ParseInt(string(args[i]), 10, 64)
		return n
	}
	switch name {
	case "increment":
		f.mu.Lock()
		a.count += argNum(0)
		n := a.count
		conns := make([]*fakeConn, 0, len(f.conns))
		for c := range f.conns {
			conns = append(conns, c)
		}
		f.mu.Unlock()
		for _, c := range conns {
			if c.actor == a && c.subscribed("newCount") {
				c.send(fmt.Sprintf(`{"body":{"tag":"Event","val":{"args":[%d],"name":"newCount"}}}`, n))
			}
		}
		return json.RawMessage(strconv.FormatInt(n, 10)), nil
	case "getCount":
		f.mu.Lock()
		defer f.mu.Unlock()
		return json.RawMessage(strconv.FormatInt(a.count, 10)), nil
	case "echo":
		out, _ := json.Marshal(args)
		if args == nil {
			out = []byte("[]")
		}
		return out, nil
	case "whoami":
		if len(params) == 0 {
			params = json.RawMessage("null")
		}
		return json.RawMessage(`{"params":` + string(params) + `}`), nil
	case "slow":
		time.Sleep(time.Duration(argNum(0)) * time.Millisecond)
		if len(args) < 2 {
			return json.RawMessage("null"), nil
		}
		return args[1], nil
	case "raw":
		var s string
		if len(args) > 0 {
			_ = json.Unmarshal(args[0], &s)
		}
		return json.RawMessage(s), nil
	case "fail":
		return nil, &ActorError{Group: "user", Code: "custom_fail", Message: "boom", Metadata: json.RawMessage(`{"a":1}`)}
	}
	return nil, &ActorError{Group: "actor", Code: "action_not_found", Message: "action not found: " + name}
}

var fakeUpgrader = websocket.Upgrader{
	// The engine always answers "rivet".
	Subprotocols: []string{"rivet"},
	CheckOrigin:  func(*http.Request) bool { return true },
}

func paramsFromProtocols(protos []string) json.RawMessage {
	for _, p := range protos {
		if v, ok := strings.CutPrefix(p, "rivet_conn_params."); ok {
			s, err := url.QueryUnescape(v)
			if err != nil {
				return nil
			}
			return json.RawMessage(s)
		}
	}
	return nil
}

func (f *fakeEngine) serveWebSocket(w http.ResponseWriter, r *http.Request, a *fakeActor, aerr *ActorError, actorPath string, protos []string) {
	ws, err := fakeUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	closeWith := func(reason string) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1011, reason), time.Now().Add(time.Second))
		// Wait for the client's close reply (or give up) before hanging up.
		_ = ws.SetReadDeadline(time.Now().Add(time.Second))
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}
	if aerr != nil {
		closeWith(aerr.Group + "." + aerr.Code + "#ray-ws")
		return
	}
	params := paramsFromProtocols(protos)
	enc := EncodingJSON
	for _, p := range protos {
		if e, ok := strings.CutPrefix(p, "rivet_encoding."); ok {
			enc = Encoding(e)
		}
	}
	c := &fakeConn{ws: ws, subs: map[string]bool{}, params: params, actor: a, enc: enc}
	if strings.HasPrefix(actorPath, "websocket") {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"hello":"raw","path":"/`+strings.TrimPrefix(actorPath, "websocket/")+`","params":`+orNull(params)+`}`))
		for {
			_, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			_ = ws.WriteMessage(websocket.TextMessage, append([]byte("echo:"), msg...))
		}
	}
	if actorPath != "connect" {
		closeWith("guard.no_route")
		return
	}

	f.mu.Lock()
	f.connectAttempts++
	attempt := f.connectAttempts
	hook := f.connectHook
	f.mu.Unlock()
	if hook != nil {
		if rej := hook(attempt, r); rej != nil {
			if rej.errMsg != nil {
				b, _ := json.Marshal(map[string]any{"body": map[string]any{"tag": "Error", "val": rej.errMsg}})
				c.send(string(b))
			}
			closeWith(rej.reason)
			return
		}
	}
	if f.requireToken && !hasToken(params) {
		c.send(`{"body":{"tag":"Error","val":{"actionId":null,"code":"unauthorized","group":"user","message":"missing token"}}}`)
		closeWith("user.unauthorized")
		return
	}

	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	var running sync.WaitGroup
	defer running.Wait()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	}()
	c.send(fmt.Sprintf(`{"body":{"tag":"Init","val":{"actorId":%q,"connectionId":"conn-%d"}}}`, a.id, attempt))
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if data, err = serverDecode(enc, "ToServer", data); err != nil {
			f.t.Errorf("fake engine: malformed %s client message: %v", enc, err)
			continue
		}
		var msg struct {
			Body struct {
				Tag string `json:"tag"`
				Val struct {
					ID        json.RawMessage   `json:"id"`
					Name      string            `json:"name"`
					Args      []json.RawMessage `json:"args"`
					EventName string            `json:"eventName"`
					Subscribe bool              `json:"subscribe"`
				} `json:"val"`
			} `json:"body"`
		}
		if err := json.Unmarshal(data, &msg); err != nil {
			f.t.Errorf("fake engine: malformed client message %s: %v", data, err)
			continue
		}
		switch msg.Body.Tag {
		case "SubscriptionRequest":
			c.mu.Lock()
			c.subs[msg.Body.Val.EventName] = msg.Body.Val.Subscribe
			c.mu.Unlock()
		case "ActionRequest":
			var id []string
			if enc != EncodingJSON { // an integer, not a compat BigInt
				n, err := idText(msg.Body.Val.ID)
				if err != nil || msg.Body.Val.ID[0] == '[' {
					f.t.Errorf("fake engine: %s action id %s, want an integer", enc, msg.Body.Val.ID)
					continue
				}
				id = []string{"$BigInt", n}
			} else if err := json.Unmarshal(msg.Body.Val.ID, &id); err != nil || len(id) != 2 || id[0] != "$BigInt" {
				f.t.Errorf("fake engine: action id %s, want [\"$BigInt\",\"N\"]", msg.Body.Val.ID)
				continue
			}
			val := msg.Body.Val
			running.Add(1)
			go func() { // actions run concurrently, so replies can overtake each other
				defer running.Done()
				out, aerr := f.runAction(a, val.Name, val.Args, params)
				if aerr != nil {
					b, _ := json.Marshal(map[string]any{"body": map[string]any{"tag": "Error", "val": map[string]any{
						"group": aerr.Group, "code": aerr.Code, "message": aerr.Message, "metadata": aerr.Metadata,
						"actionId": []string{"$BigInt", id[1]},
					}}})
					c.send(string(b))
					return
				}
				c.send(fmt.Sprintf(`{"body":{"tag":"ActionResponse","val":{"id":["$BigInt",%q],"output":%s}}}`, id[1], out))
			}()
		default:
			f.t.Errorf("fake engine: unexpected client message tag %q", msg.Body.Tag)
		}
	}
}

func orNull(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	return string(raw)
}

func (c *fakeConn) subscribed(event string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[event]
}

// send sends a JSON-shaped ToClient message in the connection's encoding.
func (c *fakeConn) send(msg string) {
	data, err := serverEncode(c.enc, "ToClient", []byte(msg))
	if err != nil {
		panic(fmt.Sprintf("fake engine: encode %s: %v", msg, err))
	}
	frame := websocket.TextMessage
	if c.enc != EncodingJSON {
		frame = websocket.BinaryMessage
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.ws.WriteMessage(frame, data)
}
