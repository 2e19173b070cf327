package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
)

// layout is where each process runs (-split), by CPU number for taskset.
// With taskset missing nothing is pinned.
type layout struct {
	name string
	// proxy is the proxy under test: the gateway, or nginx and its
	// auth_request service.
	proxy string
	// upstream is the engine stand-in.
	upstream string
	// load is this loader and the params service.
	load string
	desc string
}

// layouts are the two splits of a two-core machine.
//
//   - shared (the default): the upstream alone on core 0, the proxy and the
//     loader together on core 1. Every cycle the proxy spends comes out of
//     the load, and the direct baseline runs with the loader alone on its
//     core: the ratio is what a proxy costs where CPU is the budget.
//   - alone: the proxy alone on core 0, the loader and the upstream on
//     core 1. The proxy gets a core it need not share, and the direct
//     baseline is slowed by the loader sharing the upstream's core: the
//     ratio shows throughput with CPU to spare, and flatters every proxy.
var layouts = map[string]layout{
	"shared": {name: "shared", proxy: "1", upstream: "0", load: "1",
		desc: "split shared: upstream alone on core 0; proxy (rivet-gateway / nginx + auth service, GOMAXPROCS=1 / one worker), loader and params service on core 1"},
	"alone": {name: "alone", proxy: "0", upstream: "1", load: "1",
		desc: "split alone: proxy (rivet-gateway / nginx + auth service) alone on core 0 with GOMAXPROCS=1 / one worker; loader, upstream and params service on core 1"},
}

const (
	benchIssuer   = "rivet-bench"
	benchIssuerES = "rivet-bench-es"
	benchAudience = "rivet"
	benchSubject  = "alice"
	benchRole     = "member"
)

// env is what every run shares: the binaries, the helper processes and
// the credentials.
type env struct {
	dir        string // temporary directory, removed by close
	self       string // this binary (roles are re-executed from it)
	gatewayBin string
	gatewayEnv []string // extra environment of the gateway (-gateway-env)
	pin        bool     // taskset is used
	cores      layout
	secret     string
	esKeyFile  string
	hsToken    string
	esToken    string

	upstream *proc
	params   *proc
	auth     *proc // nginx auth_request service, nil without nginx
	log      io.Writer
}

// proc is a child process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	out   *syncbuf.Buffer // bounded: the tail is what failures report
	done  chan struct{}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// command builds a command pinned to core (when pinning), with GOMAXPROCS=1.
