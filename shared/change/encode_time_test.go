package change

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestAppendTimeMatchesFormat holds the hand-written commit time encoder to
// time.Format with the documented layout, across the years PostgreSQL can
// store and instants with and without sub-microsecond parts.
func TestAppendTimeMatchesFormat(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2026, 11, 26, 7, 18, 50, 123456789, time.FixedZone("x", 5*3600+1800)),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(r.Int64N(400e9)-200e9, r.Int64N(1e9)))
	}
	for _, tm := range times {
		want := tm.UTC().Truncate(time.Microsecond).Format(timeLayout)
		if got := string(appendTime([]byte("x"), tm)); got != "x"+want {
			t.Fatalf("appendTime(%v) = %q, want %q", tm, got[1:], want)
		}
	}
}
