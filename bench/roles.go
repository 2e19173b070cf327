package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// The helper processes of a run are this same binary started again with
// roleEnv set: the engine stand-in (upstream), the params service, for
// the nginx reference the auth_request service, and the bare Go reverse
// proxy reference (goproxy). Each listens on a free
// loopback port, prints "LISTEN <addr>" on stdout and serves until it is
// sent SIGTERM or its stdin closes (the parent died).
const (
	roleEnv   = "RIVET_BENCH_ROLE"
	secretEnv = "RIVET_BENCH_SECRET" // HS256 secret, for the auth service
	targetEnv = "RIVET_BENCH_TARGET" // upstream address, for goproxy
)

// runRole runs the role named by roleEnv and returns the exit code.
func runRole(role string) int {
	var h http.Handler
	switch role {
	case "upstream":
		h = upstreamHandler()
	case "params":
		h = paramsHandler()
	case "auth":
		h = authHandler([]byte(os.Getenv(secretEnv)))
	case "goproxy":
		h = goProxyHandler(os.Getenv(targetEnv))
	default:
		fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	fmt.Printf("LISTEN %s\n", ln.Addr())
	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		// The parent holds our stdin: EOF means it is gone.
		_, _ = io.Copy(io.Discard, os.Stdin)
		done <- syscall.SIGTERM
	}()
	go func() { _ = srv.Serve(ln) }()
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return 0
}

// serveRole runs h the way runRole does, in this process (tests).
func serveRole(h http.Handler) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 4096,
	CheckOrigin:     func(*http.Request) bool { return true },
	// The engine always answers "rivet" (see shared/rivet-protocol.md).
	Subprotocols: []string{"rivet"},
}

// upstreamHandler behaves like the engine's gateway routes for one actor:
//
//	POST /gateway/<target>/action/<name> {"args":[...]}
//	  → {"output":{"action":<name>,"args":[...],"params":<x-rivet-conn-params or null>}}
//	GET  /gateway/<target>/connect (WebSocket, subprotocol rivet)
//	  → first message {"type":"init","params":<rivet_conn_params.* decoded or null>},
//	    then every message echoed back as is.
//	GET  /health → {"runtime":"engine","status":"ok"}
//	GET  /actors?actor_ids=<id>&namespace=<ns>
//	  → the actor <id>: counter keyed alice (what the gateway resolves ids with)
//
// It reports the conn params it received so a run can check the gateway
// injected them.
func upstreamHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case path == "/health":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"runtime":"engine","status":"ok","version":"bench"}`)
		case path == "/actors" && r.Method == http.MethodGet && r.URL.Query().Get("actor_ids") != "":
			w.Header().Set("Content-Type", "application/json")
			id, _ := json.Marshal(r.URL.Query().Get("actor_ids"))
			_, _ = fmt.Fprintf(w, `{"actors":[{"actor_id":%s,"name":"counter","key":"alice","destroy_ts":null}],"pagination":{"cursor":null}}`, id)
		case strings.HasPrefix(path, "/gateway/") && strings.HasSuffix(path, "/connect"):
			serveEcho(w, r)
		case strings.HasPrefix(path, "/gateway/") && strings.Contains(path, "/action/"):
			if r.Method != http.MethodPost {
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			serveAction(w, r)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"group":"guard","code":"no_route","message":"no route"}`)
		}
	})
}

