package params

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"text/template/parse"
)

// errMissing marks a template whose data is absent, null or empty for this
// caller.
var errMissing = errors.New("missing value")

// missingError is a claims template that could not be evaluated for this
// caller. Its text names the template and the field, never a value.
type missingError struct {
	path string
	err  error
}

func (e *missingError) Error() string { return e.path + ": " + e.err.Error() }
func (e *missingError) Unwrap() error { return errMissing }

// templateFields are the top-level fields a claims template can read.
var templateFields = map[string]bool{
	"Method": true, "Subject": true, "Issuer": true, "APIKeyID": true,
	"Scopes": true, "Claims": true, "Route": true, "RequestID": true,
}

// templateFuncs override text/template's index with one that fails on a
// missing key or null value (the builtin yields a silent "<no value>") and
// add json, which encodes its argument as a JSON string.
var templateFuncs = template.FuncMap{
	"index": strictIndex,
	"json":  jsonFunc,
}

type nodeKind uint8

const (
	nodeLiteral nodeKind = iota // a constant JSON value
	nodeValue                   // one template action: keeps the value's JSON type
	nodeText                    // text with actions: always a JSON string
	nodeObject
	nodeArray
)

// mnode is a compiled claims mapping value.
type mnode struct {
	kind nodeKind
	path string
	lit  json.RawMessage
	tmpl *template.Template
	keys []string // nodeObject, sorted
	kids []*mnode // nodeObject (by keys) and nodeArray
}

// compileMapping compiles a claims mapping, reporting every bad template
// with its YAML path under path.
func compileMapping(m map[string]any, path string) (*mnode, error) {
	var errs []error
	n := compileNode(m, path, &errs)
	return n, errors.Join(errs...)
}

func compileNode(v any, path string, errs *[]error) *mnode {
	switch t := v.(type) {
	case string:
		if !strings.Contains(t, "{{") {
			return literal(t, path, errs)
		}
		return compileTemplate(t, path, errs)
	case map[string]any:
		n := &mnode{kind: nodeObject, path: path, keys: sortedKeys(t)}
		for _, k := range n.keys {
			n.kids = append(n.kids, compileNode(t[k], path+"."+k, errs))
		}
		return n
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: key %v is not a string", path, k))
				continue
			}
			m[ks] = e
		}
		return compileNode(m, path, errs)
	case []any:
		n := &mnode{kind: nodeArray, path: path}
		for i, e := range t {
			n.kids = append(n.kids, compileNode(e, fmt.Sprintf("%s[%d]", path, i), errs))
		}
		return n
	}
	return literal(v, path, errs)
}

func literal(v any, path string, errs *[]error) *mnode {
	nv, err := normalize(v)
	if err == nil {
		var raw []byte
		if raw, err = marshal(nv); err == nil {
			return &mnode{kind: nodeLiteral, path: path, lit: raw}
		}
	}
	*errs = append(*errs, fmt.Errorf("%s: %v", path, err))
	return &mnode{kind: nodeLiteral, path: path, lit: json.RawMessage("null")}
}

func newTemplate(path, text string) (*template.Template, error) {
	return template.New(path).Option("missingkey=error").Funcs(templateFuncs).Parse(text)
}

func compileTemplate(text, path string, errs *[]error) *mnode {
	t, err := newTemplate(path, text)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %v", path, err))
		return &mnode{kind: nodeLiteral, path: path, lit: json.RawMessage("null")}
	}
	for _, f := range unknownFields(t.Tree.Root) {
		*errs = append(*errs, fmt.Errorf("%s: unknown field %q (want one of Method, Subject, Issuer, APIKeyID, Scopes, Claims, Route, RequestID)", path, f))
	}
	// Exactly one action and no text: the value keeps its JSON type, so
	// "{{ .Claims.admin }}" stays a bool and "{{ .Claims.groups }}" an array.
	// The pipeline is rerun through json, which encodes the value itself.
	if nodes := t.Tree.Root.Nodes; len(nodes) == 1 {
		if a, ok := nodes[0].(*parse.ActionNode); ok && len(a.Pipe.Decl) == 0 {
			if vt, err := newTemplate(path, "{{json ("+a.Pipe.String()+")}}"); err == nil {
				return &mnode{kind: nodeValue, path: path, tmpl: vt}
			}
		}
	}
	return &mnode{kind: nodeText, path: path, tmpl: t}
}

