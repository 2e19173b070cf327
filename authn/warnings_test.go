package authn

import (
	"strings"
	"testing"
)

func TestWarnings(t *testing.T) {
	bind := &KeyBinding{Index: 0, Claim: "sub"}
	tests := []struct {
		name  string
		rules []Rule
		want  []string // substrings, one per warning, in order; nil: no warning
	}{
		{"README rule: every intent and form", []Rule{{Match: Match{Actors: []string{"counter"}}, KeyBinding: bind}}, nil},
		{"key targets only: ids fall through", []Rule{{Match: Match{Actors: []string{"counter"}, Targets: []string{"key"}}, KeyBinding: bind}},
			[]string{"auth.rules[0] restricts counter (key_binding), but lookup by id, action by id, queue by id, request by id, connect by id, websocket by id requests are decided by the built-in rule admitting any valid credential"}},
		{"some intents only", []Rule{{Match: Match{Intents: []string{"action", "connect"}, Actors: []string{"counter"}}, KeyBinding: bind}},
			[]string{"lookup by key, lookup by id, create by key, get_or_create by key, queue by key"}},
		{"an anonymous rule before the binding one", []Rule{
			{Match: Match{Intents: []string{"request"}, Actors: []string{"counter"}}, Allow: AllowAnonymous},
			{Match: Match{Actors: []string{"counter"}}, KeyBinding: bind}},
			[]string{"auth.rules[1] restricts counter (key_binding), but request by key, request by id requests are decided by auth.rules[0]"}},
		{"a deny covers the rest", []Rule{
			{Match: Match{Intents: []string{"action"}, Actors: []string{"counter"}}, KeyBinding: bind},
			{Match: Match{Actors: []string{"counter"}}, Allow: AllowDeny}}, nil},
		{"claims on some intents", []Rule{{Match: Match{Intents: []string{"action", "connect"}, Actors: []string{"chat"}}, Claims: map[string][]string{"role": {"member"}}}},
			[]string{"auth.rules[0] restricts chat (claims)"}},
		{"privileged to every credential", []Rule{{Match: Match{Intents: []string{"destroy", "kv"}}}},
			[]string{"auth.rules[0] grants destroy, kv to every valid credential"}},
		{"privileged to anyone", []Rule{{Match: Match{Intents: []string{"inspector"}}, Allow: AllowAnonymous}},
			[]string{"auth.rules[0] grants inspector to anyone"}},
		{"privileged with scopes", []Rule{{Match: Match{Intents: []string{"destroy"}}, Scopes: []string{"admin"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Rules = tt.rules
			got := cfg.Warnings("auth")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d warnings %q, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d: got %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
