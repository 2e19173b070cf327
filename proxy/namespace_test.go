package proxy

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rivet-gateway/rivet-gateway/rivet"
)

func TestCheckNamespace(t *testing.T) {
	const pin = "prod"
	resolved := func(ns string) func(*rivet.Route) {
		return func(rt *rivet.Route) {
			rt.Actors = []rivet.Actor{{ID: actorID, Namespace: ns, Name: "counter", Key: []string{"k"}}}
			rt.Namespace, rt.Resolved = ns, true
		}
	}
	for _, tc := range []struct {
		name, method, target string
		ws                   bool
		resolve              func(*rivet.Route)
		// want is the namespace the refusal names; "-" when it names
		// none; "" when the route passes.
		want string
	}{
		{name: "query target in the pin", method: "POST", target: "/gateway/counter/action/inc?rvt-namespace=prod&rvt-method=get&rvt-key=k"},
		{name: "query target, escaped pin", method: "POST", target: "/gateway/counter/action/inc?rvt-namespace=pro%64&rvt-method=get"},
		{name: "query target elsewhere", method: "POST", target: "/gateway/counter/action/inc?rvt-namespace=other&rvt-method=get", want: "other"},
		{name: "query target elsewhere, escaped", method: "GET", target: "/gateway/counter/connect?rvt-namespace=%6Fther&rvt-method=getOrCreate&rvt-runner=default", ws: true, want: "other"},
		{name: "query target, pin with a space", method: "POST", target: "/gateway/counter/action/inc?rvt-namespace=prod+&rvt-method=get", want: "prod "},
		{name: "id target before resolution", method: "POST", target: actorPath + "/action/inc"},
		{name: "id target resolved in the pin", method: "GET", target: actorPath + "/connect", ws: true, resolve: resolved(pin)},
		{name: "id target resolved elsewhere", method: "POST", target: actorPath + "/queue/jobs", resolve: resolved("other"), want: "other"},
		{name: "lookup by key", method: "GET", target: "/actors?namespace=other&name=counter&key=k", want: "other"},
		{name: "lookup by id", method: "GET", target: "/actors?actor_ids=" + actorID + "&namespace=other", want: "other"},
		{name: "create", method: "POST", target: "/actors?namespace=other", want: "other"},
		{name: "create in the pin", method: "PUT", target: "/actors?namespace=prod"},
		{name: "destroy", method: "DELETE", target: "/actors/" + actorID + "?namespace=other", want: "other"},
		{name: "runner configs in the pin", method: "GET", target: "/runner-configs?namespace=prod"},
		{name: "runner configs elsewhere", method: "GET", target: "/runner-configs?namespace=other", want: "other"},
		{name: "namespaces", method: "GET", target: "/namespaces", want: "-"},
		{name: "create namespace", method: "POST", target: "/namespaces", want: "-"},
		{name: "datacenters", method: "GET", target: "/datacenters", want: "-"},
		{name: "health", method: "GET", target: "/health"},
		{name: "metadata elsewhere", method: "GET", target: "/metadata?namespace=other"},
		{name: "metadata", method: "GET", target: "/metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, err := rivet.ParseTarget(tc.method, tc.target, tc.ws)
			if err != nil {
				t.Fatalf("ParseTarget: %v", err)
			}
			if tc.resolve != nil {
				tc.resolve(&rt)
			}
			if err := CheckNamespace(&rt, ""); err != nil {
				t.Errorf("without a pin: got %v, want nil", err)
			}
			err = CheckNamespace(&rt, pin)
			if tc.want == "" {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			e := rivet.AsError(err)
			if e == nil || e.Status != http.StatusForbidden || e.Group+"."+e.Code != "gateway.namespace_not_allowed" {
				t.Fatalf("got %v, want 403 gateway.namespace_not_allowed", err)
			}
			if got, _ := e.Metadata["namespace"].(string); tc.want != "-" && got != tc.want {
				t.Errorf("metadata namespace: got %q, want %q", got, tc.want)
			}
			for k, v := range e.Metadata {
				if s, _ := v.(string); strings.Contains(s, pin) && tc.want != "prod " {
					t.Errorf("metadata %s = %q names the pinned namespace", k, s)
				}
			}
		})
	}
}

// TestPinnedProxyRefuses: a proxy pinned to a namespace answers a request
// for another one itself, in RivetKit's shape (JSON for HTTP, accept and
// close 1011 for a WebSocket), and the engine sees nothing of it; the
// pinned namespace passes with the token in its header.
func TestPinnedProxyRefuses(t *testing.T) {
	checkGoroutines(t)
	up := newWSUpstream(t, func(c *websocket.Conn, r *http.Request) { _ = echo(c) })
	cfg := testConfig(up.URL)
	cfg.Namespace, cfg.Token = "prod", gwToken
	_, front := startProxy(t, cfg, Options{})
	client := testClient(t)

	const other = "/gateway/counter/action/inc?rvt-namespace=other&rvt-method=get&rvt-key=k"
	res, body := do(t, client, "POST", front.URL+other, nil, nil)
	var e struct {
		Group, Code string
		Metadata    map[string]any
	}
	if err := json.Unmarshal(body, &e); err != nil || res.StatusCode != http.StatusForbidden || e.Group != "gateway" || e.Code != "namespace_not_allowed" || e.Metadata["namespace"] != "other" {
		t.Errorf("HTTP: got %d %s, want 403 gateway.namespace_not_allowed naming other", res.StatusCode, body)
	}

	c := mustDialWS(t, front, "/gateway/counter/connect?rvt-namespace=other&rvt-method=get&rvt-key=k", nil, rivetProtocols...)
	checkClose(t, "WebSocket", readClose(t, c), 1011, "gateway.namespace_not_allowed")

	select {
	case r := <-up.reqs:
		t.Fatalf("the engine got %s %s, want nothing", r.Method, r.URI)
	default:
	}

	c = mustDialWS(t, front, "/gateway/counter/connect?rvt-namespace=prod&rvt-method=get&rvt-key=k", nil, rivetProtocols...)
	if seen := up.next(t); !strings.Contains(seen.Header.Get("Sec-Websocket-Protocol"), "rivet_token."+gwToken) {
		t.Errorf("pinned namespace: upstream subprotocols %q lack the token", seen.Header.Get("Sec-Websocket-Protocol"))
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(wait))
	readClose(t, c)
}
