package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A hosted engine's edge, as the gateway meets it in front of Rivet Cloud: TLS with a certificate
// of a CA of its own for a name that is not the address it is reached at, so SNI and Host must
// both name the engine, and a namespace token required on every route that carries one.

// testPKI is a CA made for one test, and the files of what it issued.
type testPKI struct {
	dir    string
	CAFile string // PEM of the CA certificate
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rivet-gateway e2e test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: t.TempDir(), ca: ca, caKey: key, serial: 1}
	p.CAFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

// issue makes a server certificate for dnsNames and ips and returns it with the paths of its
// PEM certificate and key files.
func (p *testPKI) issue(t *testing.T, name string, dnsNames []string, ips []net.IP) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = p.write(t, name+".pem", "CERTIFICATE", der)
	keyFile = p.write(t, name+"-key.pem", "PRIVATE KEY", keyDER)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Pool returns a certificate pool holding only the CA.
func (p *testPKI) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// tlsFront is a hosted engine's TLS edge in front of a real engine: it serves HTTP/2 and
// HTTP/1.1 on 127.0.0.1 with a certificate for Name only, refuses TLS handshakes for any other
// server name (or none), answers 421 to a Host other than Name:port, and requires the namespace
// token where RivetKit sends one: "Authorization: Bearer" on the management API (/actors...),
// any of x-rivet-token, "@token" in the path, the rvt-token query and the rivet_token.
// subprotocol on /gateway/... routes. Every token it sees, in any carrier on any route, must be
// the namespace token (a hosted engine refuses a wrong one). What passes goes to the engine
// unchanged. It records every request and every server name offered.
type tlsFront struct {
	// Addr is where it listens: 127.0.0.1:P. URL is https://Addr.
	Addr, URL string
	// Name is the engine's host name (the certificate's only name); Host is Name:P.
	Name, Host string

	token  string
	engine *url.URL
	proxy  *httputil.ReverseProxy
	srv    *http.Server

	mu       sync.Mutex
	requests []frontRequest
	snis     []string // every server name offered in a ClientHello ("" = none)
}

// frontRequest is what the front saw of one request.
type frontRequest struct {
	Route    string              // e.g. "POST /actors", "/gateway by key /action", "/metadata"
	Proto    string              // HTTP/2.0 or HTTP/1.1
	SNI      string              // the TLS server name of its connection
	Host     string              // Host (:authority)
	Upgrade  bool                // a WebSocket handshake
	Carriers map[string][]string // token carrier -> the tokens in it
	Refused  string              // why the front refused it; "" = forwarded
}

// Token carriers, as the front names them.
const (
	carrierAuthorization = "Authorization: Bearer"
	carrierHeader        = "x-rivet-token"
	carrierPath          = "@token in path"
	carrierQuery         = "rvt-token query"
	carrierSubprotocol   = "rivet_token. subprotocol"
)

// gatewayCarriers are the carriers a /gateway/... route may use.
var gatewayCarriers = []string{carrierHeader, carrierPath, carrierQuery, carrierSubprotocol}

func startTLSFront(t *testing.T, pki *testPKI, name, engineURL, token string) *tlsFront {
	t.Helper()
	engine, err := url.Parse(engineURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cert, _, _ := pki.issue(t, name, []string{name}, nil)
	f := &tlsFront{
		Addr:   ln.Addr().String(),
		URL:    "https://" + ln.Addr().String(),
		Name:   name,
		Host:   net.JoinHostPort(name, port),
		token:  token,
		engine: engine,
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(f.engine)
			pr.SetXForwarded()
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	f.srv = &http.Server{
		Handler:           f,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes are recorded, not logged
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			// No Certificates: GetCertificate sees every ClientHello, with or without SNI.
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				f.mu.Lock()
				f.snis = append(f.snis, hello.ServerName)
				f.mu.Unlock()
				if hello.ServerName != name {
					return nil, fmt.Errorf("no certificate for server name %q", hello.ServerName)
				}
				return &cert, nil
			},
		},
	}
	go f.srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { f.srv.Close() })
	return f
}

func (f *tlsFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := frontRequest{
		Route:    frontRoute(r),
		Proto:    r.Proto,
		Host:     r.Host,
		Upgrade:  strings.EqualFold(r.Header.Get("Upgrade"), "websocket"),
		Carriers: tokenCarriers(r),
	}
	if r.TLS != nil {
		rec.SNI = r.TLS.ServerName
	}
	status, reason := f.admit(rec)
	rec.Refused = reason
	f.mu.Lock()
	f.requests = append(f.requests, rec)
	f.mu.Unlock()
	if status != 0 {
		// The engine's own shape: api.forbidden for a refused token, as engine 2.3.19 answers.
		group, code := "api", "forbidden"
		if status == http.StatusMisdirectedRequest {
			group, code = "guard", "no_route"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]any{"group": group, "code": code, "message": "Access denied: " + reason})
		return
	}
	f.proxy.ServeHTTP(w, r)
}