// unknownFields lists the top-level fields n reads that the template data
// does not have. Inside range and with, the dot is something else and
// only $.Field is checked.
func unknownFields(n parse.Node) []string {
	var out []string
	var walk func(n parse.Node, root bool)
	walk = func(n parse.Node, root bool) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c, root)
			}
		case *parse.ActionNode:
			walk(n.Pipe, root)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c, root)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a, root)
			}
		case *parse.ChainNode:
			walk(n.Node, root)
		case *parse.FieldNode:
			if root && !templateFields[n.Ident[0]] {
				out = append(out, n.Ident[0])
			}
		case *parse.VariableNode:
			if n.Ident[0] == "$" && len(n.Ident) > 1 && !templateFields[n.Ident[1]] {
				out = append(out, n.Ident[1])
			}
		case *parse.IfNode:
			walk(n.Pipe, root)
			walk(n.List, root)
			walk(n.ElseList, root)
		case *parse.RangeNode:
			walk(n.Pipe, root)
			walk(n.List, false)
			walk(n.ElseList, root)
		case *parse.WithNode:
			walk(n.Pipe, root)
			walk(n.List, false)
			walk(n.ElseList, root)
		case *parse.TemplateNode:
			walk(n.Pipe, root)
		}
	}
	walk(n, true)
	return out
}

// eval evaluates n for data. present is false when a missing value is
// omitted; a missing value under mode deny is a *missingError.
func (n *mnode) eval(data map[string]any, mode string, buf *strings.Builder) (raw json.RawMessage, present bool, err error) {
	switch n.kind {
	case nodeLiteral:
		return n.lit, true, nil
	case nodeValue, nodeText:
		buf.Reset()
		err := n.tmpl.Execute(buf, data)
		if err == nil && n.kind == nodeText && strings.Contains(buf.String(), "<no value>") {
			err = errMissing
		}
		if err != nil {
			switch mode {
			case MissingOmit:
				return nil, false, nil
			case MissingNull:
				return json.RawMessage("null"), true, nil
			}
			return nil, false, &missingError{path: n.path, err: err}
		}
		if n.kind == nodeValue {
			return json.RawMessage(buf.String()), true, nil
		}
		raw, err := marshal(buf.String())
		return raw, true, err
	case nodeObject:
		obj, err := n.evalObject(data, mode, buf)
		if err != nil {
			return nil, false, err
		}
		raw, err := marshal(obj)
		return raw, true, err
	case nodeArray:
		elems := make([]json.RawMessage, 0, len(n.kids))
		for _, k := range n.kids {
			raw, ok, err := k.eval(data, mode, buf)
			if err != nil {
				return nil, false, err
			}
			if ok {
				elems = append(elems, raw)
			}
		}
		raw, err := marshal(elems)
		return raw, true, err
	}
	return nil, false, fmt.Errorf("%s: unknown node kind %d", n.path, n.kind)
}

func (n *mnode) evalObject(data map[string]any, mode string, buf *strings.Builder) (object, error) {
	obj := make(object, len(n.keys))
	for i, k := range n.keys {
		raw, ok, err := n.kids[i].eval(data, mode, buf)
		if err != nil {
			return nil, err
		}
		if ok {
			obj[k] = raw
		}
	}
	return obj, nil
}

// claimsSource builds params from the caller by a declarative mapping.
// Every value is produced by encoding/json from data, so a claim can never
// add structure: `"}, "admin": true` stays one string.
type claimsSource struct {
	root *mnode
	mode string
}

