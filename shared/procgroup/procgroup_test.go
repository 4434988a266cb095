package procgroup

import (
	"bufio"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// start runs script under sh as a group leader whose child, a sleep, stays
// in the group, and returns once the script has said "ready" (its traps
// set); done closes when sh is waited for.
func start(t *testing.T, script string) (*exec.Cmd, chan struct{}) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("sh said %q (%v)", line, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	return cmd, done
}

func TestStop(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		signal       syscall.Signal
	}{
		{"stops on SIGTERM", "sleep 60 & echo ready; wait", syscall.SIGTERM},
		{"killed when it ignores SIGTERM", "trap '' TERM; sleep 60 & echo ready; wait; sleep 60", syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, done := start(t, tc.script)
			Stop(cmd, done, 200*time.Millisecond)
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != tc.signal {
				t.Errorf("sh ended with %v, want %v", cmd.ProcessState, tc.signal)
			}
		})
	}
}
