package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

type inner struct {
	Name  string        `yaml:"name"`
	Every time.Duration `yaml:"every"`
}

type sample struct {
	Listen  string            `yaml:"listen"`
	Port    int               `yaml:"port"`
	Secret  string            `yaml:"secret"`
	Items   []inner           `yaml:"items"`
	Labels  map[string]string `yaml:"labels"`
	Nested  inner             `yaml:"nested"`
	Enabled bool              `yaml:"enabled"`
	Expires time.Time         `yaml:"expires"`
	Tags    []string          `yaml:"tags"`
	Ptr     *inner            `yaml:"ptr"`
	Static  map[string]any    `yaml:"static"`
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDecodeKeepsDefaultsAndExpands(t *testing.T) {
	doc := `
listen: ":${PORT:-8080}"
port: ${PORT}
secret: ${SECRET}
nested:
  every: 30s
items:
  - name: a
    every: 1m
labels: {team: "${TEAM:-core}"}
`
	got := sample{Listen: "default", Enabled: true}
	err := Decode([]byte(doc), &got, env(map[string]string{"PORT": "9000", "SECRET": "a: b # not a comment\nc"}))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got.Listen != ":9000" || got.Port != 9000 {
		t.Errorf("listen, port = %q, %d; want \":9000\", 9000", got.Listen, got.Port)
	}
	if got.Secret != "a: b # not a comment\nc" {
		t.Errorf("secret = %q; a secret with YAML syntax must stay one scalar", got.Secret)
	}
	if !got.Enabled {
		t.Error("enabled: a default absent from the file was overwritten")
	}
	if got.Nested.Every != 30*time.Second || len(got.Items) != 1 || got.Items[0].Every != time.Minute {
		t.Errorf("durations = %v, %+v", got.Nested.Every, got.Items)
	}
	if got.Labels["team"] != "core" {
		t.Errorf("labels.team = %q, want default core", got.Labels["team"])
	}
}

func TestDecodeReportsEveryUnknownKeyWithLineAndPath(t *testing.T) {
	doc := "listen: x\nlisten_addr: y\nnested:\n  nmae: z\nitems:\n  - name: a\n  - nme: b\n"
	err := Decode([]byte(doc), &sample{}, env(nil))
	if err == nil {
		t.Fatal("Decode accepted unknown keys")
	}
	for _, want := range []string{
		`line 2: listen_addr: unknown key "listen_addr"`,
		`line 4: nested.nmae: unknown key "nmae"`,
		`line 7: items[1].nme: unknown key "nme"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nlacks %q", err, want)
		}
	}
}

func TestDecodeMissingVariable(t *testing.T) {
	err := Decode([]byte("secret: ${JWT_SECRET}\nlisten: ${A}${B}\n"), &sample{}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "JWT_SECRET is not set") || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("got %v, want errors naming JWT_SECRET and line 2", err)
	}
}

func TestDecodeTypeErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"port: many\n", `line 1: port: got "many", want an integer`},
		{"nested: {every: soon}\n", `line 1: nested.every: got "soon", want a duration (write durations as "30s", "5m")`},
		{"nested:\n  every: 30\n", `line 2: nested.every: got 30, want a duration (write durations as "30s", "5m")`},
		{"expires: next year\n", `line 1: expires: got "next year", want a timestamp (RFC 3339, e.g. 2027-01-01T00:00:00Z)`},
		{"expires: 2027-13-01T00:00:00Z\n", `line 1: expires: got "2027-13-01T00:00:00Z", want a timestamp (RFC 3339, e.g. 2027-01-01T00:00:00Z)`},
		{"tags: [a, [b], c]\n", `line 1: tags[1]: got a list, want a string`},
		{"items: {name: a}\n", `line 1: items: got a mapping, want a list`},
		{"nested: [a]\n", `line 1: nested: got a list, want a mapping`},
		{"enabled: maybe\n", `line 1: enabled: got "maybe", want true or false`},
		{"listen: a\nlisten: b\n", `line 2: listen: key "listen" is already set at line 1`},
		{"labels: {a: x, a: y}\n", `line 1: labels.a: key "a" is already set at line 1`},
		{"hello\n", `line 1: got "hello", want a mapping`},
		{"nested:\n  <<: {nmae: x}\n", `line 2: nested.nmae: unknown key "nmae"`},
		{"nested: {<<: [a]}\n", `line 1: nested.<<: a merge key takes a mapping or a list of mappings`},
		{"${NOPE}: 1\n", `line 1: ${NOPE}: environment variable NOPE is not set (use ${NOPE:-default} for a default)`},
	} {
		err := Decode([]byte(tc.doc), &sample{}, env(nil))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Decode(%q):\ngot  %v\nwant %s", tc.doc, err, tc.want)
		}
	}
}

// TestDecodeGoesOnAfterAProblem: a value that cannot be decoded keeps the
// default, and everything else is still decoded.
func TestDecodeGoesOnAfterAProblem(t *testing.T) {
	doc := "port: many\nlisten: x\nnested: {every: 30, name: n}\nitems: [{name: a, every: soon}, {name: b}]\nbogus: 1\nenabled: true\n"
	got := sample{Port: 8080, Nested: inner{Every: time.Second}}
	err := Decode([]byte(doc), &got, env(nil))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 4 {
		t.Fatalf("got %v, want 4 problems", err)
	}
	want := sample{Port: 8080, Listen: "x", Nested: inner{Name: "n", Every: time.Second},
		Items: []inner{{Name: "a"}, {Name: "b"}}, Enabled: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\ngot  %+v\nwant %+v", got, want)
	}
}

// TestDecodeFollowsYAMLv3: what the decoder does itself (structs, lists,
// maps, pointers, merge keys) matches yaml.v3's decoding of a valid file.
func TestDecodeFollowsYAMLv3(t *testing.T) {
	for _, doc := range []string{
		"items: []\nlabels: {}\nstatic: {}\n",
		"items:\nlabels:\nptr:\ntags:\n",
		"nested:\n",
		"ptr: {name: p, every: 1s}\nstatic: {a: 1, b: [x, {c: null}], d: }\n",
		"items:\n  - &b {name: base, every: 2s}\n  - <<: *b\n    name: own\nnested:\n  <<: [{name: first}, {name: second, every: 3s}]\n",
		"nested: &n {name: x}\nptr: *n\ntags: &t [a, b]\n",
	} {
		start := func() sample {
			return sample{Listen: "l", Items: []inner{{Name: "old"}}, Labels: map[string]string{"keep": "k"},
				Ptr: &inner{Name: "old"}, Tags: []string{"old"}, Nested: inner{Name: "def", Every: time.Minute}}
		}
		want, got := start(), start()
		wantErr := yaml.Unmarshal([]byte(doc), &want)
		err := Decode([]byte(doc), &got, env(nil))
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%q: got error %v, yaml.v3 %v", doc, err, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q:\ngot  %+v\nwant %+v (yaml.v3)", doc, got, want)
		}
	}
}

// TestCheckReportsEveryProblemOnce: decode and validation problems of
// every section come in one list, each once, with its path and line,
// sorted by line; a validation problem about a value that could not be
// decoded is left out.
func TestCheckReportsEveryProblemOnce(t *testing.T) {
	doc := `listen: nowhere
port: 9000
nested:
  name: ""
  every: 30
items:
  - name: a
    every: 1m
  - nme: b
tags: [ok, "${MISSING}"]
expires: 2027-01-01
secret: ${TOKEN}
ptr:
  every: -1s
`
	var got sample
	validate := func() error {
		var errs []error
		if got.Listen != ":80" {
			errs = append(errs, Errorf("listen", "not an address: %q", got.Listen))
		}
		if got.Nested.Name == "" {
			errs = append(errs, Errorf("nested.name", "required"))
		}
		if got.Nested.Every <= 0 {
			errs = append(errs, Errorf("nested.every", "must be positive")) // the default, after 30 failed: left out
		}
		for i, it := range got.Items {
			if it.Name == "" {
				errs = append(errs, Errorf(fmt.Sprintf("items[%d].name", i), "required")) // on the item's line
			}
		}
		if got.Ptr != nil && got.Ptr.Every < 0 {
			errs = append(errs, Errorf("ptr.every", "must not be negative"))
		}
		if len(got.Labels) == 0 {
			errs = append(errs, Errorf("labels", "list at least one")) // not in the file: no line, last
		}
		if got.Secret == "" {
			errs = append(errs, Errorf("secret", "required")) // ${TOKEN} is unset: left out
		}
		errs = append(errs, errors.New("a problem without a path"))
		return errors.Join(errors.Join(errs[:2]...), errors.Join(errs[2:]...))
	}
	err := Check([]byte(doc), &got, env(nil), validate)
	want := []string{
		`line 1: listen: not an address: "nowhere"`,
		`line 4: nested.name: required`,
		`line 5: nested.every: got 30, want a duration (write durations as "30s", "5m")`,
		`line 9: items[1].nme: unknown key "nme"`,
		`line 9: items[1].name: required`,
		`line 10: tags[1]: environment variable MISSING is not set (use ${MISSING:-default} for a default)`,
		`line 12: secret: environment variable TOKEN is not set (use ${TOKEN:-default} for a default)`,
		`line 14: ptr.every: must not be negative`,
		`labels: list at least one`,
		`a problem without a path`,
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("got %v, want Problems", err)
	}
	if got := strings.Split(ps.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("problems:\ngot\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if ps[0].Path != "listen" || ps[0].Line != 1 || ps[2].Hint != HintDuration {
		t.Errorf("fields: got %+v and %+v", ps[0], ps[2])
	}
}

func TestCheckKeepsCauses(t *testing.T) {
	var s sample
	err := Check([]byte("listen: /nonexistent\n"), &s, env(nil), func() error {
		_, err := os.Open(s.Listen)
		return Errorf("listen", "%w", err)
	})
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "line 1: listen: open /nonexistent") {
		t.Errorf("got %v, want line 1 and a cause that is fs.ErrNotExist", err)
	}
}

func TestCheckSyntaxError(t *testing.T) {
	called := false
	err := Check([]byte("a: [\n"), &sample{}, env(nil), func() error { called = true; return nil })
	var ps Problems
	if err == nil || errors.As(err, &ps) || called {
		t.Errorf("got %v (validated: %v), want a syntax error and no validation", err, called)
	}
}

func TestDecodeEmptyKeepsDefaults(t *testing.T) {
	got := sample{Listen: "x"}
	if err := Decode(nil, &got, env(nil)); err != nil || got.Listen != "x" {
		t.Fatalf("got %+v, %v; want defaults kept", got, err)
	}
}

func TestExpand(t *testing.T) {
	vars := env(map[string]string{"A": "1", "EMPTY": ""})
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"plain", "plain", false},
		{"${A}", "1", false},
		{"x${A}y${A}", "x1y1", false},
		{"${B:-def}", "def", false},
		{"${EMPTY:-def}", "def", false},
		{"${EMPTY}", "", false},
		{"$$ and $${A}", "$ and ${A}", false},
		{"cost $5", "cost $5", false},
		{"${B}", "", true},
		{"${A", "", true},
		{"${1A}", "", true},
	} {
		got, err := Expand(tc.in, vars)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("Expand(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// FuzzDecode: Decode never panics, and a document it accepts decodes as
// yaml.v3 decodes it.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("listen: x\nitems: [{name: a}]\n"))
	f.Add([]byte("secret: ${S:-x}\n"))
	f.Add([]byte("items:\n  - &b {name: base, every: 2s}\n  - <<: *b\n    name: own\nnested: {<<: [{name: a}]}\n"))
	f.Add([]byte("static: {a: 1, b: [x, {c: null}], d: }\nptr: {every: 1s}\nexpires: 2027-01-01\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got sample
		err := Decode(data, &got, env(map[string]string{"S": "v"}))
		if err != nil || bytes.Contains(data, []byte("$")) {
			return
		}
		var want sample
		if err := yaml.Unmarshal(data, &want); err != nil {
			t.Fatalf("Decode accepted %q, yaml.v3 says %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ngot  %+v\nwant %+v (yaml.v3)", data, got, want)
		}
	})
}

// TestDecodeCutsVariablesInProblems: a value from the environment may be a
// secret; a problem shows only its start.
func TestDecodeCutsVariablesInProblems(t *testing.T) {
	err := Decode([]byte("port: ${PORT}\nlisten: [x]\n"), &sample{}, env(map[string]string{"PORT": "s3cr3t-not-a-port"}))
	want := "line 1: port: got \"s3cr…\", want an integer\nline 2: listen: got a list, want a string"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
