package putrecords

import (
	"context"

	"go.uber.org/zap"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/claimcheck"
)

// DefaultClaimCheckRecordBytes bounds a record's change when the claim check
// is on, whatever the stream allows (MaxRecordSizeInKiB goes up to 10 MiB):
// Lambda hands fanout its batch base64-encoded, a third larger, within 6 MB.
const DefaultClaimCheckRecordBytes = 4 << 20

// claimCheck returns c with its large values in S3 (see Config.ClaimCheck),
// or c itself when none is large. The common case costs one pass over the
// values' lengths, no encoding.
func (w *Writer) claimCheck(ctx context.Context, c *change.Change) (*change.Change, error) {
	threshold := w.cfg.ClaimCheckBytes
	appendEnc := change.AppendChange
	var shape []byte
	if w.v2 {
		appendEnc = change.AppendBody
		shape = w.shape(c) // encodeBody's, which finds it there
	}
	limit := min(w.recordLimit(shape), w.cfg.ClaimCheckRecordBytes)
	total, over := 0, false
	for _, t := range [][]change.Value{c.New, c.Old} {
		for _, v := range t {
			total += len(v.Text)
			over = over || (v.State == change.Text && len(v.Text) > threshold)
		}
	}
	// JSON escaping inflates text at most sixfold (\u00XX).
	if !over && 6*total+len(c.Columns)*256 < limit {
		return c, nil
	}
	moved := *c
	fits := func(c *change.Change) bool {
		w.fitScratch = appendEnc(w.fitScratch[:0], c)
		return len(w.fitScratch) <= limit
	}
	n, err := w.cfg.ClaimCheck.Offload(ctx, &moved, threshold, fits)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return c, nil
	}
	table := c.Schema + "." + c.Table
	stored := 0
	for _, t := range [][]change.Value{moved.New, moved.Old} {
		for _, v := range t {
			if v.State == change.Stored {
				stored += v.Size
			}
		}
	}
	w.m.claimChecked.With(table).Add(float64(n))
	w.m.claimCheckedBytes.With(table).Add(float64(stored))
	w.log.Debug("values kept in S3 (claim check)", zap.String("table", table), zap.Stringer("lsn", c.LSN),
		zap.Int("values", n), zap.Int("bytes", stored), zap.String("bucket", w.cfg.ClaimCheck.Bucket()))
	return &moved, nil
}

// claimCheckDefaults fills the claim check's defaults.
func claimCheckDefaults(cfg *Config) {
	if cfg.ClaimCheckBytes <= 0 {
		cfg.ClaimCheckBytes = claimcheck.DefaultThreshold
	}
	if cfg.ClaimCheckRecordBytes <= 0 {
		cfg.ClaimCheckRecordBytes = DefaultClaimCheckRecordBytes
	}
}
