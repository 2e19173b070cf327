package authn

import (
	"net/http"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Precheck refuses, before the actors of a route are resolved, a request
// that no rule could admit whatever actor it reaches: a privileged intent
// that no rule names, or a request without a valid credential when no rule
// admits anonymous requests of its intent. Resolving asks the engine about
// ids; without this an anonymous caller could make the gateway do so for
// every id it invents, and learn which exist (404 against 401). Requests
// whose route needs no resolution pass untouched (Middleware decides them).
// The credential is verified again by Middleware, from the JWT cache.
func (a *Authenticator) Precheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.precheck(r); err != nil {
			rivet.WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *Authenticator) precheck(r *http.Request) error {
	rt := rivet.RouteFrom(r.Context())
	if rt == nil || rt.Resolved {
		return nil
	}
	bit := uint32(1) << rt.Intent
	if rt.Intent.Privileged() && a.granted&bit == 0 {
		return a.decided(r, rt, a.denyRule(), nil, ErrDenied, "")
	}
	if a.anonymous&bit != 0 {
		return nil
	}
	c := carriers{cfg: &a.sources, r: r, ws: rivet.IsUpgrade(r)}
	cred, found, err := c.find()
	if !found {
		return a.decided(r, rt, &a.rules[len(a.rules)-1], nil, ErrNoCredential, "")
	}
	if err == nil {
		_, err = a.verify(r.Context(), cred)
	}
	if err != nil {
		return a.decided(r, rt, &a.rules[len(a.rules)-1], nil, err, cred.src.String())
	}
	return nil
}

// denyRule is the built-in deny of privileged intents.
func (a *Authenticator) denyRule() *rule { return &a.rules[len(a.rules)-2] }

// intentBits returns, for the user rules, the intents some rule that is
// not a deny names among the privileged ones (granted), and the intents
// some anonymous rule may admit (anonymous).
func intentBits(rules []rule) (granted, anonymous uint32) {
	var all uint32
	for _, in := range rivet.Intents() {
		if !in.Privileged() {
			all |= 1 << in
		}
	}
	for _, r := range rules {
		if r.allow != allowDeny {
			granted |= r.intents
		}
		if r.allow == allowAnonymous {
			if r.intents == 0 {
				anonymous |= all
			} else {
				anonymous |= r.intents
			}
		}
	}
	return granted, anonymous
}
