package rivetclient

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// RivetKit's JSON encoding extends JSON with tagged two-element arrays for
// values JSON cannot carry (common/encoding.ts): ["$BigInt","123"],
// ["$Uint8Array","<base64>"], ["$ArrayBuffer","<base64>"], ["$Undefined",0],
// ["$Set",[…]]. A real two-element array whose first element is a string
// starting with '$' is escaped by prefixing one more '$'.
//
// Encoding: values are marshalled with encoding/json; the compat types
// below marshal to a private marker object, and a second pass turns
// markers into tags and escapes user arrays that look like tags.
// Decoding: tags are revived into plain JSON that encoding/json can put
// into Go values (BigInt → number, bytes → base64 string, Set → array,
// undefined → absent/null), and numbers are kept as json.Number.

const (
	tagBigInt      = "$BigInt"
	tagUint8Array  = "$Uint8Array"
	tagArrayBuffer = "$ArrayBuffer"
	tagUndefined   = "$Undefined"
	tagSet         = "$Set"
)

// compatMarker is the key of the object the compat types marshal to; the
// encoder replaces such objects by the tagged array. It contains a NUL so
// that no realistic user object collides with it.
const compatMarker = "$rivet\x00compat"

// BigInt is a JavaScript BigInt, written as its decimal digits (optionally
// with a leading '-'). It is sent as ["$BigInt","<digits>"]. Received
// BigInts decode into any Go integer type, *big.Int, json.Number or BigInt.
type BigInt string

// MarshalJSON encodes b in RivetKit's compat form.
func (b BigInt) MarshalJSON() ([]byte, error) {
	if !isIntegerText(string(b)) {
		return nil, fmt.Errorf("rivetclient: invalid BigInt %q", string(b))
	}
	return marker(tagBigInt, string(b))
}

// UnmarshalJSON accepts a JSON integer or a string of digits.
func (b *BigInt) UnmarshalJSON(data []byte) error {
	s := string(bytes.TrimSpace(data))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
	}
	s = trimIntegralFraction(s)
	if !isIntegerText(s) {
		return fmt.Errorf("rivetclient: invalid BigInt %s", data)
	}
	*b = BigInt(s)
	return nil
}

// Uint8Array is a JavaScript Uint8Array, sent as ["$Uint8Array","<base64>"].
// Received Uint8Arrays and ArrayBuffers also decode into plain []byte.
type Uint8Array []byte

// MarshalJSON encodes a in RivetKit's compat form.
func (a Uint8Array) MarshalJSON() ([]byte, error) {
	return marker(tagUint8Array, base64.StdEncoding.EncodeToString(a))
}

// UnmarshalJSON accepts a base64 string (what a revived Uint8Array is).
func (a *Uint8Array) UnmarshalJSON(data []byte) error {
	return json.Unmarshal(data, (*[]byte)(a))
}

// ArrayBuffer is a JavaScript ArrayBuffer, sent as ["$ArrayBuffer","<base64>"].
type ArrayBuffer []byte

// MarshalJSON encodes a in RivetKit's compat form.
func (a ArrayBuffer) MarshalJSON() ([]byte, error) {
	return marker(tagArrayBuffer, base64.StdEncoding.EncodeToString(a))
}

// UnmarshalJSON accepts a base64 string (what a revived ArrayBuffer is).
func (a *ArrayBuffer) UnmarshalJSON(data []byte) error {
	return json.Unmarshal(data, (*[]byte)(a))
}

// Set is a JavaScript Set, sent as ["$Set",[…]]. Received Sets decode into
// any Go slice (or Set).
type Set []any

// MarshalJSON encodes s in RivetKit's compat form.
func (s Set) MarshalJSON() ([]byte, error) {
	items := []any(s)
	if items == nil {
		items = []any{}
	}
	return marker(tagSet, items)
}

// UnmarshalJSON accepts a JSON array.
func (s *Set) UnmarshalJSON(data []byte) error {
	var items []any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&items); err != nil {
		return err
	}
	*s = items
	return nil
}

