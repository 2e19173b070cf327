package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
)

// zoeName is a claim value that must reach actors byte for byte: non-ASCII (the engine drops raw
// UTF-8 in headers, so the gateway escapes it), '+' and a space (the engine form-decodes the
// subprotocol: '+' would become a space), and a percent sign.
const zoeName = "Zoë 🚀 a+b %41"

// TestParams runs the real RivetKit JS client through gateways that build connection params
// server-side, from the verified token's claims and from a params service, and checks what the
// actor receives over connect(), stateless actions and raw fetch().
func TestParams(t *testing.T) {
	up := harness.StartUpstream(t)

	for _, policy := range []string{"replace", "merge"} {
		t.Run("claims "+policy, func(t *testing.T) {
			t.Parallel()
			testClaimsParams(t, up.URL, policy)
		})
	}

	svc := startParamsService(t)
	gw := harness.StartGateway(t, baseConfig(up.URL)+`auth:
  credentials: [bearer, conn_params]
  close_on_expiry: true
  jwt:
    leeway: 0s
    issuers:
`+hsIssuerYAML()+`
params:
  source: http
  policy: replace
  http:
    url: "`+svc.URL+`/params"
    headers: {Authorization: "Bearer `+paramsServiceSecret+`"}
    timeout: 1s
    forward_claims: [name]
  retry: {max_attempts: 3, initial_backoff: 50ms, max_backoff: 100ms, budget: 2s}
`)
	t.Run("service: a fetch per connection", func(t *testing.T) {
		t.Parallel()
		testServiceParams(t, gw.URL, svc)
	})
	t.Run("service down", func(t *testing.T) {
		t.Parallel()
		testServiceDown(t, gw.URL, svc)
	})
}

// testClaimsParams: params built from the token's claims reach the actor whatever the client
// sends: nothing, or keys the server sets (spoofed). With merge, client keys the server does not
// set survive, and the consumed authToken never does.
func testClaimsParams(t *testing.T, upstream, policy string) {
	gw := harness.StartGateway(t, baseConfig(upstream)+`auth:
  credentials: [bearer, conn_params]
  jwt:
    issuers:
`+hsIssuerYAML()+`
params:
  source: claims
  policy: `+policy+`
  claims:
    token: server-tok
    userId: "{{ .Subject }}"
    name: "{{ .Claims.name }}"
    level: "{{ .Claims.level }}"
    greeting: "hi {{ .Claims.name }}"
`)
	sub := "zoe-" + policy
	token, _ := mintHS256(t, sub, time.Minute, map[string]any{"name": zoeName, "level": 3})
	server := map[string]any{"token": "server-tok", "userId": sub, "name": zoeName, "level": 3, "greeting": "hi " + zoeName}
	spoof := map[string]any{"token": "spoofed", "userId": "mallory", "name": "Mallory", "theme": "dark"}
	spoofJSON, _ := json.Marshal(spoof)
	withSpoof := server
	if policy == "merge" {
		withSpoof = map[string]any{"theme": "dark"}
		for k, v := range server {
			withSpoof[k] = v
		}
	}

	var got struct {
		HTTPNone, HTTPSpoof, ConnNone, ConnSpoof whoami
		FetchNone, FetchSpoof                    rawFetch
	}
	runScript(t, "params-client.mjs", map[string]string{
		"RIVET_ENDPOINT_URL": gw.URL, "SCENARIO": "server-params", "KEY": sub, "TOKEN": token, "SPOOF_JSON": string(spoofJSON),
	}, &got)
	got.HTTPNone.assertParams(t, "stateless action without params", mustJSON(t, server))
	got.HTTPSpoof.assertParams(t, "stateless action with spoofed params", mustJSON(t, withSpoof))
	got.ConnNone.assertParams(t, "connect() with only authToken", mustJSON(t, server))
	got.ConnSpoof.assertParams(t, "connect() with spoofed params", mustJSON(t, withSpoof))
	got.FetchNone.assertHeader(t, "raw fetch() without params", mustJSON(t, server))
	got.FetchSpoof.assertHeader(t, "raw fetch() with spoofed params", mustJSON(t, withSpoof))
}

