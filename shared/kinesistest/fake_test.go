package kinesistest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/shardmap"
)

// noRetryClient is a real SDK client for url that does not retry, so each
// call is one request the fake sees.
func noRetryClient(t *testing.T, url string) *kinesis.Client {
	return kinesis.NewFromConfig(awstest.Config(t), func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(url)
		o.RetryMaxAttempts = 1
	})
}

func entries(n, size int, key string) []types.PutRecordsRequestEntry {
	out := make([]types.PutRecordsRequestEntry, n)
	for i := range out {
		out[i] = types.PutRecordsRequestEntry{Data: make([]byte, size), PartitionKey: aws.String(key)}
	}
	return out
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestFakeDescribeStreamSummary(t *testing.T) {
	f := StartFake(t, FakeOptions{
		Stream: "s1", Mode: types.StreamModeOnDemand, Distribution: types.RecordDistributionStrategyAuto,
		MaxRecordSizeInKiB: 2048, Status: types.StreamStatusUpdating,
	})
	c := noRetryClient(t, f.URL)
	ctx := context.Background()
	for _, in := range []*kinesis.DescribeStreamSummaryInput{{StreamName: aws.String("s1")}, {StreamARN: aws.String(f.ARN())}} {
		out, err := c.DescribeStreamSummary(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		s := out.StreamDescriptionSummary
		if aws.ToString(s.StreamName) != "s1" || s.StreamStatus != types.StreamStatusUpdating ||
			s.StreamModeDetails == nil || s.StreamModeDetails.StreamMode != types.StreamModeOnDemand ||
			s.RecordDistributionStrategy != types.RecordDistributionStrategyAuto || aws.ToInt32(s.MaxRecordSizeInKiB) != 2048 {
			t.Fatalf("summary = %+v", s)
		}
	}
	_, err := c.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("nope")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("unknown stream: err = %v, want ResourceNotFoundException", err)
	}
}

func TestFakePutRecordsLogsInOrder(t *testing.T) {
	f := StartFake(t, FakeOptions{Shards: 4})
	c := noRetryClient(t, f.URL)
	in := &kinesis.PutRecordsInput{StreamName: aws.String("fake")}
	for i, k := range []string{"a", "b", "a", "c", "a"} {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{Data: []byte{byte('0' + i)}, PartitionKey: aws.String(k)})
	}
	out, err := c.PutRecords(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt32(out.FailedRecordCount) != 0 || len(out.Records) != 5 || out.Records[0].SequenceNumber == nil || out.Records[0].ShardId == nil {
		t.Fatalf("output = %+v", out)
	}
	var got string
	for _, r := range f.RecordsByKey()["a"] {
		got += string(r.Data)
	}
	if got != "024" {
		t.Fatalf("key a data = %q, want 024", got)
	}
	if st := f.Stats(); st.Accepted != 5 || st.PutRecordsRequests != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestFakeValidates(t *testing.T) {
	f := StartFake(t, FakeOptions{})
	c := noRetryClient(t, f.URL)
	ctx := context.Background()
	tests := []struct {
		name    string
		records []types.PutRecordsRequestEntry
		code    string
	}{
		{"501 records", entries(501, 1, "k"), "ValidationException"},
		{"record over 1 MiB with its key", entries(1, 1<<20, "k"), "ValidationException"},
		{"over 5 MiB", entries(6, 1<<20-10, "k"), "InvalidArgumentException"},
		{"key of 257 characters", entries(1, 1, strings.Repeat("é", 257)), "ValidationException"},
		{"empty key", entries(1, 1, ""), "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("fake"), Records: tt.records})
			if apiCode(err) != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
		})
	}
	// Exactly at the limits is fine: 256 characters (not bytes), 1 MiB with key.
	ok := append(entries(1, 1, strings.Repeat("é", 256)), entries(1, 1<<20-1, "k")...)
	if _, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("fake"), Records: ok}); err != nil {
		t.Fatalf("records at the limits: %v", err)
	}
	if f.Stats().Accepted != 2 {
		t.Fatalf("stats = %+v", f.Stats())
	}
}

