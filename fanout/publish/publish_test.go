package publish

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/claimcheck"
	"github.com/walbridge/walbridge/shared/event"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/s3test"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle keep-alive connections of the SDK's shared HTTP transport.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
	)
}

var itemColumns = []change.Column{
	{Name: "id", Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
	{Name: "body", Type: "text", Base: "text", Kind: change.KindBase},
}

// rowItems builds rounds×rows update events: round r updates every row once,
// one Kinesis record per change, the record index growing with the LSN.
func rowItems(t testing.TB, rows, rounds int, body func(record int) string) []Item {
	var items []Item
	for r := 0; r < rounds; r++ {
		for row := 0; row < rows; row++ {
			rec := len(items)
			c := &change.Change{Database: "app", Schema: "public", Table: "t", Op: change.Update, Identity: change.IdentityDefault,
				XID: uint32(rec + 1), CommitLSN: change.LSN(0x1000 + rec), CommitTime: time.Unix(1700000000, int64(rec)*1000).UTC(),
				Columns: itemColumns, New: []change.Value{{Text: strconv.Itoa(row)}, {Text: body(rec)}}}
			ev, err := event.FromChange(c, event.Config{})
			if err != nil {
				t.Fatal(err)
			}
			items = append(items, Item{Record: rec, Key: change.PartitionKey(c), Event: &ev})
		}
	}
	return items
}

func short(int) string { return "x" }

// published is what one accepted entry says about itself.
type published struct {
	key      string
	lsn      string
	seq      int
	omitted  bool
	record   int
	detailSz int
}

func parsePublished(t testing.TB, detail string) published {
	var d struct {
		Table     string                     `json:"table"`
		LSN       string                     `json:"lsn"`
		Seq       int                        `json:"seq"`
		NewValues map[string]json.RawMessage `json:"newValues"`
	}
	if err := json.Unmarshal([]byte(detail), &d); err != nil {
		t.Fatalf("detail %s: %v", detail, err)
	}
	var id struct {
		Value int `json:"value"`
	}
	json.Unmarshal(d.NewValues["id"], &id)
	lsn, _ := change.ParseLSN(d.LSN)
	return published{key: "public." + d.Table + "/" + strconv.Itoa(id.Value), lsn: d.LSN, seq: d.Seq, record: int(lsn) - 0x1000,
		omitted: strings.Contains(string(d.NewValues["body"]), `"omitted":true`), detailSz: len(detail)}
}

// orderChecker wraps the SDK client and fails the test if two events of one
// key are ever in flight together.
type orderChecker struct {
	t        testing.TB
	api      API
	mu       sync.Mutex
	inflight map[string]bool
}

func (o *orderChecker) PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	var keys []string
	o.mu.Lock()
	for _, e := range in.Entries {
		k := parsePublished(o.t, *e.Detail).key
		if o.inflight[k] {
			o.t.Errorf("two events of %s in flight together", k)
		}
		o.inflight[k] = true
		keys = append(keys, k)
	}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		for _, k := range keys {
			delete(o.inflight, k)
		}
		o.mu.Unlock()
	}()
	return o.api.PutEvents(ctx, in, optFns...)
}

func client(t testing.TB, f *eventbridgetest.Server) API {
	// The publisher owns retries; the SDK's own would hide failures from it.
	return &orderChecker{t: t, inflight: map[string]bool{},
		api: eventbridgetest.Client(t, f.URL, func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })}
}

func fastBackoff() backoff.Policy {
	return backoff.Policy{Base: time.Millisecond, Max: 20 * time.Millisecond, Equal: true}
}

// checkOrder asserts every item arrived exactly as often as needed and, per
// key, in source order once repeats (same lsn and seq) are dropped.
func checkOrder(t *testing.T, items []Item, got []eventbridgetest.Event) {
	t.Helper()
	seen := map[string]bool{}
	lastRecord := map[string]int{}
	n := 0
	for _, ev := range got {
		p := parsePublished(t, ev.Detail)
		id := p.lsn + "#" + strconv.Itoa(p.seq)
		if seen[id] {
			continue
		}
		seen[id] = true
		n++
		if last, ok := lastRecord[p.key]; ok && p.record < last {
			t.Errorf("key %s: record %d arrived after record %d", p.key, p.record, last)
		}
		lastRecord[p.key] = p.record
	}
	if n != len(items) {
		t.Errorf("%d distinct events arrived, want %d", n, len(items))
	}
}