// admit returns 0 if the front forwards the request, else the status and reason it refuses it
// with.
func (f *tlsFront) admit(rec frontRequest) (int, string) {
	if rec.Host != f.Host {
		return http.StatusMisdirectedRequest, fmt.Sprintf("no such host %q", rec.Host)
	}
	for carrier, tokens := range rec.Carriers {
		for _, tok := range tokens {
			if tok != f.token {
				return http.StatusForbidden, fmt.Sprintf("invalid token in %s", carrier)
			}
		}
	}
	switch {
	case strings.HasSuffix(rec.Route, " /actors"):
		if len(rec.Carriers[carrierAuthorization]) == 0 {
			return http.StatusForbidden, "token not provided (Authorization: Bearer)"
		}
	case strings.HasPrefix(rec.Route, "/gateway "):
		if !slices.ContainsFunc(gatewayCarriers, func(c string) bool { return len(rec.Carriers[c]) > 0 }) {
			return http.StatusForbidden, "token not provided (gateway route)"
		}
	}
	return 0, ""
}

// frontRoute names r's route: "/health", "/metadata", "<METHOD> /actors", or "/gateway by key
// /action" (by key when the target is a query, rvt-method=...), "other <path>" otherwise.
func frontRoute(r *http.Request) string {
	p := r.URL.EscapedPath()
	switch {
	case p == "/health" || p == "/metadata":
		return p
	case p == "/actors" || strings.HasPrefix(p, "/actors/"):
		return r.Method + " /actors"
	case strings.HasPrefix(p, "/gateway/"):
		_, tail, _ := strings.Cut(strings.TrimPrefix(p, "/gateway/"), "/")
		kind, _, _ := strings.Cut(tail, "/")
		by := "id"
		if r.URL.Query().Has("rvt-method") {
			by = "key"
		}
		return "/gateway by " + by + " /" + kind
	}
	return "other " + p
}

// tokenCarriers returns every namespace token r carries, by carrier.
func tokenCarriers(r *http.Request) map[string][]string {
	c := map[string][]string{}
	for _, v := range r.Header.Values("Authorization") {
		c[carrierAuthorization] = append(c[carrierAuthorization], strings.TrimPrefix(v, "Bearer "))
	}
	if v := r.Header.Values("X-Rivet-Token"); len(v) > 0 {
		c[carrierHeader] = v
	}
	if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/gateway/"); ok {
		seg, _, _ := strings.Cut(rest, "/")
		if _, tok, ok := strings.Cut(seg, "@"); ok {
			if u, err := url.PathUnescape(tok); err == nil {
				tok = u
			}
			c[carrierPath] = []string{tok}
		}
	}
	if v := r.URL.Query()["rvt-token"]; len(v) > 0 {
		c[carrierQuery] = v
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if tok, ok := strings.CutPrefix(strings.TrimSpace(p), "rivet_token."); ok {
				c[carrierSubprotocol] = append(c[carrierSubprotocol], tok)
			}
		}
	}
	return c
}

// take returns what the front recorded since the last take, and forgets it.
func (f *tlsFront) take() (requests []frontRequest, snis []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	requests, snis = f.requests, f.snis
	f.requests, f.snis = nil, nil
	return requests, snis
}

// carrierTable summarizes requests as "route × carrier" lines for the test log, e.g.
// "/gateway by id /action  HTTP/2.0  x-rivet-token, @token in path  (3)".
func carrierTable(requests []frontRequest) string {
	counts := map[string]int{}
	var keys []string
	for _, r := range requests {
		var carriers []string
		for c := range r.Carriers {
			carriers = append(carriers, c)
		}
		slices.Sort(carriers)
		proto := r.Proto
		if r.Upgrade {
			proto += " upgrade"
		}
		k := fmt.Sprintf("%-26s %-20s %s", r.Route, proto, strings.Join(carriers, ", "))
		if r.Refused != "" {
			k += "  REFUSED: " + r.Refused
		}
		if counts[k] == 0 {
			keys = append(keys, k)
		}
		counts[k]++
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString("  " + k + "  (" + strconv.Itoa(counts[k]) + ")\n")
	}
	return b.String()
}
