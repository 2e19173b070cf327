package rivet

// Actor ids, as the engine's util-id crate (engine/packages/util-id) reads
// them: 30 base36 digits, least significant first, of a 19-byte value whose
// low byte is the id version (1) and whose high bytes are a UUID and the
// datacenter label. Letters may be either case: the engine reads "ABC" and
// "abc" as the same id, so the gateway compares only the canonical
// (lower-case) form.

const actorIDLen = 30

// CanonicalActorID returns s in the canonical form the engine prints
// (lower case) and true when the engine would parse s as a version-1 actor
// id; otherwise "" and false. s is the decoded text (no percent escapes).
func CanonicalActorID(s string) (string, bool) {
	if len(s) != actorIDLen {
		return "", false
	}
	// value = sum(digit[i] * 36^i), computed from the most significant digit
	// down into 20 little-endian bytes (36^30 < 256^20, so it always fits).
	var v [20]byte
	lower := true
	for i := actorIDLen - 1; i >= 0; i-- {
		c := s[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'z':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'Z':
			d = c - 'A' + 10
			lower = false
		default:
			return "", false
		}
		carry := uint32(d)
		for j := range v {
			x := uint32(v[j])*36 + carry
			v[j], carry = byte(x), x>>8
		}
	}
	// The engine keeps 19 bytes (version + 18); a larger value does not
	// parse, and neither does any version but 1.
	if v[19] != 0 || v[0] != 1 {
		return "", false
	}
	if lower {
		return s, true
	}
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b), true
}

// FormatActorID returns the canonical id of a 19-byte value (version byte
// first, little-endian), the inverse of CanonicalActorID: 30 base36 digits,
// least significant first. The version byte is not checked.
func FormatActorID(v [19]byte) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	out := make([]byte, actorIDLen)
	for i := range out {
		rem := 0
		for j := len(v) - 1; j >= 0; j-- {
			x := rem<<8 | int(v[j])
			v[j], rem = byte(x/36), x%36
		}
		out[i] = digits[rem]
	}
	return string(out)
}
