package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Actor ids the engine accepts (rivet.CanonicalActorID), checked by
// TestFixtureIDs.
const (
	idBob   = "hwzdj7sr4l7y4lxlvc506jrjwtal00"
	idAlice = "5n4e5u6wgh5fqm4dx2xmugup8bbl00"
	idCarol = "tdpqkgvaig2jgfhgqrgvpg0u30cl00"
	idDave  = "18u0pfwqixkattvm3ohf6f511mcl00"
)

// The engine's (2.3.19) answers to GET /actors?actor_ids=<id>&namespace=<ns>.
const (
	// bobAnswer is the real answer for idBob in namespace default.
	bobAnswer = `{"actors":[{"actor_id":"hwzdj7sr4l7y4lxlvc506jrjwtal00","name":"counter","key":"bob","namespace_id":"tpqfean367medg6n48erh90q8ibl00","datacenter":"default","runner_name_selector":"default","crash_policy":"sleep","create_ts":1796526144400,"start_ts":null,"pending_allocation_ts":null,"connectable_ts":null,"sleep_ts":null,"reschedule_ts":null,"destroy_ts":null}],"pagination":{"cursor":"1796526144400"}}`
	// emptyAnswer: the namespace exists and does not hold the id.
	emptyAnswer = `{"actors":[],"pagination":{"cursor":null}}`
	// unknownNamespaceAnswer comes with HTTP 400.
	unknownNamespaceAnswer = `{"group":"namespace","code":"not_found","message":"The namespace does not exist."}`
)

// actorAnswer builds an engine answer listing one actor, in the real
// answer's shape. key is the serialized key, or nil for a keyless actor.
func actorAnswer(id, name string, key *string) string {
	type actor struct {
		ActorID             string  `json:"actor_id"`
		Name                string  `json:"name"`
		Key                 *string `json:"key"`
		NamespaceID         string  `json:"namespace_id"`
		Datacenter          string  `json:"datacenter"`
		RunnerNameSelector  string  `json:"runner_name_selector"`
		CrashPolicy         string  `json:"crash_policy"`
		CreateTS            int64   `json:"create_ts"`
		StartTS             *int64  `json:"start_ts"`
		PendingAllocationTS *int64  `json:"pending_allocation_ts"`
		ConnectableTS       *int64  `json:"connectable_ts"`
		SleepTS             *int64  `json:"sleep_ts"`
		RescheduleTS        *int64  `json:"reschedule_ts"`
		DestroyTS           *int64  `json:"destroy_ts"`
	}
	cursor := "1796526144400"
	b, err := json.Marshal(struct {
		Actors     []actor `json:"actors"`
		Pagination struct {
			Cursor *string `json:"cursor"`
		} `json:"pagination"`
	}{
		Actors: []actor{{ActorID: id, Name: name, Key: key, NamespaceID: "tpqfean367medg6n48erh90q8ibl00",
			Datacenter: "default", RunnerNameSelector: "default", CrashPolicy: "sleep", CreateTS: 1796526144400}},
		Pagination: struct {
			Cursor *string `json:"cursor"`
		}{&cursor},
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}

func ptr(s string) *string { return &s }

// reply is one answer of the fake engine: err is a transport error.
type reply struct {
	status int
	body   string
	err    error
	// cut makes reading the body fail after body (the connection broke).
	cut bool
}

// fakeEngine is the engine's GET /actors?actor_ids=&namespace= over an
// in-memory set of namespaces, or over answer when that is set.
type fakeEngine struct {
	mu         sync.Mutex
	namespaces map[string]map[string]string // namespace → id → answer body
	queries    []string                     // "namespace/id", in order
	badQueries []string                     // requests the engine would not understand

	// answer, when set, answers every lookup instead of namespaces.
	answer func(ns, id string) reply
	// gate, when set, holds every lookup until it is closed (or the
	// lookup's context ends).
	gate chan struct{}

	calls     atomic.Int32 // lookups received
	waiting   atomic.Int32 // lookups held at gate right now
	closed    atomic.Int32 // answer bodies closed
	deadlines atomic.Int32 // lookups whose context had a deadline
}

// newFakeEngine returns an engine with namespace "default" holding bob
// (the real answer) and the empty namespace "other". The test fails if the
// resolver sends a query the engine would not understand.
func newFakeEngine(t testing.TB) *fakeEngine {
	e := &fakeEngine{namespaces: map[string]map[string]string{
		"default": {idBob: bobAnswer},
		"other":   {},
	}}
	t.Cleanup(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if len(e.badQueries) > 0 {
			t.Errorf("engine got malformed lookups: %q", e.badQueries)
		}
	})
	return e
}

// put stores an actor's answer in ns (created if needed).
func (e *fakeEngine) put(ns, id, answer string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.namespaces[ns] == nil {
		e.namespaces[ns] = map[string]string{}
	}
	e.namespaces[ns][id] = answer
}

// lookups returns the lookups received, as "namespace/id".
func (e *fakeEngine) lookups() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.queries...)
}

