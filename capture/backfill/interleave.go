package backfill

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/walbridge/walbridge/shared/change"
)

// recentXIDs is how many of the latest transactions the coordinator
// remembers, to catch a chunk snapshot that missed a transaction committed
// just before the low watermark (see the package doc). Such a transaction
// is still finishing when the snapshot is taken, microseconds after its
// commit record, so a few thousand transactions is ample.
const recentXIDs = 8192

// Coordinator is where the stream and the backfill worker meet. The stream
// calls Observe and Marked (replication.Interleaver); the worker opens and
// fills windows. Only one window is ever between its watermarks in the
// stream: the worker writes a window's high watermark before the next one's
// low watermark.
type Coordinator struct {
	run  string        // this process's token in watermarks: older ones are ignored
	wake chan struct{} // a RequestPrefix message passed (capacity 1)

	mu      sync.Mutex
	windows map[uint64]*window
	nextID  uint64
	open    *window // between its low and high watermark in the stream
	marking *window // high watermark passed; waiting for its commit's Mark
	xids    [recentXIDs]uint32
	xidPos  int
	lastXID uint32
}

// NewCoordinator returns a coordinator with a fresh run token.
func NewCoordinator() *Coordinator {
	var tok [8]byte
	rand.Read(tok[:])
	return &Coordinator{run: hex.EncodeToString(tok[:]), wake: make(chan struct{}, 1), windows: map[uint64]*window{}}
}

// Wake is signalled when a backfill request or cancellation passes in the
// stream.
func (co *Coordinator) Wake() <-chan struct{} { return co.wake }

// window is one chunk between its watermarks.
type window struct {
	id       uint64
	backfill string // id, as reads carry it
	schema   string
	table    string

	// Set by the worker before it writes the high watermark.
	filled bool
	rows   []change.Change // policy applied, positions not yet set
	keys   []string        // partition key of each row
	raw    [][]*string     // raw key values of each row (before the policy)
	xip    []uint32        // transactions the chunk's snapshot saw as running

	// Set by the stream.
	opened    bool
	hits      map[string]bool // partition keys live changes touched; true: a partial update
	truncated bool
	before    []uint32 // the recent transactions at the low watermark
	closed    bool
	retry     bool        // the snapshot missed a transaction before the low watermark
	emitted   int         // reads added to the stream
	dropped   int         // rows left out: a live change carries them
	recheck   [][]*string // dropped rows to read again (partial updates)
	durableAt change.LSN  // the Mark after the high watermark
	done      chan struct{}
}

// newWindow registers a window for the worker; watermarks name it.
func (co *Coordinator) newWindow(backfill int64, schema, table string) *window {
	co.mu.Lock()
	defer co.mu.Unlock()
	co.nextID++
	w := &window{id: co.nextID, backfill: strconv.FormatInt(backfill, 10), schema: schema, table: table,
		hits: map[string]bool{}, done: make(chan struct{})}
	co.windows[w.id] = w
	return w
}

// forget drops a window the worker gave up on (its watermarks, if they
// pass later, are ignored).
func (co *Coordinator) forget(w *window) {
	co.mu.Lock()
	defer co.mu.Unlock()
	delete(co.windows, w.id)
	if co.open == w {
		co.open = nil
	}
	if co.marking == w {
		co.marking = nil
	}
}

// watermark is the content of a watermark message for w: kind is low,
// high, or locked (a read under row locks, committed with the message).
func (co *Coordinator) watermark(w *window, kind string) string {
	return co.run + " " + strconv.FormatUint(w.id, 10) + " " + kind
}

// fill hands the chunk to the stream; call before writing the high
// watermark.
func (co *Coordinator) fill(w *window, rows []change.Change, keys []string, raw [][]*string, xip []uint32) {
	co.mu.Lock()
	defer co.mu.Unlock()
	w.rows, w.keys, w.raw, w.xip, w.filled = rows, keys, raw, xip, true
}

