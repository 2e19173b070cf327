//go:build !linux

package harness

import "os/exec"

// killWithParent does nothing outside Linux: there the t.Cleanup functions are the only
// safeguard against processes outliving the test binary.
func killWithParent(cmd *exec.Cmd) {}
