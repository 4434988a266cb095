package putrecords

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"go.uber.org/goleak"

	"github.com/walbridge/walbridge/shared/awstest"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/metrics"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClient is a real SDK client for a fake endpoint with the SDK's own
// retries off, so that every failure the fake injects reaches the writer.
func fakeClient(tb testing.TB, url string) *kinesis.Client {
	return kinesis.NewFromConfig(awstest.Config(tb), func(o *kinesis.Options) {
		o.BaseEndpoint = aws.String(url)
		o.RetryMaxAttempts = 1
	})
}

// newWriter starts a checked writer with fast retries and closes it at the
// end of the test if the test did not.
func newWriter(tb testing.TB, api API, cfg Config) *Writer {
	tb.Helper()
	if cfg.Stream == "" {
		cfg.Stream = "fake"
	}
	if cfg.RetryBase == 0 {
		cfg.RetryBase, cfg.RetryMax = time.Millisecond, 20*time.Millisecond
	}
	w, err := NewWriter(context.Background(), api, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.Close(ctx)
	})
	if err := w.Check(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return w
}

var testColumns = []change.Column{
	{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
	{Name: "body", OID: 25, Type: "text", Base: "text", Kind: change.KindBase},
	{Name: "note", OID: 25, Type: "text", Base: "text", Kind: change.KindBase},
}

// row is an update of public.<table> row id, the seq-th change of the
// transaction committed at commit.
func row(table string, id int, commit change.LSN, seq uint32, body string) change.Change {
	return change.Change{
		Database: "app", Schema: "public", Table: table, Op: change.Update, XID: uint32(commit),
		CommitLSN: commit, LSN: commit - 1000 + change.LSN(seq), CommitTime: time.Now(), Seq: seq,
		Identity: change.IdentityDefault, Columns: testColumns,
		New: []change.Value{{Text: strconv.Itoa(id)}, {Text: body}, {State: change.Null}},
	}
}

// pos identifies a change across replays.
type pos struct {
	commit change.LSN
	seq    uint32
}

// decodeLog decodes every accepted record of the fake, per partition key,
// and checks each record's changes all carry that key.
func decodeLog(t *testing.T, f *kinesistest.Fake) map[string][]change.Change {
	t.Helper()
	out := map[string][]change.Change{}
	for key, recs := range f.RecordsByKey() {
		for _, r := range recs {
			rec, err := change.Decode(r.Data)
			if err != nil {
				t.Fatalf("record under %s: %v", key, err)
			}
			for i := range rec.Changes {
				if k := change.PartitionKey(&rec.Changes[i]); k != key {
					t.Fatalf("change with key %s in a record under %s", k, key)
				}
			}
			out[key] = append(out[key], rec.Changes...)
		}
	}
	return out
}

// checkOrder asserts each key received exactly want[key], in order, after
// dropping repeats of positions already seen (at-least-once redelivery).
func checkOrder(t *testing.T, got map[string][]change.Change, want map[string][]pos) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d keys received, want %d", len(got), len(want))
	}
	dups := 0
	for key, w := range want {
		seen := map[pos]bool{}
		var g []pos
		for _, c := range got[key] {
			p := pos{c.CommitLSN, c.Seq}
			if seen[p] {
				dups++
				continue
			}
			seen[p] = true
			g = append(g, p)
		}
		if len(g) != len(w) {
			t.Errorf("key %s: %d changes, want %d", key, len(g), len(w))
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("key %s: change %d is %v, want %v", key, i, g[i], w[i])
				break
			}
		}
	}
	if dups > 0 {
		t.Errorf("%d changes delivered twice; the writer never re-sends an accepted record", dups)
	}
}

