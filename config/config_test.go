package config

import (
	"strings"
	"testing"
	"time"
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
	if err := Decode([]byte("port: many\n"), &sample{}, env(nil)); err == nil {
		t.Error("port: many accepted")
	}
	if err := Decode([]byte("nested: {every: soon}\n"), &sample{}, env(nil)); err == nil {
		t.Error("every: soon accepted as a duration")
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

func FuzzDecode(f *testing.F) {
	f.Add([]byte("listen: x\nitems: [{name: a}]\n"))
	f.Add([]byte("secret: ${S:-x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		_ = Decode(data, &s, env(map[string]string{"S": "v"}))
	})
}
