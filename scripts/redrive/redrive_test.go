package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/sqstest"
)

// userChange is an update of public.users row id, whose new email is a row
// value the report must not print unless asked.
func userChange(id string, lsn change.LSN, email string) change.Change {
	return change.Change{
		Database: "app", Schema: "public", Table: "users", Op: change.Update, XID: 7,
		CommitLSN: lsn, LSN: lsn - 8, CommitTime: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), Seq: 0,
		Identity: change.IdentityFull,
		Columns: []change.Column{
			{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
			{Name: "email", OID: 25, Type: "text", Base: "text", Kind: change.KindBase},
		},
		New: []change.Value{{Text: id}, {Text: email}},
		Old: []change.Value{{Text: id}, {Text: "old-" + email}},
	}
}

// put is one record of the test stream.
type put struct {
	key  string
	data []byte
	seq  string
}

// world is the emulator, the stream, the fake queue and the SDK's standard
// chain pointed at them, with one log for the calls redrive makes to both.
type world struct {
	kin       *kinesis.Client
	streamArn string
	sqs       *sqstest.Server
	queue     string
	log       *awstest.Log
	recs      []put // in stream order
}

func newWorld(t *testing.T) *world {
	t.Helper()
	k := kinesistest.StartEmulator(t)
	kc := kinesistest.Client(t, k.URL)
	kinesistest.CreateStream(t, kc, "changes", 1)
	sum, err := kc.DescribeStreamSummary(context.Background(), &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("changes")})
	if err != nil {
		t.Fatal(err)
	}
	log := &awstest.Log{}
	q := sqstest.Start(t, sqstest.Options{Log: log})
	awstest.IsolateEnv(t, map[string]string{
		"AWS_ENDPOINT_URL_SQS":     q.URL,
		"AWS_ENDPOINT_URL_KINESIS": k.URL,
		"AWS_CA_BUNDLE":            "", // plain HTTP on loopback; and the SDK can't add a bundle to the Recorder
	})
	return &world{kin: kc, streamArn: aws.ToString(sum.StreamDescriptionSummary.StreamARN), sqs: q, queue: q.CreateQueue("fanout-dlq"), log: log}
}

// put writes records one by one, as capture would, and keeps their
// sequence numbers.
func (w *world) put(t *testing.T, recs ...put) []put {
	t.Helper()
	for i := range recs {
		out, err := w.kin.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("changes"), PartitionKey: aws.String(recs[i].key), Data: recs[i].data})
		if err != nil {
			t.Fatal(err)
		}
		recs[i].seq = aws.ToString(out.SequenceNumber)
		w.recs = append(w.recs, recs[i])
	}
	return recs
}

func record(c change.Change) put {
	return put{key: change.PartitionKey(&c), data: change.Encode(nil, &change.Record{Changes: []change.Change{c}})}
}

// failure is the failure record Lambda sends for a batch from first to last.
func (w *world) failure(first, last put, size int) string {
	return fmt.Sprintf(`{"requestContext":{"requestId":"c9b8fa9f-5a7f-4e1c-af9c-0c604cde93a5","functionArn":"arn:aws:lambda:us-east-1:000000000000:function:walbridge-fanout","condition":"RetryAttemptsExhausted","approximateInvokeCount":11},`+
		`"responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},"version":"1.0","timestamp":"2026-11-20T10:05:00.000Z",`+
		`"KinesisBatchInfo":{"shardId":"shardId-000000000000","startSequenceNumber":%q,"endSequenceNumber":%q,"approximateArrivalOfFirstRecord":"2026-11-20T10:00:01.000Z","approximateArrivalOfLastRecord":"2026-11-20T10:00:02.000Z","batchSize":%d,"streamArn":%q}}`,
		first.seq, last.seq, size, w.streamArn)
}

func (w *world) redrive(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	rec := awstest.Recorder{Log: w.log, Service: "kinesis", TargetPrefix: "Kinesis_20131202.", Next: awshttp.NewBuildableClient()}
	code := run(context.Background(), append([]string{"--queue", w.queue, "--wait", "0s"}, args...), &out, &errOut, config.WithHTTPClient(rec))
	return code, out.String(), errOut.String()
}

