package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Memory per idle WebSocket target (issue 14, tightened from issue 7's
// 24 KiB): gateway heap + stacks.
const memTargetPerConn = 16 << 10

// maxConnsForFDs caps n WebSockets to what the gateway's open-file limit
// allows (two descriptors per proxied WebSocket, plus listeners and pools).
// The children inherit this process's limit; Go raises the soft limit to
// the hard one at start-up.
func maxConnsForFDs(n int) (int, string) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return n, ""
	}
	limit := int(min(rl.Max, 1<<30))
	if maxN := (limit - 200) / 2; n > maxN {
		return maxN, fmt.Sprintf("capped from %d: the open-file hard limit here is %d and the gateway needs 2 per WebSocket", n, limit)
	}
	return n, ""
}

// openConns opens n WebSockets to c, at most par at a time.
func openConns(ctx context.Context, c client, n, par int) ([]*websocket.Conn, error) {
	conns := make([]*websocket.Conn, n)
	var (
		next     atomic.Int64
		firstErr error
		errMu    sync.Mutex
		wg       sync.WaitGroup
	)
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				conn, err := dialWS(ctx, c, c.wantParams)
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					errMu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
				conns[i] = conn
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		closeConns(conns, par)
		return nil, firstErr
	}
	return conns, nil
}

