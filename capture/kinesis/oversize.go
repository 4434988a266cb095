package kinesis

import (
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/walbridge/walbridge/shared/change"
)

// fit applies the size policy to a change whose encoding in w.scratch is
// larger than limit: the largest text values outside the key columns, in
// the new and the old tuple, are replaced by change.Omitted markers (Size is
// the value's length in bytes) until the encoding fits. Key columns are
// always kept, so the partition key and the consumer's view of which row
// changed are unaffected. c itself is not modified; w.scratch receives the
// smaller encoding. If the change still does not fit (a huge key, a large
// logical message, many columns), it returns an error wrapping
// ErrChangeTooLarge: a change is never dropped silently.
func (w *Writer) fit(c *change.Change, key string, limit int) error {
	table := c.Schema + "." + c.Table
	before := len(w.scratch) - 1
	small := *c
	small.New = slices.Clone(c.New)
	small.Old = slices.Clone(c.Old)
	omitted := 0
	for len(w.scratch)-1 > limit {
		tuple, i := largestOmittable(&small)
		if tuple == nil {
			return fmt.Errorf("%s change to %s at LSN %s is %d bytes encoded, %d with every non-key value omitted; stream %s allows %d per record including the partition key: %w",
				c.Op, table, c.LSN, before, len(w.scratch)-1, w.stream, w.maxRecord.Load(), ErrChangeTooLarge)
		}
		tuple[i] = change.Value{State: change.Omitted, Size: len(tuple[i].Text)}
		omitted++
		w.scratch = change.AppendChange(append(w.scratch[:0], ','), &small)
	}
	w.m.oversized.With(table).Inc()
	// Row values stay out of warnings; the partition key holds key values,
	// so it is logged at debug only.
	w.log.Warn("change too large for one Kinesis record; omitted its largest values",
		zap.String("table", table), zap.Stringer("lsn", c.LSN), zap.Int("bytes", before),
		zap.Int("fitted_bytes", len(w.scratch)-1), zap.Int("limit_bytes", limit), zap.Int("values_omitted", omitted))
	w.log.Debug("oversized change partition key", zap.String("table", table), zap.Stringer("lsn", c.LSN), zap.String("partition_key", key))
	return nil
}

// omittedMarkerSize is about what an Omitted marker costs encoded
// ({"omitted":true,"bytes":NNNNNNN}); replacing a shorter value gains nothing.
const omittedMarkerSize = 32

// largestOmittable finds the largest text value outside the key columns in
// c's tuples; tuple is nil when no value is worth omitting.
func largestOmittable(c *change.Change) (tuple []change.Value, i int) {
	best := omittedMarkerSize
	for _, t := range [][]change.Value{c.New, c.Old} {
		for j := range t {
			if t[j].State != change.Text || len(t[j].Text) <= best {
				continue
			}
			if j < len(c.Columns) && c.Columns[j].Key {
				continue
			}
			tuple, i, best = t, j, len(t[j].Text)
		}
	}
	return tuple, i
}
