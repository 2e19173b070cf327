package clientip

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func mustResolver(t *testing.T, header string, trusted ...string) *Resolver {
	t.Helper()
	var ps []netip.Prefix
	for _, s := range trusted {
		p, err := ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	rs, err := New(ps, header)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func request(peer string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = peer
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func TestResolveXForwardedFor(t *testing.T) {
	// The proxies of a typical deployment: a cloud load balancer
	// (203.0.113.0/24) in front of an Ingress (10.0.0.0/8).
	trusted := []string{"10.0.0.0/8", "203.0.113.0/24", "::1"}
	tests := []struct {
		name       string
		trusted    []string
		peer       string
		hdr        []string
		wantClient string
	}{
		{"no trusted proxies: the peer, headers ignored", nil, "198.51.100.7:5000",
			[]string{"X-Forwarded-For", "1.1.1.1"}, "198.51.100.7"},
		{"untrusted peer spoofing X-Forwarded-For", trusted, "198.51.100.7:5000",
			[]string{"X-Forwarded-For", "10.0.0.1, 1.1.1.1"}, "198.51.100.7"},
		{"untrusted peer spoofing Forwarded", trusted, "198.51.100.7:5000",
			[]string{"Forwarded", "for=1.1.1.1"}, "198.51.100.7"},
		{"one trusted proxy", trusted, "10.1.2.3:5000",
			[]string{"X-Forwarded-For", "198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", trusted, "10.1.2.3:5000",
			[]string{"X-Forwarded-For", "198.51.100.7, 203.0.113.9, 10.9.9.9"}, "198.51.100.7"},
		{"client spoof left of the real client is ignored", trusted, "10.1.2.3:5000",
			[]string{"X-Forwarded-For", "1.1.1.1, 10.0.0.5, 198.51.100.7, 203.0.113.9"}, "198.51.100.7"},
		{"several header lines read as one list", trusted, "10.1.2.3:5000",
			[]string{"X-Forwarded-For", "6.6.6.6, 198.51.100.7", "X-Forwarded-For", "203.0.113.9"}, "198.51.100.7"},
		{"garbage stops the walk at the last trusted hop", trusted, "10.1.2.3:5000",
			[]string{"X-Forwarded-For", "198.51.100.7, unknown, 203.0.113.9"}, "203.0.113.9"},
		{"every hop trusted: the leftmost", trusted, "10.1.2.3:5000",
			[]string{"X-Forwarded-For", "10.7.7.7, 10.8.8.8"}, "10.7.7.7"},
		{"trusted peer without the header", trusted, "10.1.2.3:5000", nil, "10.1.2.3"},
		{"empty entries skipped", trusted, "10.1.2.3:5000",
			[]string{"X-Forwarded-For", "198.51.100.7, ,10.9.9.9,"}, "198.51.100.7"},
		{"entries with ports", trusted, "10.1.2.3:5000",
			[]string{"X-Forwarded-For", "[2001:db8::7]:443, 203.0.113.9:80"}, "2001:db8::7"},
		{"IPv4-mapped peer and hop", trusted, "[::ffff:10.1.2.3]:5000",
			[]string{"X-Forwarded-For", "::ffff:198.51.100.7"}, "198.51.100.7"},
		{"IPv6 loopback proxy", trusted, "[::1]:5000",
			[]string{"X-Forwarded-For", "2001:db8::7"}, "2001:db8::7"},
		{"Forwarded is not read in X-Forwarded-For mode", trusted, "10.1.2.3:5000",
			[]string{"Forwarded", "for=6.6.6.6", "X-Forwarded-For", "198.51.100.7"}, "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustResolver(t, HeaderXForwardedFor, tt.trusted...)
			r := request(tt.peer, tt.hdr...)
			client, peer := rs.Resolve(r)
			if got := client.String(); got != tt.wantClient {
				t.Errorf("client: got %s, want %s", got, tt.wantClient)
			}
			if want := parsePeer(tt.peer); peer != want {
				t.Errorf("peer: got %s, want %s", peer, want)
			}
		})
	}
}

func TestResolveForwarded(t *testing.T) {
	trusted := []string{"10.0.0.0/8", "2001:db8:ffff::/48"}
	tests := []struct {
		name       string
		hdr        []string
		wantClient string
	}{
		{"one element", []string{"Forwarded", "for=198.51.100.7;proto=https;by=10.0.0.1"}, "198.51.100.7"},
		{"chain", []string{"Forwarded", `for=198.51.100.7, for="[2001:db8:ffff::1]:8443", for=10.2.2.2`}, "198.51.100.7"},
		{"quoted IPv6 with port", []string{"Forwarded", `for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{"quoted IPv4 with port", []string{"Forwarded", `For="198.51.100.7:80"`}, "198.51.100.7"},
		{"client's unterminated quote cannot swallow the proxy's element",
			[]string{"Forwarded", `for="6.6.6.6, for=198.51.100.7`}, "198.51.100.7"},
		{"client's quoted comma stays in its element",
			[]string{"Forwarded", `for=10.3.3.3;x="a, for=6.6.6.6", for=10.4.4.4`}, "10.3.3.3"},
		{"escaped quote inside a value", []string{"Forwarded", `for=198.51.100.7;x="a\"b", for=10.4.4.4`}, "198.51.100.7"},
		{"obfuscated node stops at the trusted hop", []string{"Forwarded", "for=198.51.100.7, for=_hidden, for=10.4.4.4"}, "10.4.4.4"},
		{"unknown stops at the trusted hop", []string{"Forwarded", "for=unknown, for=10.4.4.4"}, "10.4.4.4"},
		{"element without for stops", []string{"Forwarded", "for=198.51.100.7, proto=https"}, "10.1.2.3"},
		{"two for in one element stops", []string{"Forwarded", "for=6.6.6.6;for=10.4.4.4"}, "10.1.2.3"},
		{"lines from the right", []string{"Forwarded", "for=6.6.6.6", "Forwarded", "for=198.51.100.7"}, "198.51.100.7"},
		{"X-Forwarded-For is not read in Forwarded mode", []string{"X-Forwarded-For", "6.6.6.6"}, "10.1.2.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := mustResolver(t, "Forwarded", trusted...)
			client, _ := rs.Resolve(request("10.1.2.3:5000", tt.hdr...))
			if got := client.String(); got != tt.wantClient {
				t.Errorf("client: got %s, want %s", got, tt.wantClient)
			}
		})
	}
}

func TestResolveBadPeer(t *testing.T) {
	rs := mustResolver(t, HeaderXForwardedFor, "0.0.0.0/0")
	client, peer := rs.Resolve(request("pipe", "X-Forwarded-For", "1.1.1.1"))
	if client.IsValid() || peer.IsValid() {
		t.Errorf("got client %v peer %v, want both invalid for a peer that is no address", client, peer)
	}
	var nilRS *Resolver
	if c, _ := nilRS.Resolve(request("192.0.2.1:1", "X-Forwarded-For", "1.1.1.1")); c.String() != "192.0.2.1" {
		t.Errorf("nil resolver: got %s, want the peer", c)
	}
}

func TestParsePrefix(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "10.1.2.3", want: "10.1.2.3/32"},
		{in: "::1", want: "::1/128"},
		{in: "fd00::/8", want: "fd00::/8"},
		{in: "::ffff:10.1.2.3", want: "10.1.2.3/32"},
		{in: "10.1.2.3/8", err: "host bits set (the network is 10.0.0.0/8)"},
		{in: "10.0.0.0/33", err: "is not a CIDR"},
		{in: "example.com", err: "neither a CIDR nor an IP address"},
		{in: "", err: "neither a CIDR nor an IP address"},
		{in: "fe80::1%eth0", err: "neither a CIDR nor an IP address"},
	} {
		p, err := ParsePrefix(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ParsePrefix(%q): got %v, %v, want error %q", tt.in, p, err, tt.err)
		case tt.err == "" && (err != nil || p.String() != tt.want):
			t.Errorf("ParsePrefix(%q): got %v, %v, want %s", tt.in, p, err, tt.want)
		}
	}
}

func TestNewHeader(t *testing.T) {
	for _, h := range []string{"", "x-forwarded-for", "X-Forwarded-For", "forwarded", "Forwarded"} {
		if _, err := New(nil, h); err != nil {
			t.Errorf("New(%q): %v", h, err)
		}
	}
	if _, err := New(nil, "x-real-ip"); err == nil {
		t.Error("New(x-real-ip): got no error")
	}
}

func TestContext(t *testing.T) {
	r := request("10.1.2.3:5000")
	if From(r.Context()).IsValid() || PeerFrom(r.Context()).IsValid() {
		t.Fatal("addresses in an empty context")
	}
	c, p := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("10.1.2.3")
	ctx := WithAddrs(r.Context(), c, p)
	if From(ctx) != c || PeerFrom(ctx) != p {
		t.Errorf("got %s %s, want %s %s", From(ctx), PeerFrom(ctx), c, p)
	}
	rs := mustResolver(t, "")
	if got := rs.Extract(r.WithContext(ctx)); got != "198.51.100.7" {
		t.Errorf("Extract: got %q, want the stored client address", got)
	}
	if got := rs.Extract(r); got != "10.1.2.3" {
		t.Errorf("Extract without context: got %q, want the peer", got)
	}
}

// FuzzForwarded: whatever a client puts in front of a proxy's element,
// that element is read as the proxy wrote it, and nothing panics.
func FuzzForwarded(f *testing.F) {
	for _, s := range []string{
		`for=1.1.1.1`, `for="`, `for="[::1]:80"`, `x="a\"b", for=6.6.6.6`, `for=_x;proto=http`,
		`"`, `\"`, `for="\`, `;;,,`, `for=[::1]`, `for="[::1"`, `FOR=1.2.3.4;by="x,y"`,
	} {
		f.Add(s)
	}
	rs := &Resolver{trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, forwarded: true}
	f.Fuzz(func(t *testing.T, prefix string) {
		walkForwarded(prefix, func(netip.Addr) bool { return true })
		for _, tail := range []string{", for=198.51.100.7", `, for="198.51.100.7:443";proto=https`} {
			r := request("10.1.2.3:5000", "Forwarded", prefix+tail)
			if got, _ := rs.Resolve(r); got.String() != "198.51.100.7" {
				t.Errorf("Forwarded %q: got client %s, want 198.51.100.7", prefix+tail, got)
			}
		}
	})
}
