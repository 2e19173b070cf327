package actors

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// benchEngine answers every id lookup with counter [alice], over loopback
// HTTP like the real engine.
func benchEngine(b *testing.B) Engine {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("actor_ids")
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"actors":[{"actor_id":%q,"name":"counter","key":"alice","destroy_ts":null}],"pagination":{"cursor":null}}`, id)
	}))
	b.Cleanup(srv.Close)
	return httpEngine{base: srv.URL, client: srv.Client()}
}

// benchID returns a random valid actor id (version 1).
func benchID(r *rand.Rand) string {
	var v [19]byte
	v[0] = 1
	for i := 1; i < len(v); i++ {
		v[i] = byte(r.Uint32())
	}
	return rivet.FormatActorID(v)
}

// BenchmarkResolveCached: an id the resolver has seen (the common case:
// a client's handle keeps using one actor id).
func BenchmarkResolveCached(b *testing.B) {
	r, err := New(DefaultConfig(), benchEngine(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	ns := []string{"default"}
	if _, err := r.Resolve(context.Background(), ns, idBob); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Resolve(context.Background(), ns, idBob); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResolveUncached: a new id every time, asked of an engine over
// loopback HTTP (the lookup's round trip included).
func BenchmarkResolveUncached(b *testing.B) {
	r, err := New(DefaultConfig(), benchEngine(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, 0, 1<<16)
	for range cap(ids) {
		ids = append(ids, benchID(rng))
	}
	ns := []string{"default"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := r.Resolve(context.Background(), ns, ids[i%len(ids)]); err != nil {
			b.Fatal(err)
		}
		if i++; i%len(ids) == 0 {
			r.found.Purge()
		}
	}
}

// BenchmarkMiddlewareByID: the resolution layer of the chain for a request
// addressed by id, cached (classification included).
func BenchmarkMiddlewareByID(b *testing.B) {
	r, err := New(DefaultConfig(), benchEngine(b), Options{})
	if err != nil {
		b.Fatal(err)
	}
	h := r.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodPost, "/gateway/"+idBob+"/action/increment", nil)
	w := httptest.NewRecorder()
	serveOnce := func() {
		rt, err := rivet.ParseRequest(req)
		if err != nil {
			b.Fatal(err)
		}
		h.ServeHTTP(w, req.WithContext(rivet.WithRoute(req.Context(), &rt)))
	}
	serveOnce()
	b.ReportAllocs()
	for b.Loop() {
		serveOnce()
	}
}
