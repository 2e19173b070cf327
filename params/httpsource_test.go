package params

import (
	"context"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

func TestHTTPSourceRequestAndAnswer(t *testing.T) {
	svc := newService(t, answer(`{"role":"viewer","session":{"id":1,"name":"Zoë"}}`))
	cfg := httpConfig(svc.URL + "/params?v=1")
	cfg.Policy = PolicyMerge
	cfg.HTTP.Headers = map[string]string{"Authorization": "Bearer s3cret", "X-Extra": "1"}
	cfg.HTTP.ForwardClaims = []string{"role", "level", "absent"}
	caller := testCaller(t)
	caller.APIKeyID = "key-9"
	inj := mustNew(t, cfg, Options{
		Caller:         callerFn(caller),
		ConsumedFields: func(*http.Request) []string { return []string{"token"} },
	})

	r := newReq(t, http.MethodGet, connectPath, true, "rivet", "rivet_encoding.json",
		"rivet_conn_params.%7B%22token%22%3A%22secret%22%2C%22theme%22%3A%22dark%22%2C%22role%22%3A%22admin%22%7D")
	r.Header.Set("X-Request-Id", "req-42")
	rec, h := serve(t, inj, r)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("got status %d, want 204 (%s)", rec.Code, rec.Body)
	}

	svc.mu.Lock()
	sh := svc.headers[0]
	svc.mu.Unlock()
	for name, want := range map[string]string{
		"Authorization": "Bearer s3cret", "X-Extra": "1", "Content-Type": "application/json",
		"Accept": "application/json", "X-Request-Id": "req-42",
	} {
		if got := sh.Get(name); got != want {
			t.Errorf("service got %s %q, want %q", name, got, want)
		}
	}
	got := svc.lastBody(t)
	want := jsonValue(t, `{
		"request_id": "req-42",
		"caller": {"method": "jwt", "subject": "user-123", "issuer": "https://issuer.example",
			"api_key_id": "key-9", "scopes": ["read", "write"], "claims": {"role": "editor", "level": 7}},
		"route": {"intent": "connect", "websocket": true, "actor_id": "", "actor_name": "counter",
			"method": "getOrCreate", "key": ["room-1"], "namespace": "default", "name": ""},
		"client_params": {"theme": "dark", "role": "admin"}
	}`)
	if !reflect.DeepEqual(any(got), want) {
		t.Errorf("service got body %#v, want %#v", got, want)
	}

	params := engineProtocolParams(t, h)
	wantParams := jsonValue(t, `{"role":"viewer","session":{"id":1,"name":"Zoë"},"theme":"dark"}`)
	if !reflect.DeepEqual(params, wantParams) {
		t.Errorf("engine decodes %#v, want %#v", params, wantParams)
	}
}

