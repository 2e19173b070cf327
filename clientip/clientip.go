// Package clientip decides which address a request comes from: the TCP
// peer, or, when the peer is a trusted proxy (an Ingress, a load
// balancer), the address those proxies report in X-Forwarded-For or
// Forwarded (RFC 7239), read from the right and past every trusted hop, as
// Traefik (forwardedHeaders.trustedIPs) and Envoy (xff trusted CIDRs) do.
//
// The gateway resolves it once per request, first in its chain, and puts it
// in the request context (WithAddrs, From): the access log, Echo's RealIP
// and the X-Forwarded-For the proxy sends the engine all use that one
// address.
package clientip

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// The headers a Resolver can read the client address from.
const (
	// HeaderXForwardedFor is X-Forwarded-For: "client, proxy1, proxy2",
	// each proxy appending the address it received the request from.
	HeaderXForwardedFor = "x-forwarded-for"
	// HeaderForwarded is RFC 7239's Forwarded: "for=client, for=proxy1".
	HeaderForwarded = "forwarded"
)

// Resolver finds the client address of requests. The zero value, and a
// Resolver without trusted proxies, always answers the TCP peer. Safe for
// concurrent use.
type Resolver struct {
	trusted   []netip.Prefix
	forwarded bool // read Forwarded, not X-Forwarded-For
}

// New returns a Resolver that believes header (HeaderXForwardedFor or
// HeaderForwarded, in any case) when the request's peer is in trusted.
// Only that one header is read: a client may send the other one, which
// the proxies in front pass on untouched.
func New(trusted []netip.Prefix, header string) (*Resolver, error) {
	rs := &Resolver{}
	switch strings.ToLower(header) {
	case HeaderXForwardedFor, "":
	case HeaderForwarded:
		rs.forwarded = true
	default:
		return nil, fmt.Errorf("client address header must be %s or %s, got %q", HeaderXForwardedFor, HeaderForwarded, header)
	}
	for _, p := range trusted {
		if !p.IsValid() {
			return nil, errors.New("invalid trusted prefix")
		}
		rs.trusted = append(rs.trusted, p.Masked())
	}
	return rs, nil
}

// ParsePrefix parses one trusted proxy entry: a CIDR in its canonical form
// ("10.0.0.0/8", "fd00::/8") or a single address ("10.1.2.3", "::1"). A
// CIDR with host bits set ("10.1.2.3/8") is refused rather than guessed
// at: it usually means a typo.
func ParsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (the network is %s)", s, m)
	}
	return p, nil
}

// Resolve returns r's client address and its TCP peer's. They are the
// same unless the peer is a trusted proxy; then the header's hops are
// walked from the right (the one the peer appended first): every trusted
// hop is passed, and the first one that is not is the client. Where the
// walk cannot go on (a hop that is no address: "unknown", an obfuscated
// Forwarded node, garbage; or a malformed Forwarded element) the client is
// the last hop reached, a trusted proxy: what lies further left was
// written by whoever that proxy received it from and proves nothing. When
// every hop is trusted, the leftmost is the client. An invalid peer
// (RemoteAddr is no ip:port) is returned as the zero Addr for both.
func (rs *Resolver) Resolve(r *http.Request) (client, peer netip.Addr) {
	peer = parsePeer(r.RemoteAddr)
	if rs == nil || len(rs.trusted) == 0 || !rs.trusts(peer) {
		return peer, peer
	}
	client = peer
	name := "X-Forwarded-For"
	if rs.forwarded {
		name = "Forwarded"
	}
	lines := r.Header.Values(name)
	for i := len(lines) - 1; i >= 0; i-- {
		var more bool
		if rs.forwarded {
			more = walkForwarded(lines[i], func(a netip.Addr) bool { client = a; return rs.trusts(a) })
		} else {
			more = walkXFF(lines[i], func(a netip.Addr) bool { client = a; return rs.trusts(a) })
		}
		if !more {
			break
		}
	}
	return client, peer
}

// Extract returns r's client address as text, "" when unknown: the shape
// of Echo's IPExtractor, so c.RealIP() agrees with the access log.
func (rs *Resolver) Extract(r *http.Request) string {
	if a := From(r.Context()); a.IsValid() {
		return a.String()
	}
	if a, _ := rs.Resolve(r); a.IsValid() {
		return a.String()
	}
	return ""
}

func (rs *Resolver) trusts(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range rs.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parsePeer reads net/http's RemoteAddr ("ip:port"). IPv4-mapped IPv6
// addresses (a dual-stack listener) become IPv4, zones are dropped.
func parsePeer(s string) netip.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}

// walkXFF calls hop with each address of one X-Forwarded-For line, from
// the right, while hop returns true. It returns false when the walk
// stopped: hop said so, or an entry is no address. Empty entries are
// skipped, as RFC 9110 §5.6.1 has list recipients do.
func walkXFF(line string, hop func(netip.Addr) bool) bool {
	for {
		i := strings.LastIndexByte(line, ',')
		if entry := strings.Trim(line[i+1:], " \t"); entry != "" {
			a, ok := parseHop(entry)
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

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port ("1.2.3.4:5678", "[::1]:80"), as some load balancers write them.
func parseHop(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

type addrsKey struct{}

type addrs struct{ client, peer netip.Addr }

// WithAddrs returns ctx carrying a request's client and peer addresses.
func WithAddrs(ctx context.Context, client, peer netip.Addr) context.Context {
	return context.WithValue(ctx, addrsKey{}, addrs{client, peer})
}

// From returns the client address stored by WithAddrs, or the zero Addr.
func From(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(addrsKey{}).(addrs)
	return a.client
}

// PeerFrom returns the TCP peer address stored by WithAddrs, or the zero
// Addr.
func PeerFrom(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(addrsKey{}).(addrs)
	return a.peer
}
