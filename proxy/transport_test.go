package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// byteEngine is an HTTP/1.1 engine written byte by byte: serve is
// called for every request read on a connection (conn is the connection's
// number, n the request's on it) and writes the answer itself; returning
// false closes the connection. Every connection's end is reported on ends
// by number.
type byteEngine struct {
	addr string
	ends chan int

	mu   sync.Mutex
	reqs []string // "conn/n METHOD path", in arrival order
}

func startByteEngine(t *testing.T, serve func(w io.Writer, r *http.Request, conn, n int) bool) *byteEngine {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &byteEngine{addr: ln.Addr().String(), ends: make(chan int, 64)}
	var wg sync.WaitGroup
	var open sync.Map // net.Conn → struct{}
	t.Cleanup(func() {
		ln.Close()
		open.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for conn := 0; ; conn++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			open.Store(c, struct{}{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { c.Close(); open.Delete(c); e.ends <- conn }()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if _, err := io.Copy(io.Discard, r.Body); err != nil {
						return
					}
					e.mu.Lock()
					e.reqs = append(e.reqs, fmt.Sprintf("%d/%d %s %s", conn, n, r.Method, r.URL.Path))
					e.mu.Unlock()
					if !serve(c, r, conn, n) {
						return
					}
				}
			}()
		}
	}()
	return e
}

func (e *byteEngine) requests() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.reqs...)
}

// checkSecondOnNewConn fails t unless the engine got two requests, the
// second as the first on a new connection.
func (e *byteEngine) checkSecondOnNewConn(t *testing.T) {
	t.Helper()
	if got := e.requests(); len(got) != 2 || !strings.HasPrefix(got[1], "1/0 ") {
		t.Errorf("the engine got %v, want the second request on a new connection", got)
	}
}

// idleConns is the number of connections st keeps idle.
func idleConns(st *syncTransport) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.idle)
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"output\":1}"

func answerOK(w io.Writer, _ *http.Request, _, _ int) bool {
	_, err := io.WriteString(w, okAnswer)
	return err == nil
}

// action is the action URL on front.
func action(front string) string {
	return front + "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=k"
}

func TestDirectTransportReusesOneConnection(t *testing.T) {
	checkGoroutines(t)
	e := startByteEngine(t, answerOK)
	p, front := startProxy(t, testConfig("http://"+e.addr), Options{})
	if p.sync == nil {
		t.Fatal("the direct transport is not in use for a plain-http engine")
	}
	c := testClient(t)
	for i := range 5 {
		if res, body := do(t, c, http.MethodPost, action(front.URL), strings.NewReader(`{"args":[1]}`), nil); res.StatusCode != http.StatusOK || string(body) != `{"output":1}` {
			t.Fatalf("request %d: %d %s", i, res.StatusCode, body)
		}
	}
	want := []string{"0/0 POST", "0/1 POST", "0/2 POST", "0/3 POST", "0/4 POST"}
	if got := e.requests(); len(got) != len(want) || !strings.HasPrefix(got[4], want[4]) {
		t.Errorf("the engine got %v, want five on one connection (%v)", got, want)
	}
}

// TestDirectTransportEngineClosedIdle: a kept connection the engine has
// closed since is not used for the next request, which is not retried
// (a POST) and so must not be sent on it.
func TestDirectTransportEngineClosedIdle(t *testing.T) {
	checkGoroutines(t)
	e := startByteEngine(t, func(w io.Writer, r *http.Request, conn, n int) bool {
		answerOK(w, r, conn, n)
		return conn > 0 // the first connection is closed after its answer
	})
	_, front := startProxy(t, testConfig("http://"+e.addr), Options{})
	c := testClient(t)
	if res, _ := do(t, c, http.MethodPost, action(front.URL), strings.NewReader(`{"args":[1]}`), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("first: %d", res.StatusCode)
	}
	if got := recv(t, e.ends, "the engine to close its first connection"); got != 0 {
		t.Fatalf("connection %d ended", got)
	}
	if res, body := do(t, c, http.MethodPost, action(front.URL), strings.NewReader(`{"args":[1]}`), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("after the engine closed the idle connection: %d %s", res.StatusCode, body)
	}
	e.checkSecondOnNewConn(t)
}

