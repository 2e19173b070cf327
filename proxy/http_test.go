package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rivet-gateway/rivet-gateway/rivet"
)

// do sends a request through front and returns the response with its body read.
func do(t *testing.T, c *http.Client, method, u string, body io.Reader, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range hdr {
		req.Header[k] = vv
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return res, b
}

func TestHTTPForwarding(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set(rivet.HeaderRayID, "ray-123")
		h.Set(rivet.HeaderError, "actor.not_found")
		h.Set("X-Rivet-Actor", "actor-1")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"group":"actor","code":"not_found","message":"gone"}`)
	})
	_, front := startProxy(t, testConfig(up.URL+"/base/"), Options{})
	client := testClient(t)

	tests := []struct {
		method, path, body string
	}{
		{"POST", actorPath + "/request/a%40b/c%2Bd?z=1&a=2&z=0&empty=&flag", "payload"},
		{"POST", "/gateway/counter%40x/request/a%40b/c%40d?z=1&a=2&z=0&empty=&flag&rvt-namespace=default&rvt-method=get", "payload"},
		{"POST", "/gateway/counter/action/increment%20by?x=%2B1&rvt-namespace=default&rvt-method=getOrCreate&rvt-runner=default&rvt-key=a%2Cb,c&rvt-crash-policy=sleep", `{"args":[1]}`},
		{"GET", "/metadata?namespace=default", ""},
		{"PUT", "/actors?namespace=ns", `{"name":"counter","key":"k"}`},
		{"DELETE", "/actors/" + actorID + "?namespace=ns", ""},
		{"GET", "/health", ""},
		{"PATCH", actorPath + "/request/%E2%82%AC/~user?q=%E2%82%AC", "x"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			res, got := do(t, client, tc.method, front.URL+tc.path, body, nil)
			seen := up.next(t)
			if want := "/base" + tc.path; seen.URI != want {
				t.Errorf("upstream URI: got %q, want %q", seen.URI, want)
			}
			if seen.Method != tc.method || string(seen.Body) != tc.body {
				t.Errorf("upstream request: got %s %q, want %s %q", seen.Method, seen.Body, tc.method, tc.body)
			}
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("status: got %d, want 404", res.StatusCode)
			}
			if want := `{"group":"actor","code":"not_found","message":"gone"}`; string(got) != want {
				t.Errorf("body: got %q, want %q", got, want)
			}
			for k, want := range map[string]string{rivet.HeaderRayID: "ray-123", rivet.HeaderError: "actor.not_found", "X-Rivet-Actor": "actor-1"} {
				if v := res.Header.Get(k); v != want {
					t.Errorf("response %s: got %q, want %q", k, v, want)
				}
			}
		})
	}
}

func TestHTTPForwardedHeaders(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "*")
		w.Header().Set("Vary", "Origin")
		w.WriteHeader(http.StatusNoContent)
	})
	upHost := strings.TrimPrefix(up.URL, "http://")
	spoofed := http.Header{
		"X-Forwarded-For":   {"6.6.6.6"},
		"X-Forwarded-Host":  {"evil.example"},
		"X-Forwarded-Proto": {"https"},
		"Forwarded":         {"for=6.6.6.6;proto=https"},
		"X-Custom":          {"kept"},
		"Traceparent":       {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
	for _, tc := range []struct {
		name, host, wantHost, client, wantXFF string
	}{
		{"default host", "", upHost, "", "127.0.0.1"},
		{"host override", "engine.internal", "engine.internal", "", "127.0.0.1"},
		// The gateway resolved the client through trusted proxies: that one
		// address goes on, not the list the request came with.
		{"client resolved through trusted proxies", "", upHost, "2001:db8::7", "2001:db8::7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(up.URL)
			cfg.Host = tc.host
			front := startProxyWithClient(t, cfg, tc.client)
			frontHost := strings.TrimPrefix(front.URL, "http://")
			res, _ := do(t, testClient(t), "GET", front.URL+actorPath+"/request/x", nil, spoofed)
			seen := up.next(t)
			if seen.Host != tc.wantHost {
				t.Errorf("upstream Host: got %q, want %q", seen.Host, tc.wantHost)
			}
			for k, want := range map[string]string{
				"X-Forwarded-For":   tc.wantXFF,
				"X-Forwarded-Host":  frontHost,
				"X-Forwarded-Proto": "http",
				"Forwarded":         "",
				"X-Custom":          "kept",
				"Traceparent":       spoofed.Get("Traceparent"),
			} {
				if got := strings.Join(seen.Header.Values(k), ","); got != want {
					t.Errorf("upstream %s: got %q, want %q", k, got, want)
				}
			}
			for k := range res.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("response: upstream CORS header %s passed through", k)
				}
			}
			if got := res.Header.Get("Vary"); got != "Origin" {
				t.Errorf("response Vary: got %q, want %q", got, "Origin")
			}
		})
	}
}

func TestHTTPCustomStripCORS(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Max-Age", "86400")
	})
	_, front := startProxy(t, testConfig(up.URL), Options{StripCORS: func(h http.Header) { h.Del("Access-Control-Allow-Origin") }})
	res, _ := do(t, testClient(t), "GET", front.URL+"/health", nil, nil)
	if res.Header.Get("Access-Control-Allow-Origin") != "" || res.Header.Get("Access-Control-Max-Age") != "86400" {
		t.Errorf("response CORS headers: got %v, want only Access-Control-Max-Age", res.Header)
	}
}

// gwToken is the gateway's namespace token in the tests: characters a
// URL would escape, which the header and subprotocol carry as they are.
const gwToken = "gw/tok+1"

// tokenCase is a request carrying client tokens and what the engine must see.
type tokenCase struct {
	name string
	// method is the HTTP method (HTTP only; "" means POST).
	method string
	path   string
	hdr    http.Header
	// protocols offered (WebSocket only).
	protocols []string
	// What the upstream must see when the gateway owns the token.
	wantURI       string
	wantHeader    map[string]string // "" means absent
	wantProtocols []string
}

func TestHTTPTokenOwnership(t *testing.T) {
	checkGoroutines(t)
	clientHdr := func() http.Header {
		return http.Header{rivet.HeaderToken: {"client-tok"}, "Authorization": {"Bearer client-tok"}}
	}
	cases := []tokenCase{
		{
			name: "id target", path: actorPath + "@client-tok/action/inc", hdr: clientHdr(),
			wantURI:    actorPath + "/action/inc",
			wantHeader: map[string]string{rivet.HeaderToken: gwToken, "Authorization": "Bearer client-tok"},
		},
		{
			name: "id target without a token", path: actorPath + "/request/p?u=1", hdr: http.Header{rivet.HeaderToken: {"client-tok"}},
			wantURI:    actorPath + "/request/p?u=1",
			wantHeader: map[string]string{rivet.HeaderToken: gwToken},
		},
		{
			name: "query target", path: "/gateway/counter/action/inc?x=1&rvt-namespace=default&rvt-method=get&rvt-key=k&rvt-token=client-tok", hdr: clientHdr(),
			wantURI:    "/gateway/counter/action/inc?x=1&rvt-namespace=default&rvt-method=get&rvt-key=k",
			wantHeader: map[string]string{rivet.HeaderToken: gwToken, "Authorization": "Bearer client-tok"},
		},
		{
			name: "query target with rvt-token first", path: "/gateway/counter/request/?rvt-token=a&rvt-namespace=default&rvt-method=getOrCreate",
			wantURI:    "/gateway/counter/request/?rvt-namespace=default&rvt-method=getOrCreate",
			wantHeader: map[string]string{rivet.HeaderToken: gwToken},
		},
		{
			name: "inspector", method: "GET", path: actorPath + "@client-tok/inspector/state", hdr: clientHdr(),
			wantURI:    actorPath + "/inspector/state",
			wantHeader: map[string]string{rivet.HeaderToken: gwToken, "Authorization": "Bearer client-tok"},
		},
		{
			name: "inspector through request", path: actorPath + "@client-tok/request/inspector/thing?q", hdr: clientHdr(),
			wantURI:    actorPath + "/request/inspector/thing?q",
			wantHeader: map[string]string{rivet.HeaderToken: gwToken},
		},
		{
			name: "actors", path: "/actors?namespace=default", hdr: clientHdr(),
			wantURI:    "/actors?namespace=default",
			wantHeader: map[string]string{rivet.HeaderToken: "", "Authorization": "Bearer " + gwToken},
		},
		{
			name: "lookup", method: "GET", path: "/actors?namespace=default&name=counter&key=k", hdr: clientHdr(),
			wantURI:    "/actors?namespace=default&name=counter&key=k",
			wantHeader: map[string]string{rivet.HeaderToken: "", "Authorization": "Bearer " + gwToken},
		},
		{
			name: "actor by id", method: "DELETE", path: "/actors/" + actorID + "?namespace=default", hdr: clientHdr(),
			wantURI:    "/actors/" + actorID + "?namespace=default",
			wantHeader: map[string]string{rivet.HeaderToken: "", "Authorization": "Bearer " + gwToken},
		},
		{
			name: "actor kv", method: "GET", path: "/actors/" + actorID + "/kv/keys/k?namespace=default", hdr: clientHdr(),
			wantURI:    "/actors/" + actorID + "/kv/keys/k?namespace=default",
			wantHeader: map[string]string{rivet.HeaderToken: "", "Authorization": "Bearer " + gwToken},
		},
		{
			name: "metadata", method: "GET", path: "/metadata?namespace=default", hdr: clientHdr(),
			wantURI:    "/metadata?namespace=default",
			wantHeader: map[string]string{rivet.HeaderToken: "", "Authorization": "Bearer " + gwToken},
		},
		{
			name: "health", method: "GET", path: "/health", hdr: clientHdr(),
			wantURI:    "/health",
			wantHeader: map[string]string{rivet.HeaderToken: "", "Authorization": "Bearer client-tok"},
		},
	}
	// A JSON object: /metadata answers must be one.
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{}`) })
	for _, owned := range []bool{true, false} {
		cfg := testConfig(up.URL)
		if owned {
			cfg.Token = gwToken
		}
		_, front := startProxy(t, cfg, Options{})
		client := testClient(t)
		for _, tc := range cases {
			t.Run(tc.name+" owned="+strconv.FormatBool(owned), func(t *testing.T) {
				method := tc.method
				if method == "" {
					method = "POST"
				}
				res, body := do(t, client, method, front.URL+tc.path, nil, tc.hdr)
				if res.StatusCode != http.StatusOK {
					t.Fatalf("status: got %d %s, want 200", res.StatusCode, body)
				}
				checkTokenCase(t, up.next(t), tc, owned)
			})
		}
	}
}

