// Package kinesistest holds the two Kinesis endpoints walbridge's tests use
// with the real aws-sdk-go-v2 kinesis client: the pinned emulator
// (kinesalite, scripts/kinesis-emulator; the whole API, for end-to-end
// tests), and Fake, an in-process PutRecords and DescribeStreamSummary
// endpoint that validates like AWS and injects what AWS does under load
// (throttled entries, failed requests, held keys, lost answers), for the
// writer's ordering and retry tests and for benchmarks.
//
// Size: about 720 lines, most of them Fake's validation and fault injection.
package kinesistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/standin"
)

// Emulator is a running kinesalite on a loopback port (plain HTTP).
type Emulator struct {
	URL string
	p   *standin.Process
}

// StartEmulator starts the pinned emulator (scripts/kinesis-emulator) for the
// test and stops it when the test ends.
func StartEmulator(tb testing.TB) *Emulator {
	tb.Helper()
	k, err := NewEmulator()
	if err != nil {
		tb.Fatalf("start Kinesis emulator: %v", err)
	}
	tb.Cleanup(k.Stop)
	return k
}

// NewEmulator starts the emulator; the caller must Stop it. The emulator
// picks its own port and prints it, so there is no race for a free port.
func NewEmulator() (*Emulator, error) {
	p, err := standin.Start("kinesalite", "serve.js")
	if err != nil {
		return nil, fmt.Errorf("kinesis emulator: %w", err)
	}
	return &Emulator{URL: "http://127.0.0.1:" + p.Port, p: p}, nil
}

// Stop ends the emulator.
func (k *Emulator) Stop() {
	if k.p != nil {
		k.p.Stop()
	}
}

// Client is a real SDK client pointed at url.
func Client(tb testing.TB, url string) *kinesis.Client {
	return kinesis.NewFromConfig(awstest.Config(tb), func(o *kinesis.Options) { o.BaseEndpoint = aws.String(url) })
}

// CreateStream creates a stream with the given shard count and waits until
// it is ACTIVE.
func CreateStream(tb testing.TB, c *kinesis.Client, name string, shards int32) {
	tb.Helper()
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		tb.Fatalf("create stream %s: %v", name, err)
	}
	WaitActive(tb, c, name)
}

// WaitActive waits until the stream is ACTIVE (after its creation, or a
// split or merge of its shards).
func WaitActive(tb testing.TB, c *kinesis.Client, name string) {
	tb.Helper()
	w := kinesis.NewStreamExistsWaiter(c, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay = 10 * time.Millisecond
		o.MaxDelay = 100 * time.Millisecond
	})
	if err := w.Wait(context.Background(), &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 30*time.Second); err != nil {
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
