// Command bench is rivet-gateway's load harness: it measures the gateway
// against a direct connection to the same upstream, side by side, and runs
// the WebSocket soak.
//
//	go run ./bench                      quick mode (< 2½ min), table in bench/results/latest.md
//	go run ./bench -mode full           every workload and configuration (< 10 min)
//	go run ./bench -soak -conns 10000 -duration 2m
//
// Layout (one machine, two cores, -split): by default the engine stand-in
// (upstream) runs alone on core 0, and the proxy under test (rivet-gateway
// with GOMAXPROCS=1, or nginx with one worker and its auth service) shares
// core 1 with this loader and the params service; -split alone gives the
// proxy core 0 to itself instead. Each measured cell alternates direct and proxied
// runs (A/B/A/B...) and reports the median of the per-pair ratios
// proxied ops/s ÷ direct ops/s, with latency quantiles. See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

const pinnedEnv = "RIVET_BENCH_PINNED"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(run(os.Args[1:], os.Stdout))
}

// options are the command-line settings.
type options struct {
	mode       string
	out        string
	gatewayBin string
	pin        bool
	split      string
	conc       int
	dur        time.Duration
	warmup     time.Duration
	pairs      int
	only       string // comma-separated workloads or cell names to run
	memConns   int
	profileDir string
	nginx      bool
	paceRate   float64
	gatewayEnv string

	soak         bool
	soakConns    int
	soakDuration time.Duration
	soakInterval time.Duration
	soakSample   time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.mode, "mode", "quick", "quick (< 2½ min) | full (< 10 min) | smoke (seconds, for tests)")
	fs.StringVar(&o.out, "out", "bench/results/latest.md", "file the table is written to (\"\" = none)")
	fs.StringVar(&o.gatewayBin, "gateway-bin", "", "prebuilt rivet-gateway binary (default: go build ./cmd/rivet-gateway)")
	fs.BoolVar(&o.pin, "pin", true, "pin processes with taskset (see -split) when taskset exists")
	fs.StringVar(&o.split, "split", "shared", "shared: upstream alone on core 0, proxy and loader on core 1 | alone: proxy alone on core 0, loader and upstream on core 1")
	fs.IntVar(&o.conc, "c", 32, "concurrent connections per run")
	fs.DurationVar(&o.dur, "d", 0, "measured duration of one run (default per mode)")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up before each run (default per mode)")
	fs.IntVar(&o.pairs, "pairs", 0, "direct/proxied pairs per cell (default per mode)")
	fs.StringVar(&o.only, "only", "", "run only cells whose workload, configuration, proxy or workload/configuration matches one of these (comma-separated), e.g. http-ka,hs256+claims or http-ka/hs256+claims")
	fs.IntVar(&o.memConns, "mem-conns", -1, "idle WebSockets for the memory measurement (default per mode; 0 = skip)")
	fs.StringVar(&o.profileDir, "profile", "", "save a gateway CPU profile of every proxied run into this directory")
	fs.BoolVar(&o.nginx, "nginx", true, "measure nginx as a reference when it is installed")
	fs.Float64Var(&o.paceRate, "pace", 2000, "total request rate of the paced latency run (ops/s)")
	fs.StringVar(&o.gatewayEnv, "gateway-env", "", "extra environment of the gateway process, comma-separated KEY=VALUE (e.g. GOGC=400,GOMEMLIMIT=256MiB); recorded in the report")
	fs.BoolVar(&o.soak, "soak", false, "run the WebSocket soak instead of the benchmark")
	fs.IntVar(&o.soakConns, "conns", 10000, "soak: concurrent WebSockets")
	fs.DurationVar(&o.soakDuration, "duration", 2*time.Minute, "soak: how long all connections stay open")
	fs.DurationVar(&o.soakInterval, "interval", 5*time.Second, "soak: each connection sends a message this often (jittered)")
	fs.DurationVar(&o.soakSample, "sample", 5*time.Second, "soak: memory sampling period")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	def := map[string]struct {
		dur, warmup time.Duration
		pairs, mem  int
	}{
		"smoke": {300 * time.Millisecond, 100 * time.Millisecond, 1, 50},
		"quick": {time.Second, 250 * time.Millisecond, 2, 1000},
		"full":  {3 * time.Second, 500 * time.Millisecond, 2, 10000},
	}
	d, ok := def[o.mode]
	if !ok {
		return o, fmt.Errorf("unknown -mode %q", o.mode)
	}
	if _, ok := layouts[o.split]; !ok {
		return o, fmt.Errorf("unknown -split %q (want shared or alone)", o.split)
	}
	if o.dur == 0 {
		o.dur = d.dur
	}
	if o.warmup == 0 {
		o.warmup = d.warmup
	}
	if o.pairs == 0 {
		o.pairs = d.pairs
	}
	if o.memConns < 0 {
		o.memConns = d.mem
	}
	return o, nil
}

