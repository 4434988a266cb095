package change

import (
	"errors"
	"slices"
)

// ErrTooLarge is returned (wrapped) by Shrink for a change that does not fit
// its limit even with every value it may omit omitted.
var ErrTooLarge = errors.New("change too large even with its values omitted")

// omittedMarkerSize is about what an Omitted marker costs encoded
// ({"omitted":true,"bytes":NNNNNNN}); replacing a shorter value gains nothing.
const omittedMarkerSize = 32

// Shrink is the size policy for change records, the same idea as
// event.Event.Shrink for events: the largest text values outside the key
// columns, in the new and the old tuple, are replaced by Omitted markers
// (Size: the value's length in bytes) until the change's encoding
// (AppendChange) is at most limit bytes. Key columns are always kept, so the
// partition key and the consumer's view of which row changed are unaffected.
//
// It appends the fitted encoding to dst and reports how many values it
// omitted. c itself is not modified. A change that still does not fit (a
// huge key, a large logical message, many columns) is an error wrapping
// ErrTooLarge, with dst holding the smallest encoding reached: a change is
// never dropped silently.
func Shrink(dst []byte, c *Change, limit int) (out []byte, omitted int, err error) {
	return shrink(dst, c, limit, AppendChange)
}

// ShrinkBody is Shrink for a change's element of a version 2 record
// (AppendBody): the same values are omitted, until the body is at most
// limit bytes.
func ShrinkBody(dst []byte, c *Change, limit int) (out []byte, omitted int, err error) {
	return shrink(dst, c, limit, AppendBody)
}

func shrink(dst []byte, c *Change, limit int, encode func([]byte, *Change) []byte) (out []byte, omitted int, err error) {
	start := len(dst)
	dst = encode(dst, c)
	if len(dst)-start <= limit {
		return dst, 0, nil
	}
	small := *c
	small.New = slices.Clone(c.New)
	small.Old = slices.Clone(c.Old)
	for len(dst)-start > limit {
		tuple, i := largestOmittable(&small)
		if tuple == nil {
			return dst, omitted, ErrTooLarge
		}
		tuple[i] = Value{State: Omitted, Size: len(tuple[i].Text)}
		omitted++
		dst = encode(dst[:start], &small)
	}
	return dst, omitted, nil
}

// largestOmittable finds the largest text value outside the key columns in
// c's tuples; tuple is nil when no value is worth omitting.
func largestOmittable(c *Change) (tuple []Value, i int) {
	best := omittedMarkerSize
	for _, t := range [][]Value{c.New, c.Old} {
		for j := range t {
			if t[j].State != Text || len(t[j].Text) <= best {
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
