package publish

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"go.uber.org/zap/zaptest"

	"github.com/walbridge/walbridge/fanout/orderedbus"
	"github.com/walbridge/walbridge/fanout/orderedbus/orderedbustest"
)

const orderedBus = "arn:aws:events:us-east-1:123456789012:event-busv2/cdc/abcdefghijklmnopqrstuvwxy"

// groupChecker fails the test if two entries of one event group are ever
// in flight together.
type groupChecker struct {
	t        testing.TB
	api      OrderedAPI
	mu       sync.Mutex
	inflight map[string]bool
	maxBatch int
}

func (g *groupChecker) PutEvents(ctx context.Context, entries []orderedbus.Entry) (*orderedbus.Output, error) {
	g.mu.Lock()
	g.maxBatch = max(g.maxBatch, len(entries))
	for _, e := range entries {
		if g.inflight[e.EventGroupID] {
			g.t.Errorf("two events of group %s in flight together", e.EventGroupID)
		}
		g.inflight[e.EventGroupID] = true
	}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		for _, e := range entries {
			delete(g.inflight, e.EventGroupID)
		}
		g.mu.Unlock()
	}()
	return g.api.PutEvents(ctx, entries)
}

// TestPublishOrderedBus: through the ordered bus with 30% of entries failing
// and requests throttled, every event is delivered once, in order per row
// (the group is the row's key, the deduplication id lsn:seq), requests hold
// up to 100 entries, and publishing the same events again, as after a
// crash, delivers nothing new: every entry is answered DEDUPLICATED.
func TestPublishOrderedBus(t *testing.T) {
	f := orderedbustest.Start(t, orderedbustest.Options{Bus: orderedBus, FailRate: 0.3, ThrottleEvery: 7, Seed: 5})
	t.Setenv(orderedbus.EndpointEnv, f.URL)
	c, err := orderedbus.New(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")}, orderedBus)
	if err != nil {
		t.Fatal(err)
	}
	gc := &groupChecker{t: t, api: c, inflight: map[string]bool{}}
	p := NewOrdered(gc, Config{Backoff: fastBackoff(), MaxAttempts: 100, Logger: zaptest.NewLogger(t)})
	items := rowItems(t, 300, 5, short)
	res := p.Publish(context.Background(), items)
	if res.FirstUnpublished != -1 || res.Err != nil || res.Accepted != len(items) || res.Deduplicated != 0 {
		t.Fatalf("first delivery: %+v, err %v", res.Stats, res.Err)
	}
	if st := f.Stats(); st.Failed == 0 || st.Throttled == 0 || res.Retries == 0 {
		t.Fatalf("failures not exercised: fake %+v, publisher %+v", st, res.Stats)
	}
	if gc.maxBatch <= MaxEntries {
		t.Fatalf("largest request held %d entries; the ordered bus takes %d", gc.maxBatch, orderedbus.MaxEntries)
	}
	checkDelivered := func() {
		t.Helper()
		all := f.All()
		if len(all) != len(items) {
			t.Fatalf("%d events delivered, %d published", len(all), len(items))
		}
		last := map[string]int{}
		for _, d := range all {
			pub := parsePublished(t, d.Detail)
			if d.Group != pub.key || d.DeduplicationID != pub.lsn+":"+strconv.Itoa(pub.seq) {
				t.Fatalf("event of %s went as group %q, id %q", pub.key, d.Group, d.DeduplicationID)
			}
			if l, ok := last[d.Group]; ok && pub.record <= l {
				t.Fatalf("group %s: record %d delivered after %d", d.Group, pub.record, l)
			}
			last[d.Group] = pub.record
		}
	}
	checkDelivered()

	again := p.Publish(context.Background(), items)
	if again.FirstUnpublished != -1 || again.Accepted != len(items) || again.Deduplicated != len(items) {
		t.Fatalf("second delivery: %+v, err %v", again.Stats, again.Err)
	}
	checkDelivered()
	t.Logf("%d events: %d requests (%.1f entries each), %d retries; resend: %d deduplicated; fake %+v",
		len(items), res.Requests, res.EntriesPerRequest(), res.Retries, again.Deduplicated, f.Stats())
}
