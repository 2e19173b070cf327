package integration

import (
	"strings"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/internal/readme"
	"gopkg.in/yaml.v3"
)

// The README's deployment examples are the configurations the end-to-end tests run: a test
// takes the YAML block under a heading and replaces only what is the deployment's (addresses,
// files, the namespace, the identity provider), with each edit named, so that a README change
// is a test change.

// yamlEdit is one change to a README example: set replaces the value at a dotted path that the
// example has, add puts one the example does not have, del removes one it has.
type yamlEdit struct {
	op    string // "set", "add" or "del"
	path  string // e.g. "upstream.url"
	value any    // a string (a scalar), or yamlText (a YAML fragment)
}

// yamlText is a YAML fragment as an edit's value (a list, a mapping).
type yamlText string

func set(path string, value any) yamlEdit { return yamlEdit{"set", path, value} }
func add(path string, value any) yamlEdit { return yamlEdit{"add", path, value} }
func del(path string) yamlEdit            { return yamlEdit{"del", path, nil} }

// readmeBlock returns the first ```yaml block after heading (a whole line of README.md).
func readmeBlock(t *testing.T, heading string) string {
	t.Helper()
	block, err := readme.YAMLBlock(heading)
	if err != nil {
		t.Fatal(err)
	}
	return block
}

// readmeConfig returns the README's YAML block under heading with edits applied. An edit whose
// path the example does not have (set, del) or already has (add) fails the test: the README
// changed, and what the test replaces must be looked at again.
func readmeConfig(t *testing.T, heading string, edits ...yamlEdit) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(readmeBlock(t, heading)), &doc); err != nil {
		t.Fatalf("README %q: %v", heading, err)
	}
	for _, e := range edits {
		if err := applyEdit(doc.Content[0], e); err != "" {
			t.Fatalf("README %q: %s %s: %s", heading, e.op, e.path, err)
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// applyEdit applies e under root (a mapping), and says what is wrong if it cannot.
func applyEdit(root *yaml.Node, e yamlEdit) string {
	keys := strings.Split(e.path, ".")
	m := root
	for _, k := range keys[:len(keys)-1] {
		_, v := lookup(m, k)
		if v == nil {
			if e.op != "add" {
				return "no " + k + " in the example"
			}
			v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
		}
		if v.Kind != yaml.MappingNode {
			return k + " is not a mapping"
		}
		m = v
	}
	last := keys[len(keys)-1]
	i, v := lookup(m, last)
	switch {
	case e.op == "add" && v != nil:
		return "the example has it already"
	case e.op != "add" && v == nil:
		return "the example does not have it"
	case e.op == "del":
		m.Content = append(m.Content[:i], m.Content[i+2:]...)
		return ""
	}
	var node *yaml.Node
	switch val := e.value.(type) {
	case string:
		node = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val, Style: yaml.DoubleQuotedStyle}
	case yamlText:
		var frag yaml.Node
		if err := yaml.Unmarshal([]byte(val), &frag); err != nil {
			return err.Error()
		}
		node = frag.Content[0]
	default:
		return "unsupported value"
	}
	if v == nil {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: last}, node)
	} else {
		m.Content[i+1] = node
	}
	return ""
}

// lookup returns the index of key in mapping m and its value node (nil if absent).
func lookup(m *yaml.Node, key string) (int, *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i, m.Content[i+1]
		}
	}
	return -1, nil
}

// TestReadmeConfigEdits: the edits do what they say, and refuse what the example does not have.
func TestReadmeConfigEdits(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a:\n  b: 1\n  c: [x]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	for _, e := range []yamlEdit{set("a.b", "2"), add("a.d.e", "3"), del("a.c"), set("a.f", yamlText("[y, z]"))} {
		err := applyEdit(root, e)
		if (err == "") != (e.path != "a.f") {
			t.Errorf("%s %s: %q", e.op, e.path, err)
		}
	}
	for _, e := range []yamlEdit{add("a.b", "4"), del("a.c"), set("x.y", "5")} {
		if err := applyEdit(root, e); err == "" {
			t.Errorf("%s %s: applied, want refused", e.op, e.path)
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a:\n    b: \"2\"\n    d:\n        e: \"3\"\n"; string(out) != want {
		t.Errorf("edited: got %q, want %q", out, want)
	}
}
