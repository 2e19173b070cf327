package metrics

import (
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rivet-gateway/rivet-gateway/internal/readme"
)

// TestReadmeListsEveryMetric keeps the README's metrics reference true:
// every rivet_gateway_* family New registers is in it, by full name.
func TestReadmeListsEveryMetric(t *testing.T) {
	text, err := readme.Read()
	if err != nil {
		t.Fatal(err)
	}
	// A recording registerer sees every collector New registers, so
	// families without samples yet are described too.
	rec := &describer{}
	if _, err := New(rec, DefaultConfig(), Options{OpenWebSockets: func() int { return 0 }}); err != nil {
		t.Fatal(err)
	}
	fqName := regexp.MustCompile(`fqName: "([a-z_:]+)"`)
	n := 0
	for _, c := range rec.cs {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil || !strings.HasPrefix(m[1], "rivet_gateway_") {
				continue
			}
			n++
			if !strings.Contains(text, "`"+m[1]+"`") {
				t.Errorf("README.md does not document %s", m[1])
			}
		}
	}
	if n < 15 {
		t.Errorf("only %d rivet_gateway_ families described", n)
	}
}

type describer struct{ cs []prometheus.Collector }

func (d *describer) Register(c prometheus.Collector) error   { d.cs = append(d.cs, c); return nil }
func (d *describer) MustRegister(cs ...prometheus.Collector) { d.cs = append(d.cs, cs...) }
func (d *describer) Unregister(prometheus.Collector) bool    { return false }
