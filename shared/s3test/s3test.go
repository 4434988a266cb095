// Package s3test runs the S3 stand-in walbridge's tests use with the real
// aws-sdk-go-v2 s3 client: s3rver, an S3-protocol server pinned in
// scripts/kinesis-emulator (the project's local stand-ins), on a loopback
// port with its objects in a folder of the test's. Stop and Start again make
// an S3 outage: the objects stay, and the server comes back on its port.
package s3test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/repo"
)

// Server is a running (or stopped) s3rver.
type Server struct {
	// URL is the endpoint (path-style, plain HTTP).
	URL     string
	port    int
	dir     string
	buckets []string
	cmd     *exec.Cmd
}

// Start runs s3rver for the test with the given buckets and stops it when
// the test ends.
func Start(tb testing.TB, buckets ...string) *Server {
	tb.Helper()
	s := &Server{dir: tb.TempDir(), buckets: buckets}
	if err := s.start(); err != nil {
		tb.Fatalf("start the S3 stand-in: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Restart starts a stopped server again on its port, with its objects.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("restart the S3 stand-in: %v", err)
	}
}

func (s *Server) start() error {
	root, err := repo.Root()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "scripts", "kinesis-emulator")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "s3rver")); err != nil {
		return fmt.Errorf("s3rver is not installed in %s: run scripts/install-deps", dir)
	}
	cmd := exec.Command("node", append([]string{"s3.js", strconv.Itoa(s.port), s.dir}, s.buckets...)...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node s3.js (is Node.js installed?): %w", err)
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
	select {
	case line, ok := <-lines:
		port, found := strings.CutPrefix(line, "listening ")
		if !ok || !found {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			return fmt.Errorf("s3 stand-in did not start (first line %q)", line)
		}
		s.port, _ = strconv.Atoi(port)
		s.URL, s.cmd = "http://127.0.0.1:"+port, cmd
		return nil
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		return fmt.Errorf("s3 stand-in did not report a port within 30s")
	}
}

// Objects counts the objects in a bucket, from the server's folder (no
// request: it answers while the server is busy or stopped).
func (s *Server) Objects(bucket string) int {
	n := 0
	filepath.WalkDir(filepath.Join(s.dir, bucket), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, "._S3rver_object") {
			n++
		}
		return nil
	})
	return n
}

// Stop ends the server; its objects stay for Restart.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		s.cmd.Wait()
		s.cmd = nil
	}
}

// AccessKey is the only access key (and secret) the server accepts; it
// checks signatures made with it only for their form.
const AccessKey = "S3RVER"

// Env is what points a process's SDK at the server: the endpoint and the
// server's credentials (which the other stand-ins accept too).
func (s *Server) Env() []string {
	return []string{"AWS_ENDPOINT_URL_S3=" + s.URL, "AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + AccessKey}
}

// Client is a real SDK client pointed at url (path-style addressing, as the
// server has no virtual-host names).
func Client(tb testing.TB, url string) *s3.Client {
	cfg := awstest.Config(tb)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(AccessKey, AccessKey, "")
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(url)
		o.UsePathStyle = true
		// The server sends no checksums; real S3 does.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}
