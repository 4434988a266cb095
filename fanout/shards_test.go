package main

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/shardmap"
)

// TestV2RecordOwnKeysOnly delivers a compressed version 2 record holding
// the changes of twenty rows, as read from the first of two shards of an
// emulated stream: the handler publishes exactly the rows whose key hashes
// into that shard's range (learnt with ListShards), and counts the others.
func TestV2RecordOwnKeysOnly(t *testing.T) {
	k := kinesistest.StartEmulator(t)
	kc := kinesistest.Client(t, k.URL)
	kinesistest.CreateStream(t, kc, "changes", 2)
	m, err := shardmap.List(context.Background(), kc, "changes")
	if err != nil {
		t.Fatal(err)
	}
	shard := m.Open()[0]

	var changes []change.Change
	var want []string
	for id := 1; id <= 20; id++ {
		c := userChange(id, 0)
		changes = append(changes, c)
		if shard.Range.Contains(shardmap.KeyHash([]byte(change.PartitionKey(&c)))) {
			want = append(want, fmt.Sprintf("%s#0", c.CommitLSN))
		}
	}
	if len(want) == 0 || len(want) == len(changes) {
		t.Fatalf("%d of %d rows in the shard: the test needs both kinds", len(want), len(changes))
	}
	data := change.NewCompressor(1).Compress(nil, change.EncodeV2(nil, &change.Record{Changes: changes}))
	rec := kinesisRecord(0, "ignored", data)
	rec.EventID = shard.ID + ":" + rec.Kinesis.SequenceNumber

	f := eventbridgetest.Start(t, eventbridgetest.Options{})
	h, _ := testHandler(t, f, defaultConfig(t))
	h.withRanges(newShardRanges(kc))
	resp, err := h.Handle(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{rec}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("handle: %v %+v", err, resp.BatchItemFailures)
	}
	var got []string
	for _, ev := range f.Events() {
		got = append(got, lsnSeq(t, ev))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("published %v, want the shard's own rows %v", got, want)
	}
	if n := h.m.elsewhere.Value(); n != float64(len(changes)-len(want)) {
		t.Errorf("changes_elsewhere_total %v, want %d", n, len(changes)-len(want))
	}

	// A stream whose shards cannot be listed: the record waits.
	rec.EventSourceArn = "arn:aws:kinesis:us-east-1:000000000000:stream/missing"
	resp, _ = h.Handle(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{rec}})
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != rec.Kinesis.SequenceNumber {
		t.Errorf("unlistable stream: failures %+v, want the record", resp.BatchItemFailures)
	}
}