// scenario fills the stream and the queue: a batch of three records (two
// of row 1, one of row 4) that fanout gave up on, and a batch of one
// malformed record, between records that were delivered.
func scenario(t *testing.T) (w *world, good, bad []put, goodID, badID string) {
	w = newWorld(t)
	w.put(t, record(userChange("0", 0x1000, "zero@example.com")))
	good = w.put(t,
		record(userChange("1", 0x2000, "ada@example.com")),
		record(userChange("4", 0x3000, "four@example.com")),
		record(userChange("1", 0x4000, "ada@analytical.example")),
	)
	bad = w.put(t, put{key: "public.users/2", data: []byte(`{"v":1,"changes":[{"op":"update","table":"users"`)})
	w.put(t, record(userChange("3", 0x5000, "three@example.com")))
	goodID = w.sqs.Send(w.queue, w.failure(good[0], good[2], 3))
	badID = w.sqs.Send(w.queue, w.failure(bad[0], bad[0], 1))
	return w, good, bad, goodID, badID
}

func (w *world) fetchLines(good, bad []put) []string {
	return []string{
		"sqs ReceiveMessage MaxNumberOfMessages=10 QueueUrl=" + w.queue + " VisibilityTimeout=600",
		"sqs ReceiveMessage MaxNumberOfMessages=10 QueueUrl=" + w.queue + " VisibilityTimeout=600",
		"kinesis GetShardIterator ShardId=shardId-000000000000 ShardIteratorType=AT_SEQUENCE_NUMBER StartingSequenceNumber=" + good[0].seq + " StreamName=changes",
		"kinesis GetRecords Limit=1000",
		"kinesis GetShardIterator ShardId=shardId-000000000000 ShardIteratorType=AT_SEQUENCE_NUMBER StartingSequenceNumber=" + bad[0].seq + " StreamName=changes",
		"kinesis GetRecords Limit=1000",
	}
}

func checkLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestShow(t *testing.T) {
	w, good, bad, goodID, badID := scenario(t)
	code, stdout, stderr := w.redrive(t, "--show")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	want := append(w.fetchLines(good, bad),
		"sqs ChangeMessageVisibility QueueUrl="+w.queue+" ReceiptHandle="+goodID+"#1 VisibilityTimeout=0",
		"sqs ChangeMessageVisibility QueueUrl="+w.queue+" ReceiptHandle="+badID+"#1 VisibilityTimeout=0",
	)
	checkLines(t, w.log.Lines(), want)

	for _, s := range []string{
		"message " + goodID + ": RetryAttemptsExhausted after 11 invocations",
		"function arn:aws:lambda:us-east-1:000000000000:function:walbridge-fanout: status 200, function error Unhandled",
		"batch of 3 on " + w.streamArn + " shardId-000000000000: sequence numbers " + good[0].seq + " to " + good[2].seq,
		"record " + good[0].seq + " key public.users/1 arrived ",
		"decodes (1 change): public.users update lsn 0/2000 seq 0",
		"record " + good[1].seq + " key public.users/4 ",
		"record " + good[2].seq + " key public.users/1 ",
		"record " + bad[0].seq + " key public.users/2 ",
		"DECODE ERROR: decode change record: unexpected end of JSON input",
	} {
		if !strings.Contains(stdout, s) {
			t.Errorf("report lacks %q:\n%s", s, stdout)
		}
	}
	for _, rec := range w.recs {
		if rec.seq != good[0].seq && rec.seq != good[1].seq && rec.seq != good[2].seq && rec.seq != bad[0].seq && strings.Contains(stdout, rec.seq) {
			t.Errorf("report shows record %s outside the batches", rec.seq)
		}
	}
	if strings.Contains(stdout, "example.com") || strings.Contains(stdout, "analytical") {
		t.Errorf("report shows row values without --show-values:\n%s", stdout)
	}
	for _, m := range w.sqs.Messages(w.queue) {
		if m.InFlight {
			t.Errorf("message %s still hidden after --show", m.MessageID)
		}
	}

	w.log.Reset()
	code, stdout, _ = w.redrive(t, "--show", "--show-values", "--max", "1")
	if code != exitOK || !strings.Contains(stdout, `"ada@example.com"`) {
		t.Errorf("--show-values: exit %d, report:\n%s", code, stdout)
	}
	if got := w.log.Lines(); got[0] != "sqs ReceiveMessage MaxNumberOfMessages=1 QueueUrl="+w.queue+" VisibilityTimeout=600" || len(got) != 4 {
		t.Errorf("--max 1 calls:\n%s", strings.Join(got, "\n"))
	}
}

