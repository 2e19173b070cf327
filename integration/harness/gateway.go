package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/internal/syncbuf"
)

const (
	// gatewayBuildTimeout bounds go build (cold, with -race, on a small machine).
	gatewayBuildTimeout = 5 * time.Minute
	// gatewayReadyTimeout bounds the wait for GET /healthz on the admin listener.
	gatewayReadyTimeout = 30 * time.Second
	// gatewayStopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	gatewayStopTimeout = 10 * time.Second
	// gatewayPortAttempts is how often StartGateway tries new ports when the chosen ones turn out
	// to be taken.
	gatewayPortAttempts = 3
	// gatewayBinEnv names a prebuilt gateway binary to test instead of building one.
	gatewayBinEnv = "GATEWAY_BIN"
)

var (
	// gatewayBuild caches the one build per test binary.
	gatewayBuild struct {
		once sync.Once
		bin  string
		err  error
	}
	// tempDirs are removed by Main: they outlive single tests, so t.TempDir does not fit.
	tempDirsMu sync.Mutex
	tempDirs   []string
)

// Main runs the tests of m, removes the gateway binary BuildGateway built and exits with the
// tests' status. Packages that use BuildGateway or StartGateway should call it from TestMain:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	tempDirsMu.Lock()
	for _, dir := range tempDirs {
		os.RemoveAll(dir)
	}
	tempDirsMu.Unlock()
	os.Exit(code)
}

// BuildGateway builds ./cmd/rivet-gateway once per test binary (with -race if the tests run
// with -race) and returns the binary's path. If the environment variable GATEWAY_BIN is set,
// it returns that instead, to test a prebuilt binary. It fails the test if the build fails.
func BuildGateway(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv(gatewayBinEnv); bin != "" {
		return bin
	}
	root := repoRoot(t)
	gatewayBuild.once.Do(func() {
		gatewayBuild.bin, gatewayBuild.err = buildBinary(root, "./cmd/rivet-gateway", "rivet-gateway")
	})
	if gatewayBuild.err != nil {
		t.Fatalf("harness: %v", gatewayBuild.err)
	}
	return gatewayBuild.bin
}

// buildBinary runs go build for pkg (relative to the module root) into a new temporary
// directory that Main removes.
func buildBinary(root, pkg, name string) (string, error) {
	dir, err := os.MkdirTemp("", "rivet-gateway-e2e-")
	if err != nil {
		return "", err
	}
	tempDirsMu.Lock()
	tempDirs = append(tempDirs, dir)
	tempDirsMu.Unlock()
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	ctx, cancel := context.WithTimeout(context.Background(), gatewayBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(append(args, pkg), " "), err, out)
	}
	return bin, nil
}

// Gateway is a rivet-gateway process started by StartGateway.
type Gateway struct {
	// URL is the public listener: http://127.0.0.1:P, the endpoint to give clients.
	URL string
	// AdminURL is the admin listener: http://127.0.0.1:Q (GET /healthz answered 200).
	AdminURL string
	// ConfigPath is the config file the gateway was started with; a test may rewrite it, for
	// example before sending SIGHUP.
	ConfigPath string
	// Cmd is the running process. Do not call Cmd.Wait: use Wait.
	Cmd *exec.Cmd

	logs    syncbuf.Buffer
	done    chan struct{} // closed when the process has exited and waitErr is set
	waitErr error
}

// StartGateway starts the gateway built by BuildGateway with configYAML, in which it replaces
// {{LISTEN}} and {{ADMIN}} by free loopback addresses (host:port) for the public and admin
// listeners. It returns once GET AdminURL/healthz answers 200, and fails the test (quoting the
// gateway's output) if that does not happen within 30 s or the process exits first. A
// t.Cleanup stops it (see Stop) and, if the test failed, logs the tail of its output.
func StartGateway(t testing.TB, configYAML string) *Gateway {
	t.Helper()
	return startGateway(t, BuildGateway(t), "", configYAML)
}

// StartGatewayAt is StartGateway with the public listener on listenAddr (host:port), for a
// gateway whose address something else names already (Upstream.PublicAddr). {{LISTEN}} is
// replaced by listenAddr; the admin listener is picked as for StartGateway.
func StartGatewayAt(t testing.TB, listenAddr, configYAML string) *Gateway {
	t.Helper()
	return startGateway(t, BuildGateway(t), listenAddr, configYAML)
}

// startGateway is StartGateway with an explicit binary, and listenAddr when it is given.
func startGateway(t testing.TB, bin, listenAddr, configYAML string) *Gateway {
	t.Helper()
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		g, err := launchGateway(t, bin, filepath.Join(dir, fmt.Sprintf("config-%d.yaml", attempt)), listenAddr, configYAML)
		if err == nil {
			return g
		}
		if errors.Is(err, errPortInUse) && listenAddr == "" && attempt < gatewayPortAttempts {
			t.Logf("harness: gateway ports taken, picking others: %v", err)
			continue
		}
		logs := ""
		if g != nil {
			logs = tail(g.Logs(), 100)
		}
		t.Fatalf("harness: gateway did not start: %v\n--- gateway output ---\n%s", err, logs)
	}
}

