// Package config loads YAML configuration files strictly: every key must
// name a field (an unknown key is an error with its line and path), and
// ${VAR} / ${VAR:-default} in scalar values are replaced from the
// environment. Expansion happens inside scalars after parsing, so a secret
// containing YAML syntax (": ", "#", newlines) can never change the
// document's structure.
//
// Loading reports everything in one pass (rivet-gateway -check prints
// it): what cannot be decoded (unknown keys, values of the wrong type,
// undefined variables) and what the sections' Validate methods find in
// what could be, each once as a Problem with its YAML path, its line and,
// for durations and timestamps, how to write them.
//
// The packages own their config structs, defaults and validation; this
// package only decodes into whatever value it is given, and places the
// *PathError values their Validate methods return on the file's lines.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path into dst with Check, expanding
// variables from the environment.
func Load(path string, dst any, validate func() error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return Check(data, dst, os.LookupEnv, validate)
}

// Decode decodes data into dst (a pointer to a struct holding the
// defaults): keys absent from the document keep dst's values, and ${VAR}
// / ${VAR:-default} in scalars are expanded with lookup. It decodes all it
// can and returns every problem at once as Problems: unknown keys, values
// of the wrong type, undefined variables, each with its path and line. A
// value that cannot be decoded leaves dst's value there as it was. An
// error that is not Problems is a syntax error: nothing was decoded.
func Decode(data []byte, dst any, lookup func(string) (string, bool)) error {
	return Check(data, dst, lookup, nil)
}

// Check decodes data into dst as Decode does, then calls validate
// (unless nil) on what was decoded, and returns the problems of both
// stages together as Problems, sorted by line. Every validation error
// that is a *PathError (see Errorf) is placed on the line of its path; a
// validation problem at or below a path that could not be decoded is left
// out, as the decoding problem already names it and the value validated
// is only the default left in its place.
func Check(data []byte, dst any, lookup func(string) (string, bool), validate func() error) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			return err
		}
		// An empty file: all defaults.
	}
	d := decoder{skip: map[*yaml.Node]bool{}, expanded: map[*yaml.Node]bool{}}
	expandNode(&doc, "", lookup, &d)
	root := &doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
		d.decode(root, reflect.ValueOf(dst).Elem(), "")
	}
	problems := d.problems
	if validate != nil {
		lines := map[string]int{}
		indexLines(root, "", lines)
		for _, err := range leaves(validate(), nil) {
			p := asProblem(err)
			if under(p.Path, d.failed) {
				continue
			}
			p.Line = lineOf(p.Path, lines)
			problems = append(problems, p)
		}
	}
	if len(problems) == 0 {
		return nil
	}
	problems = problems.dedup()
	problems.sort()
	return problems
}

// expandNode replaces ${VAR} and ${VAR:-default} in every scalar. A
// scalar that cannot be expanded is a problem, and is not decoded.
func expandNode(n *yaml.Node, path string, lookup func(string) (string, bool), d *decoder) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		v, err := Expand(n.Value, lookup)
		if err != nil {
			d.problems = append(d.problems, Problem{Line: n.Line, Path: path, Err: err})
			d.failed = append(d.failed, path)
			d.skip[n] = true
			return
		}
		n.Value = v
		d.expanded[n] = true
		// A quoted or plain scalar stays a string; an expanded plain
		// scalar is re-resolved ("${PORT}" may be an int).
		if n.Style == 0 {
			n.Tag = ""
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			expandNode(n.Content[i], p, lookup, d)
			expandNode(n.Content[i+1], p, lookup, d)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandNode(c, fmt.Sprintf("%s[%d]", path, i), lookup, d)
		}
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expandNode(c, path, lookup, d)
		}
	}
}

// indexLines records the line of every key and list item under n by its
// path, the first one when a path occurs twice.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := join(path, k.Value)
			if _, ok := lines[p]; !ok {
				lines[p] = k.Line
			}
			indexLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if _, ok := lines[p]; !ok {
				lines[p] = c.Line
			}
			indexLines(c, p, lines)
		}
	}
}

// lineOf is the line of path, or of the closest enclosing path the file
// has: a required key that is missing is reported where its section is.
// 0 when the file has none of them.
func lineOf(path string, lines map[string]int) int {
	for path != "" {
		if l, ok := lines[path]; ok {
			return l
		}
		path = parent(path)
	}
	return 0
}

// parent strips the last key or index from path: "a.b[2]" → "a.b" →
// "a" → "".
func parent(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return ""
}

// under reports whether path is one of paths or below one of them.
func under(path string, paths []string) bool {
	for _, p := range paths {
		if path == p || p == "" || strings.HasPrefix(path, p) && (path[len(p)] == '.' || path[len(p)] == '[') {
			return true
		}
	}
	return false
}

// Expand replaces ${VAR} and ${VAR:-default} in s. "$$" stands for "$".
// An unset variable without a default is an error naming it.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	var missing []string
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return s, fmt.Errorf("unterminated ${ in %q", redact(s))
		}
		expr := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validVarName(name) {
			return s, fmt.Errorf("bad variable name %q", name)
		}
		if v, ok := lookup(name); ok && (v != "" || !hasDef) {
			b.WriteString(v)
		} else if hasDef {
			b.WriteString(def)
		} else {
			missing = append(missing, name)
		}
		i += 2 + end
	}
	if len(missing) > 0 {
		return b.String(), fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", strings.Join(missing, ", "), missing[0])
	}
	return b.String(), nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// redact keeps only the shape of a value in error messages: values may be
// secrets.
func redact(s string) string {
	if len(s) > 12 {
		return s[:4] + "…"
	}
	return s
}
