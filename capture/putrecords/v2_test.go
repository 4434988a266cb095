package putrecords

import (
	"context"
	"strconv"
	"testing"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/metrics"
	"github.com/walbridge/walbridge/shared/shardmap"
)

// publishedLog is what fanout would publish from the fake's records, read
// in acceptance order: every change of a version 2 record whose key hashes
// into the range of the shard the record landed on, per partition key. It
// also returns how many changes it dropped as belonging elsewhere.
func publishedLog(t *testing.T, f *kinesistest.Fake, ranges map[string]shardmap.Range) (map[string][]change.Change, int) {
	t.Helper()
	out := map[string][]change.Change{}
	dropped := 0
	for _, r := range f.Records() {
		rec, err := change.Decode(r.Data)
		if err != nil {
			t.Fatalf("record on %s: %v", r.ShardID, err)
		}
		if rec.Version != change.Version2 {
			t.Fatalf("record on %s is version %d", r.ShardID, rec.Version)
		}
		own, ok := ranges[r.ShardID]
		if !ok {
			t.Fatalf("record on unknown shard %s", r.ShardID)
		}
		for i := range rec.Changes {
			key := change.PartitionKey(&rec.Changes[i])
			if !own.Contains(shardmap.KeyHash([]byte(key))) {
				dropped++
				continue
			}
			out[key] = append(out[key], rec.Changes[i])
		}
	}
	return out, dropped
}

// fakeRanges lists every shard of the fake, closed ones included.
func fakeRanges(t *testing.T, f *kinesistest.Fake) map[string]shardmap.Range {
	t.Helper()
	m, err := shardmap.List(context.Background(), fakeClient(t, f.URL), "fake")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]shardmap.Range{}
	for _, s := range m.All() {
		out[s.ID] = s.Range
	}
	return out
}

func TestV2OrderPerKeyUnderThrottlingAndServerErrors(t *testing.T) {
	for _, compressed := range []bool{true, false} {
		t.Run("compressed="+strconv.FormatBool(compressed), func(t *testing.T) {
			f := kinesistest.StartFake(t, kinesistest.FakeOptions{
				Shards: 4, ThrottleFraction: 0.3, InternalFailureFraction: 0.02,
				ServerErrorFraction: 0.05, ThrottleRequestFraction: 0.03,
			})
			w := newWriter(t, fakeClient(t, f.URL), Config{Metrics: metrics.New(), Concurrency: 8, Format: FormatV2, Uncompressed: !compressed, MaxChangesPerRecord: 100})
			const changes, keys, perTxn = 20000, 2000, 10
			want := map[string][]pos{}
			for i := range changes {
				commit := change.LSN(1_000_000 + (i/perTxn)*1000)
				table := "orders"
				if i%3 == 0 {
					table = "users" // a second shape in the same records
				}
				c := row(table, i*7919%keys, commit, uint32(i%perTxn), "v"+strconv.Itoa(i))
				if err := w.Add(context.Background(), &c); err != nil {
					t.Fatal(err)
				}
				key := change.PartitionKey(&c)
				want[key] = append(want[key], pos{c.CommitLSN, c.Seq})
				if i%perTxn == perTxn-1 {
					w.Mark(context.Background(), commit)
				}
			}
			closeWriter(t, w)
			got, dropped := publishedLog(t, f, fakeRanges(t, f))
			checkOrder(t, got, want)
			if dropped != 0 {
				t.Errorf("%d changes on a shard not owning their key, without a reshard", dropped)
			}
			st, fs := w.Stats(), f.Stats()
			if st.Changes != changes || st.Throttles == 0 {
				t.Errorf("stats = %+v", st)
			}
			// Many keys per record, up to MaxChangesPerRecord.
			most := 0
			for _, r := range f.Records() {
				rec, _ := change.Decode(r.Data)
				most = max(most, len(rec.Changes))
			}
			if most != 100 || st.Records > changes/50 {
				t.Errorf("%d changes of %d keys took %d records of up to %d changes; want records of up to 100, most of them full", changes, keys, st.Records, most)
			}
			t.Logf("%d changes in %d records (%d bytes), %d requests; fake %+v", st.Changes, st.Records, st.Bytes, st.Batches, fs)
		})
	}
}

