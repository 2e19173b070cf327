package params

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// object is a params object: top-level keys with their JSON values. Server
// objects are shared read-only; merging copies.
type object = map[string]json.RawMessage

// staticSource answers the same object to everyone.
type staticSource struct {
	obj     object
	encoded []byte // rivet.MarshalASCII(obj), for policy replace
}

func newStaticSource(m map[string]any) (*staticSource, error) {
	v, err := normalize(m)
	if err != nil {
		return nil, err
	}
	raw, err := marshal(v)
	if err != nil {
		return nil, err
	}
	var obj object
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		obj = object{}
	}
	if obj, err = escapeCompatValues(obj); err != nil {
		return nil, err
	}
	enc, err := rivet.MarshalASCII(obj)
	if err != nil {
		return nil, err
	}
	return &staticSource{obj: obj, encoded: enc}, nil
}

func (s *staticSource) name() string { return SourceStatic }

func (s *staticSource) resolve(context.Context, *query) (object, stats, error) {
	return s.obj, stats{attempts: 1}, nil
}

// normalize turns a YAML-decoded value into one encoding/json accepts:
// map[any]any with string keys becomes map[string]any; anything that cannot
// become JSON (non-string keys, NaN, funcs) is an error naming where.
func normalize(v any) (any, error) {
	return normalizeAt(v, "")
}

func normalizeAt(v any, at string) (any, error) {
	switch t := v.(type) {
	case nil, string, bool, int, int64, uint64, json.Number:
		return t, nil
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return nil, fmt.Errorf("%s: %v is not a JSON number", where(at), t)
		}
		return t, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for _, k := range sortedKeys(t) {
			n, err := normalizeAt(t[k], at+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: key %v is not a string", where(at), k)
			}
			n, err := normalizeAt(e, at+"."+ks)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			n, err := normalizeAt(e, fmt.Sprintf("%s[%d]", at, i))
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	// Other scalars (time.Time from a YAML timestamp, sized ints, ...):
	// accept what encoding/json encodes.
	switch reflect.ValueOf(v).Kind() {
	case reflect.Func, reflect.Chan, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return nil, fmt.Errorf("%s: %T cannot be JSON", where(at), v)
	}
	if _, err := json.Marshal(v); err != nil {
		return nil, fmt.Errorf("%s: %w", where(at), err)
	}
	return v, nil
}

func where(at string) string {
	if at == "" {
		return "value"
	}
	return strings.TrimPrefix(at, ".")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// marshal is json.Marshal without HTML escaping: params are not HTML, and
// \u003c for '<' would only eat into the carrier's size bound.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