// closeConns closes every non-nil connection with a close handshake and
// returns how many handshakes failed.
func closeConns(conns []*websocket.Conn, par int) int {
	var failed atomic.Int64
	ch := make(chan *websocket.Conn)
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				if closeWS(c) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	for _, c := range conns {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
	return int(failed.Load())
}

// memResult is the idle WebSocket memory measurement.
type memResult struct {
	conns         int
	note          string
	before, after gwStats
}

func (m *memResult) perConn() float64 {
	return float64(m.after.mem()-m.before.mem()) / float64(m.conns)
}

func (m *memResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Memory per idle proxied WebSocket (gateway heap in use + goroutine stacks, after a forced GC, config hs256+claims, %d connections", m.conns)
	if m.note != "" {
		fmt.Fprintf(&b, "; %s", m.note)
	}
	fmt.Fprintf(&b, "): **%.1f KiB** (target ≤ %d KiB): heap %.1f KiB + stacks %.1f KiB, %.2f goroutines per connection; before %.1f MiB, after %.1f MiB.\n",
		m.perConn()/1024, memTargetPerConn>>10,
		float64(m.after.heap-m.before.heap)/float64(m.conns)/1024, float64(m.after.stack-m.before.stack)/float64(m.conns)/1024,
		float64(m.after.goroutines-m.before.goroutines)/float64(m.conns),
		float64(m.before.mem())/(1<<20), float64(m.after.mem())/(1<<20))
	return b.String()
}

// measureIdleMemory opens n idle WebSockets through a fresh gateway and
// divides the growth of its heap and stacks by n.
func measureIdleMemory(ctx context.Context, e *env, n int, profileDir string, log io.Writer) (*memResult, error) {
	n, note := maxConnsForFDs(n)
	gw, c, err := e.claimsGateway()
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	// Warm the gateway's pools before the baseline.
	warm, err := openConns(ctx, c, 16, 16)
	if err != nil {
		return nil, err
	}
	closeConns(warm, 16)
	time.Sleep(200 * time.Millisecond)
	m := &memResult{conns: n, note: note}
	if m.before, err = readGatewayStats(gw.admin); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "opening %d idle WebSockets through the gateway ...\n", n)
	conns, err := openConns(ctx, c, n, 64)
	if err != nil {
		return nil, err
	}
	time.Sleep(time.Second)
	m.after, err = readGatewayStats(gw.admin)
	if profileDir != "" {
		for _, name := range []string{"heap", "goroutine"} {
			if perr := fetchURL("http://"+gw.admin+"/debug/pprof/"+name, filepath.Join(profileDir, "idle-ws-"+name+".pprof"), time.Minute); perr != nil {
				fmt.Fprintln(log, "profile:", perr)
			}
		}
	}
	closeConns(conns, 64)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(log, m.String())
	return m, nil
}

// soakResult is the outcome of a soak.
type soakResult struct {
	conns, requested int
	note             string
	duration         time.Duration
	roundTrips       int64
	unexpected       int64
	firstUnexpected  string
	closeFailures    int
	samples          []memSample
	slopePerMin      float64 // bytes per minute, fitted after the warm-up
	mean             float64
	maxGrowth        float64 // allowed growth over the soak, bytes
}

type memSample struct {
	at time.Duration
	gwStats
}

func (r *soakResult) growth() float64 { return r.slopePerMin * r.duration.Minutes() }

func (r *soakResult) flat() bool { return r.growth() <= r.maxGrowth }

func (r *soakResult) ok() bool { return r.unexpected == 0 && r.flat() }

func (r *soakResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %d WebSockets", r.conns)
	if r.note != "" {
		fmt.Fprintf(&b, " (%s)", r.note)
	}
	fmt.Fprintf(&b, " for %v: %d round trips, %d unexpected closes", r.duration, r.roundTrips, r.unexpected)
	if r.firstUnexpected != "" {
		fmt.Fprintf(&b, " (first: %s)", r.firstUnexpected)
	}
	fmt.Fprintf(&b, ", %d failed close handshakes at the end\n", r.closeFailures)
	for _, s := range r.samples {
		fmt.Fprintf(&b, "  t=%6.1fs  heap %7.1f MiB  stacks %6.1f MiB  goroutines %6d\n", s.at.Seconds(),
			float64(s.heap)/(1<<20), float64(s.stack)/(1<<20), s.goroutines)
	}
	fmt.Fprintf(&b, "memory (heap+stacks) mean %.1f MiB, fitted slope %+.2f MiB/min, growth over the soak %+.2f MiB (allowed %.2f MiB): %s\n",
		r.mean/(1<<20), r.slopePerMin/(1<<20), r.growth()/(1<<20), r.maxGrowth/(1<<20), map[bool]string{true: "flat", false: "GROWING"}[r.flat()])
	if r.conns > 0 && len(r.samples) > 0 {
		fmt.Fprintf(&b, "per connection (last sample, incl. baseline): %.1f KiB\n", float64(r.samples[len(r.samples)-1].mem())/float64(r.conns)/1024)
	}
	return b.String()
}

// runSoak opens o.soakConns WebSockets through the gateway, exchanges a
// message on each every o.soakInterval (jittered) for o.soakDuration,
// samples the gateway's memory, and closes them all.
func runSoak(ctx context.Context, o options, log io.Writer) (*soakResult, error) {
	e, err := newEnv(o.gatewayBin, o.pin, layouts[o.split], log)
	if err != nil {
		return nil, err
	}
	defer e.close()
	return soak(ctx, e, o, log)
}

func soak(ctx context.Context, e *env, o options, log io.Writer) (*soakResult, error) {
	n, note := maxConnsForFDs(o.soakConns)
	res := &soakResult{conns: n, requested: o.soakConns, note: note, duration: o.soakDuration}
	gw, c, err := e.claimsGateway()
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	fmt.Fprintf(log, "soak: opening %d WebSockets ...\n", n)
	t0 := time.Now()
	conns, err := openConns(ctx, c, n, 64)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "soak: %d open after %v; exchanging messages every ~%v for %v\n", n, time.Since(t0).Round(time.Millisecond), o.soakInterval, o.soakDuration)

	var (
		stopping   atomic.Bool
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		errMu      sync.Mutex
		roundTrips atomic.Int64
		unexpected atomic.Int64
		dead       = make([]bool, n)
	)
	msg := []byte(wsMessage)
	for i, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			timer := time.NewTimer(time.Duration(rng.Int64N(int64(o.soakInterval))))
			defer timer.Stop()
			for {
				select {
				case <-stop:
					return
				case <-timer.C:
				}
				err := roundTrip(conn, msg)
				if err != nil {
					if !stopping.Load() {
						dead[i] = true
						if unexpected.Add(1) == 1 {
							errMu.Lock()
							res.firstUnexpected = err.Error()
							errMu.Unlock()
						}
					}
					return
				}
				roundTrips.Add(1)
				timer.Reset(time.Duration(float64(o.soakInterval) * (0.5 + rng.Float64())))
			}
		}()
	}

	start := time.Now()
	sample := func() error {
		st, err := readGatewayStats(gw.admin)
		if err != nil {
			return err
		}
		s := memSample{at: time.Since(start), gwStats: st}
		res.samples = append(res.samples, s)
		fmt.Fprintf(log, "  t=%6.1fs  heap %7.1f MiB  stacks %6.1f MiB  goroutines %6d  round trips %d  unexpected closes %d\n",
			s.at.Seconds(), float64(s.heap)/(1<<20), float64(s.stack)/(1<<20), s.goroutines, roundTrips.Load(), unexpected.Load())
		return nil
	}
	var sampleErr error
	if sampleErr = sample(); sampleErr == nil {
		ticker := time.NewTicker(o.soakSample)
	loop:
		for {
			select {
			case <-ctx.Done():
				sampleErr = ctx.Err()
				break loop
			case <-ticker.C:
				if time.Since(start) >= o.soakDuration {
					break loop
				}
				if sampleErr = sample(); sampleErr != nil {
					break loop
				}
			}
		}
		ticker.Stop()
		if sampleErr == nil {
			sampleErr = sample()
		}
	}
	stopping.Store(true)
	close(stop)
	wg.Wait()
	res.roundTrips = roundTrips.Load()
	res.unexpected = unexpected.Load()
	for i := range conns {
		if dead[i] {
			conns[i].Close()
			conns[i] = nil
		}
	}
	res.closeFailures = closeConns(conns, 64)
	if sampleErr != nil {
		return nil, sampleErr
	}
	res.fit(o.soakDuration)
	fmt.Fprint(log, res.String())
	return res, nil
}

