package putrecords

import (
	"time"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/metrics"
)

// writerMetrics holds the writer's series, looked up once.
type writerMetrics struct {
	changes, records, bytes, batches, throttles metrics.Counter
	rerouted, shardMaps                         metrics.Counter
	retries                                     map[string]metrics.Counter
	oversized                                   *metrics.CounterVec
	claimChecked, claimCheckedBytes             *metrics.CounterVec
	commitToAck                                 *metrics.Histogram
	confirmable, buffered                       metrics.Gauge
}

// commitToAckBuckets span a healthy pipeline (tens of milliseconds) to a
// stalled one (minutes).
var commitToAckBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

func newWriterMetrics(r *metrics.Registry) writerMetrics {
	retries := r.Counter("walbridge_kinesis_retries_total", "Records re-sent to Kinesis, by reason.", "reason")
	m := writerMetrics{
		changes:           r.Counter("walbridge_kinesis_changes_total", "Row changes acknowledged by Kinesis.").With(),
		records:           r.Counter("walbridge_kinesis_records_total", "Kinesis records acknowledged (each packs one or more changes: of one partition key in version 1, of the keys of one shard in version 2).").With(),
		rerouted:          r.Counter("walbridge_kinesis_rerouted_changes_total", "Changes of version 2 records that landed on a shard not owning their key after a reshard, sent again to the shard that does.").With(),
		shardMaps:         r.Counter("walbridge_kinesis_shard_map_refreshes_total", "Shard maps listed again because a record landed on a shard the map did not predict.").With(),
		bytes:             r.Counter("walbridge_kinesis_bytes_total", "Bytes acknowledged by Kinesis (record data plus partition keys).").With(),
		batches:           r.Counter("walbridge_kinesis_batches_total", "PutRecords requests sent, retries included.").With(),
		throttles:         r.Counter("walbridge_kinesis_throttles_total", "Records Kinesis rejected for throughput (re-sent).").With(),
		retries:           map[string]metrics.Counter{},
		oversized:         r.Counter("walbridge_oversized_changes_total", "Changes too large for one Kinesis record whose largest values were omitted, by table.", "table"),
		claimChecked:      r.Counter("walbridge_claim_check_values_total", "Values kept in S3 by the claim check, a reference in their place, by table.", "table"),
		claimCheckedBytes: r.Counter("walbridge_claim_check_bytes_total", "Bytes of the values kept in S3 by the claim check, by table.", "table"),
		commitToAck:       r.Histogram("walbridge_commit_to_ack_seconds", "Time from a change's commit in PostgreSQL to its acknowledgement by Kinesis.", commitToAckBuckets),
		confirmable:       r.Gauge("walbridge_kinesis_confirmable_lsn", "Highest marked LSN whose preceding changes Kinesis has all acknowledged (as a number).").With(),
		buffered:          r.Gauge("walbridge_kinesis_buffered_bytes", "Encoded changes queued for or in flight to Kinesis.").With(),
	}
	for _, reason := range retryReasons {
		m.retries[reason] = retries.With(reason)
	}
	return m
}

// retried counts n records about to be re-sent.
func (m *writerMetrics) retried(reason string, n int) {
	m.retries[reason].Add(float64(n))
	if reason == reasonThrottled {
		m.throttles.Add(float64(n))
	}
}

// Stats is a snapshot of what the writer has done, for status output and
// benchmarks. Counts are since the metrics registry was created.
type Stats struct {
	Changes   int64 // changes acknowledged
	Records   int64 // records acknowledged
	Bytes     int64 // data plus partition keys acknowledged
	Batches   int64 // PutRecords requests sent
	Throttles int64 // records rejected for throughput
	Retries   int64 // records re-sent, all reasons
	// CommitToAckP50 and CommitToAckP99 are bucket upper bounds of the
	// commit-to-acknowledgement latency (see walbridge_commit_to_ack_seconds).
	CommitToAckP50, CommitToAckP99 time.Duration
	Confirmable                    change.LSN
}

// Stats returns a snapshot of the writer's counters.
func (w *Writer) Stats() Stats {
	s := Stats{
		Changes:        int64(w.m.changes.Value()),
		Records:        int64(w.m.records.Value()),
		Bytes:          int64(w.m.bytes.Value()),
		Batches:        int64(w.m.batches.Value()),
		Throttles:      int64(w.m.throttles.Value()),
		CommitToAckP50: seconds(w.m.commitToAck.Quantile(0.5)),
		CommitToAckP99: seconds(w.m.commitToAck.Quantile(0.99)),
		Confirmable:    w.Confirmable(),
	}
	for _, c := range w.m.retries {
		s.Retries += int64(c.Value())
	}
	return s
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
