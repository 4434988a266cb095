// Package procgroup stops a child process started as the leader of its own
// process group (SysProcAttr.Setpgid), together with whatever it started: a
// Lambda emulator's handler, a stand-in's workers.
package procgroup

import (
	"os/exec"
	"syscall"
	"time"
)

// Stop sends SIGTERM to cmd's process group and, if done has not closed
// within grace, SIGKILL; it returns once done is closed. done is closed by
// the goroutine that waits for cmd. A group already gone is left alone.
func Stop(cmd *exec.Cmd, done <-chan struct{}, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}
