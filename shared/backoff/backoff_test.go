package backoff

import (
	"context"
	"testing"
	"time"
)

func TestFullIsJitteredAndCapped(t *testing.T) {
	base, ceiling := 10*time.Millisecond, 300*time.Millisecond
	for attempt := range 40 {
		limit := min(ceiling, base<<min(attempt, 30))
		var top time.Duration
		for range 200 {
			d := Full(base, ceiling, attempt)
			if d < 0 || d >= limit {
				t.Fatalf("attempt %d: backoff %v outside [0, %v)", attempt, d, limit)
			}
			top = max(top, d)
		}
		if top < limit/2 {
			t.Fatalf("attempt %d: largest of 200 backoffs %v, want up to %v", attempt, top, limit)
		}
	}
}

func TestSleepGivesWayToCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep waited out an hour on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep reported cancellation without one")
	}
}