func newClaimsSource(m map[string]any, mode, path string) (*claimsSource, error) {
	root, err := compileMapping(m, path)
	if err != nil {
		return nil, err
	}
	return &claimsSource{root: root, mode: mode}, nil
}

func (s *claimsSource) name() string { return SourceClaims }

func (s *claimsSource) resolve(_ context.Context, q *query) (object, stats, error) {
	var buf strings.Builder
	obj, err := s.root.evalObject(templateData(q), s.mode, &buf)
	if err != nil {
		return nil, stats{attempts: 1}, err
	}
	return obj, stats{attempts: 1}, nil
}

// templateData is what a claims template sees. Empty fields are left out so
// that a template reading them fails as missing (missingkey=error) instead
// of writing "" for an anonymous caller; null claims are left out likewise.
func templateData(q *query) map[string]any {
	d := make(map[string]any, 8)
	if c := q.caller; c != nil {
		putString(d, "Method", c.Method)
		putString(d, "Subject", c.Subject)
		putString(d, "Issuer", c.Issuer)
		putString(d, "APIKeyID", c.APIKeyID)
		if len(c.Scopes) > 0 {
			d["Scopes"] = c.Scopes
		}
		if len(c.Claims) > 0 {
			d["Claims"] = withoutNulls(c.Claims)
		}
	}
	putString(d, "RequestID", q.requestID)
	if rt := q.route; rt != nil {
		r := make(map[string]any, 7)
		putString(r, "Intent", rt.Intent.String())
		putString(r, "ActorID", rt.ActorID)
		putString(r, "ActorName", rt.ActorName)
		putString(r, "Method", rt.Method)
		putString(r, "Namespace", rt.Namespace)
		putString(r, "Name", rt.Name)
		if rt.Key != nil {
			r["Key"] = rt.Key
		}
		d["Route"] = r
	}
	return d
}

func putString(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// withoutNulls returns m without null entries, at any depth of nested
// objects, copying only when there is one.
func withoutNulls(m map[string]any) map[string]any {
	if !hasNull(m) {
		return m
	}
	return pruneNulls(m).(map[string]any)
}

func hasNull(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range t {
			if hasNull(e) {
				return true
			}
		}
	case []any:
		for _, e := range t {
			if e != nil && hasNull(e) { // a null element keeps its place
				return true
			}
		}
	}
	return false
}

func pruneNulls(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if e != nil {
				out[k] = pruneNulls(e)
			}
		}
		return out
	case []any: // elements keep their positions; index fails on a null one
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = pruneNulls(e)
		}
		return out
	}
	return v
}

// strictIndex is text/template's index for JSON-shaped data, failing with
// errMissing on an absent key, an index out of range or a null result.
func strictIndex(item any, keys ...any) (any, error) {
	v := item
	for _, k := range keys {
		if isNil(v) {
			return nil, errMissing
		}
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Map:
			kv := reflect.ValueOf(k)
			if !kv.IsValid() || !kv.Type().AssignableTo(rv.Type().Key()) {
				return nil, fmt.Errorf("index: cannot use %T as a key of %T", k, v)
			}
			e := rv.MapIndex(kv)
			if !e.IsValid() {
				return nil, errMissing
			}
			v = e.Interface()
		case reflect.Slice, reflect.Array:
			i, ok := k.(int)
			if !ok {
				return nil, fmt.Errorf("index: cannot use %T as an index", k)
			}
			if i < 0 || i >= rv.Len() {
				return nil, errMissing
			}
			v = rv.Index(i).Interface()
		default:
			return nil, fmt.Errorf("index: cannot index %T", v)
		}
	}
	if isNil(v) {
		return nil, errMissing
	}
	return v, nil
}

// jsonFunc encodes v as JSON; a null is missing.
func jsonFunc(v any) (string, error) {
	if isNil(v) {
		return "", errMissing
	}
	b, err := marshal(v)
	return string(b), err
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Map, reflect.Slice, reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
