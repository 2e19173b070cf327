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

	"github.com/rivet-gateway/rivet-gateway/config"
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
	// field, for a nodeValue whose action is a bare field chain such as
	// {{ .Subject }} or {{ .Claims.role }}: the chain, evaluated without
	// text/template (lookupField), with the same result.
	field []string
	keys  []string // nodeObject, sorted
	kids  []*mnode // nodeObject (by keys) and nodeArray
	// parts, for a nodeText made of text and bare field chains only.
	parts []textPart
	// encKeys are keys JSON-encoded, to write the object directly.
	encKeys [][]byte
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
			ek, err := marshal(k)
			if err != nil {
				*errs = append(*errs, config.Errorf(path, "key %q: %v", k, err))
			}
			n.encKeys = append(n.encKeys, ek)
		}
		return n
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				*errs = append(*errs, config.Errorf(path, "key %v is not a string", k))
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
	*errs = append(*errs, config.Errorf(path, "%v", err))
	return &mnode{kind: nodeLiteral, path: path, lit: json.RawMessage("null")}
}

func newTemplate(path, text string) (*template.Template, error) {
	return template.New(path).Option("missingkey=error").Funcs(templateFuncs).Parse(text)
}

func compileTemplate(text, path string, errs *[]error) *mnode {
	t, err := newTemplate(path, text)
	if err != nil {
		*errs = append(*errs, config.Errorf(path, "%v", err))
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
				return &mnode{kind: nodeValue, path: path, tmpl: vt, field: bareField(a.Pipe)}
			}
		}
	}
	return &mnode{kind: nodeText, path: path, tmpl: t, parts: textParts(t.Tree.Root)}
}

// textPart is a piece of a nodeText template: literal text, or a bare
// field chain whose value is printed.
type textPart struct {
	text  string
	field []string
}

// textParts splits a template made only of text and bare field actions;
// nil for anything else (it then always runs through text/template).
func textParts(root *parse.ListNode) []textPart {
	var parts []textPart
	for _, n := range root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			parts = append(parts, textPart{text: string(n.Text)})
		case *parse.ActionNode:
			f := bareField(n.Pipe)
			if f == nil {
				return nil
			}
			parts = append(parts, textPart{field: f})
		default:
			return nil
		}
	}
	return parts
}

// evalText renders parts when every field is a non-empty string (what
// text/template prints as is); ok is false otherwise, and text/template
// decides.
func evalText(q *query, parts []textPart, buf *strings.Builder) bool {
	buf.Reset()
	for _, p := range parts {
		if p.field == nil {
			buf.WriteString(p.text)
			continue
		}
		v, ok := lookupField(q, p.field)
		s, isStr := v.(string)
		if !ok || !isStr {
			return false
		}
		buf.WriteString(s)
	}
	return true
}

// bareField returns the field chain of a pipeline that is exactly one
// field chain of the dot (".Claims.role"), or nil.
func bareField(p *parse.PipeNode) []string {
	if p == nil || len(p.Decl) != 0 || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return nil
	}
	f, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) == 0 || !templateFields[f.Ident[0]] {
		return nil
	}
	return f.Ident
}

// evalData is the data of one evaluation: the query, and the map
// text/template reads, built only when a template needs it.
type evalData struct {
	q    *query
	data map[string]any
}

func (d *evalData) templateData() map[string]any {
	if d.data == nil {
		d.data = templateData(d.q)
	}
	return d.data
}

