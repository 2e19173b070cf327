package authn

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// TestPrecheck: before resolution (which asks the engine about ids), a
// request no rule could admit is refused; the others go on to be resolved.
func TestPrecheck(t *testing.T) {
	const id = "hwzdj7sr4l7y4lxlvc506jrjwtal00"
	good := hsToken(t, "alice")
	withAnon := hsConfig()
	withAnon.Rules = []Rule{
		{Match: Match{Intents: []string{"action"}, Actors: []string{"public"}}, Allow: AllowAnonymous},
		{Match: Match{Intents: []string{"destroy"}}, Scopes: []string{"admin"}},
	}
	tests := []struct {
		name    string
		cfg     Config
		method  string
		target  string
		headers []string
		status  int // 0: passed on to resolution
	}{
		{"id route without a credential", hsConfig(), "POST", "/gateway/" + id + "/action/x", nil, 401},
		{"id route with a bad credential", hsConfig(), "POST", "/gateway/" + id + "/action/x", bearer("nope.nope.nope"), 401},
		{"id route with a valid credential", hsConfig(), "POST", "/gateway/" + id + "/action/x", bearer(good), 0},
		{"create without a credential", hsConfig(), "POST", "/actors?namespace=default", nil, 401},
		{"destroy, granted by no rule", hsConfig(), "DELETE", "/actors/" + id + "?namespace=default", bearer(good), 403},
		{"kv, granted by no rule", hsConfig(), "GET", "/actors/" + id + "/kv/keys/Aw==?namespace=default", bearer(good), 403},
		{"inspector, granted by no rule", hsConfig(), "GET", "/gateway/" + id + "/inspector/state", bearer(good), 403},
		{"destroy, granted by a rule", withAnon, "DELETE", "/actors/" + id + "?namespace=default", bearer(good), 0},
		{"an anonymous rule for the intent", withAnon, "POST", "/gateway/" + id + "/action/x", nil, 0},
		{"not that intent", withAnon, "POST", "/gateway/" + id + "/queue/x", nil, 401},
		{"resolved route: decided later", hsConfig(), "POST", "/gateway/counter/action/x?rvt-namespace=default&rvt-method=get&rvt-key=a", nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuth(t, tc.cfg)
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for i := 0; i+1 < len(tc.headers); i += 2 {
				r.Header.Add(tc.headers[i], tc.headers[i+1])
			}
			rt, err := rivet.ParseRequest(r)
			if err != nil {
				t.Fatal(err)
			}
			r = r.WithContext(rivet.WithRoute(r.Context(), &rt))
			passed := false
			rec := httptest.NewRecorder()
			a.Precheck(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { passed = true })).ServeHTTP(rec, r)
			switch {
			case tc.status == 0 && !passed:
				t.Errorf("refused with %d %s, want passed on", rec.Code, rec.Body)
			case tc.status != 0 && (passed || rec.Code != tc.status):
				t.Errorf("got passed=%v %d, want %d", passed, rec.Code, tc.status)
			}
		})
	}
}
