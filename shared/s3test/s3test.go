// Package s3test runs the S3 stand-in walbridge's tests use with the real
// aws-sdk-go-v2 s3 client: s3rver, an S3-protocol server pinned in
// scripts/kinesis-emulator (the project's local stand-ins), on a loopback
// port with its objects in a folder of the test's. Stop and Start again make
// an S3 outage: the objects stay, and the server comes back on its port.
package s3test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/standin"
)

// Server is a running (or stopped) s3rver.
type Server struct {
	// URL is the endpoint (path-style, plain HTTP).
	URL     string
	port    string
	dir     string
	buckets []string
	p       *standin.Process
}

// Start runs s3rver for the test with the given buckets and stops it when
// the test ends.
func Start(tb testing.TB, buckets ...string) *Server {
	tb.Helper()
	s := &Server{dir: tb.TempDir(), buckets: buckets, port: "0"}
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
	p, err := standin.Start("s3rver", append([]string{"s3.js", s.port, s.dir}, s.buckets...)...)
	if err != nil {
		return err
	}
	s.p, s.port, s.URL = p, p.Port, "http://127.0.0.1:"+p.Port
	return nil
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
	if s.p != nil {
		s.p.Stop()
		s.p = nil
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