type undefinedValue struct{}

// Undefined is JavaScript's undefined, sent as ["$Undefined",0]. Use it as
// an action argument or value when the actor distinguishes undefined from
// null. Received undefined values become absent object fields (or null in
// arrays).
var Undefined any = undefinedValue{}

// MarshalJSON encodes undefined in RivetKit's compat form.
func (undefinedValue) MarshalJSON() ([]byte, error) { return marker(tagUndefined, 0) }

func marker(tag string, payload any) ([]byte, error) {
	return json.Marshal(map[string]any{compatMarker: []any{tag, payload}})
}

// encodeCompat marshals v to RivetKit compat JSON.
func encodeCompat(v any) (json.RawMessage, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(raw, []byte(`"$`)) {
		return raw, nil // nothing tag-like: the common case
	}
	tree, err := parseTree(raw)
	if err != nil {
		return nil, err
	}
	return json.Marshal(encodeTree(tree))
}

func parseTree(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("rivetclient: trailing data after JSON value")
	}
	return tree, nil
}

func encodeTree(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 1 {
			if m, ok := v[compatMarker].([]any); ok && len(m) == 2 {
				tag, _ := m[0].(string)
				if tag == tagSet {
					items, _ := m[1].([]any)
					out := make([]any, len(items))
					for i, it := range items {
						out[i] = encodeTree(it)
					}
					return []any{tag, out}
				}
				return []any{tag, m[1]}
			}
		}
		for k, val := range v {
			v[k] = encodeTree(val)
		}
		return v
	case []any:
		for i, val := range v {
			v[i] = encodeTree(val)
		}
		if len(v) == 2 {
			if s, ok := v[0].(string); ok && strings.HasPrefix(s, "$") {
				v[0] = "$" + s
			}
		}
		return v
	}
	return v
}

// undefinedSentinel stands for a revived ["$Undefined",0] until its parent
// drops it (objects) or turns it into null (arrays).
type undefinedSentinel struct{}

// reviveJSON decodes RivetKit compat JSON into plain JSON: tags are
// revived, integral numbers written as floats ("10.0", as the Rust core
// prints JS numbers) are normalised to integers so that they decode into
// Go integer types.
func reviveJSON(raw []byte) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	if !bytes.Contains(raw, []byte(`"$`)) && !bytes.Contains(raw, []byte(".0")) {
		if !json.Valid(raw) {
			return nil, errors.New("rivetclient: invalid JSON")
		}
		return raw, nil
	}
	tree, err := parseTree(raw)
	if err != nil {
		return nil, err
	}
	out, err := reviveTree(tree)
	if err != nil {
		return nil, err
	}
	if _, ok := out.(undefinedSentinel); ok {
		out = nil
	}
	return json.Marshal(out)
}

func reviveTree(v any) (any, error) {
	switch v := v.(type) {
	case json.Number:
		return json.Number(trimIntegralFraction(string(v))), nil
	case map[string]any:
		for k, val := range v {
			r, err := reviveTree(val)
			if err != nil {
				return nil, err
			}
			if _, ok := r.(undefinedSentinel); ok {
				delete(v, k)
				continue
			}
			v[k] = r
		}
		return v, nil
	case []any:
		if len(v) == 2 {
			if tag, ok := v[0].(string); ok && strings.HasPrefix(tag, "$") {
				return reviveTag(tag, v[1])
			}
		}
		for i, val := range v {
			r, err := reviveTree(val)
			if err != nil {
				return nil, err
			}
			if _, ok := r.(undefinedSentinel); ok {
				r = nil
			}
			v[i] = r
		}
		return v, nil
	}
	return v, nil
}