// launchGateway starts one gateway process on fresh ports (the public one listenAddr if given)
// and waits for it to be healthy. The returned error wraps errPortInUse if the gateway could not
// bind its ports.
func launchGateway(t testing.TB, bin, configPath, listenAddr, configYAML string) (*Gateway, error) {
	t.Helper()
	if listenAddr == "" {
		listen, err := reservePorts(0)
		if err != nil {
			return nil, err
		}
		listenAddr = "127.0.0.1:" + strconv.Itoa(listen)
	}
	admin, err := reservePorts(0)
	if err != nil {
		return nil, err
	}
	adminAddr := "127.0.0.1:" + strconv.Itoa(admin)
	config := strings.NewReplacer("{{LISTEN}}", listenAddr, "{{ADMIN}}", adminAddr).Replace(configYAML)
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}

	g := &Gateway{
		URL:        "http://" + listenAddr,
		AdminURL:   "http://" + adminAddr,
		ConfigPath: configPath,
		done:       make(chan struct{}),
	}
	g.Cmd = exec.Command(bin, "-config", configPath)
	g.Cmd.Stdout = &g.logs
	g.Cmd.Stderr = &g.logs
	g.Cmd.WaitDelay = 2 * time.Second
	killWithParent(g.Cmd)
	if err := g.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		g.waitErr = g.Cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() { g.cleanup(t) })
	return g, g.waitHealthy()
}

// waitHealthy polls GET /healthz until it answers 200, the process exits or
// gatewayReadyTimeout passes.
func (g *Gateway) waitHealthy() error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(gatewayReadyTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-g.done:
			code, _ := g.Wait(0)
			if strings.Contains(g.Logs(), "address already in use") {
				return fmt.Errorf("%w: gateway exited with code %d", errPortInUse, code)
			}
			return fmt.Errorf("gateway exited with code %d before /healthz answered", code)
		default:
		}
		res, err := client.Get(g.AdminURL + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			last = res.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("GET %s/healthz: no 200 within %v (last: %s)", g.AdminURL, gatewayReadyTimeout, last)
}

// Signal sends sig to the gateway process.
func (g *Gateway) Signal(sig os.Signal) error {
	return g.Cmd.Process.Signal(sig)
}

// Wait waits up to timeout for the gateway to exit and returns its exit code (-1 if a signal
// killed it). err is non-nil only if it is still running after timeout or could not be
// waited for; a non-zero exit code is not an error.
func (g *Gateway) Wait(timeout time.Duration) (exitCode int, err error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-g.done:
	case <-timer.C:
		return -1, fmt.Errorf("gateway (pid %d) still running after %v", g.Cmd.Process.Pid, timeout)
	}
	if g.waitErr != nil {
		if _, ok := errors.AsType[*exec.ExitError](g.waitErr); !ok {
			return -1, g.waitErr
		}
	}
	return g.Cmd.ProcessState.ExitCode(), nil
}

// Stop ends the gateway: SIGTERM, up to 10 s for it to exit, then SIGKILL (reported with
// t.Errorf: a gateway should shut down gracefully in time). Stopping an exited gateway does
// nothing.
func (g *Gateway) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-g.done:
		return
	default:
	}
	if err := g.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("harness: SIGTERM to gateway: %v", err)
	}
	code, err := g.Wait(gatewayStopTimeout)
	if err == nil {
		if code != 0 {
			t.Logf("harness: gateway exited with code %d after SIGTERM", code)
		}
		return
	}
	t.Errorf("harness: gateway did not exit within %v of SIGTERM, sending SIGKILL\n--- gateway output ---\n%s", gatewayStopTimeout, tail(g.Logs(), 50))
	g.Cmd.Process.Kill()
	if _, err := g.Wait(5 * time.Second); err != nil {
		t.Errorf("harness: gateway survived SIGKILL: %v", err)
	}
}

// Render replaces {{LISTEN}} and {{ADMIN}} in configYAML by this gateway's
// addresses: the config to write to ConfigPath before a reload.
func (g *Gateway) Render(configYAML string) string {
	return strings.NewReplacer("{{LISTEN}}", strings.TrimPrefix(g.URL, "http://"),
		"{{ADMIN}}", strings.TrimPrefix(g.AdminURL, "http://")).Replace(configYAML)
}

// Logs returns everything the gateway wrote to stdout and stderr so far.
func (g *Gateway) Logs() string {
	return g.logs.String()
}

// cleanup stops the gateway at the end of the test and shows its output if the test failed.
func (g *Gateway) cleanup(t testing.TB) {
	g.Stop(t)
	if t.Failed() {
		t.Logf("harness: gateway %s output (tail):\n%s", g.URL, tail(g.Logs(), 200))
	}
}