func TestExport(t *testing.T) {
	w, good, bad, goodID, badID := scenario(t)
	file := filepath.Join(t.TempDir(), "dead.jsonl")
	code, stdout, stderr := w.redrive(t, "--export", file)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	checkLines(t, w.log.Lines(), append(w.fetchLines(good, bad),
		"sqs ChangeMessageVisibility QueueUrl="+w.queue+" ReceiptHandle="+goodID+"#1 VisibilityTimeout=0",
		"sqs ChangeMessageVisibility QueueUrl="+w.queue+" ReceiptHandle="+badID+"#1 VisibilityTimeout=0",
	))

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st, _ := f.Stat(); st.Mode().Perm() != 0o600 {
		t.Errorf("export file mode %v, want 0600", st.Mode().Perm())
	}
	var lines []exportLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	want := append(append([]put(nil), good...), bad...)
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i, l := range lines {
		if l.Seq != want[i].seq || l.PartitionKey != want[i].key || !bytes.Equal(l.Data, want[i].data) || l.Shard != "shardId-000000000000" || l.Stream != w.streamArn {
			t.Errorf("line %d = %+v, want seq %s key %s", i, l, want[i].seq, want[i].key)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Arrival); err != nil {
			t.Errorf("line %d arrival %q: %v", i, l.Arrival, err)
		}
		if (l.DecodeError != "") != (i == 3) {
			t.Errorf("line %d decodeError %q", i, l.DecodeError)
		}
	}
	if n := len(w.sqs.Messages(w.queue)); n != 2 {
		t.Errorf("%d messages left after export, want 2", n)
	}
	if code, _, stderr := w.redrive(t, "--export", file); code != exitError || !strings.Contains(stderr, "exists") {
		t.Errorf("export over an existing file: exit %d, %s", code, stderr)
	}
}

func TestRepublish(t *testing.T) {
	w, good, bad, goodID, badID := scenario(t)
	code, stdout, stderr := w.redrive(t, "--republish")
	if code != exitError {
		t.Fatalf("exit %d with an undecodable batch left, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	checkLines(t, w.log.Lines(), append(w.fetchLines(good, bad),
		// The first record of each key, then the next record of row 1 once
		// its first is in.
		"kinesis PutRecords Records.0.PartitionKey=public.users/1 Records.1.PartitionKey=public.users/4 StreamName=changes",
		"kinesis PutRecords Records.0.PartitionKey=public.users/1 StreamName=changes",
		"sqs DeleteMessage QueueUrl="+w.queue+" ReceiptHandle="+goodID+"#1",
		"sqs ChangeMessageVisibility QueueUrl="+w.queue+" ReceiptHandle="+badID+"#1 VisibilityTimeout=0",
	))
	for _, s := range []string{"per-row order is NOT preserved", "detail.lsn + detail.seq", "don't decode with this build"} {
		if !strings.Contains(stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, stderr)
		}
	}
	if left := w.sqs.Messages(w.queue); len(left) != 1 || left[0].MessageID != badID || left[0].InFlight {
		t.Errorf("left in the queue: %+v, want the malformed batch's message, visible", left)
	}
	stream := kinesistest.ReadAll(t, w.kin, "changes")["shardId-000000000000"]
	tail := stream[len(w.recs):]
	if len(tail) != 3 {
		t.Fatalf("%d records added to the stream, want 3", len(tail))
	}
	for i, want := range []put{good[0], good[1], good[2]} {
		if aws.ToString(tail[i].PartitionKey) != want.key || !bytes.Equal(tail[i].Data, want.data) {
			t.Errorf("added record %d: key %s, want %s (%s)", i, aws.ToString(tail[i].PartitionKey), want.key, tail[i].Data)
		}
	}

	// Asked to, it puts the malformed record back too.
	w.log.Reset()
	code, stdout, stderr = w.redrive(t, "--republish", "--include-undecodable")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	checkLines(t, w.log.Lines(), []string{
		"sqs ReceiveMessage MaxNumberOfMessages=10 QueueUrl=" + w.queue + " VisibilityTimeout=600",
		"sqs ReceiveMessage MaxNumberOfMessages=10 QueueUrl=" + w.queue + " VisibilityTimeout=600",
		"kinesis GetShardIterator ShardId=shardId-000000000000 ShardIteratorType=AT_SEQUENCE_NUMBER StartingSequenceNumber=" + bad[0].seq + " StreamName=changes",
		"kinesis GetRecords Limit=1000",
		"kinesis PutRecords Records.0.PartitionKey=public.users/2 StreamName=changes",
		"sqs DeleteMessage QueueUrl=" + w.queue + " ReceiptHandle=" + badID + "#2",
	})
	if left := w.sqs.Messages(w.queue); len(left) != 0 {
		t.Errorf("left in the queue: %+v", left)
	}
	stream = kinesistest.ReadAll(t, w.kin, "changes")["shardId-000000000000"]
	if last := stream[len(stream)-1]; !bytes.Equal(last.Data, bad[0].data) {
		t.Errorf("last record %s, want the malformed one", last.Data)
	}
}

