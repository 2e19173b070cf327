package rivet

import (
	"bytes"
	"encoding/json"
	"strings"
)

// EscapeCompat returns raw, plain JSON, in RivetKit's compat JSON: the
// form in which actors read conn params (and action arguments). Compat JSON
// reads a two-element array whose first element is a string starting with
// "$" as a tagged value (["$BigInt", "1"]), and escapes such arrays of
// plain data with one more "$" (jsonStringifyCompat in rivetkit 2.3.19).
// Measured on engine 2.3.19: params holding ["$x", 1] are answered with
// rivetkit.internal_error, ["$$x", 1] reaches the actor as ["$x", 1].
//
// Values the gateway builds (from claims, a params service, the static
// config) are plain JSON and go through this before they are sent; a
// client's own params are already in compat form and must not. raw is
// returned as it is unless something needed escaping; then the value is
// re-encoded (object keys sorted, numbers as written).
func EscapeCompat(raw []byte) ([]byte, error) {
	if !bytes.Contains(raw, []byte(`"$`)) {
		return raw, nil // the common case: nothing tag-like
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	if !escapeCompat(tree) {
		return raw, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tree); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// escapeCompat escapes v in place and reports whether it changed anything.
func escapeCompat(v any) bool {
	changed := false
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			changed = escapeCompat(e) || changed
		}
	case []any:
		for _, e := range v {
			changed = escapeCompat(e) || changed
		}
		if len(v) == 2 {
			if s, ok := v[0].(string); ok && strings.HasPrefix(s, "$") {
				v[0] = "$" + s
				changed = true
			}
		}
	}
	return changed
}
