package metrics

import (
	"strings"
	"sync"
	"testing"
)

func TestWriteText(t *testing.T) {
	r := New()
	c := r.Counter("walbridge_changes_total", "Changes decoded.", "table", "op")
	g := r.Gauge("walbridge_confirmed_lsn", "Confirmed LSN.")
	h := r.Histogram("walbridge_latency_seconds", "Latency.", []float64{0.01, 0.1, 1})
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				c.With(`public."a"`, "insert").Inc()
			}
		}()
	}
	wg.Wait()
	g.With().Set(42)
	for _, v := range []float64{0.005, 0.05, 0.5, 5} {
		h.Observe(v)
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`walbridge_changes_total{table="public.\"a\"",op="insert"} 8000`,
		"walbridge_confirmed_lsn 42",
		`walbridge_latency_seconds_bucket{le="0.1"} 2`,
		`walbridge_latency_seconds_bucket{le="+Inf"} 4`,
		"walbridge_latency_seconds_count 4",
		"# TYPE walbridge_latency_seconds histogram",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	if q := h.Quantile(0.5); q != 0.1 {
		t.Errorf("p50 = %v, want 0.1", q)
	}
}