// run is the command; it returns the exit code.
func run(args []string, stdout io.Writer) int {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		return 2
	}
	if o.pin {
		if _, err := exec.LookPath("taskset"); err != nil {
			fmt.Fprintln(stdout, "taskset not found: processes are not pinned (numbers are less comparable)")
			o.pin = false
		} else if runtime.NumCPU() < 2 && os.Getenv(pinnedEnv) == "" {
			fmt.Fprintln(stdout, "fewer than 2 CPUs: processes are not pinned")
			o.pin = false
		}
	}
	if o.pin && os.Getenv(pinnedEnv) == "" {
		// Re-run this loader pinned to the load core.
		self, err := os.Executable()
		if err == nil {
			argv := append([]string{"taskset", "-c", layouts[o.split].load, self}, args...)
			tp, _ := exec.LookPath("taskset")
			err = syscall.Exec(tp, argv, append(os.Environ(), pinnedEnv+"=1"))
		}
		fmt.Fprintf(stdout, "re-exec under taskset failed (%v): not pinned\n", err)
		o.pin = false
	}
	raiseNoFile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.soak {
		res, err := runSoak(ctx, o, stdout)
		if err != nil {
			fmt.Fprintln(stdout, "soak:", err)
			return 1
		}
		if !res.ok() {
			return 1
		}
		return 0
	}
	rep, err := runBench(ctx, o, stdout)
	if err != nil {
		fmt.Fprintln(stdout, "bench:", err)
		return 1
	}
	if o.out != "" {
		if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err == nil {
			err = os.WriteFile(o.out, []byte(rep), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stdout, "writing", o.out+":", err)
			return 1
		}
		fmt.Fprintln(stdout, "written to", o.out)
	}
	return 0
}

// raiseNoFile raises this process's open-file soft limit to its hard limit
// (Go does this at start-up too; children inherit it).
func raiseNoFile() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Max
}

// cell is one line of the table: a workload through one proxy
// configuration, measured against direct.
type cell struct {
	workload string
	proxy    string // "rivet-gateway", "nginx" or "go-reverseproxy"
	config   string // variant name, or nginx's "plain" / "auth_request"
}

func (c cell) matches(filter string) bool {
	if filter == "" {
		return true
	}
	for _, f := range strings.Split(filter, ",") {
		if f == c.workload || f == c.config || f == c.proxy || f == c.workload+"/"+c.config {
			return true
		}
	}
	return false
}

