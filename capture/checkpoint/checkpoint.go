// Package checkpoint decides which WAL position capture may confirm to
// PostgreSQL. It is the acknowledgement ledger between the WAL reader and the
// Kinesis output, kept apart from both: the reader Tracks every change it
// hands on and Marks each position it would like confirmed (a commit, an
// idle keepalive); the output Acks each change once Kinesis has it; and
// Confirmable is the highest Mark whose preceding changes, in every
// partition key, are all acknowledged. Nothing else may be confirmed.
//
// The changes between two Marks form a segment. Segments complete in any
// order (keys are acknowledged independently) but are confirmed only in
// order, so a slow key holds back every later position, as it must.
package checkpoint

import (
	"sync/atomic"

	"github.com/walbridge/walbridge/shared/change"
)

// Ticket names the segment a tracked change belongs to; Ack takes it back.
type Ticket uint64

// Tracker is the ledger. Track, Mark and Ack must be serialized by the caller
// (the output calls them under its own lock); Confirmable may be called from
// any goroutine.
type Tracker struct {
	segs        []segment // segs[head:] are open; the last one takes new changes
	head        int
	base        Ticket // ticket of segs[head]
	confirmable atomic.Uint64
}

// segment is the run of changes between two Marks: lsn becomes confirmable
// when pending reaches zero and every earlier segment is done.
type segment struct {
	lsn     change.LSN
	pending int
}

// New returns an empty tracker: nothing pending, nothing confirmable.
func New() *Tracker {
	return &Tracker{segs: []segment{{}}}
}

// Track records one more change, in stream order, and returns the ticket its
// Ack must present.
func (t *Tracker) Track() Ticket {
	last := len(t.segs) - 1
	t.segs[last].pending++
	return t.base + Ticket(last-t.head)
}

// Mark says: once every change tracked so far is acknowledged, lsn may be
// confirmed. A lower lsn than an earlier Mark never lowers Confirmable.
func (t *Tracker) Mark(lsn change.LSN) {
	last := len(t.segs) - 1
	if t.segs[last].pending > 0 {
		t.segs[last].lsn = lsn
		t.segs = append(t.segs, segment{})
		t.advance()
		return
	}
	// Nothing tracked since the last Mark is unacknowledged (often nothing
	// was tracked at all): lsn is confirmable exactly when the previous
	// segment is, so it joins that one instead of growing the list
	// (keepalives while a record is stuck).
	if last == t.head {
		t.confirm(lsn)
		return
	}
	t.segs[last-1].lsn = max(t.segs[last-1].lsn, lsn)
}

// Ack retires one tracked change.
func (t *Tracker) Ack(ticket Ticket) {
	t.segs[t.head+int(ticket-t.base)].pending--
	t.advance()
}

// Confirmable is the highest marked LSN whose preceding changes are all
// acknowledged (0 before any).
func (t *Tracker) Confirmable() change.LSN { return change.LSN(t.confirmable.Load()) }

// Open is the number of segments not yet confirmed, the open one included:
// how much the ledger holds.
func (t *Tracker) Open() int { return len(t.segs) - t.head }

// advance confirms the finished segments at the front, in order.
func (t *Tracker) advance() {
	for len(t.segs)-t.head > 1 && t.segs[t.head].pending == 0 {
		t.confirm(t.segs[t.head].lsn)
		t.segs[t.head] = segment{}
		t.head++
		t.base++
	}
	// Reuse the front of the slice once it is mostly done.
	if t.head > 0 && t.head*2 >= len(t.segs) {
		n := copy(t.segs, t.segs[t.head:])
		t.segs = t.segs[:n]
		t.head = 0
	}
}

func (t *Tracker) confirm(lsn change.LSN) {
	if uint64(lsn) > t.confirmable.Load() {
		t.confirmable.Store(uint64(lsn))
	}
}
