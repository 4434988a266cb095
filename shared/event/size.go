package event

import (
	"slices"
	"strconv"

	"github.com/walbridge/walbridge/shared/change"
)

// timeEntryBytes is what EventBridge counts for an entry's Time, whatever its
// value.
const timeEntryBytes = 14

// EntrySize is the size EventBridge counts for this event as a PutEvents
// entry (the documented calculation): 14 bytes for Time when set, plus the
// UTF-8 bytes of Source, DetailType, Detail and each resource. A request's
// entries together must stay within the account's limit.
func (e *Event) EntrySize() int {
	n := len(e.Source) + len(e.DetailType) + len(e.Detail)
	if !e.Time.IsZero() {
		n += timeEntryBytes
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

// Shrink makes the event fit limit bytes (by EntrySize) by replacing column
// values with {"type":T,"omitted":true,"bytes":N} markers, largest first, and
// as few as it takes. It reports how many values it replaced and whether the
// event now fits; an event that does not fit even with every value replaced
// is left with every value replaced. It is the policy change.Shrink applies
// to change records in capture, applied to events in fanout.
func (e *Event) Shrink(limit int) (omitted int, fits bool) {
	omitted, fits, _ = e.shrink(limit, valueSpan.markerLen, func(dst []byte, v valueSpan) ([]byte, error) {
		return appendOmitted(dst, v.size), nil
	})
	return omitted, fits
}

// ShrinkToRefs is Shrink with claim-check references in place of omitted
// markers: put stores a value's text (in S3) and returns its reference. An
// error of put leaves the event as it was.
func (e *Event) ShrinkToRefs(limit int, bucket string, put func(text string) (*change.Ref, error)) (moved int, fits bool, err error) {
	// A reference's length, but for the value's size: the key and hash are
	// of fixed length.
	refLen := len(`,"s3":{"bucket":"","key":""},"bytes":,"sha256":"","valueEncoding":"text"}`) + len(bucket) + len(change.RefKeyPrefix) + 2*64 + 20
	return e.shrink(limit, func(v valueSpan) int { return v.typeEnd - v.start + refLen }, func(dst []byte, v valueSpan) ([]byte, error) {
		ref, err := put(v.text)
		if err != nil {
			return nil, err
		}
		return appendStored(dst, v.ct, ref, v.size), nil
	})
}

// shrink replaces the largest values, as few as it takes, with what replace
// writes (at most markerLen bytes for the whole value object).
func (e *Event) shrink(limit int, markerLen func(valueSpan) int, replace func(dst []byte, v valueSpan) ([]byte, error)) (replaced int, fits bool, err error) {
	excess := e.EntrySize() - limit
	if excess <= 0 {
		return 0, true, nil
	}
	order := make([]int, len(e.values))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return (e.values[b].end - e.values[b].start) - (e.values[a].end - e.values[a].start)
	})
	drop := make([]bool, len(e.values))
	for _, i := range order {
		if excess <= 0 {
			break
		}
		saved := (e.values[i].end - e.values[i].start) - markerLen(e.values[i])
		if saved <= 0 {
			continue
		}
		drop[i] = true
		excess -= saved
		replaced++
	}
	if replaced == 0 {
		return 0, false, nil
	}
	detail := make([]byte, 0, len(e.Detail))
	kept := e.values[:0:0]
	prev := 0
	for i, v := range e.values {
		if !drop[i] {
			shift := len(detail) - prev + v.start
			detail = append(detail, e.Detail[prev:v.end]...)
			kept = append(kept, valueSpan{start: shift, typeEnd: v.typeEnd - v.start + shift, end: v.end - v.start + shift, size: v.size, text: v.text, ct: v.ct})
			prev = v.end
			continue
		}
		detail = append(detail, e.Detail[prev:v.typeEnd]...)
		if detail, err = replace(detail, v); err != nil {
			return 0, false, err
		}
		prev = v.end
	}
	detail = append(detail, e.Detail[prev:]...)
	e.Detail, e.values = detail, kept
	return replaced, e.EntrySize() <= limit, nil
}

// markerLen is the length of the omitted marker that would replace the span.
func (v valueSpan) markerLen() int {
	var buf [20]byte
	return v.typeEnd - v.start + len(`,"omitted":true,"bytes":}`) + len(strconv.AppendInt(buf[:0], int64(v.size), 10))
}
