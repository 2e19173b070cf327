package authn

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// scope is a parsed "<intent>:<actor>" pattern; "*" is a wildcard.
type scope struct{ intent, actor string }

// parseScope reads "<intent>:<actor>", "<intent>" (= "<intent>:*") or "*".
func parseScope(s string) (scope, error) {
	if s == "*" {
		return scope{"*", "*"}, nil
	}
	intent, actor, hasActor := strings.Cut(s, ":")
	if !hasActor {
		actor = "*"
	}
	if intent != "*" {
		if _, ok := rivet.ParseIntent(intent); !ok {
			return scope{}, fmt.Errorf("scope %q: unknown intent %q%s", s, intent, intentHint(intent))
		}
	}
	if actor == "" || strings.ContainsAny(actor, " \t\r\n") {
		return scope{}, fmt.Errorf("scope %q: want <intent>:<actor name or *>", s)
	}
	return scope{intent, actor}, nil
}

func (g scope) covers(w scope) bool {
	return (g.intent == "*" || g.intent == w.intent) && (g.actor == "*" || g.actor == w.actor)
}

// grants reports whether one of granted covers want: equal as strings, or
// a granted pattern covering it.
func grants(granted []string, want scope, wantRaw string) bool {
	for _, g := range granted {
		if wantRaw != "" && g == wantRaw {
			return true
		}
		if gs, err := parseScope(g); err == nil && gs.covers(want) {
			return true
		}
	}
	return false
}

type allowKind uint8

const (
	allowAuthenticated allowKind = iota
	allowAnonymous
	allowDeny
)

const (
	targetID uint8 = 1 << iota
	targetKey
)

const (
	methodJWT uint8 = 1 << iota
	methodAPIKey
)

// rule is a compiled Rule.
type rule struct {
	name string // "rules[2]" or "builtin[0]", for logs

	intents    uint32 // bit per rivet.Intent; 0: any
	actors     []string
	namespaces []string
	targets    uint8

	allow   allowKind
	methods uint8
	issuers []string
	claims  []claimReq
	scopes  []scopeReq
	binding *KeyBinding
}

type claimReq struct {
	name   string
	values []string
}

type scopeReq struct {
	raw string
	s   scope
}

func compileRule(name string, r Rule) rule {
	c := rule{
		name:       name,
		actors:     r.Match.Actors,
		namespaces: r.Match.Namespaces,
		issuers:    r.Issuers,
		binding:    r.KeyBinding,
	}
	for _, s := range r.Match.Intents {
		if i, ok := rivet.ParseIntent(s); ok {
			c.intents |= 1 << i
		}
	}
	for _, t := range r.Match.Targets {
		switch t {
		case "id":
			c.targets |= targetID
		case "key":
			c.targets |= targetKey
		}
	}
	switch r.Allow {
	case AllowAnonymous:
		c.allow = allowAnonymous
	case AllowDeny:
		c.allow = allowDeny
	}
	for _, m := range r.Methods {
		switch m {
		case MethodJWT:
			c.methods |= methodJWT
		case MethodAPIKey:
			c.methods |= methodAPIKey
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Claims)) {
		c.claims = append(c.claims, claimReq{name, r.Claims[name]})
	}
	for _, s := range r.Scopes {
		// A scope that is not a pattern (e.g. a JWT's "read:messages") is
		// matched as a plain string only.
		ps, err := parseScope(s)
		if err != nil {
			ps = scope{"\x00", "\x00"}
		}
		c.scopes = append(c.scopes, scopeReq{s, ps})
	}
	return c
}

// matches reports whether the rule applies to rt reaching actor a (nil
// when the route reaches no one actor). A privileged intent (inspector,
// list, destroy, kv, admin) is matched only by a rule that names it.
func (r *rule) matches(rt *rivet.Route, a *rivet.Actor) bool {
	bit := uint32(1) << rt.Intent
	if r.intents&bit == 0 && (r.intents != 0 || rt.Intent.Privileged()) {
		return false
	}
	name, ns := "", rt.Namespace
	if a != nil {
		name, ns = a.Name, a.Namespace
	}
	if len(r.actors) > 0 && !slices.Contains(r.actors, name) {
		return false
	}
	if len(r.namespaces) > 0 && !slices.Contains(r.namespaces, ns) {
		return false
	}
	if r.targets != 0 {
		t := uint8(0)
		switch {
		case a != nil && a.ID != "":
			t = targetID
		case a != nil:
			t = targetKey
		}
		if r.targets&t == 0 {
			return false
		}
	}
	return true
}

