package putrecords

import (
	"context"
	"errors"
	"fmt"

	"github.com/walbridge/walbridge/shared/backoff"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"
)

// checkAttempts bounds Check's retries: it runs at startup and in status
// commands, where an unreachable endpoint should be reported, not waited out.
const checkAttempts = 5

// Check describes the stream (DescribeStreamSummary) and refuses one the
// writer cannot use: missing, not ACTIVE (UPDATING is fine: resharding keeps
// writes going), or on-demand with RecordDistributionStrategy AUTO, which
// places records without regard to partition keys and so loses per-row
// order. It learns the stream's MaxRecordSizeInKiB (1024 when not reported),
// which bounds records from then on.
func (w *Writer) Check(ctx context.Context) error {
	in := &kinesis.DescribeStreamSummaryInput{StreamName: w.name, StreamARN: w.arn}
	var out *kinesis.DescribeStreamSummaryOutput
	var err error
	for attempt := 0; ; attempt++ {
		out, err = w.api.DescribeStreamSummary(ctx, in)
		if err == nil || ctx.Err() != nil || attempt+1 == checkAttempts {
			break
		}
		reason, ok := classify(err)
		if !ok {
			break
		}
		w.log.Warn("retrying DescribeStreamSummary", zap.String("reason", reason), zap.Error(err))
		if !backoff.Sleep(ctx, backoff.Policy{Base: w.cfg.RetryBase, Max: w.cfg.RetryMax}.Delay(attempt)) {
			break
		}
	}
	if err != nil {
		var nf *types.ResourceNotFoundException
		var denied *types.AccessDeniedException
		switch {
		case errors.As(err, &nf):
			return fmt.Errorf("stream %s not found (check the name or ARN, the region and the account): %w", w.stream, err)
		case errors.As(err, &denied):
			return fmt.Errorf("not allowed to describe stream %s (the role needs kinesis:DescribeStreamSummary and kinesis:PutRecords): %w", w.stream, err)
		}
		return fmt.Errorf("describe stream %s: %w", w.stream, err)
	}
	s := out.StreamDescriptionSummary
	if s == nil {
		return fmt.Errorf("describe stream %s: empty answer", w.stream)
	}
	switch s.StreamStatus {
	case types.StreamStatusActive, types.StreamStatusUpdating:
	case types.StreamStatusCreating:
		return fmt.Errorf("stream %s is CREATING; wait until it is ACTIVE", w.stream)
	case types.StreamStatusDeleting:
		return fmt.Errorf("stream %s is DELETING; it cannot take records", w.stream)
	default:
		return fmt.Errorf("stream %s is %s, not ACTIVE", w.stream, s.StreamStatus)
	}
	if s.RecordDistributionStrategy == types.RecordDistributionStrategyAuto {
		return fmt.Errorf("stream %s uses RecordDistributionStrategy AUTO, which ignores partition keys and breaks per-row order; set it to %s (UpdateStreamRecordDistributionStrategy)",
			w.stream, types.RecordDistributionStrategyUserPartitionKey)
	}
	kib := int32(DefaultMaxRecordSizeInKiB)
	if s.MaxRecordSizeInKiB != nil && *s.MaxRecordSizeInKiB > 0 {
		kib = *s.MaxRecordSizeInKiB
	}
	w.maxRecord.Store(int64(kib) << 10)
	mode := types.StreamModeProvisioned
	if s.StreamModeDetails != nil {
		mode = s.StreamModeDetails.StreamMode
	}
	if w.v2 {
		if err := w.loadShards(ctx); err != nil {
			return fmt.Errorf("stream %s: %w", w.stream, err)
		}
	}
	w.log.Info("kinesis stream ready", zap.String("status", string(s.StreamStatus)), zap.String("mode", string(mode)),
		zap.Int32("max_record_kib", kib), zap.Int32("open_shards", aws.ToInt32(s.OpenShardCount)), zap.String("record_format", w.cfg.Format))
	return nil
}
