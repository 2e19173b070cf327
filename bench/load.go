package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Workloads the loader runs. Every loop is bounded by the run's duration.
const (
	httpKeepAlive = "http-ka"    // POST action over keep-alive connections, closed loop
	httpNewConn   = "http-new"   // POST action on a new TCP connection each time
	wsSetup       = "ws-setup"   // open /connect, read the init message, close handshake
	wsRoundTrip   = "ws-rt"      // message round trips over long-lived connections
	httpPaced     = "http-paced" // keep-alive action at a fixed total rate (latency, not throughput)
	// httpByID is http-ka addressed by actor id (/gateway/<id>/...): the
	// gateway resolves the id once, then answers it from its cache.
	httpByID = "http-id"
	// httpByFreshID is http-id with a new actor id on every request: every
	// request costs the gateway an actor lookup at the engine.
	httpByFreshID = "http-id-fresh"
)

// benchActorID is the actor id of http-id: a valid engine id (version 1).
const benchActorID = "hwzdj7sr4l7y4lxlvc506jrjwtal00"

// actionPath is the action every HTTP op calls: a key query target, the
// way the RivetKit client addresses getOrCreate actors.
const (
	actionPath  = "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=alice&rvt-crash-policy=sleep"
	connectPath = "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=alice&rvt-crash-policy=sleep"
	actionBody  = `{"args":[1,"bench"]}`
	wsMessage   = `{"b":{"ar":{"i":1,"n":"increment","a":[1,"bench"]}}}` // 53 B, an action request's size
)

// client describes how the loader talks to one endpoint (direct or through
// a proxy): where, and which credential it carries.
type client struct {
	addr  string // host:port
	token string // bearer / conn-params authToken; "" = anonymous
	// wantParams, when set, must occur in the conn params the upstream
	// reports (checked once per run, on the first op).
	wantParams string
}

// result is one measured run.
type result struct {
	ops      int64
	errs     int64
	firstErr string
	elapsed  time.Duration
	lat      []time.Duration // sorted
	// cpu is what the proxy's processes consumed over the measured
	// window; nil when not measured (direct runs).
	cpu *cpuUse
}

// cpuPerOp is the proxy's CPU per counted op (0 when not measured).
func (r result) cpuPerOp() cpuUse {
	if r.cpu == nil || r.ops == 0 {
		return cpuUse{}
	}
	return cpuUse{r.cpu.user / time.Duration(r.ops), r.cpu.sys / time.Duration(r.ops)}
}

func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

func (r result) quantile(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(q*float64(len(r.lat)-1))]
}

// loadSpec is one run of a workload.
type loadSpec struct {
	workload string
	conc     int           // concurrent workers (connections)
	warmup   time.Duration // ops before the measurement, not counted
	dur      time.Duration
	rate     float64 // httpPaced: total ops/s
	// cpuPIDs are the proxy's processes, whose CPU is read at the start
	// and end of the measured window; none for direct runs.
	cpuPIDs []int
}

// worker is one concurrent loop; op runs one operation and returns an
// error when it failed.
type worker interface {
	op(ctx context.Context) error
	close()
}

// runLoad runs spec against c and returns the measurement.
func runLoad(ctx context.Context, spec loadSpec, c client) (result, error) {
	workers := make([]worker, spec.conc)
	for i := range workers {
		w, err := newWorker(ctx, spec.workload, c)
		if err != nil {
			for _, w := range workers[:i] {
				w.close()
			}
			return result{}, fmt.Errorf("%s worker %d: %w", spec.workload, i, err)
		}
		workers[i] = w
	}
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()

	var (
		ops, errs atomic.Int64
		errMu     sync.Mutex
		firstErr  string
		wg        sync.WaitGroup
		lats      = make([][]time.Duration, spec.conc)
	)
	start := time.Now()
	measureAt := start.Add(spec.warmup)
	end := measureAt.Add(spec.dur)
	ctx, cancel := context.WithDeadline(ctx, end.Add(10*time.Second))
	defer cancel()
	interval := time.Duration(0)
	if spec.workload == httpPaced && spec.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(spec.conc) / spec.rate)
	}
	var (
		cpu     cpuUse
		cpuErr  error
		cpuDone = make(chan struct{})
	)
	go func() {
		defer close(cpuDone)
		if len(spec.cpuPIDs) > 0 {
			cpu, cpuErr = measureCPU(ctx, spec.cpuPIDs, measureAt, end)
		}
	}()
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			next := start.Add(time.Duration(i) * interval / time.Duration(spec.conc))
			for ctx.Err() == nil {
				t0 := time.Now()
				if interval > 0 {
					// Paced: latency counts from the scheduled time, so a
					// slow answer is not hidden by sending later.
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					t0 = next
					next = next.Add(interval)
				}
				if !t0.Before(end) {
					break
				}
				err := w.op(ctx)
				d := time.Since(t0)
				if t0.Before(measureAt) {
					continue // warm-up
				}
				if err != nil {
					if errs.Add(1) == 1 {
						errMu.Lock()
						firstErr = err.Error()
						errMu.Unlock()
					}
					continue
				}
				ops.Add(1)
				lat = append(lat, d)
			}
			lats[i] = lat
		}()
	}
	wg.Wait()
	<-cpuDone
	if cpuErr != nil {
		return result{}, fmt.Errorf("proxy CPU: %w", cpuErr)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	elapsed := time.Since(measureAt)
	if elapsed > spec.dur {
		elapsed = spec.dur // ops started after end are not run
	}
	r := result{ops: ops.Load(), errs: errs.Load(), firstErr: firstErr, elapsed: elapsed, lat: all}
	if len(spec.cpuPIDs) > 0 {
		r.cpu = &cpu
	}
	return r, nil
}

