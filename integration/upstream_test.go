// Package integration holds the end-to-end tests: the rivet-gateway binary in front of a real
// Rivet Engine and RivetKit actor server, driven by the real RivetKit JS client. The processes
// are managed by package harness; see README.md.
package integration

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/rivet-gateway/rivet-gateway/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// encodings are the client encodings every protocol-level check runs with.
var encodings = []string{"bare", "json", "cbor"}

// TestUpstreamDirect runs the checks of checks.mjs with the real JS client straight against the
// engine, without a gateway: the baseline the gateway tests are compared with, and a test of
// the harness itself (start, parameterized checks, restart on the same port).
func TestUpstreamDirect(t *testing.T) {
	up := harness.StartUpstream(t)

	t.Run("checks", func(t *testing.T) {
		for _, enc := range encodings {
			t.Run(enc, func(t *testing.T) {
				t.Parallel()
				harness.RunChecks(t, up.URL, map[string]string{"ENC": enc})
			})
		}
		t.Run("parameterized", func(t *testing.T) {
			t.Parallel()
			testParameterizedChecks(t, up.URL)
		})
	})

	t.Run("restart", func(t *testing.T) {
		up.Stop(t)
		up.Start(t)
		harness.RunChecks(t, up.URL, nil, "stateless-action", "connect-event")
	})
}

// testParameterizedChecks covers the env-driven checks the gateway tests build on.
func testParameterizedChecks(t *testing.T, endpoint string) {
	tests := []struct {
		name  string
		check string
		env   map[string]string
		// wantError is the group.code of the *-expected checks; wantMetadata its metadata (JSON).
		wantError    string
		wantMetadata string
		// wantParams are the params the actor saw (JSON), for whoami-*.
		wantParams string
	}{
		{
			name:       "whoami-http static params",
			check:      "whoami-http",
			env:        map[string]string{"PARAMS_JSON": `{"token":"t-http","role":"admin"}`},
			wantParams: `{"token":"t-http","role":"admin"}`,
		},
		{
			name:       "whoami-conn static params",
			check:      "whoami-conn",
			env:        map[string]string{"PARAMS_JSON": `{"token":"t-ws"}`},
			wantParams: `{"token":"t-ws"}`,
		},
		{
			name:       "whoami-conn getParams wins over static params",
			check:      "whoami-conn",
			env:        map[string]string{"PARAMS_JSON": `{"token":"static"}`, "GETPARAMS_JSON": `{"token":"dyn","name":"Zoë"}`},
			wantParams: `{"token":"dyn","name":"Zoë"}`,
		},
		{
			name:         "action error with metadata",
			check:        "action-error-expected",
			env:          map[string]string{"ACTION": "fail", "EXPECT_ERROR": "user.custom_fail"},
			wantError:    "user.custom_fail",
			wantMetadata: `{"a":1}`,
		},
		{
			name:         "HTTP action without params rejected by onBeforeConnect",
			check:        "action-error-expected",
			env:          map[string]string{"PARAMS_JSON": "", "EXPECT_ERROR": "user.unauthorized"},
			wantError:    "user.unauthorized",
			wantMetadata: `null`,
		},
		{
			name:         "connect without token rejected by onBeforeConnect",
			check:        "connect-error-expected",
			env:          map[string]string{"GETPARAMS_JSON": `{"notoken":true}`, "EXPECT_ERROR": "user.unauthorized"},
			wantError:    "user.unauthorized",
			wantMetadata: `null`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := harness.RunChecks(t, endpoint, tt.env, tt.check)
			if len(results) != 1 || !results[0].OK {
				return // RunChecks reported it
			}
			r := results[0]
			if tt.wantError != "" {
				var got struct {
					Group    string          `json:"group"`
					Code     string          `json:"code"`
					Metadata json.RawMessage `json:"metadata"`
				}
				if err := r.DecodeDetail(&got); err != nil {
					t.Fatal(err)
				}
				if got.Group+"."+got.Code != tt.wantError {
					t.Errorf("error: got %s.%s, want %s", got.Group, got.Code, tt.wantError)
				}
				if !jsonEqual(t, got.Metadata, tt.wantMetadata) {
					t.Errorf("metadata: got %s, want %s", got.Metadata, tt.wantMetadata)
				}
			}
			if tt.wantParams != "" {
				var got struct {
					Params    json.RawMessage `json:"params"`
					ConnState struct {
						Params json.RawMessage `json:"params"`
					} `json:"connState"`
				}
				if err := r.DecodeDetail(&got); err != nil {
					t.Fatal(err)
				}
				if !jsonEqual(t, got.Params, tt.wantParams) {
					t.Errorf("c.conn.params: got %s, want %s", got.Params, tt.wantParams)
				}
				if !jsonEqual(t, got.ConnState.Params, tt.wantParams) {
					t.Errorf("createConnState params: got %s, want %s", got.ConnState.Params, tt.wantParams)
				}
			}
		})
	}
}

// jsonEqual reports whether got and want hold the same JSON value.
func jsonEqual(t *testing.T, got json.RawMessage, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("decode %s: %v", got, err)
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("decode want %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}
