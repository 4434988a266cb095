// Package backoff is walbridge's one retry delay, exponential with jitter,
// and a sleep that gives way to cancellation. Every retry loop (capture's
// PutRecords and reconnects, fanout's PutEvents and poller, the local bus,
// redrive) takes its waits from a Policy.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy shapes the waits: the ceiling before retry attempt n (from 0) is
// min(Max, Base·2ⁿ). The wait is uniformly random below the ceiling (full
// jitter, AWS's recommendation for many clients retrying one service), or,
// with Equal, between half the ceiling and all of it, for a loop that wants a
// floor under its waits (a reconnect should not hammer a restarting server).
type Policy struct {
	Base, Max time.Duration
	Equal     bool
}

// Delay is the wait before retry number attempt (from 0).
func (p Policy) Delay(attempt int) time.Duration {
	ceil := p.Max
	if attempt < 30 {
		if d := p.Base << max(attempt, 0); d > 0 && d < p.Max {
			ceil = d
		}
	}
	switch {
	case ceil <= 0:
		return 0
	case p.Equal:
		return ceil/2 + rand.N(ceil/2+1)
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
