package actors

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

var bob = rivet.Actor{ID: idBob, Namespace: "default", Name: "counter", Key: []string{"bob"}}

func TestFixtureIDs(t *testing.T) {
	for _, id := range []string{idBob, idAlice, idCarol, idDave} {
		if got, ok := rivet.CanonicalActorID(id); !ok || got != id {
			t.Errorf("CanonicalActorID(%q): got %q, %v, want %q, true", id, got, ok, id)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate("actors"); err != nil {
		t.Fatalf("DefaultConfig().Validate: got %v, want nil", err)
	}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"not found ttl zero", func(c *Config) { c.NotFoundTTL = 0 }, nil},
		{"two namespaces", func(c *Config) { c.Namespaces = []string{"a", "default"} }, nil},
		{"no namespaces", func(c *Config) { c.Namespaces = nil }, []string{"actors.namespaces:"}},
		{"empty namespace", func(c *Config) { c.Namespaces = []string{"a", ""} }, []string{"actors.namespaces[1]: must not be empty"}},
		{"repeated namespace", func(c *Config) { c.Namespaces = []string{"a", "a"} }, []string{`actors.namespaces[1]: "a" is listed twice`}},
		{"zero ttl", func(c *Config) { c.CacheTTL = 0 }, []string{"actors.cache_ttl:"}},
		{"zero size", func(c *Config) { c.CacheSize = 0 }, []string{"actors.cache_size:"}},
		{"negative not found ttl", func(c *Config) { c.NotFoundTTL = -time.Second }, []string{"actors.not_found_ttl:"}},
		{"zero timeout", func(c *Config) { c.Timeout = 0 }, []string{"actors.timeout:"}},
		{"zero body", func(c *Config) { c.MaxBodyBytes = 0 }, []string{"actors.max_body_bytes:"}},
		{"every problem", func(c *Config) { *c = Config{NotFoundTTL: -1} }, []string{
			"actors.namespaces:", "actors.cache_ttl:", "actors.cache_size:", "actors.not_found_ttl:", "actors.timeout:", "actors.max_body_bytes:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate("actors")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				if _, err := New(cfg, newFakeEngine(t), Options{}); err != nil {
					t.Fatalf("New: got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to mention %q", err, w)
				}
			}
			if _, err := New(cfg, newFakeEngine(t), Options{}); err == nil {
				t.Errorf("New: got nil error, want the validation error")
			}
		})
	}
}

// TestResolve covers one lookup against the engine: which namespaces are
// asked, in what order, and what the caller and Observe get.
func TestResolve(t *testing.T) {
	tests := []struct {
		name        string
		namespaces  []string
		setup       func(*fakeEngine)
		id          string
		want        rivet.Actor
		wantErr     *rivet.Error
		wantLookups []string
		wantResult  string
	}{
		{
			name: "found", namespaces: []string{"default"}, id: idBob,
			want: bob, wantLookups: []string{"default/" + idBob}, wantResult: ResultMiss,
		},
		{
			name: "not in the namespace", namespaces: []string{"default"}, id: idAlice,
			wantErr: ErrNotFound, wantLookups: []string{"default/" + idAlice}, wantResult: ResultNotFound,
		},
		{
			name: "in the second namespace", namespaces: []string{"other", "default"}, id: idBob,
			want: bob, wantLookups: []string{"other/" + idBob, "default/" + idBob}, wantResult: ResultMiss,
		},
		{
			name: "unknown namespace is not found there", namespaces: []string{"nope", "default"}, id: idBob,
			want: bob, wantLookups: []string{"nope/" + idBob, "default/" + idBob}, wantResult: ResultMiss,
		},
		{
			name: "only an unknown namespace", namespaces: []string{"nope"}, id: idBob,
			wantErr: ErrNotFound, wantLookups: []string{"nope/" + idBob}, wantResult: ResultNotFound,
		},
		{
			name: "in no namespace", namespaces: []string{"nope", "other", "default"}, id: idCarol,
			wantErr: ErrNotFound, wantLookups: []string{"nope/" + idCarol, "other/" + idCarol, "default/" + idCarol}, wantResult: ResultNotFound,
		},
		{
			name: "first namespace that knows it wins", namespaces: []string{"default", "other"}, id: idBob,
			want: bob, wantLookups: []string{"default/" + idBob}, wantResult: ResultMiss,
		},
		{
			name: "found in a later namespace only", namespaces: []string{"default", "other"}, id: idCarol,
			setup:       func(e *fakeEngine) { e.put("other", idCarol, actorAnswer(idCarol, "chat", ptr("room/1"))) },
			want:        rivet.Actor{ID: idCarol, Namespace: "other", Name: "chat", Key: []string{"room", "1"}},
			wantLookups: []string{"default/" + idCarol, "other/" + idCarol}, wantResult: ResultMiss,
		},
		{
			name: "namespace that needs escaping", namespaces: []string{"team a&b=c"}, id: idDave,
			setup:       func(e *fakeEngine) { e.put("team a&b=c", idDave, actorAnswer(idDave, "doc", ptr("/"))) },
			want:        rivet.Actor{ID: idDave, Namespace: "team a&b=c", Name: "doc", Key: []string{}},
			wantLookups: []string{"team a&b=c/" + idDave}, wantResult: ResultMiss,
		},
		{
			name: "engine down in the first namespace fails closed", namespaces: []string{"broken", "default"}, id: idBob,
			setup: func(e *fakeEngine) {
				e.answer = func(ns, id string) reply {
					if ns == "broken" {
						return reply{status: http.StatusInternalServerError, body: `{"group":"core","code":"internal_error"}`}
					}
					return reply{status: http.StatusOK, body: bobAnswer}
				}
			},
			wantErr: ErrUnavailable, wantLookups: []string{"broken/" + idBob}, wantResult: ResultError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			r, _, o := newResolver(t, e, func(c *Config) { c.Namespaces = tt.namespaces })
			got, err := r.Resolve(context.Background(), tt.namespaces, tt.id)
			if tt.wantErr != nil {
				wantErr(t, err, tt.wantErr)
				if got := rivet.AsError(err).Metadata["actor_id"]; tt.wantErr == ErrNotFound && got != tt.id {
					t.Errorf("got metadata actor_id %v, want %q", got, tt.id)
				}
			} else if err != nil {
				t.Fatalf("got error %v, want %+v", err, tt.want)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got := e.lookups(); !slices.Equal(got, tt.wantLookups) {
				t.Errorf("got engine lookups %q, want %q", got, tt.wantLookups)
			}
			if got := o.results(); !slices.Equal(got, []string{tt.wantResult}) {
				t.Errorf("got observed %q, want [%s]", got, tt.wantResult)
			}
			if got, want := e.closed.Load(), e.calls.Load(); got != want {
				t.Errorf("got %d answer bodies closed, want %d", got, want)
			}
		})
	}
}