func closeWriter(t *testing.T, w *Writer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOrderPerKeyUnderThrottlingAndServerErrors(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{
		Shards: 4, ThrottleFraction: 0.3, InternalFailureFraction: 0.02,
		ServerErrorFraction: 0.05, ThrottleRequestFraction: 0.03,
	})
	reg := metrics.New()
	w := newWriter(t, fakeClient(t, f.URL), Config{Metrics: reg, Concurrency: 8})
	ctx := context.Background()

	const changes, keys, perTxn = 20000, 200, 10
	want := map[string][]pos{}
	var lastMark change.LSN
	for i := range changes {
		commit := change.LSN(1_000_000 + (i/perTxn)*1000)
		c := row("orders", i*7919%keys, commit, uint32(i%perTxn), "v"+strconv.Itoa(i))
		if err := w.Add(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
		key := change.PartitionKey(&c)
		want[key] = append(want[key], pos{c.CommitLSN, c.Seq})
		if i%perTxn == perTxn-1 {
			if err := w.Mark(ctx, commit); err != nil {
				t.Fatal(err)
			}
			lastMark = commit
		}
	}
	closeWriter(t, w)

	checkOrder(t, decodeLog(t, f), want)
	if got := w.Confirmable(); got != lastMark {
		t.Errorf("Confirmable() = %s, want the last mark %s", got, lastMark)
	}
	st, fs := w.Stats(), f.Stats()
	if st.Changes != changes || st.Throttles == 0 || st.Retries <= st.Throttles {
		t.Errorf("stats = %+v", st)
	}
	if fs.Throttled == 0 || fs.RequestErrors == 0 || fs.InternalFailures == 0 {
		t.Errorf("the fake injected too little: %+v", fs)
	}
	if int64(fs.Accepted) != st.Records {
		t.Errorf("fake accepted %d records, writer counted %d", fs.Accepted, st.Records)
	}
	t.Logf("%d changes in %d records, %d requests; fake %+v", st.Changes, st.Records, st.Batches, fs)
}

func TestOrderWithTheSDKsOwnRetries(t *testing.T) {
	// The default client retries 5xx and throttling itself before the writer
	// sees an error (wrapped in its retry errors); the result is the same.
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{ThrottleFraction: 0.2, ServerErrorFraction: 0.1})
	w := newWriter(t, kinesistest.Client(t, f.URL), Config{})
	ctx := context.Background()
	want := map[string][]pos{}
	for i := range 2000 {
		c := row("t", i%50, change.LSN(100+i), 0, "x")
		if err := w.Add(ctx, &c); err != nil {
			t.Fatal(err)
		}
		want[change.PartitionKey(&c)] = append(want[change.PartitionKey(&c)], pos{c.CommitLSN, 0})
		if err := w.Mark(ctx, c.CommitLSN); err != nil {
			t.Fatal(err)
		}
	}
	closeWriter(t, w)
	checkOrder(t, decodeLog(t, f), want)
	if w.Confirmable() != 100+1999 {
		t.Errorf("Confirmable() = %s", w.Confirmable())
	}
}

func TestConfirmableNeverPassesAnUnacknowledgedRecord(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{})
	ctx := context.Background()
	add := func(id int, lsn change.LSN) {
		t.Helper()
		c := row("t", id, lsn, 0, "x")
		if err := w.Add(ctx, &c); err != nil {
			t.Fatal(err)
		}
		if err := w.Mark(ctx, lsn); err != nil {
			t.Fatal(err)
		}
	}
	held := row("t", 1, 0, 0, "")
	release := f.Hold(change.PartitionKey(&held))
	defer release()

	add(2, 10)
	waitFor(t, "the first mark", func() bool { return w.Confirmable() == 10 })
	add(1, 20) // held by the fake, in a request of its own
	waitFor(t, "the held request", func() bool { return f.Stats().PutRecordsRequests == 2 })
	for id := 3; id < 50; id++ {
		add(id, change.LSN(20+id))
	}
	waitFor(t, "the records after the held one", func() bool { return len(f.Records()) == 48 })
	time.Sleep(20 * time.Millisecond)
	if got := w.Confirmable(); got != 10 {
		t.Fatalf("Confirmable() = %s with the record behind mark 20 unacknowledged, want 10", got)
	}
	// Keepalive marks with nothing new added are not confirmable either,
	// and they do not pile up while the record is stuck.
	w.mu.Lock()
	segs := w.cp.Open()
	w.mu.Unlock()
	for lsn := change.LSN(901); lsn <= 1000; lsn++ {
		if err := w.Mark(ctx, lsn); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.Confirmable(); got != 10 {
		t.Fatalf("Confirmable() = %s after keepalive marks, want 10", got)
	}
	w.mu.Lock()
	if w.cp.Open() != segs {
		t.Errorf("100 keepalive marks grew the segment list from %d to %d", segs, w.cp.Open())
	}
	w.mu.Unlock()
	release()
	waitFor(t, "the last mark after release", func() bool { return w.Confirmable() == 1000 })
	closeWriter(t, w)
}