// checkTokenCase compares what the upstream saw with tc: rewritten when the
// gateway owns the token, exactly the client's otherwise.
func checkTokenCase(t *testing.T, seen seenRequest, tc tokenCase, owned bool) {
	t.Helper()
	wantURI, wantHeader, wantProtocols := tc.wantURI, tc.wantHeader, tc.wantProtocols
	if !owned {
		wantURI, wantProtocols = tc.path, tc.protocols
		wantHeader = map[string]string{}
		for k := range tc.wantHeader {
			wantHeader[k] = tc.hdr.Get(k)
		}
	}
	if seen.URI != wantURI {
		t.Errorf("upstream URI: got %q, want %q", seen.URI, wantURI)
	}
	for k, want := range wantHeader {
		if got := strings.Join(seen.Header.Values(k), ","); got != want {
			t.Errorf("upstream %s: got %q, want %q", k, got, want)
		}
	}
	if got := rivet.Subprotocols(seen.Header); !slices.Equal(got, wantProtocols) {
		t.Errorf("upstream subprotocols: got %q, want %q", got, wantProtocols)
	}
}

func TestMetadataRewrite(t *testing.T) {
	checkGoroutines(t)
	const full = `{"runtime":"engine","version":"2.3.19","clientEndpoint":"https://direct.example","clientNamespace":"ns","clientToken":"secret","nested":{"clientToken":"kept"},"list":[1,2]}`
	const stripped = `{"list":[1,2],"nested":{"clientToken":"kept"},"runtime":"engine","version":"2.3.19"}`
	tests := []struct {
		name        string
		contentType string
		status      int
		body        string
		chunked     bool
		// want is the body the client gets with status; "" means the
		// answer is refused with 502 guard.service_unavailable.
		want string
	}{
		{"fields removed", "application/json", 200, full, false, stripped},
		{"chunked upstream", "application/json; charset=utf-8", 200, full, true, stripped},
		{"nothing to remove", "application/json", 200, `{"runtime":"engine", "version":"2.3.19"}`, false, `{"runtime":"engine", "version":"2.3.19"}`},
		{"JSON object of another content type", "text/plain", 200, full, false, stripped},
		{"error status", "application/json", 500, `{"clientToken":"x","group":"core","code":"internal_error","message":"m"}`, false,
			`{"code":"internal_error","group":"core","message":"m"}`},
		{"not JSON", "text/plain", 200, `clientToken=secret`, false, ""},
		{"JSON that is not an object", "application/json", 200, `["clientToken"]`, false, ""},
		{"JSON null", "application/json", 200, `null`, false, ""},
		{"truncated JSON", "application/json", 200, `{"clientEndpoint":"https://direct.example"`, true, ""},
		{"error status that is not JSON", "text/html", 503, `<h1>clientEndpoint</h1>`, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				if !tc.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(len(tc.body)))
				}
				w.WriteHeader(tc.status)
				half := len(tc.body) / 2
				_, _ = io.WriteString(w, tc.body[:half])
				if tc.chunked {
					w.(http.Flusher).Flush()
				}
				_, _ = io.WriteString(w, tc.body[half:])
			})
			_, front := startProxy(t, testConfig(up.URL), Options{})
			hdr := http.Header{"Accept-Encoding": {"gzip, deflate"}}
			res, body := do(t, testClient(t), "GET", front.URL+"/metadata?namespace=default", nil, hdr)
			if seen := up.next(t); seen.Header.Get("Accept-Encoding") != "" {
				t.Errorf("upstream Accept-Encoding: got %q, want none", seen.Header.Get("Accept-Encoding"))
			}
			if tc.want == "" {
				checkErrorResponse(t, res, body, http.StatusBadGateway, "guard", "service_unavailable")
				if strings.Contains(string(body), "client") {
					t.Errorf("body: got %s, want nothing of the engine's answer", body)
				}
				return
			}
			if res.StatusCode != tc.status || string(body) != tc.want {
				t.Errorf("response: got %d %s, want %d %s", res.StatusCode, body, tc.status, tc.want)
			}
			if res.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length: got %d, want %d", res.ContentLength, len(body))
			}
		})
	}
}