func (e *fakeEngine) Get(ctx context.Context, path, rawQuery string) (*http.Response, error) {
	q, err := url.ParseQuery(rawQuery)
	ns, id := q.Get("namespace"), q.Get("actor_ids")
	if err != nil || path != "/actors" || len(q) != 2 || len(q["namespace"]) != 1 || len(q["actor_ids"]) != 1 || ns == "" {
		e.mu.Lock()
		e.badQueries = append(e.badQueries, path+"?"+rawQuery)
		e.mu.Unlock()
		return response(http.StatusBadRequest, `{"group":"api","code":"bad_request","message":"test engine: bad lookup"}`, &e.closed), nil
	}
	e.calls.Add(1)
	if _, ok := ctx.Deadline(); ok {
		e.deadlines.Add(1)
	}
	e.mu.Lock()
	e.queries = append(e.queries, ns+"/"+id)
	gate := e.gate
	e.mu.Unlock()
	if gate != nil {
		e.waiting.Add(1)
		select {
		case <-gate:
			e.waiting.Add(-1)
		case <-ctx.Done():
			e.waiting.Add(-1)
			return nil, ctx.Err()
		}
	}
	rep := e.reply(ns, id)
	if rep.err != nil {
		return nil, rep.err
	}
	res := response(rep.status, rep.body, &e.closed)
	if rep.cut {
		res.Body = &countingBody{Reader: io.MultiReader(strings.NewReader(rep.body), iotest.ErrReader(io.ErrUnexpectedEOF)), closed: &e.closed}
	}
	return res, nil
}

func (e *fakeEngine) reply(ns, id string) reply {
	if e.answer != nil {
		return e.answer(ns, id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ids, ok := e.namespaces[ns]
	if !ok {
		return reply{status: http.StatusBadRequest, body: unknownNamespaceAnswer}
	}
	if body, ok := ids[id]; ok {
		return reply{status: http.StatusOK, body: body}
	}
	return reply{status: http.StatusOK, body: emptyAnswer}
}

func response(status int, body string, closed *atomic.Int32) *http.Response {
	return &http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       &countingBody{Reader: strings.NewReader(body), closed: closed},
	}
}

type countingBody struct {
	io.Reader
	closed *atomic.Int32
}

func (b *countingBody) Close() error {
	b.closed.Add(1)
	return nil
}

// httpEngine is the Engine over HTTP, as the proxy implements it: for
// tests against an httptest.Server.
type httpEngine struct {
	base   string
	client *http.Client
}

func (e httpEngine) Get(ctx context.Context, path, rawQuery string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path+"?"+rawQuery, nil)
	if err != nil {
		return nil, err
	}
	return e.client.Do(req)
}

// fakeClock is the Resolver's clock, moved by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// observer records Options.Observe calls.
type observer struct {
	mu  sync.Mutex
	got []Lookup
}

func (o *observer) observe(l Lookup) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, l)
}

// results returns the results observed so far and forgets them.
func (o *observer) results() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, len(o.got))
	for i, l := range o.got {
		out[i] = l.Result
	}
	o.got = nil
	return out
}

// newResolver builds a Resolver over engine with the default config
// changed by edit (may be nil), its clock a fakeClock and its lookups
// recorded.
func newResolver(t testing.TB, engine Engine, edit func(*Config)) (*Resolver, *fakeClock, *observer) {
	t.Helper()
	cfg := DefaultConfig()
	if edit != nil {
		edit(&cfg)
	}
	o := &observer{}
	r, err := New(cfg, engine, Options{Observe: o.observe})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := &fakeClock{t: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)}
	r.now = clock.Now
	return r, clock, o
}