func TestPublishUnderFailuresDeliversAllInOrder(t *testing.T) {
	f := eventbridgetest.Start(t, eventbridgetest.Options{
		ThrottleFraction: 0.2, InternalFailureFraction: 0.1, ThrottleRequestFraction: 0.05, ServerErrorFraction: 0.02, Seed: 3})
	items := rowItems(t, 40, 25, short)
	p := New(client(t, f), Config{EventBus: "orders", Backoff: fastBackoff(), MaxAttempts: 50, Logger: zaptest.NewLogger(t)})
	res := p.Publish(context.Background(), items)
	if res.FirstUnpublished != -1 || res.Err != nil {
		t.Fatalf("FirstUnpublished %d, Err %v", res.FirstUnpublished, res.Err)
	}
	got := f.Events()
	checkOrder(t, items, got)
	stats := f.Stats()
	t.Logf("%d events: %d requests, %.2f entries/request, %d retries; fake: %+v", len(items), res.Requests, res.EntriesPerRequest(), res.Retries, stats)
	if res.Accepted != len(items) || res.Retries == 0 || stats.Throttled == 0 || stats.InternalFailures == 0 || stats.RequestErrors == 0 {
		t.Errorf("stats %+v, fake %+v: the failures were not exercised", res.Stats, stats)
	}
	if res.EntriesPerRequest() < 5 {
		t.Errorf("%.2f entries per request: batching is not working", res.EntriesPerRequest())
	}
	for _, ev := range got {
		if ev.EventBusName != "orders" || ev.Source != event.DefaultSource || ev.Time.IsZero() {
			t.Fatalf("entry %+v", ev)
		}
	}
}

func TestPublishShrinksOversizedEvents(t *testing.T) {
	const limit = 4096
	f := eventbridgetest.Start(t, eventbridgetest.Options{MaxRequestBytes: limit})
	items := rowItems(t, 3, 2, func(rec int) string {
		if rec == 1 {
			return strings.Repeat("é", 5000) // 10000 bytes
		}
		return strings.Repeat("a", 1500)
	})
	p := New(client(t, f), Config{MaxRequestBytes: limit, Backoff: fastBackoff(), Logger: zaptest.NewLogger(t)})
	res := p.Publish(context.Background(), items)
	if res.FirstUnpublished != -1 || res.Shrunk != 1 || res.Omitted != 1 || res.Dropped != 0 {
		t.Fatalf("result %+v", res)
	}
	checkOrder(t, items, f.Events())
	for _, ev := range f.Events() {
		p := parsePublished(t, ev.Detail)
		if p.omitted != (p.record == 1) {
			t.Errorf("record %d: omitted=%v", p.record, p.omitted)
		}
		if p.record == 1 && !strings.Contains(ev.Detail, `"body":{"type":"string","omitted":true,"bytes":10000}`) {
			t.Errorf("oversized event: %s", ev.Detail)
		}
	}
	// Several 1.5 KB events must not share a request beyond the limit: the
	// fake refuses such requests, so none may have been refused.
	if s := f.Stats(); s.Rejected != 0 {
		t.Errorf("%d requests over the limit", s.Rejected)
	}
}

func TestPublishValidationErrorFailsItsRecord(t *testing.T) {
	f := eventbridgetest.Start(t, eventbridgetest.Options{Reject: func(ev eventbridgetest.Event) (string, string) {
		if strings.Contains(ev.Detail, "poison") {
			return "InvalidArgument", "Parameter Detail is not valid."
		}
		return "", ""
	}})
	const poisoned = 13
	items := rowItems(t, 5, 6, func(rec int) string {
		if rec == poisoned {
			return "poison"
		}
		return "x"
	})
	p := New(client(t, f), Config{Backoff: fastBackoff(), Concurrency: 1, Logger: zaptest.NewLogger(t)})
	res := p.Publish(context.Background(), items)
	var entryErr *EntryError
	if res.FirstUnpublished != poisoned || !errors.As(res.Err, &entryErr) || entryErr.Code != "InvalidArgument" {
		t.Fatalf("FirstUnpublished %d, Err %v; want %d and InvalidArgument", res.FirstUnpublished, res.Err, poisoned)
	}
	if s := f.Stats(); s.InvalidEntries != 1 {
		t.Errorf("the refused entry was sent %d times, want once", s.InvalidEntries)
	}
	poisonKey := items[poisoned].Key
	got := map[int]bool{}
	for _, ev := range f.Events() {
		p := parsePublished(t, ev.Detail)
		got[p.record] = true
		if p.key == poisonKey && p.record > poisoned {
			t.Errorf("record %d of the refused key was published after the refusal", p.record)
		}
	}
	for rec := 0; rec < poisoned; rec++ {
		if !got[rec] {
			t.Errorf("record %d before the refused one was not published", rec)
		}
	}
}

func TestPublishRetriesRefusedRequestEntryByEntry(t *testing.T) {
	// The fake's limit is below the publisher's: a full request is refused
	// whole, each event alone fits.
	f := eventbridgetest.Start(t, eventbridgetest.Options{MaxRequestBytes: 3000})
	items := rowItems(t, 6, 1, func(int) string { return strings.Repeat("b", 1000) })
	p := New(client(t, f), Config{MaxRequestBytes: 100000, Backoff: fastBackoff(), Logger: zaptest.NewLogger(t)})
	res := p.Publish(context.Background(), items)
	if res.FirstUnpublished != -1 {
		t.Fatalf("result %+v", res)
	}
	checkOrder(t, items, f.Events())
	if s := f.Stats(); s.Rejected == 0 {
		t.Error("no request was refused; the test did not exercise the split")
	}
}