// TestMetadataWithoutBody: HEAD and 304 answers to /metadata carry no body,
// so there is nothing to strip and nothing to refuse.
func TestMetadataWithoutBody(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"m1"`)
		if r.Header.Get("If-None-Match") == `"m1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = io.WriteString(w, `{"runtime":"engine","clientToken":"secret"}`)
	})
	_, front := startProxy(t, testConfig(up.URL), Options{})
	for _, tc := range []struct {
		method string
		hdr    http.Header
		status int
	}{
		{"HEAD", nil, http.StatusOK},
		{"GET", http.Header{"If-None-Match": {`"m1"`}}, http.StatusNotModified},
	} {
		res, body := do(t, testClient(t), tc.method, front.URL+"/metadata", nil, tc.hdr)
		up.next(t)
		if res.StatusCode != tc.status || len(body) != 0 {
			t.Errorf("%s %v: got %d %q, want %d without a body", tc.method, tc.hdr, res.StatusCode, body, tc.status)
		}
	}
}

// checkErrorResponse checks a gateway error: status, JSON content type and
// the RivetKit error shape.
func checkErrorResponse(t *testing.T, res *http.Response, body []byte, status int, group, code string) {
	t.Helper()
	if res.StatusCode != status {
		t.Errorf("status: got %d, want %d (body %s)", res.StatusCode, status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var e struct{ Group, Code, Message string }
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if e.Group != group || e.Code != code || e.Message == "" {
		t.Errorf("error: got %s.%s %q, want %s.%s with a message", e.Group, e.Code, e.Message, group, code)
	}
	if got := res.Header.Get(rivet.HeaderError); got != group+"."+code {
		t.Errorf("%s: got %q, want %q", rivet.HeaderError, got, group+"."+code)
	}
}

func TestHTTPUpstreamDown(t *testing.T) {
	checkGoroutines(t)
	_, front := startProxy(t, testConfig("http://"+closedAddr(t)), Options{})
	res, body := do(t, testClient(t), "POST", front.URL+actorPath+"/action/x", strings.NewReader("{}"), nil)
	checkErrorResponse(t, res, body, http.StatusBadGateway, "guard", "service_unavailable")
}

func TestHTTPUpstreamTimeout(t *testing.T) {
	checkGoroutines(t)
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	cfg := testConfig(up.URL)
	cfg.ResponseHeaderTimeout = 100 * time.Millisecond
	_, front := startProxy(t, cfg, Options{})
	start := time.Now()
	res, body := do(t, testClient(t), "GET", front.URL+actorPath+"/request/slow", nil, nil)
	checkErrorResponse(t, res, body, http.StatusGatewayTimeout, "guard", "gateway_response_start_timeout")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("answered after %v, want about ResponseHeaderTimeout", d)
	}
}

func TestHTTPBodyTooLarge(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, nil)
	cfg := testConfig(up.URL)
	cfg.MaxRequestBodyBytes = 1024
	_, front := startProxy(t, cfg, Options{})
	client := testClient(t)

	// At the limit: forwarded.
	res, _ := do(t, client, "POST", front.URL+actorPath+"/action/x", strings.NewReader(strings.Repeat("a", 1024)), nil)
	if res.StatusCode != http.StatusOK || len(up.next(t).Body) != 1024 {
		t.Fatalf("body at the limit: got status %d, want 200 and the body upstream", res.StatusCode)
	}
	// Declared too large: refused before the upstream is asked.
	res, body := do(t, client, "POST", front.URL+actorPath+"/action/x", strings.NewReader(strings.Repeat("a", 1025)), nil)
	checkErrorResponse(t, res, body, http.StatusRequestEntityTooLarge, "gateway", "request_too_large")
	// Chunked, found too large while streaming.
	res, body = do(t, client, "POST", front.URL+actorPath+"/action/x", io.MultiReader(strings.NewReader(strings.Repeat("a", 4096))), nil)
	checkErrorResponse(t, res, body, http.StatusRequestEntityTooLarge, "gateway", "request_too_large")
	select {
	case r := <-up.reqs:
		if len(r.Body) > 1024 {
			t.Errorf("upstream got %d body bytes, want at most 1024", len(r.Body))
		}
	default:
	}
}