func TestFakeFailures(t *testing.T) {
	f := StartFake(t, FakeOptions{ThrottleFraction: 0.3, ServerErrorFraction: 0.2, ThrottleRequestFraction: 0.1})
	c := noRetryClient(t, f.URL)
	var codes = map[string]int{}
	for range 50 {
		out, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("fake"), Records: entries(100, 10, "k")})
		if err != nil {
			code := apiCode(err)
			if code == "" {
				t.Logf("request error without an API code: %v", err)
			}
			codes[code]++
			continue
		}
		for _, r := range out.Records {
			if r.ErrorCode != nil {
				codes[*r.ErrorCode]++
			}
		}
	}
	st := f.Stats()
	if codes["InternalFailureException"] == 0 || codes["ThrottlingException"] == 0 || codes["ProvisionedThroughputExceededException"] == 0 {
		t.Fatalf("codes = %v", codes)
	}
	// A request whose answer the client lost (a transport error, no API
	// code: aws-sdk-go-v2 issue 1825 shows it on loaded machines) was still
	// decided by the fake, so its throttled entries are the fake's to count.
	lost := st.Throttled - codes["ProvisionedThroughputExceededException"]
	if lost < 0 || lost > 100*codes[""] || st.Accepted+st.Throttled != 100*(50-st.RequestErrors) {
		t.Fatalf("stats = %+v, codes = %v", st, codes)
	}
	if frac := float64(st.Throttled) / float64(st.Accepted+st.Throttled); frac < 0.25 || frac > 0.35 {
		t.Fatalf("throttled fraction %.2f, want about 0.3", frac)
	}
}

func TestFakeHold(t *testing.T) {
	f := StartFake(t, FakeOptions{})
	c := noRetryClient(t, f.URL)
	release := f.Hold("slow")
	done := make(chan error, 1)
	go func() {
		_, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("fake"), Records: entries(1, 1, "slow")})
		done <- err
	}()
	if _, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("fake"), Records: entries(1, 1, "fast")}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("held request finished early: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if n := len(f.Records()); n != 1 {
		t.Fatalf("%d records accepted while held, want 1", n)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(f.Records()); n != 2 {
		t.Fatalf("%d records after release, want 2", n)
	}
}

func TestParsePutRecords(t *testing.T) {
	body := ` { "Unknown": {"a": [1, 2.5e3, true, null, {"b": "c\"}"}]},
	  "StreamName" : "s",
	  "Records": [ {"Data": "aGk=", "ExplicitHashKey": "12", "PartitionKey": "k\"\\\/\u00e9"},
	               {"PartitionKey": "x", "Data": ""} ] } `
	var in fakePutRecordsInput
	if err := parsePutRecords([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	if in.StreamName != "s" || len(in.Records) != 2 || string(in.Records[0].data) != "aGk=" || in.Records[0].dataLen() != 2 ||
		in.Records[0].PartitionKey != `k"\/é` || in.Records[1].PartitionKey != "x" || in.Records[1].dataLen() != 0 {
		t.Fatalf("parsed %+v", in)
	}
	for _, bad := range []string{``, `{`, `{"Records": [}`, `{"StreamName": "s}`, `{"a": tru}`, `{} x`} {
		if err := parsePutRecords([]byte(bad), &fakePutRecordsInput{}); err == nil {
			t.Errorf("parsed %q without an error", bad)
		}
	}
}

func TestFakeRoundTripsAwkwardKeys(t *testing.T) {
	f := StartFake(t, FakeOptions{})
	c := noRetryClient(t, f.URL)
	keys := []string{`quote"back\slash/`, "tab\tnewline\n", "é日本", "\u2028"}
	in := &kinesis.PutRecordsInput{StreamName: aws.String("fake")}
	for _, k := range keys {
		in.Records = append(in.Records, types.PutRecordsRequestEntry{Data: []byte(k + "!"), PartitionKey: aws.String(k)})
	}
	if _, err := c.PutRecords(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	for i, r := range f.Records() {
		if r.PartitionKey != keys[i] || string(r.Data) != keys[i]+"!" {
			t.Errorf("record %d = %q %q", i, r.PartitionKey, r.Data)
		}
	}
}

// TestFakeReshardAndRouting splits and merges the fake's shards and checks
// that ListShards, as shardmap reads it, predicts where every record lands.
func TestFakeReshardAndRouting(t *testing.T) {
	f := StartFake(t, FakeOptions{Stream: "s", Shards: 2})
	c := noRetryClient(t, f.URL)
	ctx := context.Background()
	put := func(m *shardmap.Map) {
		t.Helper()
		var entries []types.PutRecordsRequestEntry
		var want []string
		for i := range 50 {
			key := fmt.Sprintf("k%d", i)
			entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(key), Data: []byte("x")})
			want = append(want, m.Owner(shardmap.KeyHash([]byte(key))).ID)
		}
		h := m.Open()[len(m.Open())-1].Range.Start
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String("k0"), ExplicitHashKey: aws.String(h.String()), Data: []byte("x")})
		want = append(want, m.Open()[len(m.Open())-1].ID)
		out, err := c.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range out.Records {
			if got := aws.ToString(r.ShardId); got != want[i] {
				t.Errorf("entry %d landed on %s, the map says %s", i, got, want[i])
			}
		}
	}
	list := func(open int) *shardmap.Map {
		t.Helper()
		m, err := shardmap.List(ctx, c, "s")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(m.Open()); got != open || !slices.Equal(f.OpenShards(), openIDs(m)) {
			t.Fatalf("%d open shards %v, want %d (fake: %v)", got, openIDs(m), open, f.OpenShards())
		}
		return m
	}
	m := list(2)
	put(m)
	first := m.Open()[0]
	mid := first.Range.Start
	mid.Hi += 1 << 40
	low, high, err := f.Split(first.ID, mid)
	if err != nil {
		t.Fatal(err)
	}
	m = list(3)
	put(m)
	if _, _, err := f.Split(low, shardmap.Hash{Hi: ^uint64(0)}); err == nil {
		t.Error("a split point outside the shard was accepted")
	}
	if _, err := f.Merge(low, high); err != nil {
		t.Fatal(err)
	}
	m = list(2)
	put(m)
	if s, _ := m.Shard(first.ID); s.Open {
		t.Errorf("split parent still open")
	}
}

