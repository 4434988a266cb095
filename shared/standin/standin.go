// Package standin starts the project's Node.js stand-ins for AWS services
// (scripts/kinesis-emulator: kinesalite's serve.js, s3rver's s3.js), each of
// which prints "listening PORT" once it takes connections, so that callers
// never guess a free port or poll for one.
package standin

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/walbridge/walbridge/shared/repo"
)

// Process is a running stand-in.
type Process struct {
	// Port is the port it listens on (loopback).
	Port string
	cmd  *exec.Cmd
}

// Start runs node with args in scripts/kinesis-emulator, after checking that
// the npm package module is installed there, and waits up to 30 s for its
// "listening PORT" line. Its standard error goes to this process's.
func Start(module string, args ...string) (*Process, error) {
	root, err := repo.Root()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "scripts", "kinesis-emulator")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", module)); err != nil {
		return nil, fmt.Errorf("%s is not installed in %s: run scripts/install-deps", module, dir)
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s (is Node.js installed?): %w", strings.Join(args, " "), err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, out)
	}()
	p := &Process{cmd: cmd}
	select {
	case line, ok := <-lines:
		port, found := strings.CutPrefix(line, "listening ")
		if !ok || !found {
			p.kill()
			return nil, fmt.Errorf("%s did not start (first line %q)", module, line)
		}
		p.Port = port
		return p, nil
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s did not report a port within 30s", module)
	}
}

func (p *Process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
}

// Stop ends the stand-in (SIGTERM to its process group) and waits for it.
func (p *Process) Stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	p.cmd.Wait()
}
