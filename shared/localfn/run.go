package localfn

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/walbridge/walbridge/shared/procgroup"
)

// Options shape Start.
type Options struct {
	// RIE is the aws-lambda-rie binary.
	RIE string
	// WorkDir holds the builds (a folder per function) and runtime.cjs.
	WorkDir string
	// Out receives a function's output: its logs, and the emulator's START,
	// END and REPORT lines, as Lambda writes them to CloudWatch.
	Out io.Writer
	// Env is added to the function's environment (region, endpoints).
	Env []string
}

// Function is a function running under the emulator.
type Function struct {
	Spec Spec
	// URL is the emulator's invocation endpoint: a POST of an event there
	// is one invocation, answered with the handler's result or its error.
	URL   string
	stamp string
	cmd   *exec.Cmd
	done  chan struct{}
}

// Start builds a spec and starts it under the emulator; it returns once the
// emulator takes invocations. Build failures come back with the build's
// output.
func Start(ctx context.Context, s Spec, o Options) (*Function, error) {
	work := filepath.Join(o.WorkDir, safeName(s.ID))
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	stamp := SourceStamp(s)
	var bootstrap []string
	dir := work
	switch s.Kind {
	case Go:
		bin := filepath.Join(work, "bootstrap")
		if err := command(ctx, s.Dir, []string{"CGO_ENABLED=0"}, "go", "build", "-tags", "lambda.norpc", "-o", bin, "."); err != nil {
			return nil, fmt.Errorf("build %s: %w", s.ID, err)
		}
		bootstrap = []string{bin}
	case Node:
		if s.TypeScript {
			if err := buildTypeScript(ctx, s.Dir); err != nil {
				return nil, fmt.Errorf("build %s: %w", s.ID, err)
			}
		}
		node, err := exec.LookPath("node")
		if err != nil {
			return nil, fmt.Errorf("%s needs Node.js: %w", s.ID, err)
		}
		rt := filepath.Join(o.WorkDir, "runtime.cjs")
		if err := os.WriteFile(rt, nodeRuntime, 0o644); err != nil {
			return nil, err
		}
		// The handler's file is relative to its code folder, as in Lambda.
		bootstrap, dir = []string{node, rt, s.Handler}, s.CodeDir
	default:
		return nil, fmt.Errorf("%s: kind %q cannot run", s.ID, s.Kind)
	}

	api, invoke, err := twoPorts()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--runtime-interface-emulator-address", invoke, "--runtime-api-address", api, "--log-level", "error"}, bootstrap...)
	rie, err := filepath.Abs(o.RIE) // the emulator starts in the code's folder
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(rie, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + work, "LAMBDA_TASK_ROOT=" + dir,
		"AWS_LAMBDA_FUNCTION_NAME=" + s.ID, "AWS_LAMBDA_FUNCTION_TIMEOUT=" + s.Timeout, "_HANDLER=" + s.Handler,
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local",
	}, o.Env...)
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the bootstrap stops with the emulator
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start aws-lambda-rie for %s: %w", s.ID, err)
	}
	f := &Function{Spec: s, URL: "http://" + invoke + "/2015-03-31/functions/function/invocations", stamp: stamp, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(f.done) }()
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", invoke, time.Second)
		if err == nil {
			c.Close()
			return f, nil
		}
		select {
		case <-f.done:
			return nil, fmt.Errorf("aws-lambda-rie for %s exited at start (its output is above)", s.ID)
		case <-ctx.Done():
			f.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			f.Stop()
			return nil, fmt.Errorf("aws-lambda-rie for %s did not listen on %s within 10s", s.ID, invoke)
		}
	}
}

// Stop ends the emulator and the handler's process.
func (f *Function) Stop() { procgroup.Stop(f.cmd, f.done, 5*time.Second) }

// buildTypeScript installs a handler's pinned toolchain when its folder has
// none yet (npm ci, as its README says) and compiles it with its tsc.
func buildTypeScript(ctx context.Context, dir string) error {
	tsc := filepath.Join(dir, "node_modules", ".bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		install := []string{"ci"}
		if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
			install = []string{"install"}
		}
		if err := command(ctx, dir, nil, "npm", append(install, "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline")...); err != nil {
			return err
		}
	}
	return command(ctx, dir, nil, tsc, "-p", ".")
}

// command runs a build step; its error carries the step's output.
func command(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// twoPorts picks two free loopback addresses.
func twoPorts() (string, string, error) {
	var addrs []string
	for i := 0; i < 2; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", err
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs[0], addrs[1], nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

func safeName(s string) string { return unsafeChars.ReplaceAllString(s, "_") }