func cellsFor(mode string) []cell {
	g := func(w string, vs ...string) []cell {
		var out []cell
		for _, v := range vs {
			out = append(out, cell{w, "rivet-gateway", v})
		}
		return out
	}
	n := func(w string, cs ...string) []cell {
		var out []cell
		for _, c := range cs {
			out = append(out, cell{w, "nginx", c})
		}
		return out
	}
	gp := func(ws ...string) []cell {
		var out []cell
		for _, w := range ws {
			out = append(out, cell{w, goReverseProxy, "plain"})
		}
		return out
	}
	all := []string{"none", "hs256", "es256", "hs256+claims", "hs256+httpsvc"}
	var cs []cell
	switch mode {
	case "smoke":
		cs = append(cs, g(httpKeepAlive, "none", "hs256+claims")...)
		cs = append(cs, g(httpPaced, "hs256+claims")...)
		cs = append(cs, g(wsSetup, "hs256+claims")...)
		cs = append(cs, g(wsRoundTrip, "hs256+claims")...)
	case "quick":
		cs = append(cs, g(httpKeepAlive, slices.Concat(all, []string{"hs256+claims+log"})...)...)
		cs = append(cs, n(httpKeepAlive, "plain", "auth_request")...)
		cs = append(cs, g(httpPaced, "hs256+claims")...)
		cs = append(cs, g(httpByID, "hs256+claims")...)
		cs = append(cs, g(httpByFreshID, "hs256+claims")...)
		cs = append(cs, g(httpNewConn, "none", "hs256+claims")...)
		cs = append(cs, n(httpNewConn, "plain")...)
		cs = append(cs, g(wsSetup, "none", "hs256+claims")...)
		cs = append(cs, n(wsSetup, "plain", "auth_request")...)
		cs = append(cs, g(wsRoundTrip, "hs256+claims")...)
		cs = append(cs, n(wsRoundTrip, "plain")...)
		cs = append(cs, n(httpPaced, "plain", "auth_request")...)
		cs = append(cs, gp(httpKeepAlive, httpPaced, httpNewConn, wsSetup, wsRoundTrip)...)
	default: // full
		cs = append(cs, g(httpKeepAlive, slices.Concat(all, []string{"hs256+claims+log", "hs256+claims+nethttp"})...)...)
		cs = append(cs, n(httpKeepAlive, "plain", "auth_request")...)
		cs = append(cs, g(httpPaced, "none", "hs256+claims", "hs256+claims+nethttp")...)
		cs = append(cs, g(httpByID, "none", "hs256+claims")...)
		cs = append(cs, g(httpByFreshID, "none", "hs256+claims")...)
		cs = append(cs, g(httpNewConn, all...)...)
		cs = append(cs, n(httpNewConn, "plain", "auth_request")...)
		cs = append(cs, g(wsSetup, all...)...)
		cs = append(cs, n(wsSetup, "plain", "auth_request")...)
		cs = append(cs, g(wsRoundTrip, "none", "hs256+claims")...)
		cs = append(cs, n(wsRoundTrip, "plain", "auth_request")...)
		cs = append(cs, n(httpPaced, "plain", "auth_request")...)
		cs = append(cs, gp(httpKeepAlive, httpPaced, httpNewConn, wsSetup, wsRoundTrip)...)
	}
	return cs
}

// goReverseProxy names the bare net/http/httputil.ReverseProxy reference
// (the goproxy role).
const goReverseProxy = "go-reverseproxy"

// measured is a cell's runs.
type measured struct {
	cell
	direct, proxied []result
	skipped         string
}

