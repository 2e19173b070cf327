package authn

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// actorIntents are the intents that reach one actor and that no rule has
// to name to match.
var actorIntents = []rivet.Intent{
	rivet.IntentLookup, rivet.IntentCreate, rivet.IntentGetOrCreate, rivet.IntentAction,
	rivet.IntentQueue, rivet.IntentRequest, rivet.IntentConnect, rivet.IntentWebSocket,
}

// Warnings reports rules that are valid but leave a way around themselves
// (rivet-gateway -check prints them; the gateway logs them at start and on
// every reload):
//
//   - a rule that restricts an actor (key binding, claims, scopes, methods
//     or issuers) while another intent or addressing form of the same actor
//     (by key, by id) falls through to a rule, user or built-in, without
//     that restriction: the actor is reachable without it;
//   - a rule that grants a privileged intent (inspector, list, destroy, kv,
//     admin) to anyone, or to every valid credential without further
//     checks.
//
// Each warning names the rule by its YAML path under path.
func (c *Config) Warnings(path string) []string {
	var rules []rule
	for i, r := range c.Rules {
		rules = append(rules, compileRule(fmt.Sprintf("%s.rules[%d]", path, i), r))
	}
	builtinNames := []string{"the built-in rule for /health and /metadata", "the built-in deny of privileged intents",
		"the built-in rule admitting any valid credential"}
	for i, r := range BuiltinRules() {
		rules = append(rules, compileRule(builtinNames[i], r))
	}
	first := func(rt *rivet.Route, a *rivet.Actor) *rule {
		for i := range rules {
			if rules[i].matches(rt, a) {
				return &rules[i]
			}
		}
		return &rules[len(rules)-1]
	}

	var out []string
	for i := range c.Rules {
		r := &rules[i]
		if r.allow != allowAuthenticated {
			if r.allow == allowAnonymous {
				if p := privilegedNamed(c.Rules[i]); len(p) > 0 {
					out = append(out, fmt.Sprintf("%s grants %s to anyone, without a credential", r.name, strings.Join(p, ", ")))
				}
			}
			continue
		}
		if p := privilegedNamed(c.Rules[i]); len(p) > 0 && r.methods == 0 && len(r.issuers) == 0 && len(r.claims) == 0 && len(r.scopes) == 0 && r.binding == nil {
			out = append(out, fmt.Sprintf("%s grants %s to every valid credential: add scopes, claims, methods or issuers", r.name, strings.Join(p, ", ")))
		}
		if !restricts(r) || !coversActorIntent(c.Rules[i]) {
			continue
		}
		// Where does each intent and addressing form of the actors this
		// rule restricts end up?
		names := r.actors
		if len(names) == 0 {
			names = []string{"\x00any actor"}
		}
		namespaces := r.namespaces
		if len(namespaces) == 0 {
			namespaces = []string{"\x00any namespace"}
		}
		leaks := map[*rule][]string{}
		var order []*rule
		for _, name := range names {
			for _, ns := range namespaces {
				for _, in := range actorIntents {
					forms := []string{"key", "id"}
					if in == rivet.IntentCreate || in == rivet.IntentGetOrCreate {
						forms = forms[:1] // the body names the actor by key
					}
					for _, form := range forms {
						a := &rivet.Actor{Namespace: ns, Name: name, Key: []string{"k"}}
						if form == "id" {
							a.ID = "id"
						}
						rt := &rivet.Route{Intent: in, Namespace: ns}
						got := first(rt, a)
						if got == r || !weaker(got, r) {
							continue
						}
						what := in.String() + " by " + form
						if !slices.Contains(leaks[got], what) {
							if leaks[got] == nil {
								order = append(order, got)
							}
							leaks[got] = append(leaks[got], what)
						}
					}
				}
			}
		}
		for _, got := range order {
			who := "its actors"
			if len(r.actors) > 0 {
				who = strings.Join(r.actors, ", ")
			}
			out = append(out, fmt.Sprintf("%s restricts %s (%s), but %s requests are decided by %s, which does not: leave match.intents and match.targets empty, or add a rule for them",
				r.name, who, restrictions(r), strings.Join(leaks[got], ", "), got.name))
		}
	}
	return out
}

// coversActorIntent reports whether r applies to some intent that reaches
// one actor (it names none, or names one).
func coversActorIntent(r Rule) bool {
	if len(r.Match.Intents) == 0 {
		return true
	}
	for _, s := range r.Match.Intents {
		if in, ok := rivet.ParseIntent(s); ok && slices.Contains(actorIntents, in) {
			return true
		}
	}
	return false
}

// privilegedNamed returns the privileged intents r names.
func privilegedNamed(r Rule) []string {
	var out []string
	for _, s := range r.Match.Intents {
		if in, ok := rivet.ParseIntent(s); ok && in.Privileged() {
			out = append(out, s)
		}
	}
	return out
}

// restricts reports whether r asks more than any valid credential.
func restricts(r *rule) bool {
	return r.binding != nil || len(r.claims) > 0 || len(r.scopes) > 0 || r.methods != 0 || len(r.issuers) > 0
}

// weaker reports whether rule a lets through a request rule r would check
// more strictly.
func weaker(a, r *rule) bool {
	switch {
	case a.allow == allowDeny:
		return false
	case a.allow == allowAnonymous:
		return true
	}
	return r.binding != nil && a.binding == nil ||
		len(r.claims) > 0 && len(a.claims) == 0 ||
		len(r.scopes) > 0 && len(a.scopes) == 0 ||
		r.methods != 0 && a.methods == 0 ||
		len(r.issuers) > 0 && len(a.issuers) == 0
}

// restrictions names what r requires, for a warning.
func restrictions(r *rule) string {
	var parts []string
	if r.binding != nil {
		parts = append(parts, "key_binding")
	}
	if len(r.claims) > 0 {
		parts = append(parts, "claims")
	}
	if len(r.scopes) > 0 {
		parts = append(parts, "scopes")
	}
	if r.methods != 0 {
		parts = append(parts, "methods")
	}
	if len(r.issuers) > 0 {
		parts = append(parts, "issuers")
	}
	return strings.Join(parts, ", ")
}