func (e *env) command(core, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if e.pin {
		cmd = exec.Command("taskset", append([]string{"-c", core, name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// startRole starts this binary as role on core.
func (e *env) startRole(role, core string, extraEnv ...string) (*proc, error) {
	cmd := e.command(core, e.self)
	cmd.Env = append(cmd.Env, append([]string{roleEnv + "=" + role}, extraEnv...)...)
	p := &proc{name: role, cmd: cmd, out: &syncbuf.Buffer{Limit: 1 << 20}, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = p.out
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if p.addr, err = readListen(stdout, 30*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s: %w\n%s", role, err, tail(p.out.String(), 20))
	}
	return p, nil
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	if p.stdin != nil {
		_ = p.stdin.Close()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// newEnv builds the gateway (unless gatewayBin is given), makes the keys
// and tokens, and starts the upstream and the params service.
func newEnv(gatewayBin string, pin bool, cores layout, log io.Writer) (*env, error) {
	dir, err := os.MkdirTemp("", "rivet-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, pin: pin, cores: cores, log: log}
	ok := false
	defer func() {
		if !ok {
			e.close()
		}
	}()
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if gatewayBin == "" {
		gatewayBin = filepath.Join(dir, "rivet-gateway")
		fmt.Fprintln(log, "building ./cmd/rivet-gateway ...")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", gatewayBin, "./cmd/rivet-gateway")
		cmd.Dir, err = moduleRoot()
		if err != nil {
			return nil, err
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	e.gatewayBin = gatewayBin
	if err := e.makeCredentials(); err != nil {
		return nil, err
	}
	if e.upstream, err = e.startRole("upstream", e.cores.upstream); err != nil {
		return nil, err
	}
	if e.params, err = e.startRole("params", e.cores.load); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

func (e *env) close() {
	e.upstream.stop()
	e.params.stop()
	e.auth.stop()
	os.RemoveAll(e.dir)
}

// moduleRoot is the directory of go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found: run from inside the module")
		}
		dir = parent
	}
}

func (e *env) makeCredentials() error {
	var b [24]byte
	_, _ = rand.Read(b[:])
	e.secret = fmt.Sprintf("bench-secret-%x", b)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		return err
	}
	e.esKeyFile = filepath.Join(e.dir, "es256.pem")
	if err := os.WriteFile(e.esKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	claims := func(iss string) jwt.MapClaims {
		now := time.Now()
		return jwt.MapClaims{"iss": iss, "aud": benchAudience, "sub": benchSubject, "role": benchRole,
			"iat": now.Unix(), "exp": now.Add(6 * time.Hour).Unix()}
	}
	if e.hsToken, err = jwt.NewWithClaims(jwt.SigningMethodHS256, claims(benchIssuer)).SignedString([]byte(e.secret)); err != nil {
		return err
	}
	e.esToken, err = jwt.NewWithClaims(jwt.SigningMethodES256, claims(benchIssuerES)).SignedString(ec)
	return err
}

// variant is one gateway configuration under test.
type variant struct {
	name      string
	auth      string // "" (anonymous), "hs256", "es256"
	params    string // none | claims | http
	accessLog bool   // the log section left at its defaults: info, access log on
	netHTTP   bool   // upstream.transport net/http: every request by net/http's Transport
}

// variants are the gateway configurations, in the order a run measures
// them (one gateway each).
var variants = []variant{
	{name: "none", params: "none"},
	{name: "hs256", auth: "hs256", params: "none"},
	{name: "es256", auth: "es256", params: "none"},
	claimsVariant,
	// The access log at its defaults, written to the gateway's stdout (a
	// pipe the harness drains, as a container runtime does).
	{name: "hs256+claims+log", auth: "hs256", params: "claims", accessLog: true},
	// The upstream transport the gateway had before the direct one, for
	// comparison in the same run.
	{name: "hs256+claims+nethttp", auth: "hs256", params: "claims", netHTTP: true},
	{name: "hs256+httpsvc", auth: "hs256", params: "http"},
}

// claimsVariant is JWT HS256 + params from claims, the configuration the
// memory and soak measurements use.
var claimsVariant = variant{name: "hs256+claims", auth: "hs256", params: "claims"}

// token is the credential the loader sends for v.
func (e *env) token(v variant) string {
	switch v.auth {
	case "hs256":
		return e.hsToken
	case "es256":
		return e.esToken
	}
	return ""
}

// wantParams is what the upstream must report for v through the gateway.
func wantParams(v variant) string {
	switch v.params {
	case "claims":
		return `"userId":"alice"`
	case "http":
		return `"source":"params-service"`
	}
	return ""
}

// gatewayConfig is the gateway's YAML for v: production defaults except
// the access log (off, like nginx's here, unless v.accessLog) and pprof
// (on, for profiling).
func (e *env) gatewayConfig(v variant, listen, admin string) string {
	var b strings.Builder
	logSection := "log:\n  level: warn\n  access:\n    enabled: false\n"
	if v.accessLog {
		logSection = ""
	}
	transport := ""
	if v.netHTTP {
		transport = "  transport: net/http\n"
	}
	fmt.Fprintf(&b, `server:
  listen: %q
  shutdown_timeout: 5s
admin:
  listen: %q
  pprof: true
`+logSection+`upstream:
  url: "http://%s"
`+transport+`cors:
  allowed_origins: []
auth:
  jwt:
    issuers:
      - name: bench-hs
        issuer: %s
        audiences: [%s]
        algorithms: [HS256]
        secret: %q
        required_claims: [sub]
      - name: bench-es
        issuer: %s
        audiences: [%s]
        algorithms: [ES256]
        public_key_file: %q
        required_claims: [sub]
  rules:
    - match: {intents: [action, connect]}
`, listen, admin, e.upstream.addr, benchIssuer, benchAudience, e.secret, benchIssuerES, benchAudience, e.esKeyFile)
	if v.auth == "" {
		b.WriteString("      allow: anonymous\n")
	} else {
		b.WriteString("      allow: authenticated\n      methods: [jwt]\n")
	}
	b.WriteString("params:\n  source: " + v.params + "\n")
	switch v.params {
	case "claims":
		b.WriteString("  claims:\n    userId: \"{{ .Subject }}\"\n    role: \"{{ .Claims.role }}\"\n    token: verified-by-gateway\n")
	case "http":
		fmt.Fprintf(&b, "  http:\n    url: \"http://%s/params\"\n    forward_claims: [role]\n", e.params.addr)
	}
	return b.String()
}

// gateway is a running rivet-gateway.
type gateway struct {
	*proc
	admin string
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startGateway starts the gateway binary with v on the proxy core and
// waits for /readyz.
func (e *env) startGateway(v variant) (*gateway, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		listen, err := freeAddr()
		if err != nil {
			return nil, err
		}
		admin, err := freeAddr()
		if err != nil {
			return nil, err
		}
		cfgPath := filepath.Join(e.dir, "gateway-"+strings.ReplaceAll(v.name, "+", "-")+".yaml")
		if err := os.WriteFile(cfgPath, []byte(e.gatewayConfig(v, listen, admin)), 0o600); err != nil {
			return nil, err
		}
		cmd := e.command(e.cores.proxy, e.gatewayBin, "-config", cfgPath)
		cmd.Env = append(cmd.Env, e.gatewayEnv...)
		p := &proc{name: "rivet-gateway", cmd: cmd, out: &syncbuf.Buffer{Limit: 1 << 20}, done: make(chan struct{}), addr: listen}
		cmd.Stdout, cmd.Stderr = p.out, p.out
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() { _ = cmd.Wait(); close(p.done) }()
		g := &gateway{proc: p, admin: admin}
		if lastErr = waitReady("http://"+admin+"/readyz", p); lastErr == nil {
			return g, nil
		}
		p.stop()
		lastErr = fmt.Errorf("gateway: %w\n%s", lastErr, tail(p.out.String(), 30))
	}
	return nil, lastErr
}

func waitReady(url string, p *proc) error {
	deadline := time.Now().Add(30 * time.Second)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		if p.exited() {
			return errors.New("exited")
		}
		if res, err := hc.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("not ready within 30s")
}

// nginx is the reference proxy: one worker pinned to the proxy core, a
// plain proxy on plainAddr and the same with auth_request (to the Go auth
// service, also on the proxy core) on authAddr.
type nginx struct {
	*proc
	plainAddr, authAddr string
}

func (e *env) startNginx() (*nginx, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return nil, nil // not installed: skipped
	}
	if e.auth == nil {
		if e.auth, err = e.startRole("auth", e.cores.proxy, secretEnv+"="+e.secret); err != nil {
			return nil, err
		}
	}
	plain, err := freeAddr()
	if err != nil {
		return nil, err
	}
	auth, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream engine { server %[2]s; keepalive 64; keepalive_requests 1000000; }
  upstream authsvc { server %[3]s; keepalive 64; keepalive_requests 1000000; }
  keepalive_requests 1000000;
  server {
    listen %[4]s;
    location / {
      proxy_pass http://engine;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 300s;
    }
  }
  server {
    listen %[5]s;
    location / {
      auth_request /_auth;
      proxy_pass http://engine;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_read_timeout 300s;
    }
    location = /_auth {
      internal;
      proxy_pass http://authsvc/auth;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
    }
  }
}
`, dir, e.upstream.addr, e.auth.addr, plain, auth)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := e.command(e.cores.proxy, bin, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	p := &proc{name: "nginx", cmd: cmd, out: &syncbuf.Buffer{Limit: 1 << 20}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	n := &nginx{proc: p, plainAddr: plain, authAddr: auth}
	if err := waitReady("http://"+plain+"/health", p); err != nil {
		p.stop()
		logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, fmt.Errorf("nginx: %w\n%s\n%s", err, p.out.String(), tail(string(logs), 20))
	}
	return n, nil
}

// gwStats are the gateway's own runtime numbers from its /metrics.
type gwStats struct {
	heap, stack int64 // go_memstats_heap_inuse_bytes, go_memstats_stack_inuse_bytes
	goroutines  int64 // go_goroutines
}

func (s gwStats) mem() int64 { return s.heap + s.stack }

// readGatewayStats forces a GC in the gateway (pprof's heap?gc=1) and reads
// its heap in use, goroutine stacks and goroutine count from /metrics.
func readGatewayStats(admin string) (gwStats, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	res, err := hc.Get("http://" + admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return gwStats{}, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	res, err = hc.Get("http://" + admin + "/metrics")
	if err != nil {
		return gwStats{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return gwStats{}, err
	}
	var st gwStats
	want := map[string]*int64{
		"go_memstats_heap_inuse_bytes ":  &st.heap,
		"go_memstats_stack_inuse_bytes ": &st.stack,
		"go_goroutines ":                 &st.goroutines,
	}
	found := 0
	for _, line := range strings.Split(string(body), "\n") {
		for name, dst := range want {
			if v, ok := strings.CutPrefix(line, name); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					return gwStats{}, fmt.Errorf("%s: %v", line, err)
				}
				*dst = int64(f)
				found++
			}
		}
	}
	if found != len(want) {
		return gwStats{}, errors.New("go_memstats_heap_inuse_bytes, go_memstats_stack_inuse_bytes or go_goroutines missing from /metrics")
	}
	return st, nil
}

// fetchURL saves what url answers to path, waiting at most timeout.
func fetchURL(url, path string, timeout time.Duration) error {
	hc := &http.Client{Timeout: timeout}
	res, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

// fetchProfile saves the gateway's CPU profile over d to path.
func fetchProfile(admin string, d time.Duration, path string) error {
	return fetchURL(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, int(d.Seconds())), path, d+30*time.Second)
}

// The proxy's CPU per operation is steadier than its throughput ratio on
// a shared VM: it does not depend on how much CPU the VM gave the loader.
// It is read from /proc around each proxied run's measured window.

// cpuUse is user and system CPU time.
type cpuUse struct{ user, sys time.Duration }

func (u cpuUse) total() time.Duration { return u.user + u.sys }

// cpuSample is what a set of processes had consumed at one moment.
type cpuSample struct {
	// ticks is utime and stime of /proc/<pid>/stat: every thread of the
	// process, including exited ones, but in clock ticks (10 ms).
	ticks cpuUse
	// threads is each live thread's time on CPU in ns, the first field of
	// /proc/<pid>/task/<tid>/schedstat.
	threads map[int]time.Duration
}

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ).
var clockTick = sync.OnceValue(func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	hz, perr := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || perr != nil || hz <= 0 {
		return 10 * time.Millisecond // 100 Hz, Linux's USER_HZ nearly everywhere
	}
	return time.Second / time.Duration(hz)
})

// parseProcStat reads the parent pid and the CPU times from a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself: fields are counted after the
// last ')'.
func parseProcStat(data []byte, tick time.Duration) (ppid int, use cpuUse, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, use, fmt.Errorf("bad stat %.100q", data)
	}
	f := strings.Fields(string(data[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, use, fmt.Errorf("bad stat %.100q", data)
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, use, fmt.Errorf("bad stat ppid: %w", err)
	}
	utime, err := strconv.ParseInt(f[11], 10, 64) // field 14
	if err != nil {
		return 0, use, fmt.Errorf("bad stat utime: %w", err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64) // field 15
	if err != nil {
		return 0, use, fmt.Errorf("bad stat stime: %w", err)
	}
	return ppid, cpuUse{user: time.Duration(utime) * tick, sys: time.Duration(stime) * tick}, nil
}

// procTrees returns the pids of ps and of all their descendants (nginx's
// workers are its master's children). A process started under taskset is
// the same process: taskset execs the command.
func procTrees(ps ...*proc) func() ([]int, error) {
	return func() ([]int, error) {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return nil, err
		}
		children := map[int][]int{}
		for _, ent := range ents {
			pid, err := strconv.Atoi(ent.Name())
			if err != nil {
				continue
			}
			data, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
			if err != nil {
				continue // gone
			}
			if ppid, _, err := parseProcStat(data, 1); err == nil {
				children[ppid] = append(children[ppid], pid)
			}
		}
		var pids []int
		for _, p := range ps {
			if p == nil || p.cmd.Process == nil {
				return nil, errors.New("a proxy process was never started")
			}
			if p.exited() {
				return nil, fmt.Errorf("%s exited", p.name)
			}
			for queue := []int{p.cmd.Process.Pid}; len(queue) > 0; queue = queue[1:] {
				pids = append(pids, queue[0])
				queue = append(queue, children[queue[0]]...)
			}
		}
		return pids, nil
	}
}

// readCPU samples the CPU time pids have consumed.
func readCPU(pids []int) (cpuSample, error) {
	s := cpuSample{threads: map[int]time.Duration{}}
	for _, pid := range pids {
		dir := filepath.Join("/proc", strconv.Itoa(pid))
		data, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			return s, fmt.Errorf("process %d: %w", pid, err)
		}
		_, use, err := parseProcStat(data, clockTick())
		if err != nil {
			return s, fmt.Errorf("process %d: %w", pid, err)
		}
		s.ticks.user += use.user
		s.ticks.sys += use.sys
		tasks, _ := os.ReadDir(filepath.Join(dir, "task"))
		for _, t := range tasks {
			tid, err1 := strconv.Atoi(t.Name())
			data, err2 := os.ReadFile(filepath.Join(dir, "task", t.Name(), "schedstat"))
			f := strings.Fields(string(data))
			if err1 != nil || err2 != nil || len(f) == 0 {
				continue // the thread ended, or no schedstat (CONFIG_SCHED_INFO)
			}
			if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				s.threads[tid] = time.Duration(ns)
			}
		}
	}
	return s, nil
}

// cpuBetween is the CPU consumed from a to b. The total comes from the
// threads' nanosecond counters when every thread of a is still there (an
// exited thread takes its counter with it), else from the ticks; the
// user/system split is always the ticks' (the kernel has no finer one).
func cpuBetween(a, b cpuSample) cpuUse {
	ticks := cpuUse{b.ticks.user - a.ticks.user, b.ticks.sys - a.ticks.sys}
	if len(a.threads) == 0 || len(b.threads) == 0 {
		return ticks
	}
	var ns time.Duration
	for tid, t := range a.threads {
		bt, ok := b.threads[tid]
		if !ok {
			return ticks
		}
		ns += bt - t
	}
	for tid, t := range b.threads {
		if _, ok := a.threads[tid]; !ok {
			ns += t // started within the window
		}
	}
	split := ticks
	if split.total() <= 0 {
		split = b.ticks // too short a window for a tick: the lifetime split
	}
	if split.total() <= 0 {
		return cpuUse{user: ns}
	}
	user := time.Duration(float64(ns) * float64(split.user) / float64(split.total()))
	return cpuUse{user: user, sys: ns - user}
}

// measureCPU samples pids at from and at to and returns what they
// consumed in between.
func measureCPU(ctx context.Context, pids []int, from, to time.Time) (cpuUse, error) {
	var s [2]cpuSample
	for i, at := range []time.Time{from, to} {
		select {
		case <-ctx.Done():
			return cpuUse{}, ctx.Err()
		case <-time.After(time.Until(at)):
		}
		var err error
		if s[i], err = readCPU(pids); err != nil {
			return cpuUse{}, err
		}
	}
	return cpuBetween(s[0], s[1]), nil
}
