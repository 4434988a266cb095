package provision

import (
	"context"
	"testing"

	"github.com/walbridge/walbridge/shared/kinesistest"
)

// TestStreamIsIdempotent runs against the Kinesis emulator (kinesalite).
func TestStreamIsIdempotent(t *testing.T) {
	k := kinesistest.StartEmulator(t)
	c := kinesistest.Client(t, k.URL)
	for i := 0; i < 2; i++ {
		arn, err := Stream(context.Background(), c, "walbridge", 2)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if arn == "" {
			t.Fatalf("run %d: no stream ARN", i)
		}
	}
	if n := len(kinesistest.ReadAll(t, c, "walbridge")); n != 2 {
		t.Fatalf("%d shards, want 2", n)
	}
}
