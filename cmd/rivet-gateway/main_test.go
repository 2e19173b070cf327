package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const validConfig = `upstream:
  url: http://127.0.0.1:6420
auth:
  api_keys:
    keys:
      - id: ops
        sha256: "3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a3f0a"
        expires: 2027-01-01T00:00:00Z
`

// anyoneLists is a rule -check warns about: a privileged intent granted to
// anyone.
const anyoneLists = `  rules:
    - match: {intents: [list]}
      allow: anonymous
`

// brokenConfig has nine problems across six sections, of every stage:
// unknown keys, wrong types, invalid values, a missing file. It is the
// README's example, but for the file's path.
const brokenConfig = `server:
  listen: "nonsense"
  read_timeout: 30
upstream:
  url: "ftp://engine"
  token_file: /nonexistent/token
cors:
  allowed_origins: ["*"]
auth:
  api_keys:
    keys:
      - id: billing-backend
        sha256: "3f0a…"
        expires: next year
  rules:
    - match: {intents: [list]}
      allow: anonymous
log:
  level: loud
  lvl: debug
`

var brokenProblems = []string{
	`  line 2: server.listen: not a host:port address: address nonsense: missing port in address`,
	`  line 3: server.read_timeout: got 30, want a duration (write durations as "30s", "5m")`,
	`  line 5: upstream.url: scheme must be http or https, got "ftp"`,
	`  line 6: upstream.token_file: open /nonexistent/token: no such file or directory`,
	`  line 8: cors.allowed_origins[0]: "*" cannot be used with allow_credentials (browsers reject it): list the origins, or set allow_credentials: false`,
	`  line 13: auth.api_keys.keys[0].sha256: must be 64 hex digits (the SHA-256 of the key, never the key)`,
	`  line 14: auth.api_keys.keys[0].expires: got "next year", want a timestamp (RFC 3339, e.g. 2027-01-01T00:00:00Z)`,
	`  line 19: log.level: must be debug, info, warn or error, got "loud"`,
	`  line 20: log.lvl: unknown key "lvl"`,
}

