package authn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// Test fixtures: keys are costly to generate, so once per test binary.
type fixtureKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ec384     *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var fixtures = sync.OnceValue(func() *fixtureKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &fixtureKeys{}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	return k
})

const (
	testSecret   = "0123456789abcdef0123456789abcdef" // 32 bytes: HS256
	localIssuer  = "https://local.test/"
	rsaIssuer    = "https://rsa.test/"
	testAudience = "rivet"
)

func pemPublic(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func pemCert(t testing.TB, priv crypto.Signer) string {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// sign makes a compact JWS; kid is set when not empty.
func sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds a token with any header, payload and signature, for
// attacks the jwt library refuses to produce.
func unsigned(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + sig
}

// claimsFor returns valid claims for iss and sub.
func claimsFor(iss, sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": iss,
		"sub": sub,
		"aud": testAudience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func hsIssuer() IssuerConfig {
	return IssuerConfig{
		Name:       "local",
		Issuer:     localIssuer,
		Audiences:  []string{testAudience},
		Algorithms: []string{"HS256"},
		Secret:     testSecret,
	}
}

// hsConfig is the default config with one HS256 issuer.
func hsConfig() Config {
	cfg := DefaultConfig()
	cfg.JWT.Issuers = []IssuerConfig{hsIssuer()}
	return cfg
}

func hsToken(t testing.TB, sub string, kv ...any) string {
	return sign(t, jwt.SigningMethodHS256, []byte(testSecret), with(claimsFor(localIssuer, sub), kv...), "")
}

func hashHex(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

func newAuth(t testing.TB, cfg Config, opts ...Options) *Authenticator {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	a, err := New(cfg, o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	return a
}

// Routes used across tests.
const (
	actionAlice  = "/gateway/counter/action/increment?rvt-namespace=default&rvt-method=getOrCreate&rvt-key=alice"
	connectAlice = "/gateway/counter/connect?rvt-namespace=default&rvt-method=get&rvt-key=alice"
	actionByID   = "/gateway/tdpqkgvaig2jgfhgqrgvpg0u30cl00/action/increment"
	inspector    = "/gateway/tdpqkgvaig2jgfhgqrgvpg0u30cl00/inspector/connect?protocol_version=1"
)

// newRequest builds a request carrying its resolved rivet.Route, as the
// route and resolution middleware would; headers are name, value pairs.
// Requests to WebSocket routes (/connect, /websocket/) are built as
// upgrades, whatever method is given.
func newRequest(t testing.TB, method, target string, headers ...string) *http.Request {
	t.Helper()
	path, _, _ := strings.Cut(target, "?")
	ws := strings.HasSuffix(path, "/connect") || strings.Contains(path, "/websocket/")
	if ws {
		method = http.MethodGet
	}
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	if ws && r.Header.Get("Upgrade") == "" {
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
	}
	return withRoute(t, r)
}

func withRoute(t testing.TB, r *http.Request) *http.Request {
	t.Helper()
	rt, err := parseResolved(r)
	if err != nil {
		t.Fatalf("ParseRequest(%s %s): %v", r.Method, r.URL, err)
	}
	return r.WithContext(rivet.WithRoute(r.Context(), &rt))
}

// testActors stand in for the engine: what the resolver (package actors)
// would learn about the ids the tests use.
var testActors = map[string]rivet.Actor{
	"tdpqkgvaig2jgfhgqrgvpg0u30cl00": {ID: "tdpqkgvaig2jgfhgqrgvpg0u30cl00", Namespace: "default", Name: "counter", Key: []string{"alice"}},
	"hwzdj7sr4l7y4lxlvc506jrjwtal00": {ID: "hwzdj7sr4l7y4lxlvc506jrjwtal00", Namespace: "default", Name: "counter", Key: []string{"bob"}},
}

// parseResolved classifies r and resolves its ids from testActors, as the
// gateway's classification and resolution layers would.
func parseResolved(r *http.Request) (rivet.Route, error) {
	rt, err := rivet.ParseRequest(r)
	if err != nil {
		return rt, err
	}
	for _, id := range rt.IDs {
		a, ok := testActors[id]
		if !ok {
			return rt, fmt.Errorf("no test actor %s", id)
		}
		rt.Actors = append(rt.Actors, a)
	}
	if rt.ActorInBody {
		rt.Actors = append(rt.Actors, rivet.Actor{Namespace: rt.Namespace, Name: "counter", Key: []string{"alice"}})
	}
	rt.Resolved = true
	return rt, nil
}

// routeMiddleware classifies and resolves requests like the gateway's
// route and resolution layers.
func routeMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, err := parseResolved(r)
		if err != nil {
			rivet.WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(rivet.WithRoute(r.Context(), &rt)))
	})
}

// result is what a request produced through the middleware.
type result struct {
	status int
	body   errorBody
	raw    string
	fwd    *http.Request // what next received; nil when rejected
	id     *Identity
}

type errorBody struct {
	Group    string         `json:"group"`
	Code     string         `json:"code"`
	Message  string         `json:"message"`
	Metadata map[string]any `json:"metadata"`
}

func (r result) reason() string {
	s, _ := r.body.Metadata["reason"].(string)
	return s
}

func serve(t testing.TB, a *Authenticator, r *http.Request) result {
	t.Helper()
	var res result
	if rivet.IsUpgrade(r) {
		// A rejected upgrade is answered on the socket (ws_test.go tests
		// that); here the decision itself is what counts.
		out, err := a.serve(r)
		if err != nil {
			e := rivet.AsError(err)
			b, _ := json.Marshal(map[string]any{"group": e.Group, "code": e.Code, "message": e.Message, "metadata": e.Metadata})
			res.status, res.raw = e.Status, string(b)
			_ = json.Unmarshal(b, &res.body)
			return res
		}
		res.status, res.fwd, res.id = http.StatusOK, out, IdentityFrom(out.Context())
		return res
	}
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res.fwd = r
		res.id = IdentityFrom(r.Context())
		w.WriteHeader(http.StatusOK)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res.status = rec.Code
	res.raw = rec.Body.String()
	if rec.Code != http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("error body %q: %v", res.raw, err)
		}
	}
	return res
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// paramsHeader returns x-rivet-conn-params for v.
func paramsJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func paramsProtocol(t testing.TB, v any) string {
	return rivet.ProtocolConnParamsPrefix + url.QueryEscape(paramsJSON(t, v))
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