func serveAction(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Args json.RawMessage `json:"args"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil || len(body.Args) == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"group":"core","code":"internal_error","message":"bad body"}`)
		return
	}
	name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	params := json.RawMessage("null")
	if p := r.Header.Get("X-Rivet-Conn-Params"); p != "" {
		if !json.Valid([]byte(p)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"group":"core","code":"internal_error","message":"bad params"}`)
			return
		}
		params = json.RawMessage(p)
	}
	out := make([]byte, 0, 128+len(raw)+len(params))
	out = append(out, `{"output":{"action":`...)
	out, _ = appendJSONString(out, name)
	out = append(out, `,"args":`...)
	out = append(out, body.Args...)
	out = append(out, `,"params":`...)
	out = append(out, params...)
	out = append(out, "}}"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Rivet-Ray-Id", "bench")
	_, _ = w.Write(out)
}

func appendJSONString(dst []byte, s string) ([]byte, error) {
	b, err := json.Marshal(s)
	return append(dst, b...), err
}

// connParams returns the JSON the client sent in rivet_conn_params.*, or null.
func connParams(r *http.Request) json.RawMessage {
	for _, p := range websocket.Subprotocols(r) {
		if v, ok := strings.CutPrefix(p, "rivet_conn_params."); ok {
			if s, err := url.QueryUnescape(v); err == nil && json.Valid([]byte(s)) {
				return json.RawMessage(s)
			}
		}
	}
	return json.RawMessage("null")
}

func serveEcho(w http.ResponseWriter, r *http.Request) {
	params := connParams(r)
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadLimit(1 << 20)
	init := append(append([]byte(`{"type":"init","params":`), params...), '}')
	if err := c.WriteMessage(websocket.TextMessage, init); err != nil {
		return
	}
	for {
		op, msg, err := c.ReadMessage()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				code := ce.Code
				if code == websocket.CloseNoStatusReceived {
					code = websocket.CloseNormalClosure
				}
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""), time.Now().Add(time.Second))
			}
			return
		}
		if err := c.WriteMessage(op, msg); err != nil {
			return
		}
	}
}

// paramsHandler is a params service (params.source http): it answers every
// question with params built from the caller it was sent.
func paramsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Caller *struct {
				Subject string         `json:"subject"`
				Claims  map[string]any `json:"claims"`
			} `json:"caller"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&q); err != nil || q.Caller == nil {
			http.Error(w, "no caller", http.StatusForbidden)
			return
		}
		out := map[string]any{"userId": q.Caller.Subject, "role": q.Caller.Claims["role"], "source": "params-service"}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// authHandler is the small Go auth service nginx's auth_request asks: 204
// for a valid HS256 bearer token of the bench issuer, 401 otherwise.
func authHandler(secret []byte) http.Handler {
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(benchIssuer),
		jwt.WithAudience(benchAudience), jwt.WithExpirationRequired())
	key := func(*jwt.Token) (any, error) { return secret, nil }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			// A browser's WebSocket carries it in the conn params.
			tok, ok = paramsToken(r)
		}
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		t, err := parser.Parse(tok, key)
		if err != nil || !t.Valid {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// paramsToken reads authToken from the rivet_conn_params.* subprotocol.
func paramsToken(r *http.Request) (string, bool) {
	var p struct {
		AuthToken string `json:"authToken"`
	}
	if json.Unmarshal(connParams(r), &p) != nil || p.AuthToken == "" {
		return "", false
	}
	return p.AuthToken, true
}

// readListen reads the "LISTEN <addr>" line a role prints.
func readListen(r io.Reader, timeout time.Duration) (string, error) {
	type res struct {
		addr string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				ch <- res{addr: a}
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		ch <- res{err: fmt.Errorf("no LISTEN line (%v)", sc.Err())}
	}()
	select {
	case x := <-ch:
		return x.addr, x.err
	case <-time.After(timeout):
		return "", fmt.Errorf("no LISTEN line within %v", timeout)
	}
}

// goProxyHandler is the reference a Go service would write first: a bare
// net/http/httputil.ReverseProxy to the upstream, no authentication, no
// params, WebSockets through ReverseProxy's own upgrade handling, and a
// transport keeping as many idle upstream connections as the gateway's.
func goProxyHandler(target string) http.Handler {
	u := &url.URL{Scheme: "http", Host: target}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns, t.MaxIdleConnsPerHost = 1024, 1024
	return &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(u); r.Out.Host = r.In.Host },
		Transport: t,
	}
}