// lookupField evaluates a bare field chain as text/template with
// missingkey=error would on templateData(q): ok is false where the
// template fails (an absent or empty top-level field, a missing key, a
// field of something that is not an object).
func lookupField(q *query, path []string) (any, bool) {
	var v any
	c := q.caller
	str := func(s string) (any, bool) { return s, s != "" }
	var ok bool
	switch path[0] {
	case "Method", "Subject", "Issuer", "APIKeyID":
		if c == nil {
			return nil, false
		}
		switch path[0] {
		case "Method":
			v, ok = str(c.Method)
		case "Subject":
			v, ok = str(c.Subject)
		case "Issuer":
			v, ok = str(c.Issuer)
		default:
			v, ok = str(c.APIKeyID)
		}
	case "Scopes":
		if c == nil || len(c.Scopes) == 0 {
			return nil, false
		}
		v, ok = c.Scopes, true
	case "Claims":
		if c == nil || len(c.Claims) == 0 {
			return nil, false
		}
		v, ok = withoutNulls(c.Claims), true
	case "RequestID":
		v, ok = str(q.requestID)
	case "Route":
		rt := q.route
		if rt == nil {
			return nil, false
		}
		if len(path) == 1 {
			return templateData(q)["Route"], true
		}
		switch path[1] {
		case "Intent":
			v, ok = str(rt.Intent.String())
		case "ActorID":
			v, ok = str(rt.ActorID)
		case "ActorName":
			v, ok = str(rt.ActorName)
		case "Method":
			v, ok = str(rt.Method)
		case "Namespace":
			v, ok = str(rt.Namespace)
		case "Name":
			v, ok = str(rt.Name)
		case "Key":
			v, ok = rt.Key, rt.Key != nil
		}
		if !ok || len(path) == 2 {
			return v, ok
		}
		path = path[1:]
	}
	if !ok {
		return nil, false
	}
	for _, k := range path[1:] {
		m, isMap := v.(map[string]any)
		if !isMap {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
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
func (n *mnode) eval(data *evalData, mode string, buf *strings.Builder) (raw json.RawMessage, present bool, err error) {
	switch n.kind {
	case nodeLiteral:
		return n.lit, true, nil
	case nodeValue, nodeText:
		if n.field != nil {
			if v, ok := lookupField(data.q, n.field); ok {
				if raw, err := jsonFunc(v); err == nil {
					return json.RawMessage(raw), true, nil
				}
			}
			// Missing, or not encodable: text/template gives the error.
		}
		if n.parts != nil && evalText(data.q, n.parts, buf) && !strings.Contains(buf.String(), "<no value>") {
			raw, err := marshal(buf.String())
			return raw, true, err
		}
		buf.Reset()
		err := n.tmpl.Execute(buf, data.templateData())
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

// encodeObject evaluates an object node straight to its JSON encoding:
// the bytes rivet.MarshalASCII gives for evalObject's result (keys sorted,
// compact, HTML characters not escaped), before the ASCII escaping.
func (n *mnode) encodeObject(data *evalData, mode string, buf *strings.Builder) ([]byte, error) {
	out := make([]byte, 0, 128)
	out = append(out, '{')
	for i, k := range n.kids {
		raw, ok, err := k.eval(data, mode, buf)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, n.encKeys[i]...)
		out = append(out, ':')
		out = append(out, raw...)
	}
	return append(out, '}'), nil
}

func (n *mnode) evalObject(data *evalData, mode string, buf *strings.Builder) (object, error) {
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
	// usesRequestID: some template may read .RequestID, so the injector
	// must make one (otherwise it does only for a log line).
	usesRequestID bool
}

func newClaimsSource(m map[string]any, mode, path string) (*claimsSource, error) {
	root, err := compileMapping(m, path)
	if err != nil {
		return nil, err
	}
	return &claimsSource{root: root, mode: mode, usesRequestID: readsRequestID(root)}, nil
}

// readsRequestID reports whether a template under n mentions RequestID.
func readsRequestID(n *mnode) bool {
	if n.tmpl != nil && n.tmpl.Tree != nil && strings.Contains(n.tmpl.Tree.Root.String(), "RequestID") {
		return true
	}
	for _, k := range n.kids {
		if readsRequestID(k) {
			return true
		}
	}
	return false
}

func (s *claimsSource) name() string { return SourceClaims }

func (s *claimsSource) resolve(_ context.Context, q *query) (object, stats, error) {
	var buf strings.Builder
	obj, err := s.root.evalObject(&evalData{q: q}, s.mode, &buf)
	if err == nil {
		obj, err = escapeCompatValues(obj)
	}
	if err != nil {
		return nil, stats{attempts: 1}, err
	}
	return obj, stats{attempts: 1}, nil
}

// resolveEncoded is resolve followed by rivet.MarshalASCII, compat-escaped,
// without the intermediate map.
func (s *claimsSource) resolveEncoded(_ context.Context, q *query) ([]byte, stats, error) {
	var buf strings.Builder
	body, err := s.root.encodeObject(&evalData{q: q}, s.mode, &buf)
	if err == nil {
		body, err = escapeCompat(body)
	}
	if err != nil {
		return nil, stats{attempts: 1}, err
	}
	return body, stats{attempts: 1}, nil
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
