package proxy

import (
	"net/http"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// ErrNamespaceNotAllowed refuses a request that names, or reaches an actor
// in, a namespace other than the one upstream.namespace pins the gateway
// to. It is the gateway's policy, not an engine fact, so it has a code of
// its own rather than the engine's namespace.not_found (which the gateway
// also treats as transient while a WebSocket opens): clients and access
// logs can tell the two apart, and RivetKit clients do not retry it. 403,
// not 400: the request is well formed and refused. Its metadata names the
// namespace the request asked for, never the pinned one.
var ErrNamespaceNotAllowed = &rivet.Error{Status: http.StatusForbidden, Group: "gateway", Code: "namespace_not_allowed",
	Message: "This gateway does not serve that namespace."}

// CheckNamespace returns ErrNamespaceNotAllowed when rt leaves namespace
// ns, and nil when ns is "" (no pin) or rt stays in it:
//
//   - a namespace the route names (rvt-namespace on query targets, the
//     namespace query parameter of /actors and the management routes) must
//     be ns, and so must every resolved actor's;
//   - a route that names none is refused, since the engine serves it
//     across namespaces (/namespaces, /datacenters), except an id target
//     (/gateway/<id>/...), whose id is resolved in ns only (see
//     actors.Config.Namespaces);
//   - /health and /metadata pass whatever they say: engine 2.3.19 answers
//     them alike for every namespace (api-public metadata.rs reads no
//     namespace), rewriteMetadata strips the fields that would steer a
//     client, and the RivetKit client retries a refused /metadata forever
//     instead of reporting it, where a refused actor call reaches the
//     application as an ActorError.
func CheckNamespace(rt *rivet.Route, ns string) error {
	if ns == "" || rt.Intent == rivet.IntentHealth || rt.Intent == rivet.IntentMetadata {
		return nil
	}
	if rt.Namespace != "" && rt.Namespace != ns {
		return ErrNamespaceNotAllowed.With("namespace", rt.Namespace)
	}
	for _, a := range rt.Actors {
		if a.Namespace != ns {
			return ErrNamespaceNotAllowed.With("namespace", a.Namespace)
		}
	}
	if rt.Namespace == "" && (!rt.Intent.Gateway() || rt.ActorID == "") {
		return ErrNamespaceNotAllowed.With("reason", "the route names no namespace")
	}
	return nil
}

// PinNamespace refuses, before next runs, every request that
// CheckNamespace refuses for upstream.namespace; without a pin it returns
// next. It reads the route classification stored (rivet.RouteFrom), and
// runs before actor resolution, so the engine is never asked about another
// namespace with the gateway's token; ServeHTTP checks again once the
// route is resolved.
func (p *Proxy) PinNamespace(next http.Handler) http.Handler {
	ns := p.cfg.Namespace
	if ns == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := rivet.RouteFrom(r.Context()); rt != nil {
			if err := CheckNamespace(rt, ns); err != nil {
				rivet.WriteError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