// testServiceParams: every upstream connection gets its own fetch, including the reconnect
// after the token expired; a service failing twice is absorbed by the gateway's retries.
func testServiceParams(t *testing.T, endpoint string, svc *paramsService) {
	const sub = "sam"
	name := "Sam Ø"
	svc.failNext(sub, 2)
	tokens := startTokenServer(t, func(n int) (string, time.Time) {
		ttl := time.Minute
		if n == 1 {
			ttl = 3 * time.Second
		}
		return mintHS256(t, sub, ttl, map[string]any{"name": name})
	})
	static, _ := mintHS256(t, sub, time.Minute, map[string]any{"name": name})
	var got struct {
		First, HTTP, Reconnected whoami
		GetParamsCalls           int
		Errors                   []trackedError
		Statuses                 []trackedStatus
	}
	runScript(t, "params-client.mjs", map[string]string{
		"RIVET_ENDPOINT_URL": endpoint, "SCENARIO": "service", "KEY": sub, "TOKEN": static, "TOKEN_URL": tokens.URL,
	}, &got)
	want := func(n int) string { return fmt.Sprintf(`{"token":"svc-%d","user":%q,"name":%q}`, n, sub, name) }
	// Calls 1 and 2 failed (503) and were retried by the gateway.
	got.First.assertParams(t, "connect() while the service fails twice", want(3))
	got.HTTP.assertParams(t, "stateless action", want(4))
	got.Reconnected.assertParams(t, "connect() after the token expired", want(5))
	for _, e := range got.Errors {
		if e.Error != "ws.going_away" {
			t.Errorf("client errors = %v, want only the ws.going_away of the expiry", got.Errors)
			break
		}
	}
	if got.GetParamsCalls != 2 {
		t.Errorf("client getParams calls = %d, want 2 (connect, reconnect)", got.GetParamsCalls)
	}

	reqs := svc.requests(sub)
	wantIntents := []string{"connect", "connect", "connect", "action", "connect"}
	if len(reqs) != len(wantIntents) {
		t.Fatalf("params service calls for %s = %d, want %d", sub, len(reqs), len(wantIntents))
	}
	for i, r := range reqs {
		if r.Route.Intent != wantIntents[i] || r.Route.WebSocket != (wantIntents[i] == "connect") {
			t.Errorf("call %d: route intent %q websocket %v, want %s", i+1, r.Route.Intent, r.Route.WebSocket, wantIntents[i])
		}
		if r.Caller == nil || r.Caller.Method != "jwt" || r.Caller.Subject != sub || r.Caller.Issuer != e2eIssuer ||
			r.Caller.Claims["name"] != name || len(r.Caller.Claims) != 1 {
			t.Errorf("call %d: caller %+v, want jwt %s of %s with claims {name} only", i+1, r.Caller, sub, e2eIssuer)
		}
		if r.Route.ActorName != "counter" || strings.Join(r.Route.Key, ",") != sub || r.Route.Namespace != "default" {
			t.Errorf("call %d: route %+v, want counter [%s] in default", i+1, r.Route, sub)
		}
		if r.RequestID == "" {
			t.Errorf("call %d: no request_id", i+1)
		}
	}
	if reqs[3].Route.Name != "whoami" {
		t.Errorf("action call: route name %q, want whoami", reqs[3].Route.Name)
	}
}

// testServiceDown: with the params service down, HTTP gets 503 client.get_params_failed with
// Retry-After and the real client's connect() keeps retrying until the service is back.
func testServiceDown(t *testing.T, endpoint string, svc *paramsService) {
	const sub = "dana"
	svc.setDown(sub, true)
	token, _ := mintHS256(t, sub, time.Minute, map[string]any{"name": zoeName})

	res := do(t, "POST", endpoint+actionPath(sub, "whoami"), strings.NewReader(`{"args":[]}`), map[string]string{
		"Authorization": "Bearer " + token, "X-Rivet-Encoding": "json", "Content-Type": "application/json",
	})
	e := assertRivetErrorBody(t, res, http.StatusServiceUnavailable, "client", "get_params_failed")
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q, want a positive number of seconds", res.Header.Get("Retry-After"))
	}
	if e.Metadata["attempts"] != float64(3) {
		t.Errorf("metadata = %v, want attempts 3 (retry.max_attempts)", e.Metadata)
	}

	// The test brings the service back once the client says it has seen the failures.
	signalled := make(chan struct{})
	go func() {
		select {
		case <-svc.signal:
			svc.setDown(sub, false)
			close(signalled)
		case <-time.After(nodeTimeout):
		}
	}()
	var got struct {
		HTTPError      rivetErr
		Who            whoami
		SignalledAt    int64
		Errors         []trackedError
		Statuses       []trackedStatus
		Status         string
		GetParamsCalls int
		StoppedEarly   bool
	}
	runScript(t, "params-client.mjs", map[string]string{
		"RIVET_ENDPOINT_URL": endpoint, "SCENARIO": "service-down", "KEY": sub, "TOKEN": token, "SIGNAL_URL": svc.URL + "/signal",
	}, &got)
	if got.StoppedEarly {
		t.Fatalf("the client stopped before two get_params_failed: status %s, errors %v, statuses %v", got.Status, got.Errors, got.Statuses)
	}
	select {
	case <-signalled:
	default:
		t.Fatal("the client finished without signalling")
	}
	if got.HTTPError.Group+"."+got.HTTPError.Code != "client.get_params_failed" {
		t.Errorf("stateless action: %+v, want ActorError client.get_params_failed", got.HTTPError)
	}
	failures := 0
	for _, e := range got.Errors {
		if e.Error != "client.get_params_failed" {
			t.Errorf("client errors = %v, want only client.get_params_failed", got.Errors)
			break
		}
		if e.At <= got.SignalledAt {
			failures++
		}
	}
	if failures < 2 {
		t.Errorf("get_params_failed before the service came back: %d, want >= 2", failures)
	}
	if got.GetParamsCalls < failures+1 {
		t.Errorf("client getParams calls = %d, want one per attempt (>= %d)", got.GetParamsCalls, failures+1)
	}
	for _, s := range got.Statuses {
		if s.Status == "idle" {
			t.Errorf("statuses = %v: the client gave up", got.Statuses)
		}
	}
	n := svc.calls(sub)
	got.Who.assertParams(t, "connect() once the service is back", fmt.Sprintf(`{"token":"svc-%d","user":%q,"name":%q}`, n, sub, zoeName))
	t.Logf("service down: errors %v, statuses %v, service calls %d", got.Errors, got.Statuses, n)
}

