// Package cwmetrics publishes the capture series the CloudWatch alarms in
// infra/template.yaml watch, once a period, to namespace walbridge with
// dimension Slot: ReplicationSlotWALRetainedBytes, ConfirmedLSNAdvancedSeconds
// (how long the confirmed LSN has not moved), CommitToAckLatencyMs (the
// largest commit-to-ack latency of the period, as a histogram bucket bound)
// and ClaimCheckRetries (the claim check's failed S3 puts in the period).
// The values are read from capture's metrics registry, so Prometheus and
// CloudWatch always agree.
package cwmetrics

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/shared/metrics"
)

// Namespace is the CloudWatch namespace the alarms read.
const Namespace = "walbridge"

// The series capture publishes, with the dimension Dimension (the slot).
const (
	Dimension            = "Slot"
	WALRetainedBytes     = "ReplicationSlotWALRetainedBytes"
	ConfirmedLSNAdvanced = "ConfirmedLSNAdvancedSeconds"
	CommitToAckLatencyMs = "CommitToAckLatencyMs"
	// ClaimCheckRetries counts the claim check's failed S3 puts in the
	// period (each retried; while they fail, capture reads nothing more).
	ClaimCheckRetries = "ClaimCheckRetries"
	// SetupRefused is 1 when capture setup refused (keyless tables,
	// wal_level, a missing right: what no retry cures), 0 when it
	// succeeded.
	SetupRefused = "SetupRefused"
)

// Names are the series' names, for the stack's alarms and dashboard.
var Names = []string{WALRetainedBytes, ConfirmedLSNAdvanced, CommitToAckLatencyMs, ClaimCheckRetries, SetupRefused}

// PublishSetup sends one SetupRefused datum: capture setup's outcome.
func PublishSetup(ctx context.Context, api API, slot string, refused bool, now time.Time) error {
	v := 0.0
	if refused {
		v = 1
	}
	_, err := api.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(Namespace), MetricData: []types.MetricDatum{{
		MetricName: aws.String(SetupRefused), Dimensions: []types.Dimension{{Name: aws.String(Dimension), Value: aws.String(slot)}},
		Timestamp: aws.Time(now), Unit: types.StandardUnitCount, Value: aws.Float64(v),
	}}})
	if err != nil {
		return fmt.Errorf("PutMetricData %s: %w", SetupRefused, err)
	}
	return nil
}

// API is the CloudWatch call the publisher makes.
type API interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// Publisher sends the series; Run loops, Publish sends once.
type Publisher struct {
	api      API
	slot     string
	retained metrics.Gauge
	advanced metrics.Gauge
	latency  *metrics.Histogram
	retries  metrics.Counter
	prev     []uint64
	// prevRetries is the retry count at the last publish.
	prevRetries float64
	log         *zap.Logger
	now         func() time.Time
}

// New reads its series from reg (registering them if capture has not yet).
func New(api API, reg *metrics.Registry, slot string, log *zap.Logger) *Publisher {
	return &Publisher{
		api: api, slot: slot, log: log, now: time.Now,
		retained: reg.Gauge("walbridge_slot_wal_retained_bytes", "").With(),
		advanced: reg.Gauge("walbridge_confirmed_lsn_advanced_timestamp_seconds", "").With(),
		latency:  reg.Histogram("walbridge_commit_to_ack_seconds", "", nil),
		retries:  reg.Counter("walbridge_claim_check_retries_total", "").With(),
	}
}

// Run publishes every period until ctx ends. Failures are logged and the
// next period tries again: metrics must never stop capture.
func (p *Publisher) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Publish(ctx); err != nil {
				p.log.Warn("publish CloudWatch metrics", zap.Error(err))
			}
		}
	}
}

// Publish sends one datum of each series.
func (p *Publisher) Publish(ctx context.Context) error {
	now := p.now()
	dim := []types.Dimension{{Name: aws.String(Dimension), Value: aws.String(p.slot)}}
	data := []types.MetricDatum{
		{MetricName: aws.String(WALRetainedBytes), Dimensions: dim, Timestamp: aws.Time(now), Unit: types.StandardUnitBytes, Value: aws.Float64(p.retained.Value())},
	}
	if at := p.advanced.Value(); at > 0 {
		data = append(data, types.MetricDatum{MetricName: aws.String(ConfirmedLSNAdvanced), Dimensions: dim, Timestamp: aws.Time(now), Unit: types.StandardUnitSeconds,
			Value: aws.Float64(max(0, float64(now.Unix())-at))})
	}
	retries := p.retries.Value()
	data = append(data, types.MetricDatum{MetricName: aws.String(ClaimCheckRetries), Dimensions: dim, Timestamp: aws.Time(now), Unit: types.StandardUnitCount,
		Value: aws.Float64(retries - p.prevRetries)})
	p.prevRetries = retries
	if ms, ok := p.periodMaxLatencyMs(); ok {
		data = append(data, types.MetricDatum{MetricName: aws.String(CommitToAckLatencyMs), Dimensions: dim, Timestamp: aws.Time(now), Unit: types.StandardUnitMilliseconds, Value: aws.Float64(ms)})
	}
	if _, err := p.api.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(Namespace), MetricData: data}); err != nil {
		return fmt.Errorf("PutMetricData: %w", err)
	}
	return nil
}

// periodMaxLatencyMs is the upper bound of the highest bucket that gained
// observations since the last call (the last bucket's bound for overflow).
func (p *Publisher) periodMaxLatencyMs() (float64, bool) {
	bounds, counts := p.latency.Snapshot()
	prev := p.prev
	p.prev = counts
	for i := len(counts) - 1; i >= 0; i-- {
		var before uint64
		if i < len(prev) {
			before = prev[i]
		}
		if counts[i] > before {
			return bounds[min(i, len(bounds)-1)] * 1000, true
		}
	}
	return 0, false
}
