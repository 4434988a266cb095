// Package report turns what one batch came to into fanout's figures: an
// Embedded Metric Format line for CloudWatch (written to stdout in Lambda,
// where the log group turns it into metrics) and the same figures as log
// fields (what "fanout poll" prints). The end-to-end lag is the time from
// a change's commit to the PutEvents answer that accepted its event, the
// one number consumer teams ask about.
package report

import (
	"time"

	"go.uber.org/zap"

	"github.com/walbridge/walbridge/fanout/emf"
	"github.com/walbridge/walbridge/fanout/publish"
)

// Namespace is the CloudWatch namespace of fanout's metrics (capture's are
// in the same one).
const Namespace = "walbridge"

// Dimension is the one dimension of every metric: the function's name.
const Dimension = "Function"

// The metrics, as CloudWatch shows them.
const (
	Records            = "Records"
	Batches            = "Batches"
	EventsPublished    = "EventsPublished"
	EventsFailed       = "EventsFailed"
	EventsDeduplicated = "EventsDeduplicated"
	EntriesRetried     = "EntriesRetried"
	EntriesThrottled   = "EntriesThrottled"
	PutEventsLatency   = "PutEventsLatency"
	EndToEndLagP50     = "EndToEndLagP50"
	EndToEndLagP99     = "EndToEndLagP99"
	EndToEndLagMax     = "EndToEndLagMax"
)

// Names are every metric a line may hold, for dashboards and alarms.
var Names = []string{Records, Batches, EventsPublished, EventsFailed, EventsDeduplicated, EntriesRetried, EntriesThrottled,
	PutEventsLatency, EndToEndLagP50, EndToEndLagP99, EndToEndLagMax}

// Batch is one batch's outcome.
type Batch struct {
	Records int
	Result  publish.Result
}

func millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Microseconds()) / 1e3
	}
	return out
}

// Line is the batch's EMF line for the named function, stamped now. The
// latency carries every request's duration (a sample when over 100); the
// lag its p50, p99 and maximum over the batch's accepted events, present
// only when some event was accepted.
func (b Batch) Line(function string, now time.Time) emf.Line {
	r := b.Result
	count := func(name string, n int) emf.Metric {
		return emf.Metric{Name: name, Unit: emf.Count, Values: []float64{float64(n)}}
	}
	l := emf.Line{Namespace: Namespace, Dimensions: map[string]string{Dimension: function}, Time: now, Metrics: []emf.Metric{
		count(Records, b.Records), count(Batches, 1), count(EventsPublished, r.Accepted), count(EventsFailed, r.Failed),
		count(EventsDeduplicated, r.Deduplicated), count(EntriesRetried, r.Retries), count(EntriesThrottled, r.Throttled),
	}}
	if len(r.Latencies) > 0 {
		l.Metrics = append(l.Metrics, emf.Metric{Name: PutEventsLatency, Unit: emf.Milliseconds, Values: emf.Sample(millis(r.Latencies))})
	}
	if len(r.Lags) > 0 {
		lags := millis(r.Lags)
		for _, q := range []struct {
			name string
			q    float64
		}{{EndToEndLagP50, 0.5}, {EndToEndLagP99, 0.99}, {EndToEndLagMax, 1}} {
			l.Metrics = append(l.Metrics, emf.Metric{Name: q.name, Unit: emf.Milliseconds, Values: []float64{emf.Quantile(lags, q.q)}})
		}
	}
	return l
}

// Fields are the same figures for the batch's log line.
func (b Batch) Fields() []zap.Field {
	r := b.Result
	fields := []zap.Field{zap.Int("throttled", r.Throttled), zap.Int("deduplicated", r.Deduplicated)}
	if len(r.Latencies) > 0 {
		ms := millis(r.Latencies)
		fields = append(fields, zap.Float64("putEventsLatencyP50Ms", emf.Quantile(ms, 0.5)), zap.Float64("putEventsLatencyMaxMs", emf.Quantile(ms, 1)))
	}
	if len(r.Lags) > 0 {
		ms := millis(r.Lags)
		fields = append(fields, zap.Float64("lagP50Ms", emf.Quantile(ms, 0.5)), zap.Float64("lagP99Ms", emf.Quantile(ms, 0.99)),
			zap.Float64("lagMaxMs", emf.Quantile(ms, 1)))
	}
	return fields
}