func TestHTTPSourceBodyVariants(t *testing.T) {
	svc := newService(t, answer(`{}`))
	tests := []struct {
		name   string
		caller *Caller
		all    bool
		check  func(t *testing.T, body map[string]any)
	}{
		{"anonymous", nil, false, func(t *testing.T, b map[string]any) {
			if c, ok := b["caller"]; !ok || c != nil {
				t.Errorf("got caller %#v, want null", c)
			}
		}},
		{"no claims forwarded by default", testCaller(t), false, func(t *testing.T, b map[string]any) {
			c := b["caller"].(map[string]any)
			if !reflect.DeepEqual(c["claims"], map[string]any{}) {
				t.Errorf("got claims %#v, want {}", c["claims"])
			}
		}},
		{"all claims", testCaller(t), true, func(t *testing.T, b map[string]any) {
			c := b["caller"].(map[string]any)["claims"].(map[string]any)
			if c["role"] != "editor" || c["sub"] != "user-123" {
				t.Errorf("got claims %#v, want all of them", c)
			}
		}},
		{"replace sends no client params", &Caller{Subject: "s"}, false, func(t *testing.T, b map[string]any) {
			if _, ok := b["client_params"]; ok {
				t.Errorf("got client_params %#v, want none with policy replace", b["client_params"])
			}
			if c := b["caller"].(map[string]any); !reflect.DeepEqual(c["scopes"], []any{}) {
				t.Errorf("got scopes %#v, want []", c["scopes"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := httpConfig(svc.URL)
			if tt.all {
				cfg.HTTP.ForwardClaims = []string{"*"}
			}
			var opts Options
			if tt.caller != nil {
				opts.Caller = callerFn(tt.caller)
			}
			inj := mustNew(t, cfg, opts)
			r := newReq(t, http.MethodPost, queuePath, false)
			r.Header.Set(rivet.HeaderConnParams, `{"role":"admin"}`)
			r.Header.Set("X-Request-Id", "bad id with spaces")
			rec, h := serve(t, inj, r)
			if rec.Code != http.StatusNoContent {
				t.Fatalf("got status %d, want 204", rec.Code)
			}
			if got := h.Get(rivet.HeaderConnParams); got != `{}` {
				t.Errorf("got params %q, want {}", got)
			}
			b := svc.lastBody(t)
			if id, _ := b["request_id"].(string); len(id) != 24 {
				t.Errorf("got request_id %q, want a generated one", id)
			}
			rt := b["route"].(map[string]any)
			if rt["intent"] != "queue" || rt["actor_id"] != actorID || rt["name"] != "jobs" || rt["key"] != nil || rt["websocket"] != false {
				t.Errorf("got route %#v, want queue jobs on actor %s", rt, actorID)
			}
			tt.check(t, b)
		})
	}
}

func TestHTTPRetryRecovers(t *testing.T) {
	svc := newService(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusBadGateway)
		case 2:
			_, _ = io.WriteString(w, `{"tok`)
		default:
			_, _ = io.WriteString(w, `{"token":"fresh"}`)
		}
	})
	obs := &observed{}
	inj := mustNew(t, httpConfig(svc.URL), Options{Observe: obs.add})
	rec, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("got status %d, want 204 (%s)", rec.Code, rec.Body)
	}
	if got := h.Get(rivet.HeaderConnParams); got != `{"token":"fresh"}` {
		t.Errorf("got params %q, want the third answer", got)
	}
	f := obs.last(t)
	if f.Attempts != 3 || f.Cause != CauseNone || f.Source != SourceHTTP || f.CacheHit || f.Duration <= 0 {
		t.Errorf("got %+v, want 3 attempts, no cause, source http", f)
	}
	if got := svc.hits.Load(); got != 3 {
		t.Errorf("service got %d requests, want 3", got)
	}
}

func TestHTTPFailures(t *testing.T) {
	redirectTarget := newService(t, answer(`{"stolen":true}`))
	refused := func() string { // a port nobody listens on
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/params"
	}()
	status := func(code int) func(int64, http.ResponseWriter, *http.Request) {
		return func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
	}
	tests := []struct {
		name       string
		handle     func(int64, http.ResponseWriter, *http.Request)
		url        string
		wantCause  string
		wantHits   int64
		wantStatus int
		wantGroup  string
	}{
		{"5xx", status(500), "", CauseStatus5xx, 3, 503, "client.get_params_failed"},
		{"invalid json", answer(`{"a":`), "", CauseInvalidJSON, 3, 503, "client.get_params_failed"},
		{"html", answer(`<html>oops</html>`), "", CauseInvalidJSON, 3, 503, "client.get_params_failed"},
		{"empty body", answer(``), "", CauseInvalidJSON, 3, 503, "client.get_params_failed"},
		{"array", answer(`[{"a":1}]`), "", CauseNotObject, 3, 503, "client.get_params_failed"},
		{"string", answer(`"x"`), "", CauseNotObject, 3, 503, "client.get_params_failed"},
		{"null", answer(`null`), "", CauseNotObject, 3, 503, "client.get_params_failed"},
		{"401", status(401), "", CauseDenied, 1, 403, "auth.forbidden"},
		{"403", status(403), "", CauseDenied, 1, 403, "auth.forbidden"},
		{"404", status(404), "", CauseStatus4xx, 1, 503, "client.get_params_failed"},
		{"429", status(429), "", CauseStatus4xx, 3, 503, "client.get_params_failed"},
		{"redirect not followed", func(_ int64, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, redirectTarget.URL, http.StatusTemporaryRedirect)
		}, "", CauseStatus4xx, 1, 503, "client.get_params_failed"},
		{"too large", answer(`{"a":"` + strings.Repeat("x", 200) + `"}`), "", CauseTooLarge, 1, 500, "client.get_params_failed"},
		{"timeout", func(_ int64, w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "", CauseTimeout, 3, 503, "client.get_params_failed"},
		{"refused", nil, refused, CauseRefused, 0, 503, "client.get_params_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			var svc *service
			if tt.handle != nil {
				svc = newService(t, tt.handle)
				u = svc.URL
			}
			cfg := httpConfig(u)
			cfg.Retry.MaxAttempts = 3
			cfg.HTTP.Timeout = 2 * time.Second // generous: a slow attempt must not turn into a timeout
			if tt.wantCause == CauseTimeout {
				cfg.HTTP.Timeout = 100 * time.Millisecond
			}
			cfg.HTTP.MaxResponseBytes = 100
			obs := &observed{}
			inj := mustNew(t, cfg, Options{Observe: obs.add})
			rec, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
			if h != nil {
				t.Fatalf("the request reached upstream, want it refused")
			}
			if rec.Code != tt.wantStatus {
				t.Errorf("got status %d, want %d", rec.Code, tt.wantStatus)
			}
			e := decodeError(t, rec)
			if got := e.Group + "." + e.Code; got != tt.wantGroup {
				t.Errorf("got %s, want %s", got, tt.wantGroup)
			}
			if e.Metadata["reason"] != tt.wantCause {
				t.Errorf("got metadata %v, want reason %q", e.Metadata, tt.wantCause)
			}
			f := obs.last(t)
			if f.Cause != tt.wantCause {
				t.Errorf("Observe: got cause %q, want %q", f.Cause, tt.wantCause)
			}
			if svc != nil {
				if got := svc.hits.Load(); got != tt.wantHits {
					t.Errorf("service got %d requests, want %d", got, tt.wantHits)
				}
				if f.Attempts != int(tt.wantHits) {
					t.Errorf("Observe: got %d attempts, want %d", f.Attempts, tt.wantHits)
				}
			}
			if tt.wantStatus == 503 {
				if ra := rec.Header().Get("Retry-After"); ra != "1" {
					t.Errorf("got Retry-After %q, want 1", ra)
				}
				if e.Message == "" || e.Metadata["attempts"] != float64(f.Attempts) {
					t.Errorf("got %+v, want a message and metadata.attempts %d", e, f.Attempts)
				}
			}
			if redirectTarget.hits.Load() != 0 {
				t.Errorf("the redirect target got a request, want redirects not followed")
			}
		})
	}
}

