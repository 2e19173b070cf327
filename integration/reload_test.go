package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
	"github.com/rivet-gateway/rivet-gateway/rivetclient"
)

// TestReloadUnderLoad reloads the real gateway binary six times (SIGHUP
// and file watch, one of them a rejected file, two of them moving the
// upstream to a new proxy) while real-engine WebSockets carry actions and
// HTTP actions flow, and checks that no connection drops and no request
// fails.
func TestReloadUnderLoad(t *testing.T) {
	up := harness.StartUpstream(t)
	gw := harness.StartGateway(t, reloadLoadConfig(up.URL, 0))
	ctx := clientContext(t)

	const sockets, httpWorkers = 6, 4
	type socket struct {
		conn *rivetclient.Conn
		log  *connLog
	}
	var socks []socket
	for range sockets {
		_, _, conn, log, _ := connectCounting(t, ctx, gw.URL)
		socks = append(socks, socket{conn, log})
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var wsOK, httpOK atomic.Int64
	var failMu sync.Mutex
	var failures []string
	fail := func(format string, a ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, a...))
		}
	}
	for i, s := range socks {
		wg.Go(func() {
			for n := 0; n < 100000; n++ { // bounded; stop ends it
				select {
				case <-stop:
					return
				default:
				}
				var count int
				if err := s.conn.Action(ctx, "increment", &count, 1); err != nil {
					fail("socket %d action %d: %v", i, n, err)
					return
				}
				wsOK.Add(1)
			}
		})
	}
	client := &http.Client{Timeout: 15 * time.Second}
	for w := range httpWorkers {
		key := fmt.Sprintf("reload-http-%d-%d", w, time.Now().UnixNano())
		warmActor(t, gw.URL, key, map[string]string{"token": "t"}) // the load measures reloads, not actor starts
		wg.Go(func() {
			for n := 0; n < 100000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+actionPath(key, "increment"), strings.NewReader(`{"args":[1]}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("x-rivet-conn-params", `{"token":"t"}`) // the actor's onBeforeConnect wants one
				res, err := client.Do(req)
				if err != nil {
					fail("http worker %d request %d: %v", w, n, err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					fail("http worker %d request %d: status %d", w, n, res.StatusCode)
					return
				}
				httpOK.Add(1)
			}
		})
	}

	// progress waits until both kinds of traffic have moved on.
	progress := func(what string) {
		t.Helper()
		w0, h0 := wsOK.Load(), httpOK.Load()
		clientWaitFor(t, "traffic after "+what, func() bool { return wsOK.Load() > w0+5 && httpOK.Load() > h0+5 })
	}
	progress("start")
	steps := []struct {
		name    string
		config  string
		signal  bool
		success bool
	}{
		{"sighup, same upstream, new CORS origin", reloadLoadConfig(up.URL, 1), true, true},
		{"watch, same upstream", reloadLoadConfig(up.URL, 2), false, true},
		{"watch, rejected file", reloadLoadConfig(up.URL, 3) + "bogus: 1\n", false, false},
		{"sighup, upstream moved (new proxy)", reloadLoadConfig(strings.Replace(up.URL, "127.0.0.1", "localhost", 1), 4), true, true},
		{"watch, upstream moved back", reloadLoadConfig(up.URL, 5), false, true},
		{"sighup, same again", reloadLoadConfig(up.URL, 6), true, true},
	}
	var okN, failN int
	for _, st := range steps {
		if err := os.WriteFile(gw.ConfigPath, []byte(gw.Render(st.config)), 0o600); err != nil {
			t.Fatal(err)
		}
		trigger := "watch"
		if st.signal {
			trigger = "signal"
			if err := gw.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
		if st.success {
			okN++
		} else {
			failN++
		}
		// A SIGHUP may race the watcher for the same write: whichever runs
		// first applies it and the other finds nothing new or reapplies
		// it. Either way the result counter moves.
		want := `result="success"`
		n := okN
		if !st.success {
			want, n = `result="failure"`, failN
		}
		clientWaitFor(t, st.name, func() bool { return reloadCount(t, gw.AdminURL, want) >= n })
		t.Logf("%s: counted (%s)", st.name, trigger)
		progress(st.name)
	}
	close(stop)
	wg.Wait()

	for _, f := range failures {
		t.Error(f)
	}
	for i, s := range socks {
		if st := s.log.statusList(); len(st) > 0 {
			t.Errorf("socket %d changed status during reloads: %v (errors %q)", i, st, s.log.errorCodes())
		}
		if s.conn.Status() != rivetclient.StatusConnected {
			t.Errorf("socket %d status %v after reloads", i, s.conn.Status())
		}
	}
	if got := scrapeMetrics(t, gw.AdminURL)["rivet_gateway_websockets_open"]; got != sockets {
		t.Errorf("websockets open = %v, want %d", got, sockets)
	}
	logs := gw.Logs()
	if !strings.Contains(logs, "configuration reload rejected") || !strings.Contains(logs, "bogus") {
		t.Errorf("the rejected reload is not logged with its error")
	}
	if !strings.Contains(logs, "proxy=rebuilt") {
		t.Errorf("no reload moved the upstream to a new proxy")
	}
	t.Logf("during reloads: %d WebSocket actions, %d HTTP actions, none failed", wsOK.Load(), httpOK.Load())
}

// reloadLoadConfig is openConfig with a fast watcher and a CORS origin
// that differs per generation, so every reload is a real change.
func reloadLoadConfig(upstream string, gen int) string {
	c := openConfig(upstream) + "reload:\n  debounce: 100ms\n"
	return strings.Replace(c, `allowed_origins: ["`+testOrigin+`"]`,
		fmt.Sprintf(`allowed_origins: ["%s", "https://gen-%d.example"]`, testOrigin, gen), 1)
}

// reloadCount sums rivet_gateway_config_reloads_total over the series
// whose labels contain match.
func reloadCount(t *testing.T, adminURL, match string) int {
	t.Helper()
	n := 0
	for series, v := range scrapeMetrics(t, adminURL) {
		if strings.HasPrefix(series, "rivet_gateway_config_reloads_total{") && strings.Contains(series, match) {
			n += int(v)
		}
	}
	return n
}