// TestHTTPInvalidRoute checks requests the route parser refuses are answered
// by the gateway and never reach the engine (nor the client's tokens).
func TestHTTPInvalidRoute(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, nil)
	_, front := startProxy(t, testConfig(up.URL), Options{})
	client := testClient(t)
	tests := []struct {
		name, method, path string
		status             int
		group, code        string
	}{
		{"query target without rvt-namespace", "POST", "/gateway/counter/action/x?rvt-method=get",
			http.StatusBadRequest, "guard", "query_invalid_params"},
		{"escaped slash", "POST", "/gateway/counter%40x/request/a%2Fb/c%40d?rvt-namespace=default&rvt-method=get",
			http.StatusBadRequest, "gateway", "invalid_path"},
		{"dot segment", "GET", actorPath + "/request/../inspector/state",
			http.StatusBadRequest, "gateway", "invalid_path"},
		{"not an actor id", "POST", "/gateway/abc/action/x",
			http.StatusBadRequest, "guard", "query_invalid_params"},
		{"gateway path of no known kind", "POST", actorPath + "@client-tok",
			http.StatusNotFound, "guard", "no_route"},
		{"gateway path with an unknown tail", "POST", actorPath + "@client-tok/other/thing?q",
			http.StatusNotFound, "guard", "no_route"},
		{"action with GET", "GET", actorPath + "/action/x",
			http.StatusMethodNotAllowed, "gateway", "method_not_allowed"},
		{"connect without an upgrade", "GET", actorPath + "/connect",
			http.StatusBadRequest, "gateway", "invalid_request"},
		{"actor by id without namespace", "DELETE", "/actors/" + actorID,
			http.StatusBadRequest, "guard", "query_invalid_params"},
		{"not a client route", "GET", "/namespaces/x", http.StatusNotFound, "guard", "no_route"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := do(t, client, tc.method, front.URL+tc.path, nil, nil)
			checkErrorResponse(t, res, body, tc.status, tc.group, tc.code)
			select {
			case r := <-up.reqs:
				t.Errorf("upstream got %s %s, want nothing", r.Method, r.URI)
			default:
			}
		})
	}
}