// runBench measures every cell of the mode and returns the report.
func runBench(ctx context.Context, o options, log io.Writer) (string, error) {
	e, err := newEnv(o.gatewayBin, o.pin, layouts[o.split], log)
	if err != nil {
		return "", err
	}
	defer e.close()
	if o.gatewayEnv != "" {
		e.gatewayEnv = strings.Split(o.gatewayEnv, ",")
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return "", err
		}
	}
	if o.only == "memory" {
		o.only = "-" // no cell matches
	}
	cells := slices.DeleteFunc(cellsFor(o.mode), func(c cell) bool { return !c.matches(o.only) })
	var results []*measured
	started := time.Now()
	loadStart := loadAvg()

	// Gateway cells, grouped by configuration: one gateway per variant.
	for _, v := range variants {
		var vcells []cell
		for _, c := range cells {
			if c.proxy == "rivet-gateway" && c.config == v.name {
				vcells = append(vcells, c)
			}
		}
		if len(vcells) == 0 {
			continue
		}
		gw, err := e.startGateway(v)
		if err != nil {
			return "", err
		}
		direct := client{addr: e.upstream.addr, token: e.token(v)}
		proxied := client{addr: gw.addr, token: e.token(v), wantParams: wantParams(v)}
		for _, c := range vcells {
			// Just the gateway: the params service of +httpsvc is on the
			// loader's core, like the engine's would be elsewhere.
			m, err := measureCell(ctx, o, c, direct, proxied, procTrees(gw.proc), gw.admin, log)
			if err != nil {
				gw.stop()
				return "", fmt.Errorf("%s %s: %w\n%s", c.workload, c.config, err, tail(gw.out.String(), 20))
			}
			results = append(results, m)
		}
		gw.stop()
	}

	// nginx reference cells.
	var ngx *nginx
	for _, c := range cells {
		if c.proxy != "nginx" {
			continue
		}
		if !o.nginx {
			results = append(results, &measured{cell: c, skipped: "disabled (-nginx=false)"})
			continue
		}
		if ngx == nil {
			if ngx, err = e.startNginx(); err != nil {
				return "", err
			}
			if ngx == nil {
				fmt.Fprintln(log, "nginx not installed: reference skipped")
				o.nginx = false
				results = append(results, &measured{cell: c, skipped: "nginx not installed"})
				continue
			}
			defer ngx.stop()
		}
		direct := client{addr: e.upstream.addr}
		proxied := client{addr: ngx.plainAddr}
		pids := procTrees(ngx.proc) // master and worker
		if c.config == "auth_request" {
			direct.token, proxied.token, proxied.addr = e.hsToken, e.hsToken, ngx.authAddr
			pids = procTrees(ngx.proc, e.auth) // authenticating is part of its cost
		}
		m, err := measureCell(ctx, o, c, direct, proxied, pids, "", log)
		if err != nil {
			return "", fmt.Errorf("nginx %s %s: %w", c.workload, c.config, err)
		}
		results = append(results, m)
	}

	// The bare Go reverse proxy reference cells.
	var gop *proc
	for _, c := range cells {
		if c.proxy != goReverseProxy {
			continue
		}
		if gop == nil {
			if gop, err = e.startRole("goproxy", e.cores.proxy, targetEnv+"="+e.upstream.addr); err != nil {
				return "", err
			}
			defer gop.stop()
		}
		m, err := measureCell(ctx, o, c, client{addr: e.upstream.addr}, client{addr: gop.addr}, procTrees(gop), "", log)
		if err != nil {
			return "", fmt.Errorf("%s %s: %w", goReverseProxy, c.workload, err)
		}
		results = append(results, m)
	}

	var mem *memResult
	if o.memConns > 0 && (o.only == "" || o.only == "-" || slices.Contains(strings.Split(o.only, ","), "memory")) {
		if mem, err = measureIdleMemory(ctx, e, o.memConns, o.profileDir, log); err != nil {
			return "", fmt.Errorf("idle WebSocket memory: %w", err)
		}
	}
	return report(o, e, results, mem, time.Since(started), loadStart+" / "+loadAvg()), nil
}

// measureCell alternates direct and proxied runs; proxyPIDs are the
// processes whose CPU the proxied runs count.
func measureCell(ctx context.Context, o options, c cell, direct, proxied client, proxyPIDs func() ([]int, error), admin string, log io.Writer) (*measured, error) {
	m := &measured{cell: c}
	spec := loadSpec{workload: c.workload, conc: o.conc, warmup: o.warmup, dur: o.dur, rate: o.paceRate}
	for i := 0; i < o.pairs; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a, err := runLoad(ctx, spec, direct)
		if err != nil {
			return nil, fmt.Errorf("direct: %w", err)
		}
		var profErr chan error
		if o.profileDir != "" && admin != "" {
			profErr = make(chan error, 1)
			name := filepath.Join(o.profileDir, fmt.Sprintf("%s_%s_%d.pprof", c.workload, strings.ReplaceAll(c.config, "+", "-"), i))
			go func() { profErr <- fetchProfile(admin, o.warmup+o.dur, name) }()
		}
		pspec := spec
		if pspec.cpuPIDs, err = proxyPIDs(); err != nil {
			return nil, fmt.Errorf("proxy processes: %w", err)
		}
		b, err := runLoad(ctx, pspec, proxied)
		if profErr != nil {
			if perr := <-profErr; perr != nil {
				fmt.Fprintln(log, "profile:", perr)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("proxied: %w", err)
		}
		m.direct = append(m.direct, a)
		m.proxied = append(m.proxied, b)
		fmt.Fprintf(log, "%-10s %-14s %-13s pair %d: direct %8.0f ops/s  proxied %8.0f ops/s  ratio %.2f  proxy CPU %sµs/op%s\n",
			c.workload, c.proxy, c.config, i+1, a.rate(), b.rate(), ratio(a, b), fmtUs(b.cpuPerOp().total()), errNote(a, b))
		if b.ops == 0 && b.errs > 0 {
			return nil, fmt.Errorf("every proxied op failed: %s", b.firstErr)
		}
		if a.ops == 0 && a.errs > 0 {
			return nil, fmt.Errorf("every direct op failed: %s", a.firstErr)
		}
	}
	return m, nil
}

