// Package actors resolves the actors a request reaches, so the gateway
// authorizes what the engine will serve and not how the request spells it.
//
// In the chain it runs after route classification (rivet.ParseRequest) and
// before authentication. A route names its actors in one of three ways:
//
//   - by key, in the request itself (the query gateway's rvt-namespace,
//     name and rvt-key; GET /actors?name=&key=): classification has them
//     already;
//   - by id (/gateway/<id>/..., /actors/{id}..., GET /actors?actor_ids=): the
//     Resolver asks the engine (GET /actors?actor_ids=<id>&namespace=<ns>)
//     for the id's namespace, name and key, through a bounded cache with a
//     TTL (an id never changes its name or key) where concurrent lookups of
//     one id share one request;
//   - in a JSON body (POST and PUT /actors): the Resolver reads and checks
//     the body, then hands it on unchanged.
//
// An id the engine does not know is answered 404 actor.not_found; when the
// engine cannot be asked, the request fails closed with the retryable
// 503 guard.service_unavailable. Nothing is ever forwarded unresolved.
package actors
