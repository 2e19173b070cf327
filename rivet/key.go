package rivet

import "strings"

// Actor keys are lists of strings. The engine stores and compares them in
// one serialized form (serialize_actor_key in the engine, serializeActorKey in
// rivetkit's actor/keys.ts): parts joined with "/", "\" and "/" inside a part
// escaped with "\", an empty part written "\0", the empty key written "/".
// The management API (/actors?key=, POST/PUT /actors bodies, the "key" of
// every actor it returns) speaks this form; the query gateway's rvt-key is
// instead the parts joined with "," (no escape: a part cannot hold a comma).

// SerializeKey returns key in the engine's serialized form.
func SerializeKey(key []string) string {
	if len(key) == 0 {
		return "/"
	}
	var b strings.Builder
	for i, part := range key {
		if i > 0 {
			b.WriteByte('/')
		}
		if part == "" {
			b.WriteString(`\0`)
			continue
		}
		for j := 0; j < len(part); j++ {
			if c := part[j]; c == '\\' || c == '/' {
				b.WriteByte('\\')
			}
			b.WriteByte(part[j])
		}
	}
	return b.String()
}

// ParseSerializedKey reads a key in the engine's serialized form. It accepts
// only the canonical spelling, the one SerializeKey writes: the engine
// compares serialized strings byte for byte, so "a\b" and "ab" are two
// different actors that a lenient reader would both call ["ab"]; a key
// that is not canonical cannot be authorized with certainty.
func ParseSerializedKey(s string) ([]string, bool) {
	if s == "/" {
		return []string{}, true
	}
	if s == "" {
		return nil, false
	}
	var parts []string
	var cur strings.Builder
	empty := false // the current part is the \0 marker
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) {
				return nil, false
			}
			i++
			switch n := s[i]; n {
			case '\\', '/':
				if empty {
					return nil, false
				}
				cur.WriteByte(n)
			case '0':
				// \0 only ever stands alone as a whole part.
				if empty || cur.Len() > 0 || (i+1 < len(s) && s[i+1] != '/') {
					return nil, false
				}
				empty = true
			default:
				return nil, false
			}
		case '/':
			if !empty && cur.Len() == 0 {
				return nil, false // an empty part is spelled \0
			}
			parts = append(parts, cur.String())
			cur.Reset()
			empty = false
		default:
			if empty {
				return nil, false
			}
			cur.WriteByte(c)
		}
	}
	if !empty && cur.Len() == 0 {
		return nil, false // a trailing "/" (or "/" only, handled above)
	}
	parts = append(parts, cur.String())
	return parts, true
}

// SplitQueryKey reads a decoded rvt-key value as the engine's query gateway
// does: "" is the empty key, anything else is split on ",".
func SplitQueryKey(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}