// doneCounter counts calls to Done: the Resolver selects on a caller's
// Done only once it has joined the lookup of the id (after DoChan), so a
// count of n means n callers are waiting on the shared lookup.
type doneCounter struct {
	context.Context
	n *atomic.Int32
}

func (c doneCounter) Done() <-chan struct{} {
	c.n.Add(1)
	return c.Context.Done()
}

// waitUntil waits for cond, failing the test after a generous bound. It
// yields between checks; it never sleeps a fixed time.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// checkGoroutines fails the test if goroutines started during it are still
// running once it ends (after the cleanups registered later, which run
// first). Tests that use it must not run in parallel.
func checkGoroutines(t testing.TB) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: got %d, want at most %d\n%s", runtime.NumGoroutine(), base, buf)
				return
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond) // leak check only: let exiting goroutines finish
		}
	})
}

// wantErr checks err against the rejection want (by group and code), and
// the status the client sees.
func wantErr(t testing.TB, err error, want *rivet.Error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s.%s", want.Group, want.Code)
	}
	e := rivet.AsError(err)
	if e.Group != want.Group || e.Code != want.Code || e.Status != want.Status {
		t.Fatalf("got %d %s.%s (%v), want %d %s.%s", e.Status, e.Group, e.Code, err, want.Status, want.Group, want.Code)
	}
}

// wantUnavailable checks err is the retryable 503 guard.service_unavailable.
func wantUnavailable(t testing.TB, err error) {
	t.Helper()
	wantErr(t, err, ErrUnavailable)
	e := rivet.AsError(err)
	if !e.Retryable {
		t.Errorf("got Retryable false, want true")
	}
	if e.RetryAfter <= 0 {
		t.Errorf("got RetryAfter %v, want > 0", e.RetryAfter)
	}
	if got := e.Reason(); got != "guard.service_unavailable" {
		t.Errorf("got close reason %q, want guard.service_unavailable", got)
	}
}

// served is what the Middleware did with one request.
type served struct {
	rec  *httptest.ResponseRecorder
	rt   *rivet.Route
	next bool // next ran
	// body, contentLength and transferEncoding are the request as next
	// saw it.
	body             []byte
	contentLength    int64
	transferEncoding []string
}

// serve classifies req (rivet.ParseRequest), stores the route in its
// context and runs it through r's Middleware in front of a handler that
// records what it received and answers 204.
func serve(t testing.TB, r *Resolver, req *http.Request) served {
	t.Helper()
	rt, err := rivet.ParseRequest(req)
	if err != nil {
		t.Fatalf("ParseRequest(%s %s): %v", req.Method, req.RequestURI, err)
	}
	s := served{rec: httptest.NewRecorder(), rt: &rt}
	next := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.next = true
		b, err := io.ReadAll(req.Body)
		if err != nil {
			t.Errorf("next handler reading the body: %v", err)
		}
		s.body, s.contentLength, s.transferEncoding = b, req.ContentLength, req.TransferEncoding
		if got := rivet.RouteFrom(req.Context()); got != &rt {
			t.Errorf("next handler: got route %p, want the classified route %p", got, &rt)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	r.Middleware(next).ServeHTTP(s.rec, req.WithContext(rivet.WithRoute(req.Context(), &rt)))
	return s
}

// wantRejection checks a Middleware answer: status, RivetKit error body
// and X-Rivet-Error header; next must not have run.
func wantRejection(t testing.TB, s served, want *rivet.Error) {
	t.Helper()
	if s.rec.Code != want.Status {
		t.Errorf("got status %d, want %d (body %s)", s.rec.Code, want.Status, s.rec.Body)
	}
	var body struct{ Group, Code string }
	if err := json.Unmarshal(s.rec.Body.Bytes(), &body); err != nil {
		t.Errorf("error body %q: %v", s.rec.Body, err)
	}
	if body.Group != want.Group || body.Code != want.Code {
		t.Errorf("got error %s.%s, want %s.%s", body.Group, body.Code, want.Group, want.Code)
	}
	if got, wantH := s.rec.Header().Get(rivet.HeaderError), want.Group+"."+want.Code; got != wantH {
		t.Errorf("got %s %q, want %q", rivet.HeaderError, got, wantH)
	}
	if s.next {
		t.Errorf("next handler ran after a rejection")
	}
}