func ratio(a, b result) float64 {
	if a.rate() == 0 {
		return 0
	}
	return b.rate() / a.rate()
}

func errNote(a, b result) string {
	if a.errs+b.errs == 0 {
		return ""
	}
	return fmt.Sprintf("  errors direct %d proxied %d (%s%s)", a.errs, b.errs, a.firstErr, b.firstErr)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDur(rs []result, q float64) time.Duration {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = float64(r.quantile(q))
	}
	return time.Duration(median(xs))
}

// fmtUs is d in µs without the unit, to two or three significant digits.
func fmtUs(d time.Duration) string {
	us := d.Seconds() * 1e6
	if us < 10 {
		return fmt.Sprintf("%.1f", us)
	}
	return fmt.Sprintf("%.0f", us)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0fms", d.Seconds()*1e3)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", d.Seconds()*1e3)
	default:
		return fmt.Sprintf("%.0fµs", d.Seconds()*1e6)
	}
}

// report renders the results as Markdown.
func report(o options, e *env, ms []*measured, mem *memResult, took time.Duration, load string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# rivet-gateway benchmark (%s mode)\n\n", o.mode)
	fmt.Fprintf(&b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %s\n", machine())
	pin := e.cores.desc
	if !o.pin {
		pin = "not pinned (taskset missing or -pin=false)"
	}
	fmt.Fprintf(&b, "- layout: %s\n", pin)
	fmt.Fprintf(&b, "- machine load average (1 min) at start / end: %s (anything else running skews the numbers)\n", load)
	fmt.Fprintf(&b, "- runs: %d connections, %v warm-up + %v measured per run, %d direct/proxied pairs per cell (A/B/A/B), ratio = median of per-pair proxied ÷ direct ops/s; latency = median over runs of each run's quantile; took %v\n",
		o.conc, o.warmup, o.dur, o.pairs, took.Round(time.Second))
	b.WriteString("- proxy CPU/op: user + system CPU time of the proxy's processes (the gateway alone, not the params service; nginx's master and worker, plus the auth service for auth_request; the goproxy role) over each proxied run's measured window ÷ the ops counted in it (ws-setup: per setup and close; ws-rt: per round trip, one message each way), from /proc (ns per thread; the user/sys split from 10 ms ticks); median of the pairs, per pair in parentheses. It does not depend on how much CPU the VM gave the loader, so it is steadier than the ratio; it is higher when the proxy batches less (paced, or starved)\n")
	if o.gatewayEnv != "" {
		fmt.Fprintf(&b, "- gateway environment: %s\n", o.gatewayEnv)
	}
	b.WriteString("- gateway: production defaults, metrics on, access log off; configs: none = anonymous, no params; hs256 / es256 = JWT bearer (HTTP) or conn-params authToken (WebSocket); +claims = params from claims; +log = the access log on at its defaults (stdout); +nethttp = upstream.transport net/http (every request by net/http's Transport, the gateway's transport before the direct one); +httpsvc = params from an HTTP params service (on the loader's core). nginx: plain proxy_pass with keepalive, and auth_request to a Go JWT (HS256) service on the proxy's core; access_log off. go-reverseproxy: a bare net/http/httputil.ReverseProxy (no auth, no params, GOMAXPROCS=1) on the proxy's core\n\n")
	b.WriteString("| workload | proxy | config | direct ops/s | proxied ops/s | ratio (pairs) | proxy CPU/op (pairs; user / sys) | direct p50 / p99 | proxied p50 / p99 | added p99 | errors |\n")
	b.WriteString("| --- | --- | --- | ---: | ---: | --- | --- | --- | --- | ---: | ---: |\n")
	for _, m := range ms {
		if m.skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | %s | | | skipped: %s | | | | | |\n", m.workload, m.proxy, m.config, m.skipped)
			continue
		}
		var ratios, drates, prates, cpus, users, syss []float64
		var errs int64
		var pairs, cpuPairs []string
		for i := range m.direct {
			r := ratio(m.direct[i], m.proxied[i])
			ratios = append(ratios, r)
			pairs = append(pairs, fmt.Sprintf("%.2f", r))
			if m.proxied[i].cpu != nil {
				c := m.proxied[i].cpuPerOp()
				cpus, users, syss = append(cpus, float64(c.total())), append(users, float64(c.user)), append(syss, float64(c.sys))
				cpuPairs = append(cpuPairs, fmtUs(c.total()))
			}
			drates = append(drates, m.direct[i].rate())
			prates = append(prates, m.proxied[i].rate())
			errs += m.direct[i].errs + m.proxied[i].errs
		}
		dp50, dp99 := medianDur(m.direct, 0.5), medianDur(m.direct, 0.99)
		pp50, pp99 := medianDur(m.proxied, 0.5), medianDur(m.proxied, 0.99)
		wl := m.workload
		if wl == httpPaced {
			wl = fmt.Sprintf("%s (%.0f/s)", wl, o.paceRate)
		}
		cpu := ""
		if len(cpus) > 0 {
			cpu = fmt.Sprintf("**%s µs** (%s; u %s / s %s)", fmtUs(time.Duration(median(cpus))), strings.Join(cpuPairs, ", "),
				fmtUs(time.Duration(median(users))), fmtUs(time.Duration(median(syss))))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f | **%.2f** (%s) | %s | %s / %s | %s / %s | %s | %d |\n",
			wl, m.proxy, m.config, median(drates), median(prates), median(ratios), strings.Join(pairs, ", "), cpu,
			fmtDur(dp50), fmtDur(dp99), fmtDur(pp50), fmtDur(pp99), fmtDur(pp99-dp99), errs)
	}
	b.WriteString("\nWorkloads: http-ka = POST /gateway/<query target>/action/increment over keep-alive connections (closed loop); http-paced = the same at a fixed total rate (latency from the scheduled send time); http-id = http-ka addressed by actor id (/gateway/<id>/action/increment: the gateway resolves the id once, then from its cache); http-id-fresh = the same with a new actor id on every request (every request costs the gateway an actor lookup at the engine); http-new = one new TCP connection per request; ws-setup = open /connect (subprotocols rivet, rivet_encoding.json, rivet_conn_params), read the upstream's init message reporting the params it received, close handshake; ws-rt = 53-byte message round trips over established /connect connections.\n")
	if mem != nil {
		b.WriteString("\n" + mem.String())
	}
	return b.String()
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}

func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := ""
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(data))
	}
	ngx := "nginx not installed"
	if out, err := exec.Command("nginx", "-v").CombinedOutput(); err == nil {
		ngx = strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
	}
	cpus := 0
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		cpus = strings.Count(string(data), "\nprocessor")
		if strings.HasPrefix(string(data), "processor") {
			cpus++
		}
	}
	if cpus == 0 {
		cpus = runtime.NumCPU()
	}
	return fmt.Sprintf("%s, %d CPUs%s, %s, %s", model, cpus, kernel, runtime.Version(), ngx)
}