// roundTrip sends msg and waits (bounded) for its echo.
func roundTrip(conn *websocket.Conn, msg []byte) error {
	dl := time.Now().Add(10 * time.Second)
	_ = conn.SetWriteDeadline(dl)
	_ = conn.SetReadDeadline(dl)
	if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
		return err
	}
	_, got, err := conn.ReadMessage()
	if err != nil {
		return err
	}
	if string(got) != string(msg) {
		return errors.New("echo differs")
	}
	return nil
}

// fit computes the least-squares slope of memory over the samples after
// the first fifth of the soak, and the growth allowed: 10% of the mean or
// 2 MiB, whichever is larger.
func (r *soakResult) fit(d time.Duration) {
	var xs, ys []float64
	for _, s := range r.samples {
		if s.at >= d/5 {
			xs = append(xs, s.at.Minutes())
			ys = append(ys, float64(s.mem()))
		}
	}
	if len(xs) < 2 {
		for _, s := range r.samples {
			xs = append(xs, s.at.Minutes())
			ys = append(ys, float64(s.mem()))
		}
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(xs))
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx > 0 {
		r.slopePerMin = sxy / sxx
	}
	r.mean = my
	r.maxGrowth = max(0.10*my, 2<<20)
}

// claimsGateway starts a gateway with JWT HS256 + params from claims (the
// configuration the memory and soak measurements use) and a client for it.
func (e *env) claimsGateway() (*gateway, client, error) {
	v := claimsVariant
	gw, err := e.startGateway(v)
	if err != nil {
		return nil, client{}, err
	}
	return gw, client{addr: gw.addr, token: e.token(v), wantParams: wantParams(v)}, nil
}
