package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/rivet-gateway/rivet-gateway/rivet"
	"golang.org/x/sync/singleflight"
)

// Engine is the engine's management API as the Resolver needs it.
type Engine interface {
	// Get sends GET path?rawQuery to the engine, with the gateway's own
	// engine credentials (never a client's).
	Get(ctx context.Context, path, rawQuery string) (*http.Response, error)
}

// Options are New's dependencies.
type Options struct {
	// Logger receives lookup failures (ids and namespaces, never
	// credentials). Nil: discard.
	Logger *slog.Logger
	// Observe, when set, is called once per id a request needed resolved.
	// It must not block.
	Observe func(Lookup)
}

// Lookup is one id resolution, for metrics.
type Lookup struct {
	// Result is "hit" (answered from the cache), "miss" (asked the engine,
	// found), "not_found" (the engine does not know it; possibly cached),
	// "unclassifiable" (the engine knows it under a key with no certain
	// reading) or "error" (the engine could not be asked).
	Result string
	// Duration is the time spent, waiting on a shared lookup included.
	Duration time.Duration
}

// Lookup.Result values.
const (
	ResultHit            = "hit"
	ResultMiss           = "miss"
	ResultNotFound       = "not_found"
	ResultUnclassifiable = "unclassifiable"
	ResultError          = "error"
)

// Rejections, in RivetKit's error shape.
var (
	// ErrNotFound: no configured namespace (or the request's) holds the id.
	// The engine answers the same for an unknown actor.
	ErrNotFound = &rivet.Error{Status: http.StatusNotFound, Group: "actor", Code: "not_found", Message: "The actor does not exist or was destroyed."}
	// ErrUnavailable: the engine could not be asked; the request fails
	// closed and the client may retry (RivetKit clients retry WebSockets
	// closed with this reason).
	ErrUnavailable = &rivet.Error{Status: http.StatusServiceUnavailable, Group: "guard", Code: "service_unavailable",
		Message: "Could not resolve the actor at the engine; retry.", Retryable: true, RetryAfter: time.Second}
	// ErrUnclassifiable: the engine knows the actor under a key spelling
	// that has no certain reading (created around the gateway), so no rule
	// can be applied to it.
	ErrUnclassifiable = &rivet.Error{Status: http.StatusForbidden, Group: "gateway", Code: "actor_unclassifiable",
		Message: "The actor's key cannot be classified."}
)

// Resolver resolves actor ids through the engine, with a cache. Safe for
// concurrent use; it starts no goroutines of its own.
type Resolver struct {
	cfg     Config
	engine  Engine
	log     *slog.Logger
	observe func(Lookup)
	now     func() time.Time

	found    *lru.Cache[string, foundEntry]
	notFound *lru.Cache[string, time.Time] // expiry
	group    singleflight.Group
}

type foundEntry struct {
	actor   rivet.Actor
	expires time.Time
}

// New builds a Resolver. cfg must pass Validate.
func New(cfg Config, engine Engine, opts Options) (*Resolver, error) {
	if err := cfg.Validate("actors"); err != nil {
		return nil, err
	}
	found, err := lru.New[string, foundEntry](cfg.CacheSize)
	if err != nil {
		return nil, err
	}
	notFound, err := lru.New[string, time.Time](max(cfg.CacheSize/10, 1))
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Resolver{cfg: cfg, engine: engine, log: log, observe: opts.Observe, now: time.Now, found: found, notFound: notFound}, nil
}

