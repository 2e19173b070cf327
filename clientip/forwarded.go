package clientip

import (
	"net/netip"
	"strings"
)

// walkForwarded calls hop with the for= address of each element of one
// Forwarded line (RFC 7239), from the right, while hop returns true. It
// returns false when the walk stopped: hop said so, or an element is
// malformed or names no address.
//
// The line is split from the right, so what a client put on the left (an
// unterminated quoted string, say) cannot change how the elements its
// proxies appended are read.
func walkForwarded(line string, hop func(netip.Addr) bool) bool {
	for {
		i, ok := lastElement(line)
		if !ok {
			return false
		}
		if elem := strings.Trim(line[i+1:], " \t"); elem != "" { // empty list elements are skipped
			a, ok := forAddr(elem)
			if !ok || !hop(a) {
				return false
			}
		}
		if i < 0 {
			return true
		}
		line = line[:i]
	}
}

// lastElement returns the index of the comma that starts the last element
// of s (-1 when s has one element), skipping commas inside quoted strings.
// It reports false when a quoted string in the last element never opens.
func lastElement(s string) (int, bool) {
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ',':
			return i, true
		case '"':
			// The closing quote: find the opening one, the first quote
			// to the left not escaped (preceded by an even number of
			// backslashes; inside a quoted string a backslash always
			// starts a quoted-pair).
			j := i - 1
			for ; j >= 0; j-- {
				if s[j] != '"' {
					continue
				}
				n := 0
				for k := j - 1; k >= 0 && s[k] == '\\'; k-- {
					n++
				}
				if n%2 == 0 {
					break
				}
			}
			if j < 0 {
				return 0, false
			}
			i = j
		}
	}
	return -1, true
}

// forAddr returns the address of the for= parameter of one Forwarded
// element: `for=192.0.2.60;proto=http`, `for="[2001:db8::17]:4711"`.
// An element without exactly one for=, with a node that is no address
// ("unknown", "_hidden") or with broken syntax reports false.
func forAddr(elem string) (netip.Addr, bool) {
	var node string
	found := false
	for elem != "" {
		elem = strings.TrimLeft(elem, " \t")
		if elem == "" {
			break
		}
		if elem[0] == ';' {
			elem = elem[1:]
			continue
		}
		eq := strings.IndexByte(elem, '=')
		if eq <= 0 || !isToken(elem[:eq]) {
			return netip.Addr{}, false
		}
		name := elem[:eq]
		elem = elem[eq+1:]
		var val string
		if strings.HasPrefix(elem, `"`) {
			v, rest, ok := quoted(elem)
			if !ok {
				return netip.Addr{}, false
			}
			val, elem = v, rest
		} else {
			end := strings.IndexAny(elem, "; \t")
			if end < 0 {
				end = len(elem)
			}
			val, elem = elem[:end], elem[end:]
			if !isToken(val) {
				return netip.Addr{}, false
			}
		}
		elem = strings.TrimLeft(elem, " \t")
		if elem != "" && elem[0] != ';' {
			return netip.Addr{}, false
		}
		if strings.EqualFold(name, "for") {
			if found {
				return netip.Addr{}, false // RFC 7239 §4: at most once per element
			}
			node, found = val, true
		}
	}
	if !found {
		return netip.Addr{}, false
	}
	return nodeAddr(node)
}

// quoted reads the quoted-string at the start of s and returns its
// unescaped value and what follows it.
func quoted(s string) (val, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 == len(s) {
				return "", "", false
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

// nodeAddr reads a Forwarded node (RFC 7239 §6): an IPv4 address or a
// bracketed IPv6 address, each optionally followed by ":port". An IPv6
// address without brackets is accepted too, as some proxies write it.
func nodeAddr(node string) (netip.Addr, bool) {
	var host string
	if strings.HasPrefix(node, "[") {
		end := strings.IndexByte(node, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = node[1:end]
		if rest := node[end+1:]; rest != "" && (rest[0] != ':' || !validPort(rest[1:])) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if a, err := netip.ParseAddr(node); err == nil {
		if a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	host, port, ok := strings.Cut(node, ":")
	if !ok || !validPort(port) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// validPort accepts RFC 7239's node-port: a number, or an obfuscated port
// ("_" followed by ALPHA, DIGIT, ".", "_" or "-").
func validPort(p string) bool {
	if p == "" || len(p) > 64 {
		return false
	}
	if p[0] == '_' {
		for i := 1; i < len(p); i++ {
			if c := p[i]; !(isAlnum(c) || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
		return len(p) > 1
	}
	if len(p) > 5 {
		return false
	}
	for i := range len(p) {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if isAlnum(c) || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
