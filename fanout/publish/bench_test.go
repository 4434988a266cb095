package publish

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
)

// BenchmarkPublish publishes Lambda-sized batches through the real SDK client
// to the fake endpoint with a 2 ms round trip and 10% of entries throttled,
// and reports how full requests are (entries/request) and the throughput.
func BenchmarkPublish(b *testing.B) {
	for _, bc := range []struct {
		name       string
		rows       int
		throttle   float64
		latency    time.Duration
		concurrent int
	}{
		{"rows=500/throttle=0.1", 500, 0.1, 2 * time.Millisecond, 4},
		{"rows=500/throttle=0.3", 500, 0.3, 2 * time.Millisecond, 4},
		{"rows=1/throttle=0.1", 1, 0.1, 2 * time.Millisecond, 4}, // one key: a table without a primary key
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := eventbridgetest.Start(b, eventbridgetest.Options{ThrottleFraction: bc.throttle, Latency: bc.latency, Discard: true})
			api := eventbridgetest.Client(b, f.URL, func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
			p := New(api, Config{Backoff: backoff.Policy{Base: time.Millisecond, Max: 10 * time.Millisecond, Equal: true}, Concurrency: bc.concurrent, MaxAttempts: 100})
			const batch = 1000
			var total Stats
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				items := rowItems(b, bc.rows, batch/bc.rows, short)
				b.StartTimer()
				res := p.Publish(context.Background(), items)
				if res.FirstUnpublished != -1 {
					b.Fatal(res.Err)
				}
				total.Add(res.Stats)
			}
			b.ReportMetric(total.EntriesPerRequest(), "entries/request")
			b.ReportMetric(float64(total.Accepted)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
