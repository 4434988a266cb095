package putrecords

import (
	"context"
	"testing"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
)

// TestAgainstTheEmulator starts the real Kinesis emulator (kinesalite, via
// kinesistest.StartEmulator) and reads back what the writer put.
func TestAgainstTheEmulator(t *testing.T) {
	k := kinesistest.StartEmulator(t)
	client := kinesistest.Client(t, k.URL)
	kinesistest.CreateStream(t, client, "changes", 3)
	w := newWriter(t, client, Config{Stream: "changes", Concurrency: 4})
	ctx := context.Background()

	want := map[string][]pos{}
	var last change.LSN
	for i := range 400 {
		commit := change.LSN(5000 + (i/4)*100)
		c := row("accounts", i*31%37, commit, uint32(i%4), "balance")
		if err := w.Add(ctx, &c); err != nil {
			t.Fatal(err)
		}
		want[change.PartitionKey(&c)] = append(want[change.PartitionKey(&c)], pos{c.CommitLSN, c.Seq})
		if i%4 == 3 {
			if err := w.Mark(ctx, commit); err != nil {
				t.Fatal(err)
			}
			last = commit
		}
	}
	closeWriter(t, w)
	if w.Confirmable() != last {
		t.Fatalf("Confirmable() = %s, want %s", w.Confirmable(), last)
	}

	got := map[string][]change.Change{}
	for _, recs := range kinesistest.ReadAll(t, client, "changes") {
		for _, r := range recs {
			rec, err := change.Decode(r.Data)
			if err != nil {
				t.Fatal(err)
			}
			key := *r.PartitionKey
			for i := range rec.Changes {
				if k := change.PartitionKey(&rec.Changes[i]); k != key {
					t.Fatalf("change with key %s in a record under %s", k, key)
				}
			}
			got[key] = append(got[key], rec.Changes...)
		}
	}
	checkOrder(t, got, want)
}
