package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder decodes a YAML node tree into a Go value one key at a time, so
// that a key or value that cannot be decoded is a Problem with its path
// and line and the rest of the document is still decoded. What it cannot
// split (scalars, interfaces, types with their own unmarshaling) it hands
// to yaml.v3, whose rules it otherwise follows: absent keys keep the
// destination's values, lists are replaced, maps are added to, null
// resets pointers, lists and maps, merge keys ("<<") never override the
// mapping's own keys.
type decoder struct {
	// skip holds the scalars whose ${VAR} expansion failed: they keep the
	// destination's value, and their problem is already reported.
	skip map[*yaml.Node]bool
	// expanded holds the scalars that took a variable's value: problems
	// show only the start of it, as it may be a secret.
	expanded map[*yaml.Node]bool
	problems Problems
	// failed lists the paths that could not be decoded, so that a
	// validation problem about the value left there is not reported as
	// well.
	failed []string
}

func (d *decoder) fail(n *yaml.Node, path string, hint string, format string, a ...any) {
	d.problems = append(d.problems, Problem{Line: n.Line, Path: path, Err: fmt.Errorf(format, a...), Hint: hint})
	d.failed = append(d.failed, path)
}

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	nodeType            = reflect.TypeFor[yaml.Node]()
	durationType        = reflect.TypeFor[time.Duration]()
	timeType            = reflect.TypeFor[time.Time]()
)

// ownDecoding reports whether values of t decode themselves, so the
// decoder must not look inside them.
func ownDecoding(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t == nodeType || t.Implements(unmarshalerType) || p.Implements(unmarshalerType) ||
		t.Implements(textUnmarshalerType) || p.Implements(textUnmarshalerType)
}

// decode decodes n into v (settable) at path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.skip[n] {
		return
	}
	t := v.Type()
	if ownDecoding(t) || isNull(n) {
		d.leaf(n, v, path)
		return
	}
	switch {
	case t.Kind() == reflect.Pointer && n.Kind != yaml.ScalarNode:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		d.structure(n, v, path)
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		d.mapping(n, v, path)
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		s := reflect.MakeSlice(t, 0, len(n.Content))
		for i, c := range n.Content {
			if isNull(c) && !nillable(t.Elem()) {
				// yaml.v3 leaves an empty item out of a list of
				// strings, numbers or structs. (Validation problems of
				// later items then name one index less than the file.)
				continue
			}
			e := reflect.New(t.Elem()).Elem()
			d.decode(c, e, fmt.Sprintf("%s[%d]", path, i))
			s = reflect.Append(s, e)
		}
		v.Set(s)
	default:
		d.leaf(n, v, path)
	}
}

// leaf decodes n into v with yaml.v3, into a fresh value so that a
// failure leaves v as it was.
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	nv := reflect.New(v.Type())
	nv.Elem().Set(v)
	if err := n.Decode(nv.Interface()); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) && v.Type() != durationType && v.Type() != timeType {
			// Not a mismatch of types: yaml.v3's own words (e.g.
			// "document contains excessive aliasing").
			d.fail(n, path, "", "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			return
		}
		hint := ""
		switch v.Type() {
		case durationType:
			hint = HintDuration
		case timeType:
			hint = HintTimestamp
		}
		d.fail(n, path, hint, "got %s, want %s", d.describeNode(n), describeType(v.Type()))
		return
	}
	v.Set(nv.Elem())
}

func isNull(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// nillable reports whether null decodes into a value of type t (as nil).
func nillable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface, reflect.Pointer, reflect.Map, reflect.Slice:
		return true
	}
	return false
}

// entry is a key and its value in a mapping, after merge keys.
type entry struct{ key, value *yaml.Node }

// entries lists n's key-value pairs: its own, then those merged in with
// "<<" that it does not set itself (the first merged mapping wins), as
// yaml.v3 does. A key given twice is a problem; its first value counts.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	var own, merged []entry
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			merged = append(merged, d.mergeSources(v, join(path, "<<"))...)
			continue
		}
		if f, ok := first[k.Value]; ok {
			d.problems = append(d.problems, Problem{Line: k.Line, Path: join(path, k.Value),
				Err: fmt.Errorf("key %q is already set at line %d", k.Value, f.Line)})
			continue
		}
		first[k.Value] = k
		own = append(own, entry{k, v})
	}
	for _, e := range merged {
		if _, ok := first[e.key.Value]; !ok {
			first[e.key.Value] = e.key
			own = append(own, e)
		}
	}
	return own
}

// mergeSources lists the entries of the mapping, alias or list of them
// that a merge key names, in order.
func (d *decoder) mergeSources(v *yaml.Node, path string) []entry {
	resolve := func(n *yaml.Node) *yaml.Node {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			return n.Alias
		}
		return n
	}
	var maps []*yaml.Node
	switch m := resolve(v); m.Kind {
	case yaml.MappingNode:
		maps = append(maps, m)
	case yaml.SequenceNode:
		for _, c := range m.Content {
			maps = append(maps, resolve(c))
		}
	default:
		maps = append(maps, m)
	}
	var out []entry
	for _, m := range maps {
		if m.Kind != yaml.MappingNode {
			d.fail(v, path, "", "a merge key takes a mapping or a list of mappings")
			return nil
		}
		out = append(out, d.entries(m, path)...)
	}
	return out
}

func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

// structure decodes mapping n into struct v: each key into its field,
// every unknown key a problem.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	fields := yamlFields(v.Type())
	for _, e := range d.entries(n, path) {
		if d.skip[e.key] {
			continue // a key whose ${VAR} failed: reported as such
		}
		p := join(path, e.key.Value)
		index, ok := fields[e.key.Value]
		if !ok {
			d.fail(e.key, p, "", "unknown key %q", e.key.Value)
			continue
		}
		d.decode(e.value, v.FieldByIndex(index), p)
	}
}

// mapping decodes mapping n into map v, adding to what v holds.
func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for _, e := range d.entries(n, path) {
		if d.skip[e.key] {
			continue // a key whose ${VAR} failed: reported as such
		}
		p := join(path, e.key.Value)
		k := reflect.New(t.Key()).Elem()
		if err := e.key.Decode(k.Addr().Interface()); err != nil || !k.Comparable() {
			d.fail(e.key, p, "", "got %s, want a key that is %s", d.describeNode(e.key), describeType(t.Key()))
			continue
		}
		if isNull(e.value) && v.MapIndex(k).IsValid() {
			continue // yaml.v3 keeps what a null would reset
		}
		elem := reflect.New(t.Elem()).Elem()
		before := len(d.problems)
		d.decode(e.value, elem, p)
		if len(d.problems) == before && !d.skip[e.value] {
			v.SetMapIndex(k, elem)
		}
	}
}

// describeNode names what n is, for "got …": a scalar as written (cut
// when it comes from a variable: it may be a secret), a collection by its
// kind.
func (d *decoder) describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if d.expanded[n] {
			v = redact(v)
		}
		if n.ShortTag() == "!!str" {
			return fmt.Sprintf("%q", v)
		}
		return v
	}
	return "a " + n.ShortTag()
}

// describeType names what a value of t is written as, for "want …".
func describeType(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration"
	case timeType:
		return "a timestamp"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return t.String()
}

// yamlFields maps the YAML keys of struct t (including inlined structs) to
// field indexes, as yaml.v3 names them: the tag's name, else the field's
// name in lower case.
func yamlFields(t reflect.Type) map[string][]int {
	out := make(map[string][]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for k, idx := range yamlFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
