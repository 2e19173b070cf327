package rivet

import "testing"

// TestEscapeCompat: plain JSON comes out in the compat form RivetKit reads
// back as the same value, untouched when nothing is tag-like.
func TestEscapeCompat(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{`{"note":"costs $5"}`, `{"note":"costs $5"}`},
		{`{"b":2,"a":["$x",1]}`, `{"a":["$$x",1],"b":2}`},
		{`{"a":["$x",1,2]}`, `{"a":["$x",1,2]}`},
		{`{"a":[1,"$x"]}`, `{"a":[1,"$x"]}`},
		{`{"a":[["$BigInt","1"],0]}`, `{"a":[["$$BigInt","1"],0]}`},
		{`{"a":["$$x",{"b":["$y",null]}]}`, `{"a":["$$$x",{"b":["$$y",null]}]}`},
		{`{"n":12345678901234567890,"a":["$x","<&>"]}`, `{"a":["$$x","<&>"],"n":12345678901234567890}`},
	} {
		got, err := EscapeCompat([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("EscapeCompat(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := EscapeCompat([]byte(`{"a":"$`)); err == nil {
		t.Error("EscapeCompat of broken JSON: no error")
	}
}