// authorize applies an authenticated rule's checks to a verified id
// reaching actor a (nil when the route reaches no one actor).
func (r *rule) authorize(id *Identity, rt *rivet.Route, a *rivet.Actor) error {
	if r.methods != 0 {
		bit := methodJWT
		if id.Method == MethodAPIKey {
			bit = methodAPIKey
		}
		if r.methods&bit == 0 {
			return wrap(ErrMethodNotAllowed, fmt.Errorf("%s: %s credentials not accepted", r.name, id.Method))
		}
	}
	if len(r.issuers) > 0 && (id.Method != MethodJWT || !slices.Contains(r.issuers, id.issuerName)) {
		return wrap(ErrMethodNotAllowed, fmt.Errorf("%s: issuer %q not accepted", r.name, id.issuerName))
	}
	name := ""
	if a != nil {
		name = a.Name
	}
	// An API key's own scopes bound every request it makes.
	if id.Method == MethodAPIKey && len(id.Scopes) > 0 &&
		!grants(id.Scopes, scope{rt.Intent.String(), name}, "") {
		return wrap(ErrScopeMissing, fmt.Errorf("API key %q has no scope for %s:%s", id.APIKeyID, rt.Intent, orAny(name)))
	}
	for _, c := range r.claims {
		if !claimMatches(id.Claims, c.name, c.values) {
			return wrap(ErrClaimMismatch, fmt.Errorf("%s: claim %q", r.name, c.name))
		}
	}
	for _, s := range r.scopes {
		if !grants(id.Scopes, s.s, s.raw) {
			return wrap(ErrScopeMissing, fmt.Errorf("%s: scope %q", r.name, s.raw))
		}
	}
	if b := r.binding; b != nil {
		if a == nil || b.Index >= len(a.Key) {
			return wrap(ErrKeyBinding, fmt.Errorf("%s: request reaches no actor key element %d", r.name, b.Index))
		}
		v, ok := claimString(id, b.Claim)
		if !ok || v == "" || v != a.Key[b.Index] {
			return wrap(ErrKeyBinding, fmt.Errorf("%s: actor key element %d does not equal claim %q", r.name, b.Index, b.Claim))
		}
	}
	return nil
}

func orAny(s string) string {
	if s == "" {
		return "<no actor>"
	}
	return s
}

// lookupClaim finds name in claims: the literal key first (URL-shaped
// claim names hold dots), then a dotted path through nested objects.
func lookupClaim(claims map[string]any, name string) (any, bool) {
	if v, ok := claims[name]; ok {
		return v, true
	}
	if !strings.Contains(name, ".") {
		return nil, false
	}
	var cur any = claims
	for part := range strings.SplitSeq(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// scalarString renders a JSON scalar claim as config writes it.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		return v.String(), true
	}
	return "", false
}

// claimMatches reports whether claim name equals one of values, or, for a
// list claim, whether one of its elements does.
func claimMatches(claims map[string]any, name string, values []string) bool {
	v, ok := lookupClaim(claims, name)
	if !ok {
		return false
	}
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if s, ok := scalarString(e); ok && slices.Contains(values, s) {
				return true
			}
		}
		return false
	}
	s, ok := scalarString(v)
	return ok && slices.Contains(values, s)
}

// claimString returns a scalar claim of id; "sub" is the subject.
func claimString(id *Identity, name string) (string, bool) {
	if name == "sub" {
		return id.Subject, id.Subject != ""
	}
	v, ok := lookupClaim(id.Claims, name)
	if !ok {
		return "", false
	}
	return scalarString(v)
}
