package params

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// withRoute classifies requests like the gateway's route middleware does.
func withRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, err := rivet.ParseRequest(r)
		if err != nil {
			rivet.WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(rivet.WithRoute(r.Context(), &rt)))
	})
}

// Targets used across tests. An id target must name a real Rivet actor id
// (30 base36 digits, version 1): anything else is refused by the route
// parser before params are looked at.
const (
	actorID     = "tdpqkgvaig2jgfhgqrgvpg0u30cl00"
	actionPath  = "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=room-1"
	connectPath = "/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=room-1"
	rawWSPath   = "/gateway/" + actorID + "/websocket/raw/path?y=2"
	queuePath   = "/gateway/" + actorID + "/queue/jobs"
	requestPath = "/gateway/" + actorID + "/request/hello?x=1"
)

// newReq builds a request; ws makes it a WebSocket upgrade offering protos.
func newReq(t testing.TB, method, target string, ws bool, protos ...string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	if ws {
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if len(protos) > 0 {
			r.Header.Set("Sec-WebSocket-Protocol", strings.Join(protos, ", "))
		}
	}
	return r
}

// upstream records what reached the handler after the injector.
type upstream struct {
	mu     sync.Mutex
	hits   int
	header http.Header
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.hits++
	u.header = r.Header.Clone()
	u.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (u *upstream) last() (http.Header, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.header, u.hits
}

// serve runs r through route classification, the injector and up.
func serve(t testing.TB, inj *Injector, r *http.Request) (*httptest.ResponseRecorder, http.Header) {
	t.Helper()
	up := &upstream{}
	rec := httptest.NewRecorder()
	withRoute(inj.Middleware(up)).ServeHTTP(rec, r)
	h, _ := up.last()
	return rec, h
}

// engineHeaderParams decodes the header carrier as the engine does: raw
// non-ASCII bytes are dropped (so the test fails on them), then JSON.
func engineHeaderParams(t testing.TB, h http.Header, name string) any {
	t.Helper()
	v := h.Get(name)
	if v == "" {
		t.Fatalf("got no %s header, want one", name)
	}
	for i := 0; i < len(v); i++ {
		if v[i] >= 0x80 || v[i] < 0x20 {
			t.Fatalf("header %s byte %d is %#x, want printable ASCII", name, i, v[i])
		}
	}
	var out any
	if err := json.Unmarshal([]byte(v), &out); err != nil {
		t.Fatalf("header %s is not JSON: %v", name, err)
	}
	return out
}

// engineProtocolParams decodes the subprotocol carrier as the engine does:
// form decoding ('+' is a space), then JSON.
func engineProtocolParams(t testing.TB, h http.Header) any {
	t.Helper()
	var found []string
	for _, p := range rivet.Subprotocols(h) {
		if enc, ok := strings.CutPrefix(p, rivet.ProtocolConnParamsPrefix); ok {
			found = append(found, enc)
		}
	}
	if len(found) != 1 {
		t.Fatalf("got %d rivet_conn_params entries in %q, want 1", len(found), h.Values("Sec-WebSocket-Protocol"))
	}
	for i := 0; i < len(found[0]); i++ {
		if !isTokenChar(found[0][i]) {
			t.Fatalf("subprotocol byte %d is %q, want an RFC 9110 token character", i, found[0][i])
		}
	}
	s, err := url.QueryUnescape(found[0])
	if err != nil {
		t.Fatalf("subprotocol entry does not form-decode: %v", err)
	}
	var out any
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("subprotocol entry is not JSON: %v", err)
	}
	return out
}

func jsonValue(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %q: %v", s, err)
	}
	return v
}

// service is a fake params service.
type service struct {
	*httptest.Server
	hits    atomic.Int64
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
}

// newService answers with handle(n, w, r), n counting requests from 1.
func newService(t testing.TB, handle func(n int64, w http.ResponseWriter, r *http.Request)) *service {
	t.Helper()
	s := &service{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, body)
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		handle(s.hits.Add(1), w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *service) lastBody(t testing.TB) map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bodies) == 0 {
		t.Fatal("the params service got no request")
	}
	var m map[string]any
	if err := json.Unmarshal(s.bodies[len(s.bodies)-1], &m); err != nil {
		t.Fatalf("request body is not a JSON object: %v", err)
	}
	return m
}

func answer(body string) func(int64, http.ResponseWriter, *http.Request) {
	return func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}
}

// httpConfig is a source http config for url with fast retries.
func httpConfig(url string) Config {
	c := DefaultConfig()
	c.Source = SourceHTTP
	c.HTTP.URL = url
	c.HTTP.Timeout = time.Second
	c.Retry = RetryConfig{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Budget: 5 * time.Second}
	return c
}

func mustNew(t testing.TB, cfg Config, opts Options) *Injector {
	t.Helper()
	inj, err := New(cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(inj.Close)
	return inj
}

// observed collects Fetch reports.
type observed struct {
	mu sync.Mutex
	fs []Fetch
}

func (o *observed) add(f Fetch) { o.mu.Lock(); o.fs = append(o.fs, f); o.mu.Unlock() }

func (o *observed) last(t testing.TB) Fetch {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.fs) == 0 {
		t.Fatal("Observe was not called")
	}
	return o.fs[len(o.fs)-1]
}

// errorBody decodes a RivetKit JSON error.
type errorBody struct {
	Group    string         `json:"group"`
	Code     string         `json:"code"`
	Message  string         `json:"message"`
	Metadata map[string]any `json:"metadata"`
}

func decodeError(t testing.TB, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("got Content-Type %q, want application/json (body %q)", ct, rec.Body.String())
	}
	var e errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q: %v", rec.Body.String(), err)
	}
	return e
}

func staticConfig(m map[string]any) Config {
	c := DefaultConfig()
	c.Source = SourceStatic
	c.Static = m
	return c
}

func claimsConfig(m map[string]any) Config {
	c := DefaultConfig()
	c.Source = SourceClaims
	c.Claims = m
	return c
}

func callerFn(c *Caller) func(*http.Request) *Caller {
	return func(*http.Request) *Caller { return c }
}
