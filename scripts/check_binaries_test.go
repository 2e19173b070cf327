package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// elfHeader is the start of a 64-bit little-endian ELF executable.
var elfHeader = "\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00"

// TestCheckBinaries runs check-binaries.sh in a fresh git repository per
// case: it passes on text and fails, naming the file, on every way a
// binary can be staged.
func TestCheckBinaries(t *testing.T) {
	script, err := filepath.Abs("check-binaries.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"git", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	tests := []struct {
		name  string
		files map[string]string // staged
		setup [][]string        // git commands after staging
		want  []string          // in the output; none: must pass
	}{
		{name: "text only", files: map[string]string{"main.go": "package main\n", "scripts/run.sh": "#!/bin/sh\necho hi\n"}},
		{name: "committed ELF", files: map[string]string{"demo": elfHeader + strings.Repeat("\x00", 64)},
			setup: [][]string{{"commit", "-q", "-m", "add"}},
			want:  []string{"demo is tracked and binary (ELF executable, 84 bytes)"}},
		{name: "staged, not committed", files: map[string]string{"bin/gw": elfHeader}, want: []string{"bin/gw", "ELF executable"}},
		{name: "Mach-O", files: map[string]string{"gw-darwin": "\xcf\xfa\xed\xfe\x07\x00\x00\x01"}, want: []string{"gw-darwin", "Mach-O executable"}},
		{name: "PE", files: map[string]string{"gw.exe": "MZ\x90\x00\x03\x00\x00\x00"}, want: []string{"gw.exe", "PE (Windows) executable"}},
		{name: "other binary content", files: map[string]string{"testdata/blob": "abc\x00def"}, want: []string{"testdata/blob", "binary content"}},
		{name: "binary by attributes", files: map[string]string{".gitattributes": "*.dat binary\n", "x.dat": "looks like text\n"},
			want: []string{"x.dat", "binary by .gitattributes"}},
		// Attributes cannot make an executable pass for text.
		{name: "ELF declared text", files: map[string]string{".gitattributes": "demo diff text\n", "demo": elfHeader}, want: []string{"demo", "ELF executable"}},
		{name: "path with spaces", files: map[string]string{"my demo": elfHeader}, want: []string{"my demo is tracked"}},
		{name: "allow-listed fixture", files: map[string]string{
			"testdata/fixture.bin":         "\x00\x01",
			"scripts/check-binaries.allow": "# a real capture the parser must read\ntestdata/fixture.bin   \n"}},
		{name: "allow-list names another file", files: map[string]string{
			"testdata/fixture.bin":         "\x00\x01",
			"demo":                         elfHeader,
			"scripts/check-binaries.allow": "testdata/fixture.bin\n"}, want: []string{"demo is tracked"}},
		{name: "removed from the index, left on disk", files: map[string]string{"demo": elfHeader},
			setup: [][]string{{"commit", "-q", "-m", "add"}, {"rm", "-q", "--cached", "demo"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			git := func(args ...string) {
				t.Helper()
				cmd := exec.Command("git", args...)
				cmd.Dir, cmd.Env = dir, gitEnv()
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			git("init", "-q")
			for name, content := range tt.files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				git("add", "--", name)
			}
			for _, args := range tt.setup {
				git(args...)
			}
			// From a subdirectory: the script finds the repository root.
			cmd := exec.Command("bash", script)
			cmd.Dir, cmd.Env = dir, gitEnv()
			if sub := filepath.Join(dir, "scripts"); isDir(sub) {
				cmd.Dir = sub
			}
			out, err := cmd.CombinedOutput()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want success\n%s", err, out)
				}
				return
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("got %v, want exit status 1\n%s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// gitEnv is the environment without the caller's git configuration, so
// that neither a user's settings nor a repository the test runs inside
// (GIT_DIR from a hook) leaks in.
func gitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=test", "GIT_AUTHOR_EMAIL=test@example.invalid",
		"GIT_COMMITTER_NAME=test", "GIT_COMMITTER_EMAIL=test@example.invalid")
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