func TestKeepaliveMarkWhenIdleIsConfirmableAtOnce(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{})
	if err := w.Mark(context.Background(), 42); err != nil {
		t.Fatal(err)
	}
	if got := w.Confirmable(); got != 42 {
		t.Fatalf("Confirmable() = %s, want 42", got)
	}
	// A lower mark never lowers it.
	if err := w.Mark(context.Background(), 7); err != nil {
		t.Fatal(err)
	}
	if got := w.Confirmable(); got != 42 {
		t.Fatalf("Confirmable() = %s after a lower mark, want 42", got)
	}
	closeWriter(t, w)
}

// TestAckedSignalsEveryMove waits for Confirmable only through Acked: once
// when the acknowledgement comes after the Mark, once when the Mark comes
// after the acknowledgement (a held key makes the order certain).
func TestAckedSignalsEveryMove(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{})
	ctx := context.Background()
	waitFor := func(lsn change.LSN) {
		t.Helper()
		for {
			acked := w.Acked()
			if w.Confirmable() >= lsn {
				return
			}
			select {
			case <-acked:
			case <-time.After(10 * time.Second):
				t.Fatalf("no signal from Acked; Confirmable() = %s, want %s", w.Confirmable(), lsn)
			}
		}
	}
	// Acknowledged after its Mark.
	c := row("t", 1, 1000, 0, "a")
	release := f.Hold(change.PartitionKey(&c))
	if err := w.Add(ctx, &c); err != nil {
		t.Fatal(err)
	}
	w.Mark(ctx, 1000)
	acked := w.Acked()
	release()
	<-acked
	waitFor(1000)
	// Marked after its acknowledgement.
	c = row("t", 2, 2000, 0, "b")
	if err := w.Add(ctx, &c); err != nil {
		t.Fatal(err)
	}
	for {
		acked := w.Acked()
		if used, _ := w.Buffered(); used == 0 {
			break
		}
		<-acked
	}
	acked = w.Acked()
	w.Mark(ctx, 2000)
	select {
	case <-acked:
	default:
		t.Fatal("a Mark that moved Confirmable did not close the channel")
	}
	waitFor(2000)
	closeWriter(t, w)
}

// addHeldHotRow holds row 1 of table t at the fake, adds n changes to it
// with payload-byte values (calling afterFirst once the first is added), and
// returns the hold's release and the expected per-key order.
func addHeldHotRow(t *testing.T, w *Writer, f *kinesistest.Fake, n, payload int, afterFirst func()) (release func(), want map[string][]pos) {
	t.Helper()
	hot := row("t", 1, 0, 0, "")
	release = f.Hold(change.PartitionKey(&hot))
	want = map[string][]pos{}
	for i := range n {
		c := row("t", 1, change.LSN(1000+i), 0, strings.Repeat("x", payload))
		if err := w.Add(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
		key := change.PartitionKey(&c)
		want[key] = append(want[key], pos{c.CommitLSN, 0})
		if i == 0 {
			afterFirst()
		}
	}
	return release, want
}

func TestHotKeyChangesArePackedInOrder(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{})
	release, want := addHeldHotRow(t, w, f, 1000, 100, func() {
		waitFor(t, "the first record in flight", func() bool { return f.Stats().PutRecordsRequests == 1 })
	})
	release()
	closeWriter(t, w)
	checkOrder(t, decodeLog(t, f), want)
	// The first change went out alone (and was held); the other 999 queued
	// behind it and fit in one record.
	if n := len(f.Records()); n != 2 {
		t.Errorf("1000 changes to one key took %d records, want 2", n)
	}
}

func TestPackingRespectsTheRecordSize(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{})
	release, want := addHeldHotRow(t, w, f, 1000, 5000, func() {})
	release()
	closeWriter(t, w)
	checkOrder(t, decodeLog(t, f), want) // the fake refuses records over 1 MiB
	if n := len(f.Records()); n < 6 || n > 8 {
		t.Errorf("about 5 MB for one key took %d records, want 6 to 8 of up to 1 MiB", n)
	}
}

