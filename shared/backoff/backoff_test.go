package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayIsJitteredAndCapped(t *testing.T) {
	base, ceiling := 10*time.Millisecond, 300*time.Millisecond
	for _, equal := range []bool{false, true} {
		p := Policy{Base: base, Max: ceiling, Equal: equal}
		for attempt := range 40 {
			limit := min(ceiling, base<<min(attempt, 30))
			floor := time.Duration(0)
			if equal {
				floor = limit / 2
			}
			var top time.Duration
			for range 200 {
				d := p.Delay(attempt)
				if d < floor || d > limit || (!equal && d == limit) {
					t.Fatalf("equal=%v attempt %d: backoff %v outside [%v, %v)", equal, attempt, d, floor, limit)
				}
				top = max(top, d)
			}
			if top < floor+(limit-floor)/2 {
				t.Fatalf("equal=%v attempt %d: largest of 200 backoffs %v, want up to %v", equal, attempt, top, limit)
			}
		}
	}
}

func TestDelayZeroPolicy(t *testing.T) {
	if d := (Policy{}).Delay(3); d != 0 {
		t.Fatalf("zero policy waits %v", d)
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