func TestPublishStopsBeforeTheDeadline(t *testing.T) {
	f := eventbridgetest.Start(t, eventbridgetest.Options{Latency: 100 * time.Millisecond})
	items := rowItems(t, 1, 50, short) // one key: one event per round trip
	p := New(client(t, f), Config{Backoff: fastBackoff(), DeadlineMargin: 200 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	deadline := time.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	res := p.Publish(ctx, items)
	if time.Now().After(deadline) {
		t.Errorf("Publish returned %v after the deadline", time.Since(deadline))
	}
	n := len(f.Events())
	if n == 0 || n >= len(items) || res.FirstUnpublished != n || res.Err == nil {
		t.Fatalf("%d published, FirstUnpublished %d, Err %v", n, res.FirstUnpublished, res.Err)
	}
	checkOrder(t, items[:n], f.Events())
}

// TestBackoffDelay holds the publisher's default policy to its documented
// waits: retry n (from 1) waits between half and all of min(5s, 50ms·2ⁿ⁻¹).
func TestBackoffDelay(t *testing.T) {
	b := Config{}.withDefaults().Backoff
	for attempt, want := range map[int]time.Duration{1: 50 * time.Millisecond, 2: 100 * time.Millisecond, 4: 400 * time.Millisecond, 8: 5 * time.Second, 30: 5 * time.Second} {
		for range 20 {
			if d := b.Delay(attempt - 1); d < want/2 || d > want {
				t.Errorf("Delay(%d) = %v, want within [%v, %v]", attempt-1, d, want/2, want)
			}
		}
	}
}

// TestPublishClaimChecksOversizedEvents: with a claim check, an oversized
// event's largest value goes to S3 (the s3rver stand-in) and the event
// carries its reference; with S3 unavailable, the event fails its record
// within a bounded time, so that what precedes it is still published.
func TestPublishClaimChecksOversizedEvents(t *testing.T) {
	const limit = 4096
	big := strings.Repeat("é", 5000) // 10000 bytes
	items := func() []Item {
		return rowItems(t, 3, 2, func(rec int) string {
			if rec == 1 {
				return big
			}
			return strings.Repeat("a", 1500)
		})
	}
	s3 := s3test.Start(t, "values")
	s3c := s3test.Client(t, s3.URL)

	t.Run("S3 up", func(t *testing.T) {
		f := eventbridgetest.Start(t, eventbridgetest.Options{MaxRequestBytes: limit})
		p := New(client(t, f), Config{MaxRequestBytes: limit, Backoff: fastBackoff(), Logger: zaptest.NewLogger(t), ClaimCheck: claimcheck.New(s3c, "values")})
		res := p.Publish(context.Background(), items())
		if res.FirstUnpublished != -1 || res.ClaimChecked != 1 || res.Shrunk != 0 || res.Omitted != 0 {
			t.Fatalf("result %+v", res)
		}
		for _, ev := range f.Events() {
			if parsePublished(t, ev.Detail).record != 1 {
				continue
			}
			resolved, err := claimcheck.Resolve(context.Background(), s3c, []byte(ev.Detail))
			if err != nil {
				t.Fatal(err)
			}
			var d struct {
				NewValues struct{ Body struct{ Value string } } `json:"newValues"`
			}
			if err := json.Unmarshal(resolved, &d); err != nil || d.NewValues.Body.Value != big {
				t.Errorf("the oversized event's body resolves to %d bytes (%v), want the %d sent", len(d.NewValues.Body.Value), err, len(big))
			}
		}
	})

	t.Run("S3 down", func(t *testing.T) {
		s3.Stop()
		defer s3.Restart(t)
		f := eventbridgetest.Start(t, eventbridgetest.Options{MaxRequestBytes: limit})
		p := New(client(t, f), Config{MaxRequestBytes: limit, Backoff: fastBackoff(), Logger: zaptest.NewLogger(t), ClaimCheck: claimcheck.New(s3c, "values")})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		all := items()
		res := p.Publish(ctx, all)
		if res.FirstUnpublished != 1 || res.Err == nil || !strings.Contains(res.Err.Error(), "claim check") {
			t.Fatalf("FirstUnpublished %d, Err %v; want record 1 failed by the claim check", res.FirstUnpublished, res.Err)
		}
		got := map[int]bool{}
		for _, ev := range f.Events() {
			got[parsePublished(t, ev.Detail).record] = true
		}
		// What precedes the failed record is published; its row's later
		// events wait (records after it are the next attempt's either way).
		if !got[0] || got[1] || got[4] {
			t.Errorf("published %v; want record 0, and neither record 1 nor its row's record 4", got)
		}
	})
}
