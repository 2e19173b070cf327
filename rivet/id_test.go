package rivet

import (
	"slices"
	"strings"
	"testing"
)

func TestCanonicalActorID(t *testing.T) {
	const bob = "hwzdj7sr4l7y4lxlvc506jrjwtal00" // an id the engine 2.3.19 issued
	tests := []struct {
		in, want string
		ok       bool
	}{
		{bob, bob, true},
		{strings.ToUpper(bob), bob, true},
		{"HwZdJ7sr4l7y4lxlvc506jrjwtal00", bob, true},
		{"1" + strings.Repeat("0", 29), "1" + strings.Repeat("0", 29), true}, // version 1, label 0
		{bob[:29], "", false},
		{bob + "0", "", false},
		{"notanid", "", false},
		{"0" + bob[1:], "", false},           // version byte 0
		{strings.Repeat("z", 30), "", false}, // over 19 bytes
		{bob[:29] + ".", "", false},
		{bob[:29] + "é"[:1], "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := CanonicalActorID(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CanonicalActorID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSerializedKeys(t *testing.T) {
	tests := []struct {
		key []string
		s   string
	}{
		{[]string{}, "/"},
		{[]string{"bob"}, "bob"},
		{[]string{"a", "b"}, "a/b"},
		{[]string{"a/b", "", "c/d"}, `a\/b/\0/c\/d`}, // the engine's own test case
		{[]string{`a\b`}, `a\\b`},
		{[]string{""}, `\0`},
		{[]string{"", ""}, `\0/\0`},
		{[]string{"p,q"}, "p,q"},
	}
	for _, tt := range tests {
		if got := SerializeKey(tt.key); got != tt.s {
			t.Errorf("SerializeKey(%q) = %q, want %q", tt.key, got, tt.s)
		}
		got, ok := ParseSerializedKey(tt.s)
		if !ok || !slices.Equal(got, tt.key) {
			t.Errorf("ParseSerializedKey(%q) = %q, %v; want %q, true", tt.s, got, ok, tt.key)
		}
	}
	// Spellings the engine stores as other actors than their lenient reading.
	for _, s := range []string{"", `a\b`, `ab\`, "a//b", "a/", `\0x`, `x\0`, `\0\0`, `\00`, `\0\/`} {
		if got, ok := ParseSerializedKey(s); ok {
			t.Errorf("ParseSerializedKey(%q) = %q, true; want refused (not canonical)", s, got)
		}
	}
}

func FuzzSerializedKey(f *testing.F) {
	for _, s := range []string{"/", "bob", `a\/b/\0/c\/d`, `a\b`, "a//b", `\0`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, ok := ParseSerializedKey(s)
		if !ok {
			return
		}
		// Only the canonical spelling is accepted: it round-trips exactly.
		if back := SerializeKey(key); back != s {
			t.Fatalf("ParseSerializedKey(%q) = %q, which serializes to %q", s, key, back)
		}
	})
}

// FuzzActorID: every 18-byte body with version 1 formats to an id that
// parses back to itself, and every id that parses formats back the same.
func FuzzActorID(f *testing.F) {
	f.Add([]byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), "hwzdj7sr4l7y4lxlvc506jrjwtal00")
	f.Fuzz(func(t *testing.T, body []byte, s string) {
		var v [19]byte
		v[0] = 1
		copy(v[1:], body)
		id := FormatActorID(v)
		if got, ok := CanonicalActorID(id); !ok || got != id {
			t.Fatalf("FormatActorID(%x) = %q, which CanonicalActorID reads as %q, %v", v, id, got, ok)
		}
		if c, ok := CanonicalActorID(s); ok {
			// Decode c back to bytes through FormatActorID's inverse: the
			// digits of c, most significant last.
			var w [19]byte
			for i := len(c) - 1; i >= 0; i-- {
				d := int(strings.IndexByte("0123456789abcdefghijklmnopqrstuvwxyz", c[i]))
				carry := d
				for j := range w {
					x := int(w[j])*36 + carry
					w[j], carry = byte(x), x>>8
				}
			}
			if back := FormatActorID(w); back != c {
				t.Fatalf("%q: bytes %x format as %q", c, w, back)
			}
		}
	})
}