func TestOversizedChangeOmitsItsLargestValues(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{}) // 1 MiB records
	reg := metrics.New()
	w := newWriter(t, fakeClient(t, f.URL), Config{Metrics: reg})
	c := row("docs", 7, 500, 0, strings.Repeat("b", 2<<20))
	c.New[2] = change.Value{Text: "small note"}
	c.Old = []change.Value{{Text: "7"}, {Text: strings.Repeat("o", 600<<10)}, {State: change.Null}}
	if err := w.Add(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	if err := w.Mark(context.Background(), 500); err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)

	if c.New[1].State != change.Text || c.Old[1].State != change.Text {
		t.Fatal("Add modified the caller's change")
	}
	recs := f.Records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	got, err := change.Decode(recs[0].Data)
	if err != nil {
		t.Fatal(err)
	}
	g := got.Changes[0]
	if g.New[1] != (change.Value{State: change.Omitted, Size: 2 << 20}) {
		t.Errorf("new body = %+v, want omitted with its size", g.New[1])
	}
	if g.New[0].Text != "7" || g.Old[0].Text != "7" || g.New[2].Text != "small note" {
		t.Errorf("key or small values lost: new %+v old %+v", g.New, g.Old)
	}
	// 2 MiB out leaves 600 KiB of old body, which fits: only one value goes.
	if g.Old[1].State != change.Text {
		t.Errorf("old body omitted although the change fit without that")
	}
	if v := reg.Counter("walbridge_oversized_changes_total", "", "table").With("public.docs").Value(); v != 1 {
		t.Errorf("walbridge_oversized_changes_total{table=public.docs} = %v, want 1", v)
	}
	if w.Confirmable() != 500 {
		t.Errorf("Confirmable() = %s, want 500", w.Confirmable())
	}
}

func TestChangeThatCannotFitFailsLoudly(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{})
	ctx := context.Background()
	ok := row("docs", 1, 100, 0, "fine")
	if err := w.Add(ctx, &ok); err != nil {
		t.Fatal(err)
	}
	// The key column itself is over the limit: nothing may be omitted.
	c := row("docs", 0, 200, 0, "x")
	c.New[0].Text = strings.Repeat("9", 2<<20)
	err := w.Add(ctx, &c)
	if !errors.Is(err, ErrChangeTooLarge) || !strings.Contains(err.Error(), "public.docs") || !strings.Contains(err.Error(), c.LSN.String()) {
		t.Fatalf("Add = %v, want ErrChangeTooLarge naming the table and LSN", err)
	}
	if err := w.Mark(ctx, 200); !errors.Is(err, ErrChangeTooLarge) {
		t.Fatalf("Mark after the failure = %v, want the failure", err)
	}
	if err := w.Close(ctx); !errors.Is(err, ErrChangeTooLarge) {
		t.Fatalf("Close = %v, want the failure", err)
	}
	if w.Confirmable() >= 200 {
		t.Fatalf("Confirmable() = %s passed the failed change", w.Confirmable())
	}
}