// rawFetch is what params-client.mjs reports of a raw fetch(): the x-rivet-conn-params and
// authorization headers onRequest received.
type rawFetch struct {
	Params        *string
	Authorization *string
}

// assertHeader checks that the params header is ASCII-only JSON equal to want and that the
// bearer token did not reach the actor.
func (f rawFetch) assertHeader(t *testing.T, what, want string) {
	t.Helper()
	if f.Params == nil {
		t.Errorf("%s: onRequest got no x-rivet-conn-params, want %s", what, want)
		return
	}
	for i := 0; i < len(*f.Params); i++ {
		if (*f.Params)[i] >= 0x80 {
			t.Errorf("%s: x-rivet-conn-params %q is not ASCII", what, *f.Params)
			break
		}
	}
	if !jsonEqual(t, json.RawMessage(*f.Params), want) {
		t.Errorf("%s: x-rivet-conn-params = %s, want %s", what, *f.Params, want)
	}
	if f.Authorization != nil {
		t.Errorf("%s: onRequest got an Authorization header: the token was forwarded", what)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// paramsServiceSecret is the bearer token the gateway sends the params service.
const paramsServiceSecret = "params-service-secret"

// paramsService is a params service (source http) keeping per-subject state, so tests running in
// parallel against one gateway do not disturb each other. It answers the n-th call for a
// subject with {"token": "svc-<n>", "user": <subject>, "name": <claim name>}, or 503 while the
// subject is down or has failures queued. POST /signal sends on signal.
type paramsService struct {
	URL    string
	signal chan struct{}

	mu   sync.Mutex
	subs map[string]*serviceSubject
}

type serviceSubject struct {
	reqs     []paramsRequest
	failNext int
	down     bool
}

// paramsRequest is the body the gateway POSTs to the params service.
type paramsRequest struct {
	RequestID string `json:"request_id"`
	Caller    *struct {
		Method  string         `json:"method"`
		Subject string         `json:"subject"`
		Issuer  string         `json:"issuer"`
		Claims  map[string]any `json:"claims"`
	} `json:"caller"`
	Route struct {
		Intent    string   `json:"intent"`
		WebSocket bool     `json:"websocket"`
		ActorName string   `json:"actor_name"`
		Key       []string `json:"key"`
		Namespace string   `json:"namespace"`
		Name      string   `json:"name"`
	} `json:"route"`
}

func startParamsService(t *testing.T) *paramsService {
	t.Helper()
	s := &paramsService{signal: make(chan struct{}, 1), subs: map[string]*serviceSubject{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /signal", func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.signal <- struct{}{}:
		default:
		}
	})
	mux.HandleFunc("POST /params", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+paramsServiceSecret {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		var req paramsRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Caller == nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		sub := s.subject(req.Caller.Subject)
		sub.reqs = append(sub.reqs, req)
		n, fail := len(sub.reqs), sub.down || sub.failNext > 0
		if sub.failNext > 0 {
			sub.failNext--
		}
		s.mu.Unlock()
		if fail {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"token": fmt.Sprintf("svc-%d", n), "user": req.Caller.Subject, "name": req.Caller.Claims["name"],
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// subject returns the state of sub; s.mu must be held.
func (s *paramsService) subject(sub string) *serviceSubject {
	if s.subs[sub] == nil {
		s.subs[sub] = &serviceSubject{}
	}
	return s.subs[sub]
}

func (s *paramsService) failNext(sub string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subject(sub).failNext = n
}

func (s *paramsService) setDown(sub string, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subject(sub).down = down
}

func (s *paramsService) requests(sub string) []paramsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]paramsRequest(nil), s.subject(sub).reqs...)
}

func (s *paramsService) calls(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subject(sub).reqs)
}
