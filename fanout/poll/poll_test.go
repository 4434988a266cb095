package poll

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap/zaptest"

	"github.com/walbridge/walbridge/shared/backoff"
)

// TestDeliverBisectsAndSkips drives the poller's event-source-mapping loop
// with a function that errors (fails the whole batch) whenever the batch
// holds a poisoned record: the poller must narrow the batch down to that
// record, skip it to the on-failure file after the retry limit, and deliver
// every other record once, in order.
func TestDeliverBisectsAndSkips(t *testing.T) {
	var records []types.Record
	for i := 0; i < 20; i++ {
		records = append(records, types.Record{SequenceNumber: aws.String(fmt.Sprintf("%03d", i)), PartitionKey: aws.String("k"), Data: []byte("x")})
	}
	const poisoned = "013"
	var delivered []string
	var sizes []int
	handle := func(_ context.Context, ev events.KinesisEvent) (events.KinesisEventResponse, string, error) {
		sizes = append(sizes, len(ev.Records))
		for _, r := range ev.Records {
			if r.Kinesis.SequenceNumber == poisoned {
				return events.KinesisEventResponse{}, "", errors.New("function error")
			}
		}
		for _, r := range ev.Records {
			delivered = append(delivered, r.Kinesis.SequenceNumber)
		}
		return events.KinesisEventResponse{}, "", nil
	}
	dir := t.TempDir()
	cp, err := loadCheckpoints(filepath.Join(dir, "cp.json"), "arn:stream")
	if err != nil {
		t.Fatal(err)
	}
	p := &poller{opts: Options{MaxRetries: 3, OnFailure: filepath.Join(dir, "failures.jsonl"), Timeout: time.Second},
		handle: handle, log: zaptest.NewLogger(t), streamARN: "arn:stream", cp: cp, backoff: backoff.Policy{Base: time.Millisecond, Max: time.Millisecond, Equal: true}}
	if err := p.deliver(context.Background(), "shardId-1", records); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range records {
		if s := aws.ToString(r.SequenceNumber); s != poisoned {
			want = append(want, s)
		}
	}
	if strings.Join(delivered, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %v\nwant %v", delivered, want)
	}
	// 20 at once, then halving towards the poisoned record.
	if sizes[0] != 20 || sizes[len(sizes)-1] != 6 || !containsInt(sizes, 1) {
		t.Errorf("batch sizes %v: no bisection down to the poisoned record", sizes)
	}
	failures := readLines(t, p.opts.OnFailure)
	if len(failures) != 1 || failures[0]["startSequenceNumber"] != poisoned || failures[0]["shardId"] != "shardId-1" {
		t.Errorf("on-failure file %v", failures)
	}
	if got := cp.sequence("shardId-1"); got != "019" {
		t.Errorf("checkpoint %q, want 019", got)
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
