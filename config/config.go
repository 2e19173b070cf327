// Package config loads YAML configuration files strictly: every key must
// name a field (an unknown key is an error with its line and path), and
// ${VAR} / ${VAR:-default} in scalar values are replaced from the
// environment. Expansion happens inside scalars after parsing, so a secret
// containing YAML syntax (": ", "#", newlines) can never change the
// document's structure.
//
// The packages own their config structs and defaults; this package only
// decodes into whatever value it is given.
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

// Load reads the YAML file at path into dst (a pointer to a struct
// holding the defaults) with Decode.
func Load(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return Decode(data, dst, os.LookupEnv)
}

// Decode decodes data into dst: keys absent from the document keep dst's
// values, unknown keys and undefined variables are errors (all of them
// reported at once), and ${VAR} / ${VAR:-default} in scalars are expanded
// with lookup.
func Decode(data []byte, dst any, lookup func(string) (string, bool)) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: all defaults
		}
		return err
	}
	var errs []error
	expandNode(&doc, lookup, &errs)
	checkKeys(&doc, reflect.TypeOf(dst), "", &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return doc.Decode(dst)
}

// expandNode replaces ${VAR} and ${VAR:-default} in every scalar.
func expandNode(n *yaml.Node, lookup func(string) (string, bool), errs *[]error) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		v, err := Expand(n.Value, lookup)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("line %d: %w", n.Line, err))
		}
		n.Value = v
		// A quoted or plain scalar stays a string; an expanded plain
		// scalar is re-resolved ("${PORT}" may be an int).
		if n.Style == 0 {
			n.Tag = ""
		}
	}
	for _, c := range n.Content {
		expandNode(c, lookup, errs)
	}
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

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// checkKeys reports mapping keys in n that name no field of t, with their
// line and YAML path.
func checkKeys(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkKeys(c, t, path, errs)
		}
		return
	}
	for t.Kind() == reflect.Pointer {
		if t.Implements(unmarshalerType) {
			return
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // a type mismatch: yaml.Decode reports it
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue // merge key
			}
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("line %d: %s: unknown key %q", k.Line, join(path, k.Value), k.Value))
				continue
			}
			checkKeys(v, ft, join(path, k.Value), errs)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), errs)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the YAML keys of struct t (including inlined structs) to
// field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}
