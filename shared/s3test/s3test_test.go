package s3test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestRoundTripAcrossARestart: an object put through the real SDK client
// reads back the same after the server was stopped and started again, and
// nothing answers while it is stopped.
func TestRoundTripAcrossARestart(t *testing.T) {
	srv := Start(t, "values")
	c := Client(t, srv.URL)
	ctx := context.Background()
	body := strings.Repeat("é", 1<<20)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("values"), Key: aws.String("a/b"), Body: strings.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	if n := srv.Objects("values"); n != 1 {
		t.Errorf("Objects = %d, want 1", n)
	}
	srv.Stop()
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("values"), Key: aws.String("a/b")}); err == nil {
		t.Fatal("a stopped server answered")
	}
	srv.Restart(t)
	out, err := Client(t, srv.URL).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("values"), Key: aws.String("a/b")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	if string(got) != body {
		t.Errorf("read back %d bytes, want the %d put", len(got), len(body))
	}
}