func TestHTTPBudgetBoundsTheFetch(t *testing.T) {
	svc := newService(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	cfg := httpConfig(svc.URL)
	cfg.Retry = RetryConfig{MaxAttempts: 1000, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Budget: 250 * time.Millisecond}
	obs := &observed{}
	inj := mustNew(t, cfg, Options{Observe: obs.add})
	start := time.Now()
	rec, _ := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v, want about the 250ms budget", d)
	}
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("got status %d, want 503", rec.Code)
	}
	if f := obs.last(t); f.Attempts < 2 || f.Attempts >= 1000 {
		t.Errorf("got %d attempts, want several, stopped by the budget", f.Attempts)
	}
}

func TestHTTPClientGoneMidBackoff(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		hit := make(chan struct{}, 10)
		svc := newService(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			hit <- struct{}{}
		})
		defer svc.Close()
		cfg := httpConfig(svc.URL)
		cfg.Retry = RetryConfig{MaxAttempts: 5, InitialBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second, Budget: time.Minute}
		obs := &observed{}
		inj, err := New(cfg, Options{Observe: obs.add})
		if err != nil {
			t.Fatal(err)
		}
		defer inj.Close()

		ctx, cancel := context.WithCancel(context.Background())
		r := newReq(t, http.MethodPost, actionPath, false).WithContext(ctx)
		done := make(chan *httptest.ResponseRecorder)
		go func() {
			rec, _ := serve(t, inj, r)
			done <- rec
		}()
		<-hit
		time.Sleep(20 * time.Millisecond) // into the backoff
		start := time.Now()
		cancel()
		select {
		case rec := <-done:
			if d := time.Since(start); d > time.Second { // the backoff is 10s
				t.Errorf("returned %v after the client left, want promptly", d)
			}
			if rec.Code != rivet.StatusClientClosedRequest || rec.Body.Len() != 0 {
				t.Errorf("got status %d body %q, want 499 and nothing written", rec.Code, rec.Body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("still waiting 5s after the client left")
		}
		if f := obs.last(t); f.Cause != CauseCanceled || f.Attempts != 1 {
			t.Errorf("got %+v, want cause canceled after 1 attempt", f)
		}
	}()
	waitGoroutines(t, before)
}