// Observe implements replication.Interleaver.
func (co *Coordinator) Observe(c *change.Change) ([]change.Change, bool) {
	switch {
	case c.Op == change.Message:
		switch c.Prefix {
		case RequestPrefix:
			select {
			case co.wake <- struct{}{}:
			default:
			}
			return nil, false
		case WatermarkPrefix:
			return co.passWatermark(c), false
		}
		return nil, true
	case c.Schema == Schema:
		return nil, false // walbridge.backfills under a FOR ALL TABLES publication
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if c.XID != co.lastXID {
		co.lastXID = c.XID
		co.xids[co.xidPos] = c.XID
		co.xidPos = (co.xidPos + 1) % recentXIDs
	}
	w := co.open
	if w == nil || w.schema != c.Schema || w.table != c.Table {
		return nil, true
	}
	switch c.Op {
	case change.Truncate:
		w.truncated = true
	case change.Insert, change.Update, change.Delete:
		partial := false
		if c.Op == change.Update {
			for i := range c.New {
				if c.New[i].State == change.Unchanged {
					partial = true
					break
				}
			}
		}
		for _, tuple := range [][]change.Value{c.New, c.Old} {
			if tuple == nil {
				continue
			}
			k := string(change.AppendRowKey(nil, c, tuple))
			w.hits[k] = w.hits[k] || partial
		}
	}
	return nil, true
}

// passWatermark handles a watermark in the stream: a low one opens its
// window, a high one closes it and returns the rows no live change touched,
// as reads at the watermark's position.
func (co *Coordinator) passWatermark(m *change.Change) []change.Change {
	run, rest, _ := strings.Cut(string(m.Content), " ")
	idText, kind, _ := strings.Cut(rest, " ")
	if run != co.run {
		return nil // an earlier process's window
	}
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return nil
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	w := co.windows[id]
	if w == nil || w.closed {
		return nil // a replay after reconnecting: already handled
	}
	if kind == "low" {
		if !w.opened {
			w.opened = true
			w.before = append([]uint32(nil), co.xids[:]...)
		}
		co.open = w
		return nil
	}
	if kind == "locked" && w.filled {
		// Rows read under row locks, this message committed in the same
		// transaction: no change to them can commit between the read and
		// this point, so there is no window and nothing to drop.
		w.opened = true
	}
	if (kind != "high" && kind != "locked") || !w.opened || !w.filled {
		// A high watermark before its low one or its rows cannot happen
		// within one process; treat it as a race and read again.
		w.retry = true
	}
	w.closed = true
	if co.open == w {
		co.open = nil
	}
	co.marking = w
	if w.retry || w.missed() {
		w.retry = true
		return nil
	}
	out := w.rows[:0]
	seq := m.Seq
	for i := range w.rows {
		partial, hit := w.hits[w.keys[i]]
		if hit || w.truncated {
			w.dropped++
			if partial && !w.truncated {
				w.recheck = append(w.recheck, w.raw[i])
			}
			continue
		}
		r := w.rows[i]
		seq++
		r.XID, r.CommitLSN, r.LSN, r.CommitTime, r.Seq, r.Backfill = m.XID, m.CommitLSN, m.LSN, m.CommitTime, seq, w.backfill
		out = append(out, r)
	}
	w.emitted = len(out)
	w.rows, w.keys, w.hits = nil, nil, nil
	return out
}

// missed reports whether the chunk's snapshot saw as running a transaction
// whose changes the stream passed before the low watermark.
func (w *window) missed() bool {
	for _, x := range w.xip {
		for _, y := range w.before {
			if x == y && x != 0 {
				return true
			}
		}
	}
	return false
}

// Marked implements replication.Interleaver.
func (co *Coordinator) Marked(lsn change.LSN) {
	co.mu.Lock()
	defer co.mu.Unlock()
	if w := co.marking; w != nil {
		co.marking = nil
		w.durableAt = lsn
		delete(co.windows, w.id)
		close(w.done)
	}
}

// parseXIP reads the in-progress list of a pg_snapshot's text form
// (xmin:xmax:xip,...), as 32-bit transaction ids like pgoutput's.
func parseXIP(snap string) ([]uint32, error) {
	parts := strings.Split(snap, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("unexpected snapshot %q", snap)
	}
	if parts[2] == "" {
		return nil, nil
	}
	var out []uint32
	for _, f := range strings.Split(parts[2], ",") {
		x, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("unexpected snapshot %q", snap)
		}
		out = append(out, uint32(x))
	}
	return out, nil
}