func openIDs(m *shardmap.Map) []string {
	var ids []string
	for _, s := range m.Open() {
		ids = append(ids, s.ID)
	}
	return ids
}

// TestFakeShardLimits: with ShardLimits, one shard takes a second's burst
// of 1,000 records and throttles the rest, per entry.
func TestFakeShardLimits(t *testing.T) {
	// The counts come from the fake's own books, not from the answers: a
	// connection that breaks while the client reads an answer (seen about
	// twice in a hundred -race runs, with HTTP 200 already received) does
	// not change what the fake decided.
	put := func(c *kinesis.Client, entries []types.PutRecordsRequestEntry) {
		t.Helper()
		_, err := c.PutRecords(context.Background(), &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: entries})
		var re *awshttp.ResponseError
		if err != nil && !(errors.As(err, &re) && re.HTTPStatusCode() == http.StatusOK) {
			t.Fatal(err)
		}
	}
	f := StartFake(t, FakeOptions{Stream: "s", ShardLimits: true})
	c := noRetryClient(t, f.URL)
	for range 3 {
		entries := make([]types.PutRecordsRequestEntry, 500)
		for i := range entries {
			entries[i] = types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprint(i)), Data: []byte("x")}
		}
		put(c, entries)
	}
	st := f.Stats()
	// The bucket refills while the requests run: a few more than 1,000 pass.
	if st.Entries != 1500 || st.Accepted < 1000 || st.Accepted > 1100 || st.Throttled != 1500-st.Accepted {
		t.Errorf("accepted %d, throttled %d of %d in a burst; want about 1,000 of 1,500 accepted", st.Accepted, st.Throttled, st.Entries)
	}
	// Bytes: a 600 KiB record fits the burst once, not twice.
	big := make([]byte, 600<<10)
	f2 := StartFake(t, FakeOptions{Stream: "s", ShardLimits: true})
	put(noRetryClient(t, f2.URL), []types.PutRecordsRequestEntry{{PartitionKey: aws.String("a"), Data: big}, {PartitionKey: aws.String("b"), Data: big}})
	recs := f2.Records()
	if len(recs) != 1 || recs[0].PartitionKey != "a" || f2.Stats().Throttled != 1 {
		t.Errorf("1.2 MiB in one burst: accepted %v, throttled %d; want a accepted, b throttled", recs, f2.Stats().Throttled)
	}
}