// Middleware resolves the route in the request's context (rivet.RouteFrom)
// before next: it reads the actor a POST or PUT /actors body names, looks
// up every id the route names, and marks the route resolved. For a route
// reaching one actor it also fills the route's ActorName, Key and
// Namespace, so the rest of the chain sees the actor whatever form named
// it. Failures are answered with rivet.WriteError.
func (r *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rt := rivet.RouteFrom(req.Context())
		if rt == nil {
			r.log.Error("no route in request context: route classification must run before actor resolution")
			rivet.WriteError(w, req, rivet.ErrInternal)
			return
		}
		if !rt.Resolved {
			if err := r.resolve(w, req, rt); err != nil {
				rivet.WriteError(w, req, err)
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

func (r *Resolver) resolve(w http.ResponseWriter, req *http.Request, rt *rivet.Route) error {
	if rt.ActorInBody {
		a, err := readBody(w, req, rt, r.cfg.MaxBodyBytes)
		if err != nil {
			return err
		}
		rt.Actors = append(rt.Actors, a)
	}
	namespaces := r.cfg.Namespaces
	if rt.Intent.API() {
		// The engine serves /actors... in the namespace the query names.
		namespaces = []string{rt.Namespace}
	}
	for _, id := range rt.IDs {
		a, err := r.Resolve(req.Context(), namespaces, id)
		if err != nil {
			return err
		}
		rt.Actors = append(rt.Actors, a)
	}
	if a := rt.Actor(); a != nil && rt.Intent.Gateway() {
		rt.ActorName, rt.Key, rt.Namespace = a.Name, a.Key, a.Namespace
	}
	rt.Resolved = true
	return nil
}

// Resolve returns the actor id (canonical) names in the first of
// namespaces that holds it: ErrNotFound when none does, ErrUnavailable when
// the engine cannot be asked, ErrUnclassifiable for a key with no certain
// reading.
func (r *Resolver) Resolve(ctx context.Context, namespaces []string, id string) (rivet.Actor, error) {
	start := time.Now()
	result := ResultMiss
	defer func() {
		if r.observe != nil {
			r.observe(Lookup{Result: result, Duration: time.Since(start)})
		}
	}()
	cached := true
	for _, ns := range namespaces {
		a, ok, hit, err := r.lookup(ctx, ns, id)
		cached = cached && hit
		switch {
		case errors.Is(err, ErrUnclassifiable):
			result = ResultUnclassifiable
			return rivet.Actor{}, err
		case err != nil:
			result = ResultError
			return rivet.Actor{}, err
		case ok:
			if cached {
				result = ResultHit
			}
			// Each request gets its own key slice: the cached one is shared.
			a.Key = slices.Clone(a.Key)
			return a, nil
		}
	}
	result = ResultNotFound
	return rivet.Actor{}, ErrNotFound.With("actor_id", id)
}

// lookup resolves id in ns: ok when found there, hit when the cache
// answered.
func (r *Resolver) lookup(ctx context.Context, ns, id string) (a rivet.Actor, ok, hit bool, err error) {
	key := ns + "\x00" + id
	now := r.now()
	if e, found := r.found.Get(key); found {
		if now.Before(e.expires) {
			return e.actor, true, true, nil
		}
		r.found.Remove(key)
	}
	if exp, found := r.notFound.Get(key); found {
		if now.Before(exp) {
			return rivet.Actor{}, false, true, nil
		}
		r.notFound.Remove(key)
	}
	ch := r.group.DoChan(key, func() (any, error) {
		// Shared by every request waiting on this id: bounded by its own
		// timeout, not by the first caller's context.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.Timeout)
		defer cancel()
		return r.fetch(lctx, ns, id)
	})
	select {
	case <-ctx.Done():
		// The caller gave up (499) or ran out of its own time (504); the
		// shared lookup goes on for the others.
		return rivet.Actor{}, false, false, rivet.AsError(ctx.Err())
	case res := <-ch:
		if res.Err != nil {
			return rivet.Actor{}, false, false, res.Err
		}
		f := res.Val.(fetched)
		return f.actor, f.found, false, nil
	}
}

type fetched struct {
	actor rivet.Actor
	found bool
}

// maxResponseBytes bounds a lookup's answer: one actor's record.
const maxResponseBytes = 1 << 20

// fetch asks the engine for id in ns and caches the answer.
func (r *Resolver) fetch(ctx context.Context, ns, id string) (fetched, error) {
	key := ns + "\x00" + id
	q := "actor_ids=" + url.QueryEscape(id) + "&namespace=" + url.QueryEscape(ns)
	res, err := r.engine.Get(ctx, "/actors", q)
	if err != nil {
		r.log.Warn("actor lookup failed", "actor_id", id, "namespace", ns, "error", err.Error())
		return fetched{}, ErrUnavailable.Wrap(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil || len(body) > maxResponseBytes {
		if err == nil {
			err = errors.New("answer too large")
		}
		r.log.Warn("actor lookup failed", "actor_id", id, "namespace", ns, "error", err.Error())
		return fetched{}, ErrUnavailable.Wrap(err)
	}
	if res.StatusCode != http.StatusOK {
		var e struct{ Group, Code string }
		if json.Unmarshal(body, &e) == nil && e.Group == "namespace" && e.Code == "not_found" {
			// Not a namespace of this engine: nothing of it is here.
			r.rememberNotFound(key)
			return fetched{}, nil
		}
		err := fmt.Errorf("engine answered %d %s.%s", res.StatusCode, e.Group, e.Code)
		r.log.Warn("actor lookup failed", "actor_id", id, "namespace", ns, "error", err.Error())
		return fetched{}, ErrUnavailable.Wrap(err)
	}
	var list struct {
		Actors []struct {
			ActorID string  `json:"actor_id"`
			Name    string  `json:"name"`
			Key     *string `json:"key"`
		} `json:"actors"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		r.log.Warn("actor lookup failed", "actor_id", id, "namespace", ns, "error", "answer is not an actor list")
		return fetched{}, ErrUnavailable.Wrap(err)
	}
	for _, e := range list.Actors {
		got, ok := rivet.CanonicalActorID(e.ActorID)
		if !ok || got != id {
			continue
		}
		if e.Name == "" {
			r.log.Warn("actor listed without a name", "actor_id", id, "namespace", ns)
			return fetched{}, ErrUnclassifiable.With("actor_id", id)
		}
		key := []string{}
		if e.Key != nil {
			parts, ok := rivet.ParseSerializedKey(*e.Key)
			if !ok {
				r.log.Warn("actor has a key without a certain reading", "actor_id", id, "namespace", ns)
				return fetched{}, ErrUnclassifiable.With("actor_id", id)
			}
			key = parts
		}
		a := rivet.Actor{ID: id, Namespace: ns, Name: e.Name, Key: key}
		r.found.Add(ns+"\x00"+id, foundEntry{actor: a, expires: r.now().Add(r.cfg.CacheTTL)})
		return fetched{actor: a, found: true}, nil
	}
	r.rememberNotFound(key)
	return fetched{}, nil
}

func (r *Resolver) rememberNotFound(key string) {
	if r.cfg.NotFoundTTL > 0 {
		r.notFound.Add(key, r.now().Add(r.cfg.NotFoundTTL))
	}
}
