package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rivet-gateway/rivet-gateway/authn"
)

func TestAuthLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, DefaultConfig(), Options{IssuerNames: []string{"demo"}, APIKeyIDs: []string{"backend"}})
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveAuth(authn.Outcome{Result: authn.ResultOK, Method: "jwt", Issuer: "demo"})
	m.ObserveAuth(authn.Outcome{Result: authn.ResultOK, Method: "api_key", APIKeyID: "from-a-file"})
	if got, want := testutil.ToFloat64(m.auth.WithLabelValues("ok", "none", "jwt", "demo", "none")), 1.0; got != want {
		t.Errorf("issuer demo: got %v, want %v", got, want)
	}
	if got, want := testutil.ToFloat64(m.auth.WithLabelValues("ok", "none", "api_key", "none", "other")), 1.0; got != want {
		t.Errorf("unknown key id: got %v, want %v", got, want)
	}
	var nilM *Metrics
	nilM.ObserveAuth(authn.Outcome{}) // must not panic
}

func TestCloseLabel(t *testing.T) {
	for code, want := range map[int]string{0: "none", 1000: "1000", 1011: "1011", 4000: "other", 3000: "other"} {
		if got := closeLabel(code); got != want {
			t.Errorf("closeLabel(%d): got %q, want %q", code, got, want)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Config{Path: "metrics", ActorNames: []string{"a", "a", "other"}}
	err := c.Validate("metrics")
	for _, want := range []string{"metrics.path:", "metrics.actor_names[1]:", "metrics.actor_names[2]:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q: %v", want, err)
		}
	}
	a := AccessLogConfig{Sample: 2, Level: "loud"}
	err = a.Validate("log.access")
	for _, want := range []string{"log.access.sample:", "log.access.level:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q: %v", want, err)
		}
	}
}
