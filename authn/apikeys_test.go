package authn

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

const (
	backendKey = "rk_backend_7f3c9a1e5b2d4f6a8c0e1b3d5f7a9c1e"
	expiredKey = "rk_expired_0000000000000000000000000000"
	fullKey    = "rk_full_1111111111111111111111111111111111"
)

func apiKeyConfig() Config {
	cfg := DefaultConfig()
	cfg.APIKeys.Keys = []APIKey{
		{ID: "backend", SHA256: hashHex(backendKey), Scopes: []string{"action:counter", "connect:*"}},
		{ID: "old", SHA256: hashHex(expiredKey), Expires: time.Now().Add(-time.Minute)},
		{ID: "full", SHA256: hashHex(fullKey)},
	}
	return cfg
}

func TestAPIKeys(t *testing.T) {
	a := newAuth(t, apiKeyConfig())
	tests := []struct {
		name       string
		target     string
		headers    []string
		wantStatus int
		wantReason string
		wantID     string
	}{
		{"X-API-Key", actionAlice, []string{"X-API-Key", backendKey}, 200, "", "backend"},
		{"bearer", actionAlice, bearer(backendKey), 200, "", "backend"},
		{"conn params", actionAlice, []string{"X-Rivet-Conn-Params", `{"authToken":"` + backendKey + `"}`}, 200, "", "backend"},
		{"cookie", actionAlice, []string{"Cookie", "rivet_auth=" + backendKey}, 200, "", "backend"},
		{"wrong key", actionAlice, []string{"X-API-Key", backendKey + "x"}, 401, "invalid_api_key", ""},
		{"key hash presented as key", actionAlice, []string{"X-API-Key", hashHex(backendKey)}, 401, "invalid_api_key", ""},
		{"expired key", actionAlice, []string{"X-API-Key", expiredKey}, 401, "expired", ""},
		{"two X-API-Key headers", actionAlice, []string{"X-API-Key", "nope", "X-API-Key", backendKey}, 401, "malformed", ""},
		{"scope action:counter", actionAlice, []string{"X-API-Key", backendKey}, 200, "", "backend"},
		{"scope connect:*", "/gateway/chat/connect?rvt-namespace=default&rvt-method=get&rvt-key=x", []string{"X-API-Key", backendKey, "Connection", "Upgrade", "Upgrade", "websocket"}, 200, "", "backend"},
		{"no scope for queue", "/gateway/counter/queue/jobs?rvt-namespace=default&rvt-method=get&rvt-key=x", []string{"X-API-Key", backendKey}, 403, "missing_scope", ""},
		{"no scope for other actor", "/gateway/chat/action/send?rvt-namespace=default&rvt-method=get&rvt-key=x", []string{"X-API-Key", backendKey}, 403, "missing_scope", ""},
		{"actor by id resolved to counter", actionByID, []string{"X-API-Key", backendKey}, 200, "", "backend"},
		{"no scope for create", "/actors?namespace=default", []string{"X-API-Key", backendKey}, 403, "missing_scope", ""},
		{"unscoped key creates", "/actors?namespace=default", []string{"X-API-Key", fullKey}, 200, "", "full"},
		{"JWT-shaped but no issuers", actionAlice, bearer("a.b.c"), 401, "invalid_api_key", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if slices.Contains(tc.headers, "Upgrade") {
				method = "GET"
			}
			res := serve(t, a, newRequest(t, method, tc.target, tc.headers...))
			if res.status != tc.wantStatus {
				t.Fatalf("status: got %d, want %d (%s)", res.status, tc.wantStatus, res.raw)
			}
			if got := res.reason(); got != tc.wantReason {
				t.Errorf("reason: got %q, want %q", got, tc.wantReason)
			}
			if tc.wantStatus != 200 {
				if containsAny(res.raw, backendKey, expiredKey, fullKey) {
					t.Errorf("response echoes the key: %s", res.raw)
				}
				return
			}
			if res.id.Method != MethodAPIKey || res.id.APIKeyID != tc.wantID || res.id.Subject != "" || res.id.Claims != nil {
				t.Errorf("identity: got %+v, want api_key %s", res.id, tc.wantID)
			}
		})
	}
}

func TestAPIKeysFileReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "api-keys.yaml")
	write := func(s string) {
		t.Helper()
		// Write-then-rename, as a Kubernetes Secret volume update does.
		tmp := filepath.Join(dir, "tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write("- id: from-file\n  sha256: " + hashHex(fullKey) + "\n")

	cfg := apiKeyConfig()
	cfg.APIKeys.Keys = cfg.APIKeys.Keys[:1] // backend inline
	cfg.APIKeys.File = file
	cfg.APIKeys.FileReload = 20 * time.Millisecond
	a := newAuth(t, cfg)

	status := func(key string) int {
		return serve(t, a, newRequest(t, "POST", actionAlice, "X-API-Key", key)).status
	}
	res := serve(t, a, newRequest(t, "POST", actionAlice, "X-API-Key", fullKey))
	if res.status != 200 || res.id.APIKeyID != "from-file" {
		t.Fatalf("file key: got %d %+v, want 200 from-file", res.status, res.id)
	}
	fileID := res.id
	if status(backendKey) != 200 {
		t.Fatalf("inline key refused alongside the file")
	}

	// A file that no longer parses keeps the last good keys.
	write("- id: [broken\n")
	time.Sleep(100 * time.Millisecond)
	if got := status(fullKey); got != 200 {
		t.Fatalf("after a broken file: got %d, want 200 (last good keys)", got)
	}
	// So does a file duplicating an inline key.
	write("- id: backend\n  sha256: " + hashHex("other") + "\n")
	time.Sleep(100 * time.Millisecond)
	if got := status(fullKey); got != 200 {
		t.Fatalf("after a conflicting file: got %d, want 200 (last good keys)", got)
	}

	// Revocation: the key leaves the file.
	write("[]\n")
	waitFor(t, 3*time.Second, "revoked key refused", func() bool { return status(fullKey) == 401 })
	if err := a.Revalidate(fileID); !errors.Is(err, ErrAPIKeyRevoked) {
		t.Errorf("Revalidate(revoked): got %v, want ErrAPIKeyRevoked", err)
	}
	if got := status(backendKey); got != 200 {
		t.Errorf("inline key after reload: got %d, want 200", got)
	}

	// Same id, new secret: the old secret is revoked.
	write("- id: from-file\n  sha256: " + hashHex("rotated-secret") + "\n")
	waitFor(t, 3*time.Second, "rotated key accepted", func() bool { return status("rotated-secret") == 200 })
	if err := a.Revalidate(fileID); !errors.Is(err, ErrAPIKeyRevoked) {
		t.Errorf("Revalidate(replaced secret): got %v, want ErrAPIKeyRevoked", err)
	}
}

func TestRevalidateAPIKey(t *testing.T) {
	cfg := apiKeyConfig()
	cfg.APIKeys.Keys[0].Expires = time.Now().Add(time.Hour)
	a := newAuth(t, cfg)
	res := serve(t, a, newRequest(t, "POST", actionAlice, "X-API-Key", backendKey))
	if res.status != 200 {
		t.Fatalf("status: got %d, want 200", res.status)
	}
	if err := a.Revalidate(res.id); err != nil {
		t.Errorf("Revalidate: got %v, want nil", err)
	}
	a.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if err := a.Revalidate(res.id); !errors.Is(err, ErrAPIKeyExpired) {
		t.Errorf("Revalidate after expiry: got %v, want ErrAPIKeyExpired", err)
	}
	// A reloaded config without the key.
	b := newAuth(t, hsConfig())
	if err := b.Revalidate(res.id); !errors.Is(err, ErrAPIKeyRevoked) {
		t.Errorf("Revalidate without API keys: got %v, want ErrAPIKeyRevoked", err)
	}
}

func TestAPIKeysFileMissingFailsNew(t *testing.T) {
	cfg := DefaultConfig()
	cfg.APIKeys.File = "/nonexistent/api-keys.yaml"
	if _, err := New(cfg, Options{}); err == nil {
		t.Fatal("New: got nil, want an error for a missing keys file")
	}
	cfg.APIKeys.File = writeTemp(t, "- id: x\n  sha256: nothex\n")
	if _, err := New(cfg, Options{}); err == nil {
		t.Fatal("New: got nil, want an error for an invalid keys file")
	}
	cfg.APIKeys.File = writeTemp(t, "- id: x\n  sha256: "+hashHex("k")+"\n  unknown_field: 1\n")
	if _, err := New(cfg, Options{}); err == nil {
		t.Fatal("New: got nil, want an error for an unknown field")
	}
}

func TestScopes(t *testing.T) {
	tests := []struct {
		granted []string
		want    scope
		raw     string
		ok      bool
	}{
		{[]string{"*"}, scope{"inspector", "x"}, "", true},
		{[]string{"connect"}, scope{"connect", "chat"}, "", true},
		{[]string{"connect:chat"}, scope{"connect", "chat"}, "", true},
		{[]string{"connect:chat"}, scope{"connect", "counter"}, "", false},
		{[]string{"*:chat"}, scope{"queue", "chat"}, "", true},
		{[]string{"connect:chat"}, scope{"connect", ""}, "", false}, // actor by id
		{[]string{"connect:*"}, scope{"connect", ""}, "", true},
		{[]string{"action:*"}, scope{"action", "*"}, "action:*", true},
		{[]string{"action:counter"}, scope{"action", "*"}, "action:*", false},
		{[]string{"read:messages"}, scope{"\x00", "\x00"}, "read:messages", true},
	}
	for _, tc := range tests {
		if got := grants(tc.granted, tc.want, tc.raw); got != tc.ok {
			t.Errorf("grants(%v, %v): got %v, want %v", tc.granted, tc.want, got, tc.ok)
		}
	}
	for _, bad := range []string{"", "bogus", "bogus:x", "action:", "action:a b", ":x"} {
		if _, err := parseScope(bad); err == nil {
			t.Errorf("parseScope(%q): got nil, want an error", bad)
		}
	}
}
