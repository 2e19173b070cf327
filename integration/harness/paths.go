package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot returns the module root, located from this source file so that tests of any package
// (with any working directory) find it.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatalf("harness: cannot locate its own source file")
	}
	// file is <root>/integration/harness/paths.go
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// UpstreamDir returns integration/upstream, failing the test when node or the npm
// dependencies there are missing. It never skips: an end-to-end test that silently does not
// run is worse than a failing one.
func UpstreamDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "integration", "upstream")
	if err := checkUpstreamDir(dir); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return dir
}

// checkUpstreamDir reports what is missing to run the JS side in dir.
func checkUpstreamDir(dir string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("node is not on PATH (Node 22+ is needed: rivetkit 2.3.19's engines field): %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "rivetkit", "package.json")); err != nil {
		return fmt.Errorf("%s/node_modules is not installed: run `make test`, or `npm install --no-audit --no-fund` in %s (not `npm ci`, see integration/README.md)", dir, dir)
	}
	return nil
}