func TestFatalPutRecordsErrorSurfaces(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	// Check is skipped: the stream does not exist, so PutRecords fails with
	// ResourceNotFoundException, which no retry can fix.
	w, err := NewWriter(context.Background(), fakeClient(t, f.URL), Config{Stream: "missing", RetryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := row("t", 1, 10, 0, "x")
	if err := w.Add(ctx, &c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failure", func() bool { return w.Mark(ctx, 10) != nil })
	err = w.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "ResourceNotFoundException") {
		t.Fatalf("Close = %v, want the ResourceNotFoundException", err)
	}
	if err := w.Add(ctx, &c); err == nil {
		t.Fatal("Add after a fatal error succeeded")
	}
	if w.Confirmable() != 0 {
		t.Fatalf("Confirmable() = %s", w.Confirmable())
	}
}

func TestCloseIsBoundedByItsContext(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{})
	c := row("t", 1, 10, 0, "x")
	defer f.Hold(change.PartitionKey(&c))()
	if err := w.Add(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "unacknowledged") {
		t.Fatalf("Close = %v, want a deadline error about unacknowledged changes", err)
	}
	if again := w.Close(context.Background()); again != err {
		t.Fatalf("second Close = %v, want the first result", again)
	}
	if err := w.Add(context.Background(), &c); err == nil {
		t.Fatal("Add after Close succeeded")
	}
}

func TestCancelingTheWritersContextStopsIt(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	w, err := NewWriter(ctx, fakeClient(t, f.URL), Config{Stream: "fake"})
	if err != nil {
		t.Fatal(err)
	}
	c := row("t", 1, 10, 0, "x")
	defer f.Hold(change.PartitionKey(&c))()
	if err := w.Add(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	cancel()
	waitFor(t, "the writer to stop", func() bool { return w.Mark(context.Background(), 10) != nil })
	if err := w.Close(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
}

func TestAddBlocksWhenTheBufferIsFull(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{BufferBytes: 4 << 10})
	c := row("t", 1, 10, 0, strings.Repeat("z", 1000))
	release := f.Hold(change.PartitionKey(&c))
	defer release()
	added := 0
	for ; added < 10; added++ {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := w.Add(ctx, &c)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if added < 2 || added > 4 {
		t.Fatalf("%d changes of about 1.2 KB fit in a 4 KiB buffer before Add blocked", added)
	}
	// A timed-out Add does not break the writer.
	release()
	if err := w.Add(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
	if n := len(decodeLog(t, f)[change.PartitionKey(&c)]); n != added+1 {
		t.Fatalf("%d changes delivered, want %d", n, added+1)
	}
}

func TestStreamARNIsSentAsStreamARN(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "by-arn"})
	w := newWriter(t, fakeClient(t, f.URL), Config{Stream: f.ARN()})
	c := row("t", 1, 10, 0, "x")
	if err := w.Add(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	closeWriter(t, w)
	if len(f.Records()) != 1 {
		t.Fatalf("%d records", len(f.Records()))
	}
}

func TestPackedRecordIsChangeEncode(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{})
	w := newWriter(t, fakeClient(t, f.URL), Config{})
	first := row("t", 1, 10, 0, "a")
	release := f.Hold(change.PartitionKey(&first))
	var rec change.Record
	for i := range 3 {
		c := row("t", 1, change.LSN(10+i), uint32(i), fmt.Sprintf("v%d \"quoted\"\n", i))
		c.CommitTime = time.Date(2026, 5, 1, 12, 0, 0, 123456000, time.UTC)
		if err := w.Add(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, "the first record in flight", func() bool { return f.Stats().PutRecordsRequests == 1 })
		} else {
			rec.Changes = append(rec.Changes, c)
		}
	}
	release()
	closeWriter(t, w)
	recs := f.Records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	if want := change.Encode(nil, &rec); string(recs[1].Data) != string(want) {
		t.Fatalf("packed record\n%s\nwant change.Encode's\n%s", recs[1].Data, want)
	}
}

func TestLargeRecordStreamSendsABigChangeWhole(t *testing.T) {
	// With MaxRecordSizeInKiB raised, a 7 MiB change fits in one record,
	// which then travels in a request of its own (over 5 MiB).
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{MaxRecordSizeInKiB: 10240})
	reg := metrics.New()
	w := newWriter(t, fakeClient(t, f.URL), Config{Metrics: reg})
	ctx := context.Background()
	small := row("docs", 1, 10, 0, "small")
	big := row("docs", 2, 10, 1, strings.Repeat("b", 7<<20))
	for _, c := range []*change.Change{&small, &big, &small} {
		if err := w.Add(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	closeWriter(t, w)
	got := decodeLog(t, f)
	if b := got[change.PartitionKey(&big)]; len(b) != 1 || b[0].New[1].Text != big.New[1].Text {
		t.Fatal("the 7 MiB change did not arrive whole")
	}
	if len(got[change.PartitionKey(&small)]) != 2 {
		t.Fatal("small changes missing")
	}
	if v := reg.Counter("walbridge_oversized_changes_total", "", "table").With("public.docs").Value(); v != 0 {
		t.Fatalf("oversized counted %v times", v)
	}
}