func newWorker(ctx context.Context, workload string, c client) (worker, error) {
	switch workload {
	case httpKeepAlive, httpPaced:
		w := &httpWorker{c: c, req: buildRequest(c, false), check: c.wantParams}
		return w, w.connect(ctx)
	case httpNewConn:
		return &httpWorker{c: c, req: buildRequest(c, false), check: c.wantParams, fresh: true}, nil
	case httpByID:
		w := &httpWorker{c: c, req: buildRequestTo(c, byIDPath(benchActorID), false), check: c.wantParams}
		return w, w.connect(ctx)
	case httpByFreshID:
		w := &httpWorker{c: c, check: c.wantParams, newID: rand.New(rand.NewPCG(rand.Uint64(), 1))}
		return w, w.connect(ctx)
	case wsSetup:
		return &wsSetupWorker{c: c, check: c.wantParams}, nil
	case wsRoundTrip:
		conn, err := dialWS(ctx, c, c.wantParams)
		if err != nil {
			return nil, err
		}
		return &wsRTWorker{conn: conn, msg: []byte(wsMessage)}, nil
	}
	return nil, fmt.Errorf("unknown workload %q", workload)
}

// buildRequest is the raw action request: the loader writes bytes and
// parses the answer itself, so that it costs as little CPU as it can.
func buildRequest(c client, closeConn bool) []byte {
	return buildRequestTo(c, actionPath, closeConn)
}

// byIDPath is the action of actionPath addressed by actor id.
func byIDPath(id string) string { return "/gateway/" + id + "/action/increment" }

// randomActorID returns a valid engine actor id (version 1).
func randomActorID(r *rand.Rand) string {
	var v [19]byte
	v[0] = 1
	for i := 1; i < len(v); i++ {
		v[i] = byte(r.Uint32())
	}
	return rivet.FormatActorID(v)
}

func buildRequestTo(c client, path string, closeConn bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nX-Rivet-Encoding: json\r\n", path, c.addr)
	if c.token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", c.token)
	}
	if closeConn {
		b.WriteString("Connection: close\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(actionBody), actionBody)
	return b.Bytes()
}

type httpWorker struct {
	c     client
	req   []byte
	newID *rand.Rand // set: a new actor id (and request) per op
	fresh bool       // a new connection per op
	check string     // conn params to find in the next answer ("" once checked)
	conn  net.Conn
	br    *bufio.Reader
	body  []byte
}

func (w *httpWorker) connect(ctx context.Context) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", w.c.addr)
	if err != nil {
		return err
	}
	w.conn = conn
	if w.br == nil {
		w.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		w.br.Reset(conn)
	}
	return nil
}

func (w *httpWorker) close() {
	if w.conn != nil {
		if tc, ok := w.conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // no TIME_WAIT left behind by the loader
		}
		_ = w.conn.Close()
		w.conn = nil
	}
}

func (w *httpWorker) op(ctx context.Context) error {
	if w.conn == nil {
		if err := w.connect(ctx); err != nil {
			return err
		}
	}
	if w.fresh {
		defer w.close()
	}
	if w.newID != nil {
		w.req = buildRequestTo(w.c, byIDPath(randomActorID(w.newID)), false)
	}
	_ = w.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := w.conn.Write(w.req); err != nil {
		w.close()
		return err
	}
	status, body, closing, err := readResponse(w.br, w.body[:0])
	w.body = body
	if err != nil {
		w.close()
		return err
	}
	if closing {
		w.close() // the server ends the connection: the next op reconnects
	}
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", status, body)
	}
	if w.check != "" {
		if !bytes.Contains(body, []byte(w.check)) {
			return fmt.Errorf("conn params %s not in answer %.300s", w.check, body)
		}
		w.check = ""
	}
	return nil
}

