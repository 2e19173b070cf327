package harness

import (
	"os/exec"
	"syscall"
)

// killWithParent makes the kernel SIGKILL cmd's process when the test binary dies, so that a
// test binary killed before its cleanups run (for example by -timeout) leaves no gateway or node
// process behind. Strictly the signal fires when the OS thread that started the child exits;
// the Go runtime does not end threads except for goroutines that exit while locked to one,
// which the harness never does.
func killWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