// TestV2Reshard splits the fake's shards twice and merges two while 200
// hot keys keep changing: every change is published exactly once, in
// order per key, by the shard that owns its key.
func TestV2Reshard(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{Shards: 1, ThrottleFraction: 0.1})
	reg := metrics.New()
	w := newWriter(t, fakeClient(t, f.URL), Config{Metrics: reg, Concurrency: 4, Format: FormatV2})
	const changes, keys = 30000, 200
	want := map[string][]pos{}
	reshard := map[int]func(){
		5000: func() {
			id := f.OpenShards()[0]
			if _, _, err := f.Split(id, shardmap.Hash{Hi: 1 << 63}); err != nil {
				t.Error(err)
			}
		},
		12000: func() {
			id := f.OpenShards()[1]
			if _, _, err := f.Split(id, shardmap.Hash{Hi: 3 << 62}); err != nil {
				t.Error(err)
			}
		},
		20000: func() {
			open := f.OpenShards()
			if _, err := f.Merge(open[0], open[1]); err != nil {
				t.Error(err)
			}
		},
	}
	for i := range changes {
		if fn := reshard[i]; fn != nil {
			fn()
		}
		commit := change.LSN(1_000_000 + i*100)
		c := row("orders", i*7919%keys, commit, 0, "v"+strconv.Itoa(i))
		if err := w.Add(context.Background(), &c); err != nil {
			t.Fatal(err)
		}
		key := change.PartitionKey(&c)
		want[key] = append(want[key], pos{c.CommitLSN, c.Seq})
		w.Mark(context.Background(), commit)
	}
	closeWriter(t, w)
	got, dropped := publishedLog(t, f, fakeRanges(t, f))
	checkOrder(t, got, want)
	rerouted := w.m.rerouted.Value()
	if int(rerouted) != dropped {
		t.Errorf("the writer re-sent %v changes, fanout would drop %d", rerouted, dropped)
	}
	if dropped == 0 || w.m.shardMaps.Value() < 1 {
		t.Errorf("no change was re-routed (%d) or no map refreshed (%v): the reshards happened after the stream was drained?", dropped, w.m.shardMaps.Value())
	}
	if n := len(f.OpenShards()); n != 2 {
		t.Errorf("%d open shards at the end, want 2", n)
	}
	t.Logf("%d changes; %d re-routed after reshards; %v map refreshes; fake %+v", changes, dropped, w.m.shardMaps.Value(), f.Stats())
}

// TestV2ShapesFollowEachChange alternates changes whose shapes differ in
// one part each (table, identity, database, a column added in a new
// Columns array, the old array again): every change decodes with its own.
func TestV2ShapesFollowEachChange(t *testing.T) {
	f := kinesistest.StartFake(t, kinesistest.FakeOptions{Shards: 2})
	w := newWriter(t, fakeClient(t, f.URL), Config{Metrics: metrics.New(), Format: FormatV2})
	wider := append(append([]change.Column(nil), testColumns...), change.Column{Name: "added", OID: 25, Type: "text", Base: "text", Kind: change.KindBase})
	variants := []func(c *change.Change){
		func(c *change.Change) {},
		func(c *change.Change) { c.Table = "users" },
		func(c *change.Change) { c.Identity = change.IdentityFull },
		func(c *change.Change) { c.Database = "other" },
		func(c *change.Change) { c.Columns, c.New = wider, append(c.New, change.Value{Text: "x"}) },
		func(c *change.Change) {},
	}
	var sent []change.Change
	for i := range 60 {
		c := row("orders", i, change.LSN(1_000_000+i*1000), 0, "v"+strconv.Itoa(i))
		variants[i%len(variants)](&c)
		for range 1 + i%3 { // runs of the same shape, too
			c.Seq++
			if err := w.Add(context.Background(), &c); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, c)
		}
		w.Mark(context.Background(), c.CommitLSN)
	}
	closeWriter(t, w)
	got := map[pos]change.Change{}
	for _, r := range f.Records() {
		rec, err := change.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rec.Changes {
			got[pos{c.CommitLSN, c.Seq}] = c
		}
	}
	for _, c := range sent {
		g, ok := got[pos{c.CommitLSN, c.Seq}]
		switch {
		case !ok:
			t.Fatalf("change %s/%d missing", c.CommitLSN, c.Seq)
		case g.Database != c.Database || g.Table != c.Table || g.Identity != c.Identity || len(g.Columns) != len(c.Columns):
			t.Fatalf("change %s/%d decoded as %s.%s.%s %s with %d columns, want %s.%s.%s %s with %d", c.CommitLSN, c.Seq,
				g.Database, g.Schema, g.Table, g.Identity, len(g.Columns), c.Database, c.Schema, c.Table, c.Identity, len(c.Columns))
		}
	}
}
