package testkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// KinesisEmulator is a running kinesalite on a loopback port (plain HTTP).
type KinesisEmulator struct {
	URL string
	cmd *exec.Cmd
}

// StartKinesis starts the pinned emulator (scripts/kinesis-emulator) for the
// test and stops it when the test ends.
func StartKinesis(tb testing.TB) *KinesisEmulator {
	tb.Helper()
	k, err := NewKinesis()
	if err != nil {
		tb.Fatalf("start Kinesis emulator: %v", err)
	}
	tb.Cleanup(k.Stop)
	return k
}

// NewKinesis starts the emulator; the caller must Stop it. The emulator
// picks its own port and prints it, so there is no race for a free port.
func NewKinesis() (*KinesisEmulator, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "scripts", "kinesis-emulator")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kinesalite")); err != nil {
		return nil, fmt.Errorf("kinesalite is not installed in %s: run scripts/install-deps", dir)
	}
	cmd := exec.Command("node", "serve.js")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node serve.js (is Node.js installed?): %w", err)
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
			return nil, fmt.Errorf("kinesis emulator did not start (first line %q)", line)
		}
		return &KinesisEmulator{URL: "http://127.0.0.1:" + port, cmd: cmd}, nil
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		return nil, fmt.Errorf("kinesis emulator did not report a port within 30s")
	}
}

// Stop ends the emulator.
func (k *KinesisEmulator) Stop() {
	if k.cmd != nil && k.cmd.Process != nil {
		syscall.Kill(-k.cmd.Process.Pid, syscall.SIGTERM)
		k.cmd.Wait()
	}
}

// AWSConfig is an SDK config for a local endpoint: static test credentials,
// us-east-1, and the SDK's default (buildable) HTTP client, so that an
// AWS_CA_BUNDLE in the environment keeps working.
func AWSConfig(tb testing.TB) aws.Config {
	tb.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
	)
	if err != nil {
		tb.Fatalf("load AWS config: %v", err)
	}
	return cfg
}

// KinesisClient is a real SDK client pointed at url.
func KinesisClient(tb testing.TB, url string) *kinesis.Client {
	return kinesis.NewFromConfig(AWSConfig(tb), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(url) })
}

// CreateStream creates a stream with the given shard count and waits until
// it is ACTIVE.
func CreateStream(tb testing.TB, c *kinesis.Client, name string, shards int32) {
	tb.Helper()
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		tb.Fatalf("create stream %s: %v", name, err)
	}
	w := kinesis.NewStreamExistsWaiter(c, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 30*time.Second); err != nil {
		tb.Fatalf("wait for stream %s: %v", name, err)
	}
}

// ReadAll reads every record currently in the stream, shard by shard from
// TRIM_HORIZON, in per-shard order.
func ReadAll(tb testing.TB, c *kinesis.Client, stream string) map[string][]types.Record {
	tb.Helper()
	ctx := context.Background()
	out := map[string][]types.Record{}
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		tb.Fatalf("list shards: %v", err)
	}
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			tb.Fatalf("shard iterator: %v", err)
		}
		iter := it.ShardIterator
		for iter != nil {
			res, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
			if err != nil {
				tb.Fatalf("get records: %v", err)
			}
			out[*sh.ShardId] = append(out[*sh.ShardId], res.Records...)
			if len(res.Records) == 0 || res.MillisBehindLatest != nil && *res.MillisBehindLatest == 0 && len(res.Records) < 10000 {
				break
			}
			iter = res.NextShardIterator
		}
	}
	return out
}

// RepoRoot is the directory holding go.mod, found by walking up from the
// working directory (go test runs in the package directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