func TestLeavesOtherMessages(t *testing.T) {
	w := newWorld(t)
	ddb := w.sqs.Send(w.queue, `{"requestContext":{"condition":"RetryAttemptsExhausted"},"version":"1.0","DDBStreamBatchInfo":{"shardId":"shardId-00000001","startSequenceNumber":"1","endSequenceNumber":"1","batchSize":1,"streamArn":"arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x"}}`)
	other := w.sqs.Send(w.queue, strings.ReplaceAll(w.failure(put{seq: "1"}, put{seq: "2"}, 2), w.streamArn, "arn:aws:kinesis:us-east-1:000000000000:stream/other"))
	code, stdout, stderr := w.redrive(t, "--republish", "--stream", w.streamArn)
	if code != exitError || !strings.Contains(stderr, "1 of 2 messages could not be handled") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, s := range []string{"message " + ddb + ": PROBLEM: not a Kinesis failure record", "message " + other + ": skipped: a failure record of another stream"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("report lacks %q:\n%s", s, stdout)
		}
	}
	for _, l := range w.log.Lines() {
		if strings.HasPrefix(l, "kinesis ") || strings.HasPrefix(l, "sqs DeleteMessage") {
			t.Errorf("unexpected call %s", l)
		}
	}
	if n := len(w.sqs.Messages(w.queue)); n != 2 {
		t.Errorf("%d messages left, want 2", n)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--show"},
		{"--queue", "q"},
		{"--queue", "q", "--show", "--republish"},
		{"--queue", "q", "--show", "--include-undecodable"},
		{"--queue", "q", "--show", "--wait", "30s"},
		{"--queue", "q", "--show", "extra"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != exitUsage {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}

func TestNextRequestOneRecordPerKey(t *testing.T) {
	recs := []*streamRecord{{PartitionKey: "a"}, {PartitionKey: "a"}, {PartitionKey: "b"}, {PartitionKey: "c"}, {PartitionKey: "b"}}
	if got := nextRequest(recs, []int{0, 1, 2, 3, 4}); fmt.Sprint(got) != "[0 2 3]" {
		t.Errorf("first request %v, want [0 2 3]", got)
	}
	if got := nextRequest(recs, []int{1, 4}); fmt.Sprint(got) != "[1 4]" {
		t.Errorf("second request %v, want [1 4]", got)
	}
}

func TestSeqLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"9", "10", true},
		{"10", "9", false},
		{"49590338271490256608559692538361571095921575989136588898", "49590338271490256608559692538361571095921575989136588899", true},
		{"5", "5", false},
	}
	for _, tt := range tests {
		if got := seqLess(tt.a, tt.b); got != tt.want {
			t.Errorf("seqLess(%s, %s) = %v", tt.a, tt.b, got)
		}
	}
}

// TestPutterKeepsKeyOrderThroughThrottling puts records back through an
// endpoint that throttles a third of the entries: every key's records must
// still land in their original order.
func TestPutterKeepsKeyOrderThroughThrottling(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 2, ThrottleFraction: 0.3, Seed: 7})
	p := putter{api: kinesistest.Client(t, f.URL), maxAttempts: 50, sleep: func(context.Context, time.Duration) error { return nil }}
	var recs []*streamRecord
	for i := range 60 {
		recs = append(recs, &streamRecord{PartitionKey: fmt.Sprintf("public.users/%d", i%5), Data: []byte(fmt.Sprint(i))})
	}
	acked := map[int]bool{}
	if err := p.put(context.Background(), "changes", recs, func(i int) {
		if acked[i] {
			t.Errorf("record %d acknowledged twice", i)
		}
		acked[i] = true
	}); err != nil {
		t.Fatal(err)
	}
	if len(acked) != len(recs) {
		t.Errorf("%d of %d records acknowledged", len(acked), len(recs))
	}
	if f.Stats().Throttled == 0 {
		t.Fatal("nothing was throttled; the test proves nothing")
	}
	for key, got := range f.RecordsByKey() {
		last := -1
		for _, r := range got {
			var n int
			fmt.Sscan(string(r.Data), &n)
			if n <= last {
				t.Errorf("%s: record %d after %d", key, n, last)
			}
			last = n
		}
		if len(got) != 12 {
			t.Errorf("%s: %d records, want 12", key, len(got))
		}
	}
}