// TestResolveKeys reads the serialized keys of engine answers.
func TestResolveKeys(t *testing.T) {
	tests := []struct {
		name    string
		key     *string
		want    []string
		wantErr bool
	}{
		{"one part", ptr("bob"), []string{"bob"}, false},
		{"two parts", ptr("a/b"), []string{"a", "b"}, false},
		{"escaped slash", ptr(`a\/b`), []string{"a/b"}, false},
		{"escaped backslash", ptr(`a\\b`), []string{`a\b`}, false},
		{"empty part", ptr(`\0`), []string{""}, false},
		{"empty parts", ptr(`\0/\0`), []string{"", ""}, false},
		{"empty key", ptr("/"), []string{}, false},
		{"keyless (null)", nil, []string{}, false},
		{"unicode", ptr("ключ/🔑"), []string{"ключ", "🔑"}, false},
		{"non-canonical backslash", ptr(`a\b`), nil, true},
		{"empty string", ptr(""), nil, true},
		{"trailing slash", ptr("a/"), nil, true},
		{"leading slash", ptr("/a"), nil, true},
		{"double slash", ptr("a//b"), nil, true},
		{"trailing backslash", ptr(`a\`), nil, true},
		{"escaped zero inside a part", ptr(`a\0`), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(t)
			e.put("default", idAlice, actorAnswer(idAlice, "counter", tt.key))
			r, _, o := newResolver(t, e, nil)
			got, err := r.Resolve(context.Background(), []string{"default"}, idAlice)
			if tt.wantErr {
				wantErr(t, err, ErrUnclassifiable)
				if got := rivet.AsError(err).Status; got != http.StatusForbidden {
					t.Errorf("got status %d, want 403", got)
				}
				if got := o.results(); !slices.Equal(got, []string{ResultUnclassifiable}) {
					t.Errorf("got observed %q, want [unclassifiable]", got)
				}
				// Nothing is remembered of an actor that cannot be classified.
				if _, err := r.Resolve(context.Background(), []string{"default"}, idAlice); !errors.Is(err, ErrUnclassifiable) {
					t.Errorf("second lookup: got %v, want ErrUnclassifiable", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want key %q", err, tt.want)
			}
			want := rivet.Actor{ID: idAlice, Namespace: "default", Name: "counter", Key: tt.want}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
			if got.Key == nil {
				t.Errorf("got nil key, want empty (not nil)")
			}
		})
	}
}

// TestResolveAnswerIDs checks the resolver takes only the requested id from
// an answer, whatever else it lists.
func TestResolveAnswerIDs(t *testing.T) {
	upper := strings.Replace(bobAnswer, idBob, strings.ToUpper(idBob), 1)
	other := strings.Replace(bobAnswer, idBob, idAlice, 1)
	invalid := strings.Replace(bobAnswer, idBob, "zzzzzzzzzzzzzzzzzzzzzzzzzzzz00", 1)
	two := `{"actors":[` + strings.TrimSuffix(strings.TrimPrefix(actorAnswer(idAlice, "evil", ptr("admin")), `{"actors":[`), `],"pagination":{"cursor":"1796526144400"}}`) +
		`,` + strings.TrimSuffix(strings.TrimPrefix(bobAnswer, `{"actors":[`), `],"pagination":{"cursor":"1796526144400"}}`) + `],"pagination":{"cursor":null}}`
	tests := []struct {
		name    string
		answer  string
		want    rivet.Actor
		wantErr *rivet.Error
	}{
		{"real answer", bobAnswer, bob, nil},
		{"upper-case id", upper, bob, nil},
		{"different id is ignored", other, rivet.Actor{}, ErrNotFound},
		{"invalid id is ignored", invalid, rivet.Actor{}, ErrNotFound},
		{"requested id after another", two, bob, nil},
		{"empty list", emptyAnswer, rivet.Actor{}, ErrNotFound},
		{"no actors field", `{"pagination":{"cursor":null}}`, rivet.Actor{}, ErrNotFound},
		{"null actors", `{"actors":null}`, rivet.Actor{}, ErrNotFound},
		{"unknown fields", `{"actors":[{"actor_id":"` + idBob + `","name":"counter","key":"bob","extra":{"x":[1,2]}}],"more":true}`, bob, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(t)
			e.put("default", idBob, tt.answer)
			r, _, _ := newResolver(t, e, nil)
			got, err := r.Resolve(context.Background(), []string{"default"}, idBob)
			if tt.wantErr != nil {
				wantErr(t, err, tt.wantErr)
			} else if err != nil {
				t.Fatalf("got error %v, want %+v", err, tt.want)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestResolveEngineErrors: whenever the engine cannot give a readable
// answer, the lookup fails closed with the retryable 503, nothing is
// cached, and the next lookup asks again.
func TestResolveEngineErrors(t *testing.T) {
	tests := []struct {
		name string
		rep  reply
	}{
		{"500", reply{status: http.StatusInternalServerError, body: `{"group":"core","code":"internal_error","message":"An internal error occurred"}`}},
		{"502 html", reply{status: http.StatusBadGateway, body: `<html>bad gateway</html>`}},
		{"503 empty", reply{status: http.StatusServiceUnavailable}},
		{"401", reply{status: http.StatusUnauthorized, body: `{"group":"auth","code":"unauthorized","message":"no"}`}},
		{"400 other error", reply{status: http.StatusBadRequest, body: `{"group":"validation","code":"too_many_actor_ids"}`}},
		{"404 actor not found", reply{status: http.StatusNotFound, body: `{"group":"actor","code":"not_found"}`}},
		{"redirect", reply{status: http.StatusFound, body: bobAnswer}},
		{"transport error", reply{err: errors.New("dial tcp 127.0.0.1:6420: connect: connection refused")}},
		{"connection broken while reading", reply{status: http.StatusOK, body: bobAnswer[:40], cut: true}},
		{"connection broken after a whole answer", reply{status: http.StatusOK, body: bobAnswer, cut: true}},
		{"garbage", reply{status: http.StatusOK, body: "not json"}},
		{"empty 200", reply{status: http.StatusOK}},
		{"truncated", reply{status: http.StatusOK, body: bobAnswer[:len(bobAnswer)/2]}},
		{"actors not a list", reply{status: http.StatusOK, body: `{"actors":"` + idBob + `"}`}},
		{"actor id not a string", reply{status: http.StatusOK, body: `{"actors":[{"actor_id":1,"name":"counter","key":"bob"}]}`}},
		{"key not a string", reply{status: http.StatusOK, body: `{"actors":[{"actor_id":"` + idBob + `","name":"counter","key":["bob"]}]}`}},
		{"list not an object", reply{status: http.StatusOK, body: `[]`}},
		{"oversized", reply{status: http.StatusOK, body: strings.Repeat(" ", maxResponseBytes+1-len(bobAnswer)) + bobAnswer}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(t)
			broken := true
			e.answer = func(ns, id string) reply {
				if broken {
					return tt.rep
				}
				return reply{status: http.StatusOK, body: bobAnswer}
			}
			r, _, o := newResolver(t, e, nil)
			for i := range 2 {
				got, err := r.Resolve(context.Background(), []string{"default"}, idBob)
				wantUnavailable(t, err)
				if !reflect.DeepEqual(got, rivet.Actor{}) {
					t.Errorf("lookup %d: got actor %+v, want none", i, got)
				}
			}
			if got := e.calls.Load(); got != 2 {
				t.Errorf("got %d engine lookups, want 2 (errors are not cached)", got)
			}
			if got := o.results(); !slices.Equal(got, []string{ResultError, ResultError}) {
				t.Errorf("got observed %q, want [error error]", got)
			}
			broken = false
			got, err := r.Resolve(context.Background(), []string{"default"}, idBob)
			if err != nil || !reflect.DeepEqual(got, bob) {
				t.Errorf("after recovery: got %+v, %v, want %+v", got, err, bob)
			}
			if got, want := e.closed.Load(), e.calls.Load(); tt.rep.err == nil && got != want {
				t.Errorf("got %d answer bodies closed, want %d", got, want)
			}
		})
	}
}

func TestResolveAnswerSizeLimit(t *testing.T) {
	pad := func(n int) string { return strings.Repeat(" ", n-len(bobAnswer)) + bobAnswer }
	e := newFakeEngine(t)
	e.put("default", idBob, pad(maxResponseBytes))
	r, _, _ := newResolver(t, e, nil)
	if got, err := r.Resolve(context.Background(), []string{"default"}, idBob); err != nil || !reflect.DeepEqual(got, bob) {
		t.Errorf("answer of exactly %d bytes: got %+v, %v, want %+v", maxResponseBytes, got, err, bob)
	}
	e = newFakeEngine(t)
	e.put("default", idBob, pad(maxResponseBytes+1))
	r, _, _ = newResolver(t, e, nil)
	_, err := r.Resolve(context.Background(), []string{"default"}, idBob)
	wantUnavailable(t, err)
}

// TestResolveOverHTTP runs lookups against an httptest.Server the way the
// proxy sends them, and a server that is gone.
func TestResolveOverHTTP(t *testing.T) {
	checkGoroutines(t)
	var mu sync.Mutex
	var queries []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		queries = append(queries, req.URL.Query())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		q := req.URL.Query()
		switch {
		case req.Method != http.MethodGet || req.URL.Path != "/actors":
			w.WriteHeader(http.StatusNotFound)
		case q.Get("namespace") == "nope":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(unknownNamespaceAnswer))
		case q.Get("namespace") == "default" && q.Get("actor_ids") == idBob:
			_, _ = w.Write([]byte(bobAnswer))
		default:
			_, _ = w.Write([]byte(emptyAnswer))
		}
	}))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(srv.Close)
	r, _, _ := newResolver(t, httpEngine{base: srv.URL, client: &http.Client{Transport: tr}}, nil)

	got, err := r.Resolve(context.Background(), []string{"nope", "default"}, idBob)
	if err != nil || !reflect.DeepEqual(got, bob) {
		t.Fatalf("got %+v, %v, want %+v", got, err, bob)
	}
	if _, err := r.Resolve(context.Background(), []string{"team a&b"}, idAlice); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want ErrNotFound", err)
	}
	want := []url.Values{
		{"actor_ids": {idBob}, "namespace": {"nope"}},
		{"actor_ids": {idBob}, "namespace": {"default"}},
		{"actor_ids": {idAlice}, "namespace": {"team a&b"}},
	}
	mu.Lock()
	if !reflect.DeepEqual(queries, want) {
		t.Errorf("got queries %v, want %v", queries, want)
	}
	mu.Unlock()

	srv.Close()
	_, err = r.Resolve(context.Background(), []string{"default"}, idCarol)
	wantUnavailable(t, err)
}

func TestCacheHit(t *testing.T) {
	e := newFakeEngine(t)
	r, _, o := newResolver(t, e, nil)
	for i := range 3 {
		got, err := r.Resolve(context.Background(), []string{"default"}, idBob)
		if err != nil || !reflect.DeepEqual(got, bob) {
			t.Fatalf("lookup %d: got %+v, %v, want %+v", i, got, err, bob)
		}
	}
	if got := e.calls.Load(); got != 1 {
		t.Errorf("got %d engine lookups, want 1", got)
	}
	if got, want := o.results(), []string{ResultMiss, ResultHit, ResultHit}; !slices.Equal(got, want) {
		t.Errorf("got observed %q, want %q", got, want)
	}
}

// TestCacheSecondNamespace: an id found in the second namespace is
// answered from the cache for both namespaces next time.
func TestCacheSecondNamespace(t *testing.T) {
	e := newFakeEngine(t)
	r, _, o := newResolver(t, e, func(c *Config) { c.Namespaces = []string{"nope", "default"} })
	for range 2 {
		if got, err := r.Resolve(context.Background(), []string{"nope", "default"}, idBob); err != nil || !reflect.DeepEqual(got, bob) {
			t.Fatalf("got %+v, %v, want %+v", got, err, bob)
		}
	}
	if got, want := e.lookups(), []string{"nope/" + idBob, "default/" + idBob}; !slices.Equal(got, want) {
		t.Errorf("got engine lookups %q, want %q", got, want)
	}
	if got, want := o.results(), []string{ResultMiss, ResultHit}; !slices.Equal(got, want) {
		t.Errorf("got observed %q, want %q", got, want)
	}
}

// TestCacheSecondNamespaceNoNegativeCache: with NotFoundTTL 0 the first
// namespace is asked again each time, and the lookup is not a hit.
func TestCacheSecondNamespaceNoNegativeCache(t *testing.T) {
	e := newFakeEngine(t)
	r, _, o := newResolver(t, e, func(c *Config) {
		c.Namespaces = []string{"other", "default"}
		c.NotFoundTTL = 0
	})
	for range 2 {
		if got, err := r.Resolve(context.Background(), []string{"other", "default"}, idBob); err != nil || !reflect.DeepEqual(got, bob) {
			t.Fatalf("got %+v, %v, want %+v", got, err, bob)
		}
	}
	if got, want := e.lookups(), []string{"other/" + idBob, "default/" + idBob, "other/" + idBob}; !slices.Equal(got, want) {
		t.Errorf("got engine lookups %q, want %q", got, want)
	}
	if got, want := o.results(), []string{ResultMiss, ResultMiss}; !slices.Equal(got, want) {
		t.Errorf("got observed %q, want %q", got, want)
	}
}

// TestCachePerNamespace: what is cached for an id in one namespace does
// not answer for another.
func TestCachePerNamespace(t *testing.T) {
	e := newFakeEngine(t)
	r, _, _ := newResolver(t, e, nil)
	if _, err := r.Resolve(context.Background(), []string{"default"}, idBob); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(context.Background(), []string{"other"}, idBob); !errors.Is(err, ErrNotFound) {
		t.Errorf("in namespace other: got %v, want ErrNotFound", err)
	}
	if _, err := r.Resolve(context.Background(), []string{"other"}, idAlice); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	e.put("default", idAlice, actorAnswer(idAlice, "counter", ptr("alice")))
	got, err := r.Resolve(context.Background(), []string{"default"}, idAlice)
	if want := (rivet.Actor{ID: idAlice, Namespace: "default", Name: "counter", Key: []string{"alice"}}); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("not found in other, then in default: got %+v, %v, want %+v", got, err, want)
	}
	if got, want := e.lookups(), []string{"default/" + idBob, "other/" + idBob, "other/" + idAlice, "default/" + idAlice}; !slices.Equal(got, want) {
		t.Errorf("got engine lookups %q, want %q", got, want)
	}
}

func TestCacheTTL(t *testing.T) {
	const ttl = time.Minute
	e := newFakeEngine(t)
	r, clock, o := newResolver(t, e, func(c *Config) { c.CacheTTL = ttl })
	resolve := func() {
		t.Helper()
		if got, err := r.Resolve(context.Background(), []string{"default"}, idBob); err != nil || !reflect.DeepEqual(got, bob) {
			t.Fatalf("got %+v, %v, want %+v", got, err, bob)
		}
	}
	steps := []struct {
		advance    time.Duration
		wantCalls  int32
		wantResult string
	}{
		{0, 1, ResultMiss},
		{ttl - time.Nanosecond, 1, ResultHit},
		{time.Nanosecond, 2, ResultMiss}, // exactly ttl after the lookup: expired
		{ttl / 2, 2, ResultHit},
		{ttl / 2, 3, ResultMiss},
	}
	for i, s := range steps {
		clock.Advance(s.advance)
		resolve()
		if got := e.calls.Load(); got != s.wantCalls {
			t.Errorf("step %d: got %d engine lookups, want %d", i, got, s.wantCalls)
		}
		if got := o.results(); !slices.Equal(got, []string{s.wantResult}) {
			t.Errorf("step %d: got observed %q, want [%s]", i, got, s.wantResult)
		}
	}
}

func TestNotFoundCache(t *testing.T) {
	const ttl = 2 * time.Second
	for _, ns := range []string{"other", "nope"} { // existing and unknown namespace
		t.Run(ns, func(t *testing.T) {
			e := newFakeEngine(t)
			r, clock, o := newResolver(t, e, func(c *Config) { c.Namespaces = []string{ns}; c.NotFoundTTL = ttl })
			steps := []struct {
				advance   time.Duration
				create    bool // the actor now exists in ns
				wantFound bool
				wantCalls int32
			}{
				{0, false, false, 1},
				{ttl - time.Nanosecond, false, false, 1},
				{time.Nanosecond, false, false, 2},
				{time.Second, true, false, 2}, // created meanwhile: still answered from the cache
				{time.Second, false, true, 3}, // the negative entry expired
				{DefaultCacheTTL - time.Nanosecond, false, true, 3},
			}
			for i, s := range steps {
				clock.Advance(s.advance)
				if s.create {
					e.put(ns, idAlice, actorAnswer(idAlice, "counter", ptr("alice")))
				}
				got, err := r.Resolve(context.Background(), []string{ns}, idAlice)
				switch {
				case s.wantFound && err != nil:
					t.Errorf("step %d: got %v, want the actor", i, err)
				case !s.wantFound && !errors.Is(err, ErrNotFound):
					t.Errorf("step %d: got %+v, %v, want ErrNotFound", i, got, err)
				}
				if got := e.calls.Load(); got != s.wantCalls {
					t.Errorf("step %d: got %d engine lookups, want %d", i, got, s.wantCalls)
				}
			}
			want := []string{ResultNotFound, ResultNotFound, ResultNotFound, ResultNotFound, ResultMiss, ResultHit}
			if got := o.results(); !slices.Equal(got, want) {
				t.Errorf("got observed %q, want %q", got, want)
			}
		})
	}
}

func TestNotFoundTTLZero(t *testing.T) {
	e := newFakeEngine(t)
	r, _, o := newResolver(t, e, func(c *Config) { c.NotFoundTTL = 0 })
	for i := range 3 {
		if _, err := r.Resolve(context.Background(), []string{"default"}, idAlice); !errors.Is(err, ErrNotFound) {
			t.Fatalf("lookup %d: got %v, want ErrNotFound", i, err)
		}
	}
	if _, err := r.Resolve(context.Background(), []string{"nope"}, idAlice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown namespace: got %v, want ErrNotFound", err)
	}
	if _, err := r.Resolve(context.Background(), []string{"nope"}, idAlice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown namespace: got %v, want ErrNotFound", err)
	}
	if got := e.calls.Load(); got != 5 {
		t.Errorf("got %d engine lookups, want 5 (every lookup asks)", got)
	}
	e.put("default", idAlice, actorAnswer(idAlice, "counter", ptr("alice")))
	if _, err := r.Resolve(context.Background(), []string{"default"}, idAlice); err != nil {
		t.Errorf("once created: got %v, want the actor", err)
	}
	want := []string{ResultNotFound, ResultNotFound, ResultNotFound, ResultNotFound, ResultNotFound, ResultMiss}
	if got := o.results(); !slices.Equal(got, want) {
		t.Errorf("got observed %q, want %q", got, want)
	}
}

// TestCacheLRUBound: with room for two ids, a third evicts the least
// recently used.
func TestCacheLRUBound(t *testing.T) {
	e := newFakeEngine(t)
	for _, id := range []string{idAlice, idCarol, idDave} {
		e.put("default", id, actorAnswer(id, "counter", ptr(id)))
	}
	r, _, o := newResolver(t, e, func(c *Config) { c.CacheSize = 2 })
	steps := []struct {
		id         string
		wantResult string
	}{
		{idAlice, ResultMiss},
		{idCarol, ResultMiss},
		{idAlice, ResultHit}, // alice is now the most recently used
		{idDave, ResultMiss}, // evicts carol
		{idAlice, ResultHit},
		{idDave, ResultHit},
		{idCarol, ResultMiss}, // asked again; evicts alice
		{idAlice, ResultMiss},
	}
	for i, s := range steps {
		got, err := r.Resolve(context.Background(), []string{"default"}, s.id)
		if err != nil || got.ID != s.id || !slices.Equal(got.Key, []string{s.id}) {
			t.Fatalf("step %d: got %+v, %v, want actor %s", i, got, err, s.id)
		}
		if got := o.results(); !slices.Equal(got, []string{s.wantResult}) {
			t.Errorf("step %d (%s): got observed %q, want [%s]", i, s.id, got, s.wantResult)
		}
	}
	want := []string{"default/" + idAlice, "default/" + idCarol, "default/" + idDave, "default/" + idCarol, "default/" + idAlice}
	if got := e.lookups(); !slices.Equal(got, want) {
		t.Errorf("got engine lookups %q, want %q", got, want)
	}
}

// TestSingleflight: concurrent lookups of one id share one engine request.
func TestSingleflight(t *testing.T) {
	checkGoroutines(t)
	const n = 16
	e := newFakeEngine(t)
	e.gate = make(chan struct{})
	r, _, o := newResolver(t, e, nil)
	var joined atomic.Int32
	ctx := doneCounter{Context: context.Background(), n: &joined}
	type result struct {
		a   rivet.Actor
		err error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			a, err := r.Resolve(ctx, []string{"default"}, idBob)
			results <- result{a, err}
		}()
	}
	waitUntil(t, "every caller to wait on the shared lookup", func() bool {
		return joined.Load() == n && e.waiting.Load() == 1
	})
	close(e.gate)
	for range n {
		res := <-results
		if res.err != nil || !reflect.DeepEqual(res.a, bob) {
			t.Errorf("got %+v, %v, want %+v", res.a, res.err, bob)
		}
	}
	if got := e.calls.Load(); got != 1 {
		t.Errorf("got %d engine lookups, want 1", got)
	}
	if got := o.results(); len(got) != n || slices.ContainsFunc(got, func(s string) bool { return s != ResultMiss }) {
		t.Errorf("got observed %q, want %d × miss", got, n)
	}
	// The shared answer is cached.
	if _, err := r.Resolve(context.Background(), []string{"default"}, idBob); err != nil {
		t.Fatal(err)
	}
	if got := e.calls.Load(); got != 1 {
		t.Errorf("after the shared lookup: got %d engine lookups, want 1", got)
	}
}

// TestSingleflightPerID: lookups of different ids, or of one id in
// different namespaces, are not merged.
func TestSingleflightPerID(t *testing.T) {
	checkGoroutines(t)
	e := newFakeEngine(t)
	e.gate = make(chan struct{})
	e.put("default", idAlice, actorAnswer(idAlice, "counter", ptr("alice")))
	r, _, _ := newResolver(t, e, nil)
	lookups := []struct{ ns, id string }{{"default", idBob}, {"default", idAlice}, {"other", idBob}}
	errs := make(chan error, len(lookups))
	for _, l := range lookups {
		go func() {
			_, err := r.Resolve(context.Background(), []string{l.ns}, l.id)
			errs <- err
		}()
	}
	waitUntil(t, "three engine lookups", func() bool { return e.waiting.Load() == 3 })
	close(e.gate)
	var got []string
	for range lookups {
		if err := <-errs; err != nil {
			got = append(got, rivet.AsError(err).Code)
		} else {
			got = append(got, "ok")
		}
	}
	slices.Sort(got)
	if want := []string{"not_found", "ok", "ok"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCancelledCallerReturnsPromptly: a caller that goes away stops
// waiting at once; the shared lookup goes on for the others and is cached.
func TestCancelledCallerReturnsPromptly(t *testing.T) {
	checkGoroutines(t)
	e := newFakeEngine(t)
	e.gate = make(chan struct{})
	r, _, o := newResolver(t, e, nil)

	var joined atomic.Int32
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	type result struct {
		a   rivet.Actor
		err error
	}
	a, b := make(chan result, 1), make(chan result, 1)
	go func() {
		act, err := r.Resolve(doneCounter{Context: ctxA, n: &joined}, []string{"default"}, idBob)
		a <- result{act, err}
	}()
	waitUntil(t, "the first caller's engine lookup", func() bool { return joined.Load() == 1 && e.waiting.Load() == 1 })
	go func() {
		act, err := r.Resolve(doneCounter{Context: context.Background(), n: &joined}, []string{"default"}, idBob)
		b <- result{act, err}
	}()
	waitUntil(t, "the second caller to join", func() bool { return joined.Load() == 2 })

	cancelA()
	select {
	case res := <-a:
		wantErr(t, res.err, rivet.ErrClientClosed)
		if !errors.Is(res.err, context.Canceled) {
			t.Errorf("got %v, want it to wrap context.Canceled", res.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled caller still waiting on the engine")
	}
	select {
	case res := <-b:
		t.Fatalf("second caller returned before the engine answered: %+v, %v", res.a, res.err)
	default:
	}
	if got := e.waiting.Load(); got != 1 {
		t.Fatalf("got %d lookups waiting at the engine, want 1 (the lookup must outlive its first caller)", got)
	}
	close(e.gate)
	res := <-b
	if res.err != nil || !reflect.DeepEqual(res.a, bob) {
		t.Errorf("second caller: got %+v, %v, want %+v", res.a, res.err, bob)
	}
	if got, want := o.results(), []string{ResultError, ResultMiss}; !slices.Equal(got, want) {
		t.Errorf("got observed %q, want %q", got, want)
	}
	if _, err := r.Resolve(context.Background(), []string{"default"}, idBob); err != nil {
		t.Fatal(err)
	}
	if got := e.calls.Load(); got != 1 {
		t.Errorf("got %d engine lookups, want 1", got)
	}
	if got := e.deadlines.Load(); got != 1 {
		t.Errorf("got %d lookups with a deadline, want 1 (bounded by Timeout)", got)
	}
}

// TestCancelledOnlyCaller: when the only caller goes away, the lookup still
// completes and fills the cache.
func TestCancelledOnlyCaller(t *testing.T) {
	checkGoroutines(t)
	e := newFakeEngine(t)
	e.gate = make(chan struct{})
	r, _, _ := newResolver(t, e, nil)
	var joined atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := r.Resolve(doneCounter{Context: ctx, n: &joined}, []string{"default"}, idBob)
		errc <- err
	}()
	waitUntil(t, "the engine lookup", func() bool { return joined.Load() == 1 && e.waiting.Load() == 1 })
	cancel()
	wantErr(t, <-errc, rivet.ErrClientClosed)
	close(e.gate)
	waitUntil(t, "the answer to be read", func() bool { return e.closed.Load() == 1 })
	got, err := r.Resolve(context.Background(), []string{"default"}, idBob)
	if err != nil || !reflect.DeepEqual(got, bob) {
		t.Errorf("got %+v, %v, want %+v", got, err, bob)
	}
	if got := e.calls.Load(); got != 1 {
		t.Errorf("got %d engine lookups, want 1", got)
	}
}

// TestCancelledBeforeLookup: a caller already gone gets 499, not a 503.
func TestCancelledBeforeLookup(t *testing.T) {
	checkGoroutines(t)
	e := newFakeEngine(t)
	e.gate = make(chan struct{})
	r, _, _ := newResolver(t, e, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Resolve(ctx, []string{"default"}, idBob)
	wantErr(t, err, rivet.ErrClientClosed)
	close(e.gate)
}

// TestLookupTimeout: an engine that does not answer within Timeout is
// unavailable.
func TestLookupTimeout(t *testing.T) {
	checkGoroutines(t)
	e := newFakeEngine(t)
	e.gate = make(chan struct{}) // never opened: the lookup ends by its timeout
	r, _, o := newResolver(t, e, func(c *Config) { c.Timeout = 20 * time.Millisecond })
	_, err := r.Resolve(context.Background(), []string{"default"}, idBob)
	wantUnavailable(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want it to wrap context.DeadlineExceeded", err)
	}
	if got := o.results(); !slices.Equal(got, []string{ResultError}) {
		t.Errorf("got observed %q, want [error]", got)
	}
}

// TestObserveDuration: Duration includes the wait on the engine.
func TestObserveDuration(t *testing.T) {
	e := newFakeEngine(t)
	e.gate = make(chan struct{})
	r, _, o := newResolver(t, e, func(c *Config) { c.Timeout = 30 * time.Millisecond })
	start := time.Now()
	_, _ = r.Resolve(context.Background(), []string{"default"}, idBob)
	elapsed := time.Since(start)
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) != 1 {
		t.Fatalf("got %d observations, want 1", len(o.got))
	}
	if d := o.got[0].Duration; d < 30*time.Millisecond || d > elapsed {
		t.Errorf("got Duration %v, want between the timeout 30ms and %v", d, elapsed)
	}
}

func TestNoObserver(t *testing.T) {
	r, err := New(DefaultConfig(), newFakeEngine(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Resolve(context.Background(), []string{"default"}, idBob); err != nil || !reflect.DeepEqual(got, bob) {
		t.Errorf("got %+v, %v, want %+v", got, err, bob)
	}
}

// TestMiddleware runs classified requests through the Middleware.
func TestMiddleware(t *testing.T) {
	alice := rivet.Actor{ID: idAlice, Namespace: "default", Name: "chat", Key: []string{"room", "1"}}
	carol := rivet.Actor{ID: idCarol, Namespace: "other", Name: "doc", Key: []string{""}}
	tests := []struct {
		name       string
		method     string
		target     string
		namespaces []string
		engine     func(*fakeEngine)

		wantActors   []rivet.Actor
		wantNamed    *rivet.Actor // ActorName, Key, Namespace of the route
		wantErr      *rivet.Error
		wantLookups  []string
		wantObserved []string
	}{
		{
			name: "gateway action by id", method: http.MethodPost, target: "/gateway/" + idBob + "/action/increment",
			wantActors: []rivet.Actor{bob}, wantNamed: &bob,
			wantLookups: []string{"default/" + idBob}, wantObserved: []string{ResultMiss},
		},
		{
			name: "gateway id in upper case with token", method: http.MethodGet, target: "/gateway/" + strings.ToUpper(idBob) + "@tok/request/x",
			wantActors: []rivet.Actor{bob}, wantNamed: &bob,
			wantLookups: []string{"default/" + idBob}, wantObserved: []string{ResultMiss},
		},
		{
			name: "gateway id in the second namespace", method: http.MethodGet, target: "/gateway/" + idCarol + "/request/",
			namespaces: []string{"default", "other"},
			engine:     func(e *fakeEngine) { e.put("other", idCarol, actorAnswer(idCarol, "doc", ptr(`\0`))) },
			wantActors: []rivet.Actor{carol}, wantNamed: &carol,
			wantLookups: []string{"default/" + idCarol, "other/" + idCarol}, wantObserved: []string{ResultMiss},
		},
		{
			name: "API lookup of two ids", method: http.MethodGet, target: "/actors?actor_ids=" + idBob + "," + idAlice + "&namespace=default",
			namespaces:  []string{"other"},
			engine:      func(e *fakeEngine) { e.put("default", idAlice, actorAnswer(idAlice, "chat", ptr("room/1"))) },
			wantActors:  []rivet.Actor{bob, alice},
			wantLookups: []string{"default/" + idBob, "default/" + idAlice}, wantObserved: []string{ResultMiss, ResultMiss},
		},
		{
			name: "API destroy", method: http.MethodDelete, target: "/actors/" + idBob + "?namespace=default",
			wantActors: []rivet.Actor{bob}, wantLookups: []string{"default/" + idBob}, wantObserved: []string{ResultMiss},
		},
		{
			name: "API kv", method: http.MethodGet, target: "/actors/" + idBob + "/kv/keys/abc?namespace=default",
			wantActors: []rivet.Actor{bob}, wantLookups: []string{"default/" + idBob}, wantObserved: []string{ResultMiss},
		},
		{
			name: "API route looks in its own namespace only", method: http.MethodGet, target: "/actors?actor_ids=" + idCarol + "&namespace=default",
			namespaces: []string{"default", "other"},
			engine:     func(e *fakeEngine) { e.put("other", idCarol, actorAnswer(idCarol, "doc", ptr(`\0`))) },
			wantErr:    ErrNotFound, wantLookups: []string{"default/" + idCarol}, wantObserved: []string{ResultNotFound},
		},
		{
			name: "API route in a namespace not configured", method: http.MethodPost, target: "/actors/" + idCarol + "/sleep?namespace=other",
			engine:     func(e *fakeEngine) { e.put("other", idCarol, actorAnswer(idCarol, "doc", ptr(`\0`))) },
			wantActors: []rivet.Actor{carol}, wantLookups: []string{"other/" + idCarol}, wantObserved: []string{ResultMiss},
		},
		{
			name: "already resolved: query gateway", method: http.MethodPost,
			target:     "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=get&rvt-key=bob",
			wantActors: []rivet.Actor{{Namespace: "default", Name: "counter", Key: []string{"bob"}}},
		},
		{
			name: "already resolved: lookup by key", method: http.MethodGet, target: "/actors?namespace=default&name=counter&key=bob",
			wantActors: []rivet.Actor{{Namespace: "default", Name: "counter", Key: []string{"bob"}}},
		},
		{
			name: "already resolved: metadata", method: http.MethodGet, target: "/metadata?namespace=default",
		},
		{
			name: "unknown id", method: http.MethodPost, target: "/gateway/" + idDave + "/action/increment",
			wantErr: ErrNotFound, wantLookups: []string{"default/" + idDave}, wantObserved: []string{ResultNotFound},
		},
		{
			name: "second of two ids unknown", method: http.MethodGet, target: "/actors?actor_ids=" + idBob + "," + idDave + "&namespace=default",
			wantErr: ErrNotFound, wantLookups: []string{"default/" + idBob, "default/" + idDave}, wantObserved: []string{ResultMiss, ResultNotFound},
		},
		{
			name: "engine down", method: http.MethodPost, target: "/gateway/" + idBob + "/action/increment",
			engine: func(e *fakeEngine) {
				e.answer = func(string, string) reply { return reply{err: errors.New("connection refused")} }
			},
			wantErr: ErrUnavailable, wantLookups: []string{"default/" + idBob}, wantObserved: []string{ResultError},
		},
		{
			name: "key without a certain reading", method: http.MethodPost, target: "/gateway/" + idBob + "/action/increment",
			engine: func(e *fakeEngine) {
				e.put("default", idBob, strings.Replace(bobAnswer, `"key":"bob"`, `"key":"a\\b"`, 1))
			},
			wantErr: ErrUnclassifiable, wantLookups: []string{"default/" + idBob}, wantObserved: []string{ResultUnclassifiable},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEngine(t)
			if tt.engine != nil {
				tt.engine(e)
			}
			r, _, o := newResolver(t, e, func(c *Config) {
				if tt.namespaces != nil {
					c.Namespaces = tt.namespaces
				}
			})
			req := httptest.NewRequest(tt.method, tt.target, nil)
			before, err := rivet.ParseRequest(req)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			s := serve(t, r, req)
			if got := e.lookups(); !slices.Equal(got, tt.wantLookups) {
				t.Errorf("got engine lookups %q, want %q", got, tt.wantLookups)
			}
			if got := o.results(); !slices.Equal(got, tt.wantObserved) {
				t.Errorf("got observed %q, want %q", got, tt.wantObserved)
			}
			if tt.wantErr != nil {
				wantRejection(t, s, tt.wantErr)
				if s.rt.Resolved {
					t.Errorf("got Resolved true after a rejection, want false")
				}
				if tt.wantErr == ErrUnavailable {
					if got := s.rec.Header().Get("Retry-After"); got != "1" {
						t.Errorf("got Retry-After %q, want 1", got)
					}
				}
				return
			}
			if s.rec.Code != http.StatusNoContent || !s.next {
				t.Fatalf("got status %d (next ran: %v), want 204 from next; body %s", s.rec.Code, s.next, s.rec.Body)
			}
			if !s.rt.Resolved {
				t.Errorf("got Resolved false, want true")
			}
			if !reflect.DeepEqual(s.rt.Actors, tt.wantActors) {
				t.Errorf("got Actors %+v, want %+v", s.rt.Actors, tt.wantActors)
			}
			wantName, wantKey, wantNS := before.ActorName, before.Key, before.Namespace
			if tt.wantNamed != nil {
				wantName, wantKey, wantNS = tt.wantNamed.Name, tt.wantNamed.Key, tt.wantNamed.Namespace
			}
			if s.rt.ActorName != wantName || !reflect.DeepEqual(s.rt.Key, wantKey) || s.rt.Namespace != wantNS {
				t.Errorf("got ActorName %q, Key %q, Namespace %q, want %q, %q, %q",
					s.rt.ActorName, s.rt.Key, s.rt.Namespace, wantName, wantKey, wantNS)
			}
			if s.rt.ActorID != before.ActorID || !slices.Equal(s.rt.IDs, before.IDs) || s.rt.Intent != before.Intent {
				t.Errorf("got ActorID %q, IDs %q, Intent %v, want them unchanged (%q, %q, %v)",
					s.rt.ActorID, s.rt.IDs, s.rt.Intent, before.ActorID, before.IDs, before.Intent)
			}
		})
	}
}

// TestMiddlewareCached: the second request for an id is answered from the
// cache and sees the same actor.
func TestMiddlewareCached(t *testing.T) {
	e := newFakeEngine(t)
	r, _, o := newResolver(t, e, nil)
	for i := range 2 {
		s := serve(t, r, httptest.NewRequest(http.MethodPost, "/gateway/"+idBob+"/action/increment", nil))
		if !s.next || !reflect.DeepEqual(s.rt.Actors, []rivet.Actor{bob}) {
			t.Fatalf("request %d: got next %v, Actors %+v, want %+v", i, s.next, s.rt.Actors, bob)
		}
	}
	if got := e.calls.Load(); got != 1 {
		t.Errorf("got %d engine lookups, want 1", got)
	}
	if got, want := o.results(), []string{ResultMiss, ResultHit}; !slices.Equal(got, want) {
		t.Errorf("got observed %q, want %q", got, want)
	}
}

// TestMiddlewareResolvedRoute: a route already marked resolved is passed
// on untouched, without asking the engine, even when it names ids.
func TestMiddlewareResolvedRoute(t *testing.T) {
	e := newFakeEngine(t)
	r, _, _ := newResolver(t, e, nil)
	rt := &rivet.Route{Intent: rivet.IntentAction, IDs: []string{idBob}, Resolved: true}
	req := httptest.NewRequest(http.MethodPost, "/gateway/"+idBob+"/action/x", nil)
	req = req.WithContext(rivet.WithRoute(req.Context(), rt))
	next := false
	rec := httptest.NewRecorder()
	r.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { next = true })).ServeHTTP(rec, req)
	if !next || e.calls.Load() != 0 || len(rt.Actors) != 0 {
		t.Errorf("got next %v, %d engine lookups, Actors %+v, want next, 0, none", next, e.calls.Load(), rt.Actors)
	}
}

func TestMiddlewareNoRoute(t *testing.T) {
	e := newFakeEngine(t)
	r, _, o := newResolver(t, e, nil)
	rec := httptest.NewRecorder()
	next := false
	r.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { next = true })).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/gateway/"+idBob+"/request/", nil))
	wantRejection(t, served{rec: rec, next: next}, rivet.ErrInternal)
	if got := e.calls.Load(); got != 0 {
		t.Errorf("got %d engine lookups, want 0", got)
	}
	if got := o.results(); len(got) != 0 {
		t.Errorf("got observed %q, want none", got)
	}
}

// TestMiddlewareClientGone: a client that leaves while its id is looked up
// is answered 499 and next does not run.
func TestMiddlewareClientGone(t *testing.T) {
	checkGoroutines(t)
	e := newFakeEngine(t)
	e.gate = make(chan struct{})
	r, _, _ := newResolver(t, e, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/gateway/"+idBob+"/action/increment", nil)
	done := make(chan served, 1)
	go func() { done <- serve(t, r, req) }()
	waitUntil(t, "the engine lookup", func() bool { return e.waiting.Load() == 1 })
	cancel()
	s := <-done
	if s.rec.Code != rivet.StatusClientClosedRequest || s.next {
		t.Errorf("got status %d (next ran: %v), want 499 without next", s.rec.Code, s.next)
	}
	close(e.gate)
}

// TestMiddlewareWebSocketRejection: a WebSocket whose actor cannot be
// resolved is accepted and closed with the rejection's reason, so RivetKit
// clients see actor.not_found, and retry guard.service_unavailable.
func TestMiddlewareWebSocketRejection(t *testing.T) {
	checkGoroutines(t)
	e := newFakeEngine(t)
	e.answer = func(ns, id string) reply {
		if id == idCarol {
			return reply{err: errors.New("connection refused")}
		}
		return reply{status: http.StatusOK, body: emptyAnswer}
	}
	r, _, _ := newResolver(t, e, nil)
	h := r.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("next handler ran for an unresolved actor")
		w.WriteHeader(http.StatusTeapot)
	}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rt, err := rivet.ParseRequest(req)
		if err != nil {
			rivet.WriteError(w, req, err)
			return
		}
		h.ServeHTTP(w, req.WithContext(rivet.WithRoute(req.Context(), &rt)))
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		id, want string
	}{
		{idDave, "actor.not_found"},
		{idCarol, "guard.service_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{rivet.ProtocolRivet, "rivet_encoding.json"}}
			conn, res, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/gateway/"+tt.id+"/connect", nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close()
			res.Body.Close()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err = conn.ReadMessage()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a close frame", err)
			}
			if ce.Code != websocket.CloseInternalServerErr || ce.Text != tt.want {
				t.Errorf("got close %d %q, want %d %q", ce.Code, ce.Text, websocket.CloseInternalServerErr, tt.want)
			}
		})
	}
}

// TestResolveReturnsOwnKey: every caller gets its own copy of a cached
// actor's key, so no layer can change the key other requests are
// authorized against.
func TestResolveReturnsOwnKey(t *testing.T) {
	e := newFakeEngine(t)
	e.put("default", idBob, actorAnswer(idBob, "counter", ptr("bob")))
	r, _, _ := newResolver(t, e, nil)
	a, err := r.Resolve(context.Background(), []string{"default"}, idBob)
	if err != nil {
		t.Fatal(err)
	}
	a.Key[0] = "mallory"
	b, err := r.Resolve(context.Background(), []string{"default"}, idBob)
	if err != nil || !slices.Equal(b.Key, []string{"bob"}) {
		t.Errorf("second resolve: got %q, %v; want [bob]", b.Key, err)
	}
}

// TestResolveNamelessActor: an answer without the actor's name cannot be
// authorized by name: refused, not cached.
func TestResolveNamelessActor(t *testing.T) {
	e := newFakeEngine(t)
	e.put("default", idBob, actorAnswer(idBob, "", ptr("bob")))
	r, _, o := newResolver(t, e, nil)
	_, err := r.Resolve(context.Background(), []string{"default"}, idBob)
	wantErr(t, err, ErrUnclassifiable)
	if got := o.results(); !slices.Equal(got, []string{ResultUnclassifiable}) {
		t.Errorf("got observed %q, want [unclassifiable]", got)
	}
}

// TestMiddlewareNilBody: an in-process POST /actors without a body is a
// 400, not a crash.
func TestMiddlewareNilBody(t *testing.T) {
	r, _, _ := newResolver(t, newFakeEngine(t), nil)
	req := httptest.NewRequest(http.MethodPost, "/actors?namespace=default", nil)
	req.Body = nil
	s := serve(t, r, req)
	wantRejection(t, s, rivet.ErrInvalidRequest)
}