// waitGoroutines fails unless the goroutine count drops back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("got %d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHTTPSingleflightWhenCached(t *testing.T) {
	const n = 20
	svc := newService(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		time.Sleep(200 * time.Millisecond) // every request below arrives meanwhile
		_, _ = io.WriteString(w, `{"token":"shared"}`)
	})
	cfg := httpConfig(svc.URL)
	cfg.Cache.TTL = time.Minute
	obs := &observed{}
	subject := atomic.Value{}
	subject.Store("alice")
	inj := mustNew(t, cfg, Options{Observe: obs.add, Caller: func(*http.Request) *Caller {
		return &Caller{Subject: subject.Load().(string)}
	}})

	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			rec, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
			if rec.Code != http.StatusNoContent || h.Get(rivet.HeaderConnParams) != `{"token":"shared"}` {
				t.Errorf("got status %d params %q, want the shared answer", rec.Code, h.Get(rivet.HeaderConnParams))
			}
		})
	}
	wg.Wait()
	if got := svc.hits.Load(); got != 1 {
		t.Errorf("%d concurrent requests made %d fetches, want 1", n, got)
	}

	// Cached now; another caller or actor is another question.
	serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	if f := obs.last(t); !f.CacheHit || f.Attempts != 0 {
		t.Errorf("got %+v, want a cache hit", f)
	}
	serve(t, inj, newReq(t, http.MethodPost, queuePath, false))
	subject.Store("bob")
	serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	if got := svc.hits.Load(); got != 3 {
		t.Errorf("service got %d requests, want 3 (one per caller and actor)", got)
	}
}

func TestHTTPNoSharingWithoutCache(t *testing.T) {
	const n = 20
	var arrived atomic.Int64
	release := make(chan struct{})
	svc := newService(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		if arrived.Add(1) == n {
			close(release)
		}
		select { // hold every fetch until all n are in flight together
		case <-release:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, `{"token":"own"}`)
	})
	inj := mustNew(t, httpConfig(svc.URL), Options{Caller: callerFn(&Caller{Subject: "alice"})})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			rec, _ := serve(t, inj, newReq(t, http.MethodGet, connectPath, true, "rivet"))
			if rec.Code != http.StatusNoContent {
				t.Errorf("got status %d, want 204", rec.Code)
			}
		})
	}
	wg.Wait()
	if got := svc.hits.Load(); got != n {
		t.Errorf("%d concurrent connections made %d fetches, want %d", n, got, n)
	}
}

func TestHTTPCloseStopsSharedFetches(t *testing.T) {
	svc := newService(t, func(_ int64, w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	cfg := httpConfig(svc.URL)
	cfg.Cache.TTL = time.Minute
	cfg.Retry = RetryConfig{MaxAttempts: 10, InitialBackoff: time.Hour, MaxBackoff: time.Hour, Budget: 2 * time.Hour}
	inj, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		rec, _ := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
		done <- rec
	}()
	for svc.hits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { inj.Close(); inj.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return")
	}
	rec := <-done
	if e := decodeError(t, rec); e.Group+"."+e.Code != "ws.going_away" {
		t.Errorf("got %s.%s, want ws.going_away after Close", e.Group, e.Code)
	}
	rec, _ = serve(t, inj, newReq(t, http.MethodPost, queuePath, false))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("after Close: got status %d, want 503", rec.Code)
	}
}

func TestHTTPOptionsClient(t *testing.T) {
	svc := newService(t, answer(`{"a":1}`))
	var used atomic.Bool
	client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	})}
	inj := mustNew(t, httpConfig(svc.URL), Options{HTTPClient: client})
	if _, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false)); h.Get(rivet.HeaderConnParams) != `{"a":1}` {
		t.Errorf("got params %q, want {\"a\":1}", h.Get(rivet.HeaderConnParams))
	}
	if !used.Load() {
		t.Error("Options.HTTPClient was not used")
	}
	if client.CheckRedirect != nil {
		t.Error("Options.HTTPClient was changed, want it copied")
	}
	cfg := httpConfig(svc.URL)
	cfg.HTTP.CAFile = "ca.pem"
	if _, err := New(cfg, Options{HTTPClient: client}); err == nil {
		t.Error("New: got nil, want an error for ca_file with Options.HTTPClient")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestHTTPTLSWithCAFile(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"tls":true}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake below is expected
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := httpConfig(srv.URL)
	cfg.HTTP.CAFile = ca
	inj := mustNew(t, cfg, Options{})
	if _, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false)); h.Get(rivet.HeaderConnParams) != `{"tls":true}` {
		t.Errorf("with ca_file: got params %q, want {\"tls\":true}", h.Get(rivet.HeaderConnParams))
	}

	cfg.HTTP.CAFile = ""
	cfg.Retry.MaxAttempts = 1
	obs := &observed{}
	inj = mustNew(t, cfg, Options{Observe: obs.add})
	if rec, _ := serve(t, inj, newReq(t, http.MethodPost, actionPath, false)); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("without ca_file: got status %d, want 503", rec.Code)
	}
	if f := obs.last(t); f.Cause != CauseUnreachable {
		t.Errorf("without ca_file: got cause %q, want unreachable", f.Cause)
	}
}

