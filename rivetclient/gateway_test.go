package rivetclient

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestEscaping(t *testing.T) {
	// Expected values computed with node: encodeURIComponent and
	// new URLSearchParams({k: s}).toString().
	if got, want := encodeURIComponent("a b/c?d&e=é!*'()~@"), "a%20b%2Fc%3Fd%26e%3D%C3%A9!*'()~%40"; got != want {
		t.Errorf("encodeURIComponent: got %q, want %q", got, want)
	}
	if got, want := formEscape("a b,c/d*~é-_."), "a+b%2Cc%2Fd*%7E%C3%A9-_."; got != want {
		t.Errorf("formEscape: got %q, want %q", got, want)
	}
}

func TestSerializeActorKey(t *testing.T) {
	tests := []struct {
		key  []string
		want string
	}{
		{nil, "/"},
		{[]string{}, "/"},
		{[]string{"a"}, "a"},
		{[]string{"a", "b"}, "a/b"},
		{[]string{"a/b", `c\d`}, `a\/b/c\\d`},
		{[]string{"", "x"}, `\0/x`},
	}
	for _, tt := range tests {
		if got := serializeActorKey(tt.key); got != tt.want {
			t.Errorf("serializeActorKey(%q): got %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestCombineURL(t *testing.T) {
	tests := []struct {
		base, path, want string
	}{
		{"http://h:1", "/gateway/x/connect", "http://h:1/gateway/x/connect"},
		{"http://h:1/", "/actors?namespace=default", "http://h:1/actors?namespace=default"},
		{"https://h/api/rivet/", "/gateway/x/action/a?rvt-namespace=n", "https://h/api/rivet/gateway/x/action/a?rvt-namespace=n"},
		{"http://h/base", "gateway//x", "http://h/base/gateway/x"},
		{"http://h/b%20c", "/x", "http://h/b%20c/x"},
	}
	for _, tt := range tests {
		u, _ := url.Parse(tt.base)
		if got := combineURL(u, tt.path); got != tt.want {
			t.Errorf("combineURL(%q, %q): got %q, want %q", tt.base, tt.path, got, tt.want)
		}
	}
}

func TestGatewayPath(t *testing.T) {
	c, err := New("http://127.0.0.1:6420")
	if err != nil {
		t.Fatal(err)
	}
	ep := endpoint{namespace: "default"}
	tok := endpoint{namespace: "ns 1", token: "se/cret"}
	tests := []struct {
		name string
		h    *Handle
		ep   endpoint
		path string
		want string
	}{
		// Observed on the wire from the JS client (rivet-protocol.md §9).
		{"getOrCreate connect", c.GetOrCreate("counter", []string{"k-viaproxy-bare"}, HandleOptions{}), ep, "/connect",
			"/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k-viaproxy-bare&rvt-crash-policy=sleep"},
		{"getOrCreate request with user query", c.GetOrCreate("counter", []string{"k"}, HandleOptions{}), ep, "/request/hello/world?x=1",
			"/gateway/counter/request/hello/world?x=1&rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k&rvt-crash-policy=sleep"},
		{"get with token", c.Get("counter", []string{"c2-1795321115091"}, HandleOptions{}), endpoint{namespace: "default", token: "secret-tok"}, "/action/getCount",
			"/gateway/counter/action/getCount?rvt-namespace=default&rvt-method=get&rvt-key=c2-1795321115091&rvt-token=secret-tok"},
		{"id with token", c.GetForID("counter", "18u0pfwqixkattvm3ohf6f511mcl00", HandleOptions{}), endpoint{namespace: "default", token: "secret-tok"}, "/action/increment",
			"/gateway/18u0pfwqixkattvm3ohf6f511mcl00@secret-tok/action/increment"},
		{"id escaping", c.GetForID("counter", "a/b", HandleOptions{}), tok, "/connect",
			"/gateway/a%2Fb@se%2Fcret/connect"},
		{"multi-part key, escaping, region, pool", c.GetOrCreate("my actor", []string{"a b", "c/d", "é"}, HandleOptions{CreateInRegion: "eu", PoolName: "p1"}), tok, "/connect",
			"/gateway/my%20actor/connect?rvt-namespace=ns+1&rvt-method=getOrCreate&rvt-runner=p1&rvt-key=a+b%2Cc%2Fd%2C%C3%A9&rvt-region=eu&rvt-crash-policy=sleep&rvt-token=se%2Fcret"},
		{"empty key", c.Get("counter", nil, HandleOptions{}), ep, "/connect",
			"/gateway/counter/connect?rvt-namespace=default&rvt-method=get"},
		{"input", c.GetOrCreate("counter", []string{"k"}, HandleOptions{CreateWithInput: map[string]any{"x": 1}}), ep, "/connect",
			// CBOR a1 61 78 01 = {"x": 1}, base64url without padding.
			"/gateway/counter/connect?rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=k&rvt-input=oWF4AQ&rvt-crash-policy=sleep"},
		{"path ending in ?", c.Get("counter", []string{"k"}, HandleOptions{}), ep, "/request/x?",
			"/gateway/counter/request/x?rvt-namespace=default&rvt-method=get&rvt-key=k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.h.gatewayPath(tt.ep, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}

	big := make([]byte, 5000)
	if _, err := c.GetOrCreate("counter", nil, HandleOptions{CreateWithInput: string(big)}).gatewayPath(ep, "/connect"); err == nil ||
		!strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized input: got %v, want an error", err)
	}
	if _, err := c.Get("", nil, HandleOptions{}).gatewayPath(ep, "/connect"); err == nil {
		t.Errorf("empty name: got nil error")
	}
}

func TestSplitUserPath(t *testing.T) {
	tests := []struct{ in, path, query string }{
		{"/hello/world?x=1", "hello/world", "?x=1"},
		{"raw/path?y=2&z", "raw/path", "?y=2&z"},
		{"", "", ""},
		{"/a b/é", "a%20b/%C3%A9", ""},
		{"a#frag", "a", ""},
		{"/a%2Fb", "a%2Fb", ""},
		{"/100%", "100%25", ""},
	}
	for _, tt := range tests {
		p, q := splitUserPath(tt.in)
		if p != tt.path || q != tt.query {
			t.Errorf("splitUserPath(%q): got %q %q, want %q %q", tt.in, p, q, tt.path, tt.query)
		}
	}
}

func TestNewValidation(t *testing.T) {
	bad := []struct {
		endpoint string
		opts     []Option
	}{
		{"ftp://h", nil},
		{"http://h?x=1", nil},
		{"http://h#f", nil},
		{"http://:tok@h", nil},
		{"http://ns@h", []Option{WithNamespace("other")}},
		{"http://ns:tok@h", []Option{WithToken("other")}},
		{"://", nil},
		{"http://h", []Option{WithReconnectBackoff(time.Second, time.Millisecond)}},
		{"http://h", []Option{WithNamespace("")}},
	}
	for _, tt := range bad {
		if _, err := New(tt.endpoint, tt.opts...); err == nil {
			t.Errorf("New(%q): got nil error, want one", tt.endpoint)
		}
	}
	c, err := New("https://myns:my%20tok@api.example.com/base")
	if err != nil {
		t.Fatal(err)
	}
	if c.ep.namespace != "myns" || c.ep.token != "my tok" || c.ep.base.String() != "https://api.example.com/base" {
		t.Errorf("user info: got %+v", c.ep)
	}
}