// TestDirectTransportClosedUnanswered: the engine reads a request on a
// kept connection and closes it unanswered. A GET goes again on a new
// connection; a POST may have run and is not sent twice.
func TestDirectTransportClosedUnanswered(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   int
		sent   int // times the engine got the second request
	}{
		{http.MethodGet, http.StatusOK, 2},
		{http.MethodPost, http.StatusBadGateway, 1},
	} {
		t.Run(tc.method, func(t *testing.T) {
			checkGoroutines(t)
			e := startByteEngine(t, func(w io.Writer, r *http.Request, conn, n int) bool {
				if conn == 0 && n == 1 {
					return false
				}
				return answerOK(w, r, conn, n)
			})
			_, front := startProxy(t, testConfig("http://"+e.addr), Options{})
			c := testClient(t)
			u := action(front.URL)
			if tc.method == http.MethodGet {
				u = front.URL + "/actors?namespace=default&name=counter&key=k"
			}
			var body io.Reader
			if tc.method == http.MethodPost {
				body = strings.NewReader(`{"args":[1]}`)
			}
			if res, _ := do(t, c, tc.method, u, body, nil); res.StatusCode != http.StatusOK {
				t.Fatalf("first: %d", res.StatusCode)
			}
			if tc.method == http.MethodPost {
				body = strings.NewReader(`{"args":[1]}`)
			}
			if res, b := do(t, c, tc.method, u, body, nil); res.StatusCode != tc.want {
				t.Errorf("second: %d %s, want %d", res.StatusCode, b, tc.want)
			}
			if got := e.requests(); len(got) != 1+tc.sent {
				t.Errorf("the engine got %v, want the second request %d time(s)", got, tc.sent)
			}
		})
	}
}

// TestDirectTransportClientGoesAway: a client that leaves while the engine
// has not answered ends the exchange: the engine's connection is closed
// and nothing is left waiting on it.
func TestDirectTransportClientGoesAway(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	got := make(chan struct{}, 1)
	e := startByteEngine(t, func(w io.Writer, r *http.Request, conn, n int) bool {
		got <- struct{}{}
		<-release // never answers
		return false
	})
	t.Cleanup(free)
	_, front := startProxy(t, testConfig("http://"+e.addr), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, action(front.URL), strings.NewReader(`{"args":[1]}`))
	errc := make(chan error, 1)
	c := testClient(t)
	go func() {
		res, err := c.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	recv(t, got, "the engine to get the request")
	cancel()
	if err := recv(t, errc, "the client's request to end"); !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v, want cancelled", err)
	}
	// The engine's connection was closed by the proxy: the engine's next
	// read of it ends at once.
	free()
	if got := recv(t, e.ends, "the engine's connection to end"); got != 0 {
		t.Errorf("connection %d ended", got)
	}
}

// TestDirectTransportKeepsOnlyWholeAnswers: a connection goes back to the
// pool only after an answer read to its end that did not ask to close.
func TestDirectTransportKeepsOnlyWholeAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string
		read   int // bytes the client reads of the first answer, -1 all
	}{
		{"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", -1},
		{"body until the end", "HTTP/1.1 200 OK\r\n\r\nok", -1},
		{"body left unread", "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			e := startByteEngine(t, func(w io.Writer, r *http.Request, conn, n int) bool {
				if conn == 0 {
					_, err := io.WriteString(w, tc.answer)
					if tc.read >= 0 {
						// A body longer than any socket buffer, written
						// until the proxy closes the connection.
						chunk := make([]byte, 64<<10)
						for sent := 0; err == nil && sent < 1<<30; sent += len(chunk) {
							_, err = w.Write(chunk)
						}
					}
					return false
				}
				return answerOK(w, r, conn, n)
			})
			_, front := startProxy(t, testConfig("http://"+e.addr), Options{})
			c := testClient(t)
			res, err := c.Post(action(front.URL), "application/json", strings.NewReader(`{"args":[1]}`))
			if err != nil {
				t.Fatal(err)
			}
			if tc.read < 0 {
				_, _ = io.Copy(io.Discard, res.Body)
			} else {
				_, _ = io.ReadFull(res.Body, make([]byte, tc.read))
				c.CloseIdleConnections()
			}
			res.Body.Close()
			if tc.read >= 0 {
				// The client's connection is gone mid-answer: the proxy
				// closes the engine's rather than reading the rest.
				c = testClient(t)
				if got := recv(t, e.ends, "the first engine connection to end"); got != 0 {
					t.Fatalf("connection %d ended", got)
				}
			}
			if res, b := do(t, c, http.MethodPost, action(front.URL), strings.NewReader(`{"args":[1]}`), nil); res.StatusCode != http.StatusOK {
				t.Fatalf("second: %d %s", res.StatusCode, b)
			}
			e.checkSecondOnNewConn(t)
		})
	}
}

