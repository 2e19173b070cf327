package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	xproxy "golang.org/x/net/proxy"
)

// Connections to the engine, and the egress proxy they may go through.
//
// HTTP requests go through net/http's transport, which asks Options.Proxy
// (by default http.ProxyFromEnvironment: HTTPS_PROXY, HTTP_PROXY,
// NO_PROXY) which proxy, if any, to use for each request. WebSocket dials
// ask the same function the same question, for the same URL with the ws
// scheme's http counterpart, and tunnel through the proxy it names: an
// HTTP CONNECT to an http or https proxy (as gorilla/websocket and
// browsers do for ws and wss alike), or SOCKS5. The tunnel is dialled
// here, not by gorilla's Dialer.Proxy, because the relay needs the
// plaintext connection under its legConn: gorilla would run our TLS dial
// function to reach the proxy itself.

// dial opens a TCP connection to addr (the engine, or an egress proxy),
// within upstream.dial_timeout.
func (p *Proxy) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if p.opts.DialContext == nil {
		return p.netDialer.DialContext(ctx, network, addr)
	}
	if p.cfg.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.DialTimeout)
		defer cancel()
	}
	return p.opts.DialContext(ctx, network, addr)
}

// proxyFor returns the egress proxy for a connection to addr ("host:port")
// with scheme http or https, or nil to connect directly: what the HTTP
// transport would use for a request to that origin.
func (p *Proxy) proxyFor(scheme, addr string) (*url.URL, error) {
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: scheme, Host: addr}, Header: http.Header{}, Host: addr}
	u, err := p.proxy(req)
	if err != nil {
		return nil, &net.OpError{Op: "proxyconnect", Net: "tcp", Err: err}
	}
	return u, nil
}

// dialWebSocket opens the connection a WebSocket to the engine at addr
// runs on: directly or through the egress proxy proxyFor names, then TLS
// when secure (wss), with the upstream's TLS settings (SNI, CAs).
func (p *Proxy) dialWebSocket(ctx context.Context, addr string, secure bool) (net.Conn, error) {
	scheme := "http"
	if secure {
		scheme = "https"
	}
	via, err := p.proxyFor(scheme, addr)
	if err != nil {
		return nil, err
	}
	var c net.Conn
	if via == nil {
		c, err = p.dial(ctx, "tcp", addr)
	} else {
		c, err = p.dialVia(ctx, via, addr)
	}
	if err != nil || !secure {
		return c, err
	}
	tc := tls.Client(c, p.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// dialVia opens a tunnel to target through the egress proxy via. Errors
// are *net.OpError "proxyconnect" (a 502 to the client, like the HTTP
// transport's) and name the proxy by its address only, never with the
// credentials its URL may hold.
func (p *Proxy) dialVia(ctx context.Context, via *url.URL, target string) (net.Conn, error) {
	fail := func(err error) error { return &net.OpError{Op: "proxyconnect", Net: "tcp", Err: err} }
	addr := proxyAddr(via)
	switch via.Scheme {
	case "socks5", "socks5h":
		var auth *xproxy.Auth
		if via.User != nil {
			pw, _ := via.User.Password()
			auth = &xproxy.Auth{User: via.User.Username(), Password: pw}
		}
		d, err := xproxy.SOCKS5("tcp", addr, auth, dialerFunc(p.dial))
		if err != nil {
			return nil, fail(err)
		}
		c, err := d.(xproxy.ContextDialer).DialContext(ctx, "tcp", target)
		if err != nil {
			return nil, fail(err)
		}
		return c, nil
	case "http", "https":
	default:
		return nil, fail(fmt.Errorf("egress proxy scheme %q is not supported (http, https, socks5)", via.Scheme))
	}
	c, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fail(err)
	}
	if via.Scheme == "https" {
		tc := tls.Client(c, &tls.Config{MinVersion: tls.VersionTLS12, ServerName: via.Hostname(), RootCAs: p.tlsConfig.RootCAs})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fail(err)
		}
		c = tc
	}
	if err := connect(ctx, c, via, target); err != nil {
		c.Close()
		return nil, fail(err)
	}
	return c, nil
}

// connect asks the HTTP proxy on c for a tunnel to target, within ctx.
func connect(ctx context.Context, c net.Conn, via *url.URL, target string) error {
	defer unblockWhenDone(ctx, c)()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
	if u := via.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(c); err != nil {
		return ctxErr(ctx, err)
	}
	br := bufio.NewReaderSize(c, 1024)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		return ctxErr(ctx, err)
	}
	res.Body.Close()
	if err := checkConnect(via, res); err != nil {
		return err
	}
	if br.Buffered() > 0 {
		// Neither the engine nor a TLS server speaks first: whatever came
		// with the 200 is the proxy's, and would corrupt the stream.
		return fmt.Errorf("egress proxy %s sent data after its 200", via.Host)
	}
	return c.SetDeadline(time.Time{})
}

// checkConnect is the verdict on an egress proxy's answer to CONNECT, for
// WebSocket dials and HTTP requests alike: anything but 200 is an error
// naming the proxy by its address (never its credentials) and the status.
func checkConnect(via *url.URL, res *http.Response) error {
	if res.StatusCode == http.StatusOK {
		return nil
	}
	return fmt.Errorf("egress proxy %s refused the tunnel: %s", via.Host, res.Status)
}

// ctxErr prefers the context's error to the one a deadline it set caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// unblockWhenDone makes c's I/O fail at once when ctx ends; the returned
// stop ends the watch and reports false when it had already fired (c's
// deadline is then in the past).
func unblockWhenDone(ctx context.Context, c net.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { _ = c.SetDeadline(aLongTimeAgo) })
}

// aLongTimeAgo is a deadline in the past: it unblocks a connection's I/O.
var aLongTimeAgo = time.Unix(1, 0)

// proxyAddr is via's host:port, with the scheme's default port.
func proxyAddr(via *url.URL) string {
	if via.Port() != "" {
		return via.Host
	}
	port := "80"
	switch via.Scheme {
	case "https":
		port = "443"
	case "socks5", "socks5h":
		port = "1080"
	}
	return net.JoinHostPort(via.Hostname(), port)
}

// dialerFunc adapts a dial function to x/net/proxy's dialers.
type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