func write(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func lines(s string) []string {
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func TestCheckValid(t *testing.T) {
	path := write(t, validConfig)
	code, stdout, stderr := runArgs("-config", path, "-check")
	if code != 0 || stdout != path+": configuration is valid\n" || stderr != "" {
		t.Errorf("got %d, stdout %q, stderr %q; want 0 and %q", code, stdout, stderr, path+": configuration is valid")
	}
}

// TestCheckValidWithWarnings: warnings do not make a configuration
// invalid.
func TestCheckValidWithWarnings(t *testing.T) {
	path := write(t, validConfig+anyoneLists)
	code, stdout, stderr := runArgs("-config", path, "-check")
	want := []string{
		path + ": configuration is valid, with 1 warning",
		"  warning: auth.rules[0] grants list to anyone, without a credential",
	}
	if got := lines(stdout); code != 0 || !slices.Equal(got, want) || stderr != "" {
		t.Errorf("got %d, stdout\n%s\nstderr %q; want 0 and\n%s", code, stdout, stderr, strings.Join(want, "\n"))
	}
}

// TestCheckListsEveryProblemOnceThenWarnings: every problem of every stage
// and section, each once, sorted by line, then the warnings.
func TestCheckListsEveryProblemOnceThenWarnings(t *testing.T) {
	path := write(t, brokenConfig)
	code, stdout, stderr := runArgs("-config", path, "-check")
	want := append([]string{path + ": invalid configuration, 9 problems:"}, brokenProblems...)
	want = append(want, "  warning: auth.rules[0] grants list to anyone, without a credential")
	if got := lines(stderr); code != 1 || !slices.Equal(got, want) || stdout != "" {
		t.Errorf("got %d, stdout %q, stderr\n%s\nwant 1 and\n%s", code, stdout, stderr, strings.Join(want, "\n"))
	}
}

// TestCheckSkipFiles: without the secret files, everything else is
// checked, and the output says which files were not.
func TestCheckSkipFiles(t *testing.T) {
	valid := write(t, strings.Replace(validConfig, "  url: http://127.0.0.1:6420\n",
		"  url: http://127.0.0.1:6420\n  token_file: /var/run/secrets/rivet/token\n", 1))
	if code, _, stderr := runArgs("-config", valid, "-check"); code != 1 || !strings.Contains(stderr, "upstream.token_file: open /var/run/secrets/rivet/token") {
		t.Errorf("without -skip-files: got %d, %q; want 1 and the missing token file", code, stderr)
	}
	code, stdout, stderr := runArgs("-config", valid, "-check", "-skip-files")
	want := []string{
		valid + ": configuration is valid",
		valid + ": 1 referenced file not checked (-skip-files):",
		"  upstream.token_file: /var/run/secrets/rivet/token",
	}
	if got := lines(stdout); code != 0 || !slices.Equal(got, want) || stderr != "" {
		t.Errorf("got %d, stdout\n%s\nstderr %q; want 0 and\n%s", code, stdout, stderr, strings.Join(want, "\n"))
	}

	broken := write(t, brokenConfig)
	code, _, stderr = runArgs("-config", broken, "-check", "-skip-files")
	want = append([]string{broken + ": invalid configuration, 8 problems:"}, slices.Delete(slices.Clone(brokenProblems), 3, 4)...)
	want = append(want, "  warning: auth.rules[0] grants list to anyone, without a credential",
		broken+": 1 referenced file not checked (-skip-files):", "  upstream.token_file: /nonexistent/token")
	if got := lines(stderr); code != 1 || !slices.Equal(got, want) {
		t.Errorf("broken: got %d, stderr\n%s\nwant 1 and\n%s", code, stderr, strings.Join(want, "\n"))
	}

	none := write(t, validConfig)
	if code, stdout, _ := runArgs("-config", none, "-check", "-skip-files"); code != 0 || !strings.Contains(stdout, "references no files") {
		t.Errorf("no files: got %d, %q; want 0 and a note that nothing was skipped", code, stdout)
	}
}

func TestCheckUnreadable(t *testing.T) {
	for name, path := range map[string]string{
		"missing":  filepath.Join(t.TempDir(), "nope.yaml"),
		"not yaml": write(t, "server: [\n"),
	} {
		code, stdout, stderr := runArgs("-config", path, "-check")
		if code != 1 || stdout != "" || !strings.HasPrefix(stderr, path+": invalid configuration:\n  ") {
			t.Errorf("%s: got %d, stdout %q, stderr %q; want 1 and the reason", name, code, stdout, stderr)
		}
	}
}

// TestRunRefusesAnInvalidConfig: without -check, an invalid configuration
// is reported the same way and nothing starts.
func TestRunRefusesAnInvalidConfig(t *testing.T) {
	path := write(t, brokenConfig)
	code, _, stderr := runArgs("-config", path)
	want := append([]string{path + ": invalid configuration, 9 problems:"}, brokenProblems...)
	if got := lines(stderr); code != 1 || !slices.Equal(got, want) {
		t.Errorf("got %d, stderr\n%s\nwant 1 and\n%s", code, stderr, strings.Join(want, "\n"))
	}
}

func TestUsageErrors(t *testing.T) {
	path := write(t, validConfig)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"extra argument", []string{"-config", path, "-check", "extra"}, `unexpected argument "extra"`},
		{"config as an argument", []string{"config.yaml", "-check"}, `unexpected argument "config.yaml" (did you mean -config config.yaml?)`},
		{"flag after an argument", []string{"-check", path, "-skip-files"}, "unexpected argument"},
		{"skip-files without check", []string{"-config", path, "-skip-files"}, "-skip-files goes with -check"},
		{"unknown flag", []string{"-chekc"}, "flag provided but not defined: -chekc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runArgs(tc.args...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "Usage:") {
				t.Errorf("got %d, stdout %q, stderr\n%s\nwant 2, %q and the usage", code, stdout, stderr, tc.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	if code, _, stderr := runArgs("-h"); code != 0 || !strings.Contains(stderr, "-skip-files") {
		t.Errorf("-h: got %d, %q; want 0 and the usage", code, stderr)
	}
	if code, stdout, _ := runArgs("-version"); code != 0 || !strings.HasPrefix(stdout, "rivet-gateway ") {
		t.Errorf("-version: got %d, %q; want 0 and the version", code, stdout)
	}
}