func reviveTag(tag string, payload any) (any, error) {
	switch tag {
	case tagBigInt:
		s, ok := payload.(string)
		if !ok || !isIntegerText(s) {
			return nil, fmt.Errorf("rivetclient: invalid %s payload", tag)
		}
		return json.Number(s), nil
	case tagUint8Array, tagArrayBuffer:
		s, ok := payload.(string)
		if !ok {
			return nil, fmt.Errorf("rivetclient: invalid %s payload", tag)
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return nil, fmt.Errorf("rivetclient: invalid %s payload: %w", tag, err)
		}
		return s, nil
	case tagUndefined:
		return undefinedSentinel{}, nil
	case tagSet:
		items, ok := payload.([]any)
		if !ok {
			return nil, fmt.Errorf("rivetclient: invalid %s payload", tag)
		}
		for i, it := range items {
			r, err := reviveTree(it)
			if err != nil {
				return nil, err
			}
			if _, ok := r.(undefinedSentinel); ok {
				r = nil
			}
			items[i] = r
		}
		return items, nil
	}
	if strings.HasPrefix(tag, "$$") {
		r, err := reviveTree(payload)
		if err != nil {
			return nil, err
		}
		if _, ok := r.(undefinedSentinel); ok {
			r = nil
		}
		return []any{tag[1:], r}, nil
	}
	return nil, fmt.Errorf("rivetclient: unknown JSON encoding type %q", tag)
}

// decodeValue decodes revived JSON into dst, keeping numbers exact
// (json.Number for interface targets). A nil dst discards the value; empty
// raw (an absent value) decodes as null.
func decodeValue(raw json.RawMessage, dst any) error {
	if dst == nil {
		return nil
	}
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(dst)
}

// isIntegerText reports whether s is an optional '-' followed by digits.
func isIntegerText(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// trimIntegralFraction turns "10.0" / "-3.000" into "10" / "-3"; other
// texts are returned unchanged.
func trimIntegralFraction(s string) string {
	intPart, frac, ok := strings.Cut(s, ".")
	if !ok || frac == "" || strings.Trim(frac, "0") != "" || !isIntegerText(intPart) {
		return s
	}
	return intPart
}

// asciiJSON escapes non-ASCII runes of valid JSON (they can only occur
// inside strings) as \uXXXX, with surrogate pairs above U+FFFF: the engine
// drops raw UTF-8 in the x-rivet-conn-params header.
func asciiJSON(raw []byte) []byte {
	ascii := true
	for _, c := range raw {
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return raw
	}
	out := make([]byte, 0, len(raw)+16)
	for i := 0; i < len(raw); {
		c := raw[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(raw[i:])
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			out = appendU(out, 0xD800+(r>>10))
			out = appendU(out, 0xDC00+(r&0x3FF))
			continue
		}
		out = appendU(out, r)
	}
	return out
}

func appendU(out []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(out, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
}

// Wire messages of the /connect protocol, JSON encoding (rivet-protocol.md §6).

type wireMessage struct {
	Body struct {
		Tag string          `json:"tag"`
		Val json.RawMessage `json:"val"`
	} `json:"body"`
}

type initVal struct {
	ActorID      string `json:"actorId"`
	ConnectionID string `json:"connectionId"`
}

type actionResponseVal struct {
	ID     json.RawMessage `json:"id"`
	Output json.RawMessage `json:"output"`
}

type eventVal struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args"`
}

type errorVal struct {
	Group    string          `json:"group"`
	Code     string          `json:"code"`
	Message  string          `json:"message"`
	Metadata json.RawMessage `json:"metadata"`
	ActionID json.RawMessage `json:"actionId"`
}

// parseID parses an action id sent as ["$BigInt","N"] or as a plain number.
// ok is false for null or absent ids.
func parseID(raw json.RawMessage) (id uint64, ok bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return 0, false, nil
	}
	revived, err := reviveJSON(raw)
	if err != nil {
		return 0, false, err
	}
	id, err = strconv.ParseUint(string(revived), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("rivetclient: invalid action id %s", raw)
	}
	return id, true, nil
}

// encodeArgs encodes an action's argument list.
func encodeArgs(args []any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	raw, err := encodeCompat(args)
	if err != nil {
		return nil, fmt.Errorf("rivetclient: encode args: %w", err)
	}
	return raw, nil
}