func TestBackoffFullJitter(t *testing.T) {
	p := retryPolicy{attempts: 10, initial: 100 * time.Millisecond, maxCap: time.Second, budget: time.Minute}
	for n, cap := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 70: time.Second} {
		var maxSeen time.Duration
		for range 2000 {
			d := p.backoff(n)
			if d < 0 || d > cap {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, cap)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < cap/2 {
			t.Errorf("backoff(%d): largest of 2000 draws %v, want the whole [0, %v] range used", n, maxSeen, cap)
		}
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCache(time.Minute, 3)
	now := time.Now()
	for i := range 10 {
		c.put(string(rune('a'+i)), object{}, now)
	}
	if got := c.len(); got != 3 {
		t.Errorf("got %d entries, want at most 3", got)
	}
	c.put("z", object{}, now)
	if _, ok := c.get("z", now); !ok {
		t.Error("the newest entry is missing")
	}
	if _, ok := c.get("z", now.Add(time.Minute)); ok {
		t.Error("got an expired entry")
	}
}

func TestHTTPAfterCloseUncached(t *testing.T) {
	svc := newService(t, answer(`{}`))
	inj, err := New(httpConfig(svc.URL), Options{})
	if err != nil {
		t.Fatal(err)
	}
	inj.Close()
	rec, h := serve(t, inj, newReq(t, http.MethodPost, actionPath, false))
	if e := decodeError(t, rec); rec.Code != http.StatusServiceUnavailable || e.Group+"."+e.Code != "ws.going_away" || h != nil {
		t.Errorf("got %d %s.%s, want 503 ws.going_away and nothing forwarded", rec.Code, e.Group, e.Code)
	}
	if got := svc.hits.Load(); got != 0 {
		t.Errorf("service got %d requests after Close, want 0", got)
	}
}

// TestHTTPHeaderFiles: http.header_files values are read from their files
// (trailing newline trimmed) when the injector is built; a missing, empty
// or multi-line file fails New with the header's name and never its value.
func TestHTTPHeaderFiles(t *testing.T) {
	svc := newService(t, answer(`{"role":"viewer"}`))
	dir := t.TempDir()
	file := filepath.Join(dir, "authorization")
	if err := os.WriteFile(file, []byte("Bearer from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := httpConfig(svc.URL)
	cfg.HTTP.Headers = map[string]string{"X-Extra": "1"}
	cfg.HTTP.HeaderFiles = map[string]string{"Authorization": file}
	inj := mustNew(t, cfg, Options{Caller: callerFn(testCaller(t))})
	if rec, _ := serve(t, inj, newReq(t, http.MethodGet, connectPath, true, "rivet", "rivet_encoding.json")); rec.Code != http.StatusNoContent {
		t.Fatalf("got status %d, want 204 (%s)", rec.Code, rec.Body)
	}
	svc.mu.Lock()
	sh := svc.headers[0]
	svc.mu.Unlock()
	if got := sh.Get("Authorization"); got != "Bearer from-file" {
		t.Errorf("service got Authorization %q, want the file's value", got)
	}
	if got := sh.Get("X-Extra"); got != "1" {
		t.Errorf("service got X-Extra %q, want 1", got)
	}

	for name, content := range map[string]string{"empty": "\n", "two lines": "Bearer a\nX-Evil: 1\n"} {
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(cfg, Options{})
		if err == nil || !strings.Contains(err.Error(), "params.http.header_files.Authorization") || strings.Contains(err.Error(), "Bearer") {
			t.Errorf("%s file: New error %v, want one naming the header and not its value", name, err)
		}
	}
	cfg.HTTP.HeaderFiles["Authorization"] = filepath.Join(dir, "missing")
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "params.http.header_files.Authorization") {
		t.Errorf("missing file: New error %v, want one naming the header", err)
	}
}