// readResponse reads one HTTP/1.1 response (Content-Length or chunked
// body) into buf; closing reports "Connection: close".
func readResponse(br *bufio.Reader, buf []byte) (int, []byte, bool, error) {
	closing := false
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, buf, closing, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, buf, closing, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, buf, closing, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, buf, closing, err
		}
		if len(line) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "content-length"):
			length, _ = strconv.Atoi(string(v))
		case asciiEqualFold(k, "connection"):
			closing = bytes.EqualFold(v, []byte("close"))
		case asciiEqualFold(k, "transfer-encoding"):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		}
	}
	if chunked {
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return 0, buf, closing, err
			}
			sz, err := strconv.ParseInt(strings.TrimSpace(string(bytes.SplitN(line, []byte(";"), 2)[0])), 16, 64)
			if err != nil {
				return 0, buf, closing, fmt.Errorf("bad chunk size %q", line)
			}
			if sz == 0 {
				_, err = br.ReadSlice('\n') // the final CRLF (no trailers)
				return status, buf, closing, err
			}
			buf, err = readN(br, buf, int(sz))
			if err != nil {
				return 0, buf, closing, err
			}
			if _, err := br.Discard(2); err != nil {
				return 0, buf, closing, err
			}
		}
	}
	if length < 0 {
		return 0, buf, closing, errors.New("response without Content-Length")
	}
	buf, err = readN(br, buf, length)
	return status, buf, closing, err
}

func readN(br *bufio.Reader, buf []byte, n int) ([]byte, error) {
	start := len(buf)
	buf = slices.Grow(buf, n)[:start+n]
	_, err := io.ReadFull(br, buf[start:])
	return buf, err
}

func asciiEqualFold(b []byte, s string) bool {
	return len(b) == len(s) && bytes.EqualFold(b, []byte(s))
}

// wsProtocols are the subprotocols a RivetKit JSON client offers, the
// credential carried in the conn params as a browser does.
func wsProtocols(c client) []string {
	params := `{}`
	if c.token != "" {
		params = `{"authToken":"` + c.token + `"}`
	}
	return []string{"rivet", "rivet_encoding.json", "rivet_conn_params." + url.QueryEscape(params)}
}

var wsDialer = websocket.Dialer{
	HandshakeTimeout: 10 * time.Second,
	ReadBufferSize:   1024,
	WriteBufferSize:  1024,
	NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		return d.DialContext(ctx, network, addr)
	},
}

// dialWS opens /connect and reads the init message; when check is set the
// params it reports must contain it.
func dialWS(ctx context.Context, c client, check string) (*websocket.Conn, error) {
	d := wsDialer
	d.Subprotocols = wsProtocols(c)
	conn, res, err := d.DialContext(ctx, "ws://"+c.addr+connectPath, nil)
	if err != nil {
		if res != nil {
			return nil, fmt.Errorf("%w (status %d)", err, res.StatusCode)
		}
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("init message: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if !bytes.HasPrefix(msg, []byte(`{"type":"init"`)) {
		conn.Close()
		return nil, fmt.Errorf("first message %.200q is no init", msg)
	}
	if check != "" && !bytes.Contains(msg, []byte(check)) {
		conn.Close()
		return nil, fmt.Errorf("conn params %s not in init message %.300s", check, msg)
	}
	return conn, nil
}

// closeWS runs the close handshake (bounded) and closes the connection
// without leaving TIME_WAIT behind.
func closeWS(conn *websocket.Conn) error {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(2*time.Second))
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	var err error
	for {
		if _, _, err = conn.NextReader(); err != nil {
			break
		}
	}
	if tc, ok := conn.NetConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseNoStatusReceived) {
		return nil
	}
	return fmt.Errorf("close handshake: %v", err)
}

type wsSetupWorker struct {
	c     client
	check string
}

func (w *wsSetupWorker) op(ctx context.Context) error {
	conn, err := dialWS(ctx, w.c, w.check)
	if err != nil {
		return err
	}
	w.check = ""
	return closeWS(conn)
}

func (w *wsSetupWorker) close() {}

type wsRTWorker struct {
	conn *websocket.Conn
	msg  []byte
}

func (w *wsRTWorker) op(context.Context) error {
	dl := time.Now().Add(10 * time.Second)
	_ = w.conn.SetWriteDeadline(dl)
	_ = w.conn.SetReadDeadline(dl)
	if err := w.conn.WriteMessage(websocket.TextMessage, w.msg); err != nil {
		return err
	}
	_, r, err := w.conn.NextReader()
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	if n != int64(len(w.msg)) {
		return fmt.Errorf("echo of %d bytes, want %d", n, len(w.msg))
	}
	return nil
}

func (w *wsRTWorker) close() { _ = closeWS(w.conn) }