func TestHTTPClientCancel(t *testing.T) {
	checkGoroutines(t)
	started := make(chan struct{}, 1)
	upstreamCanceled := make(chan struct{}, 1)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			upstreamCanceled <- struct{}{}
		case <-time.After(wait):
		}
	})
	_, front := startProxy(t, testConfig(up.URL), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+actorPath+"/request/hang", nil)
	errc := make(chan error, 1)
	client := testClient(t)
	go func() {
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	recv(t, started, "the upstream request")
	cancel()
	if err := recv(t, errc, "the client's error"); err == nil {
		t.Error("client: got a response, want a canceled request")
	}
	recv(t, upstreamCanceled, "the upstream request to be canceled")
}

// TestHTTPClientGoneStatus checks the status recorded for a client that went
// away: 499, nothing written for nobody.
func TestHTTPClientGoneStatus(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, nil)
	p, err := New(testConfig(up.URL), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", actorPath+"/request/x", nil)
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req)
	if rec.Code != rivet.StatusClientClosedRequest || rec.Body.Len() != 0 {
		t.Errorf("got %d %q, want 499 and no body", rec.Code, rec.Body)
	}
}

func TestCheckHealth(t *testing.T) {
	checkGoroutines(t)
	var status atomic.Int32
	status.Store(http.StatusOK)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(int(status.Load())) })
	p, err := New(testConfig(up.URL+"/base/"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.CheckHealth(context.Background()); err != nil {
		t.Errorf("healthy upstream: got %v", err)
	}
	if seen := up.next(t); seen.URI != "/base/health" {
		t.Errorf("health URI: got %q, want /base/health", seen.URI)
	}
	status.Store(http.StatusServiceUnavailable)
	if err := p.CheckHealth(context.Background()); err == nil {
		t.Error("unhealthy upstream: got nil, want an error")
	}
	p2, err := New(testConfig("http://"+closedAddr(t)+"/secret-base"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if err := p2.CheckHealth(context.Background()); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable upstream: got %v, want an error without the URL", err)
	}
}

// TestErrorCauseHidesURL checks upstream errors are logged without the URL,
// which may carry the namespace token.
func TestErrorCauseHidesURL(t *testing.T) {
	err := &url.Error{Op: "Get", URL: "http://engine/gateway/a@secret/x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: io.EOF}}
	if got := errorCause(err); strings.Contains(got, "secret") {
		t.Errorf("errorCause: got %q, want no URL", got)
	}
}

// TestHTTPRayID: an engine answer without a ray id gets the gateway's (the
// one its access log line carries); the engine's own is kept.
func TestHTTPRayID(t *testing.T) {
	checkGoroutines(t)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("ray") != "" {
			w.Header().Set(rivet.HeaderRayID, "engine-ray")
		}
		w.WriteHeader(http.StatusOK)
	})
	front := startProxyBehind(t, testConfig(up.URL), func(ctx context.Context) context.Context {
		return rivet.WithExchange(ctx, &rivet.Exchange{RayID: "gw-0123456789abcdef"})
	})
	for _, tc := range []struct{ query, want string }{
		{"", "gw-0123456789abcdef"},
		{"?ray=1", "engine-ray"},
	} {
		res, _ := do(t, testClient(t), "GET", front.URL+actorPath+"/request/x"+tc.query, nil, nil)
		up.next(t)
		if got := res.Header.Values(rivet.HeaderRayID); len(got) != 1 || got[0] != tc.want {
			t.Errorf("query %q: X-Rivet-Ray-Id got %q, want exactly %q", tc.query, got, tc.want)
		}
	}
}

// TestSmallBodyGoesWithTheHead: a small request body of known length
// reaches the engine in the same write as the request head (one syscall,
// not two), and a large one is streamed. The transport must get the small
// body as an in-memory reader; the engine's first read holds head and body.
func TestSmallBodyGoesWithTheHead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	firstReads := make(chan string, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				_ = c.SetReadDeadline(time.Now().Add(wait))
				n, _ := c.Read(buf)
				firstReads <- string(buf[:n])
				// Read the whole request before answering: closing with
				// body bytes unread resets the connection, and the proxy
				// may see the reset before the response (a 502).
				req, err := http.ReadRequest(bufio.NewReader(io.MultiReader(bytes.NewReader(buf[:n]), c)))
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}()
		}
	}()
	var bodies []string
	opts := Options{WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			bodies = append(bodies, fmt.Sprintf("%T", r.Body))
			return rt.RoundTrip(r)
		})
	}}
	_, front := startProxy(t, testConfig("http://"+ln.Addr().String()), opts)
	u := action(front.URL)

	small := strings.Repeat("s", 64)
	if res, _ := do(t, front.Client(), http.MethodPost, u, strings.NewReader(small), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("small body: status %d", res.StatusCode)
	}
	if first := <-firstReads; !strings.HasSuffix(first, "\r\n\r\n"+small) {
		t.Errorf("small body: the engine's first read was %d bytes ending %q, want the head and the body", len(first), first[max(0, len(first)-20):])
	}
	big := strings.Repeat("b", smallBodyBytes+1)
	if res, _ := do(t, front.Client(), http.MethodPost, u, strings.NewReader(big), nil); res.StatusCode != http.StatusOK {
		t.Fatalf("large body: status %d", res.StatusCode)
	}
	<-firstReads
	if len(bodies) != 2 || bodies[0] != "io.nopCloserWriterTo" || bodies[1] == bodies[0] {
		t.Errorf("bodies the transport got: %v, want the small one in memory (io.nopCloserWriterTo), the large one streamed", bodies)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
