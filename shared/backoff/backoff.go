// Package backoff is walbridge's one retry delay: exponential with full
// jitter (AWS's recommendation for many clients retrying one service), and a
// sleep that gives way to cancellation.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Full is the wait before retry number attempt (from 0): uniformly random in
// [0, min(max, base·2^attempt)).
func Full(base, max time.Duration, attempt int) time.Duration {
	ceil := max
	if attempt < 30 {
		if d := base << attempt; d > 0 && d < max {
			ceil = d
		}
	}
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil)
}

// Sleep waits for d; false means ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
