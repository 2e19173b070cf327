package rivet

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

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

// FuzzEscapeCompat: for any JSON value, the escaped form holds no tag (every
// two-element array starting with a "$" string starts with "$$"), and
// reading it back the way RivetKit does for escaped arrays gives the value.
func FuzzEscapeCompat(f *testing.F) {
	for _, s := range []string{`{"a":["$x",1]}`, `["$$y",["$z",null]]`, `{"n":1.5e300,"s":"$"}`, `[["$a","$b"],"$c"]`, `"$x"`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var want any
		if err := json.Unmarshal([]byte(in), &want); err != nil {
			return
		}
		out, err := EscapeCompat([]byte(in))
		if err != nil {
			t.Fatalf("EscapeCompat(%q): %v", in, err)
		}
		var got any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("EscapeCompat(%q) = %q: not JSON: %v", in, out, err)
		}
		if tag := findTag(got); tag != "" {
			t.Fatalf("EscapeCompat(%q) = %q: holds tag %q", in, out, tag)
		}
		if !reflect.DeepEqual(unescapeCompat(got), want) {
			t.Fatalf("EscapeCompat(%q) = %q: reads back as %v, want %v", in, out, unescapeCompat(got), want)
		}
	})
}

// findTag returns the first element of a two-element array that RivetKit
// would read as a tag: a string starting with "$" but not "$$".
func findTag(v any) string {
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			if tag := findTag(e); tag != "" {
				return tag
			}
		}
	case []any:
		if len(v) == 2 {
			if s, ok := v[0].(string); ok && strings.HasPrefix(s, "$") && !strings.HasPrefix(s, "$$") {
				return s
			}
		}
		for _, e := range v {
			if tag := findTag(e); tag != "" {
				return tag
			}
		}
	}
	return ""
}

// unescapeCompat undoes the escape of two-element arrays ("$$x" → "$x"),
// as reviveJsonCompatValue does.
func unescapeCompat(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = unescapeCompat(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = unescapeCompat(e)
		}
		if len(out) == 2 {
			if s, ok := out[0].(string); ok && strings.HasPrefix(s, "$$") {
				out[0] = s[1:]
			}
		}
		return out
	}
	return v
}