// TestDirectTransportIdleLimits: idle connections are closed after
// idle_conn_timeout, and no more than max_idle_conns are kept.
func TestDirectTransportIdleLimits(t *testing.T) {
	checkGoroutines(t)
	arrived := make(chan struct{}, 2)
	both := make(chan struct{})
	e := startByteEngine(t, func(w io.Writer, r *http.Request, conn, n int) bool {
		arrived <- struct{}{}
		<-both
		return answerOK(w, r, conn, n)
	})
	cfg := testConfig("http://" + e.addr)
	cfg.MaxIdleConns = 1
	cfg.IdleConnTimeout = time.Second
	p, front := startProxy(t, cfg, Options{})
	c := testClient(t)
	codes := make(chan int, 2)
	for range 2 {
		go func() {
			res, err := c.Post(action(front.URL), "application/json", strings.NewReader(`{"args":[1]}`))
			if err != nil {
				codes <- 0
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			codes <- res.StatusCode
		}()
	}
	recv(t, arrived, "the first request")
	recv(t, arrived, "the second request")
	close(both)
	for range 2 {
		if code := recv(t, codes, "an answer"); code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
	}
	// One of the two connections is over the limit and closed at once;
	// the other after the idle timeout.
	first := recv(t, e.ends, "a connection over max_idle_conns to end")
	if n := idleConns(p.sync); n != 1 {
		t.Errorf("%d idle connections kept, want max_idle_conns (1)", n)
	}
	if second := recv(t, e.ends, "the idle connection to end"); second == first {
		t.Fatalf("connection %d ended twice", first)
	}
	if n := idleConns(p.sync); n != 0 {
		t.Errorf("%d idle connections left after idle_conn_timeout", n)
	}
}

// TestDirectTransportBadAnswers: an answer that is not HTTP is a 502, and
// informational answers before the final one reach the client.
func TestDirectTransportBadAnswers(t *testing.T) {
	checkGoroutines(t)
	e := startByteEngine(t, func(w io.Writer, r *http.Request, conn, n int) bool {
		if conn == 0 {
			_, _ = io.WriteString(w, "SMTP ready\r\n\r\n")
			return false
		}
		_, err := io.WriteString(w, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+okAnswer)
		return err == nil
	})
	_, front := startProxy(t, testConfig("http://"+e.addr), Options{})
	c := testClient(t)
	if res, b := do(t, c, http.MethodPost, action(front.URL), strings.NewReader(`{"args":[1]}`), nil); res.StatusCode != http.StatusBadGateway {
		t.Errorf("garbage from the engine: %d %s, want 502", res.StatusCode, b)
	}
	var hints []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, action(front.URL), strings.NewReader(`{"args":[1]}`))
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || string(b) != `{"output":1}` || len(hints) != 1 || hints[0] != "103 </a.css>; rel=preload" {
		t.Errorf("after a 103: %d %s, hints %q; want 200 and the hint relayed", res.StatusCode, b, hints)
	}
}

// TestDirectTransportChoice: the direct transport is used for a plain-http
// engine reached without an egress proxy, unless configured off.
func TestDirectTransportChoice(t *testing.T) {
	viaProxy := func(*http.Request) (*url.URL, error) { return url.Parse("http://127.0.0.1:1") }
	for _, tc := range []struct {
		name, url, transport string
		proxy                func(*http.Request) (*url.URL, error)
		want                 bool
	}{
		{"http", "http://127.0.0.1:6420", "", nil, true},
		{"http, port 80", "http://engine.internal", TransportDirect, nil, true},
		{"configured off", "http://127.0.0.1:6420", TransportNetHTTP, nil, false},
		{"https", "https://api.rivet.dev", "", nil, false},
		{"egress proxy", "http://engine.internal:6420", "", viaProxy, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.url)
			cfg.Transport = tc.transport
			if err := cfg.Validate("upstream"); err != nil {
				t.Fatal(err)
			}
			p, err := New(cfg, Options{Proxy: tc.proxy})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if got := p.sync != nil; got != tc.want {
				t.Errorf("direct transport in use: %v, want %v", got, tc.want)
			}
		})
	}
	cfg := testConfig("http://127.0.0.1:6420")
	cfg.Transport = "fasthttp"
	if err := cfg.Validate("upstream"); err == nil || !strings.Contains(err.Error(), "upstream.transport") {
		t.Errorf("transport fasthttp: %v, want an upstream.transport error", err)
	}
}
