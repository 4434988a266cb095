package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync/atomic"
	"unsafe"

	"github.com/walbridge/walbridge/shared/change"
)

// ErrKeyColumn is returned (wrapped) by Plan when a rule would exclude or
// redact a key column: the partition key is made of key values.
var ErrKeyColumn = errors.New("key columns may be hashed but not excluded or redacted")

// ErrNoHashKey is returned by NewHasher without a key.
var ErrNoHashKey = errors.New("the policy hashes columns but no key is set (WALBRIDGE_HASH_KEY)")

// Hasher computes the keyed HMAC-SHA256 that hash rules put in place of a
// value. It is not safe for concurrent use (capture's reading goroutine owns
// it).
type Hasher struct {
	fast *blockMAC // nil where it failed its self-check
	mac  hash.Hash // when fast is nil or fails
	in   []byte
	sum  []byte
	// slab holds the hex digests handed out, 64 to an allocation rather
	// than one each (a backlog hashes a column of every change). Its bytes
	// are written once and never again: a new slab replaces a full one.
	slab []byte
	// The last value and its hash: an update under REPLICA IDENTITY FULL
	// carries an untouched column's value twice.
	lastIn, lastOut string
}

// NewHasher keys a Hasher; an empty key is ErrNoHashKey.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) == 0 {
		return nil, ErrNoHashKey
	}
	return &Hasher{fast: newBlockMAC(key), mac: hmac.New(sha256.New, key)}, nil
}

// Sum is the hex HMAC-SHA256 of text.
func (h *Hasher) Sum(text string) string {
	if text == h.lastIn && h.lastOut != "" {
		return h.lastOut
	}
	ok := false
	if h.fast != nil {
		h.sum, ok = h.fast.sum(h.sum[:0], text)
	}
	if !ok {
		h.mac.Reset()
		h.in = append(h.in[:0], text...) // Write would make text's bytes escape
		h.mac.Write(h.in)
		h.sum = h.mac.Sum(h.sum[:0])
	}
	const n = 2 * sha256.Size
	if cap(h.slab)-len(h.slab) < n {
		h.slab = make([]byte, 0, 64*n)
	}
	start := len(h.slab)
	h.slab = hex.AppendEncode(h.slab, h.sum)
	// The digest's bytes are never written again (see slab), so they can
	// be the string's own, as strings.Builder does.
	h.lastIn, h.lastOut = text, unsafe.String(&h.slab[start], n) // text is immutable: no copy needed
	return h.lastOut
}

// Plan is a policy applied to one relation (its columns as a Relation
// message gave them): computed once per relation, applied to each change.
type Plan struct {
	skip    bool
	keep    []int // indexes of the columns that stay, in order
	action  []Action
	columns []change.Column // the columns as records carry them
	hasher  *Hasher
}

// Plan works out what the policy does to changes of schema.table with these
// columns. A nil plan means nothing to do. hasher may be nil when the policy
// does not hash.
func (p *Policy) Plan(schema, table string, cols []change.Column, hasher *Hasher) (*Plan, error) {
	if p == nil {
		return nil, nil
	}
	if _, ok := p.Table(schema, table); ok {
		return &Plan{skip: true}, nil
	}
	pl := &Plan{hasher: hasher}
	touched := false
	for i, col := range cols {
		r, ok := p.Column(schema, table, col.Name)
		if !ok {
			pl.keep = append(pl.keep, i)
			pl.action = append(pl.action, "")
			pl.columns = append(pl.columns, col)
			continue
		}
		touched = true
		if col.Key && r.Action != Hash {
			return nil, fmt.Errorf("%s.%s.%s is a key column; rule %s: %w", schema, table, col.Name, p.Where(r), ErrKeyColumn)
		}
		switch r.Action {
		case Exclude:
			continue
		case Hash:
			if hasher == nil {
				return nil, ErrNoHashKey
			}
			// A hash is a string, whatever the column held.
			col.OID, col.Type, col.Base, col.Kind, col.Array = 25, "text", "text", change.KindBase, false
		}
		pl.keep = append(pl.keep, i)
		pl.action = append(pl.action, r.Action)
		pl.columns = append(pl.columns, col)
	}
	if !touched {
		return nil, nil
	}
	return pl, nil
}

// Skip reports a table the policy leaves out: drop its changes.
func (pl *Plan) Skip() bool { return pl != nil && pl.skip }

// Apply rewrites c (a change of the plan's relation) in place, its tuples
// included: excluded columns leave Columns and both tuples, hashed values
// become their HMAC, redacted ones markers. Unchanged TOAST values stay
// unchanged markers and NULLs stay NULL; the placeholders of a key-only old
// tuple stay as they are. The decoder's tuples are its own, so reusing
// their arrays costs no allocation.
func (pl *Plan) Apply(c *change.Change) {
	if pl == nil || pl.skip || c.Columns == nil {
		return
	}
	var oldFull []change.Value
	if c.Old != nil && !c.OldIsKey {
		oldFull = c.Old
	}
	if c.New != nil {
		c.New = pl.tuple(c.New, oldFull, true)
	}
	if c.Old != nil {
		c.Old = pl.tuple(c.Old, nil, !c.OldIsKey)
	}
	c.Columns = pl.columns
}

// tuple rewrites one tuple; old (the full old tuple, for a new tuple) lets a
// redacted new value say whether it changed. real is false for a key-only
// tuple, whose non-key slots are placeholders.
func (pl *Plan) tuple(vals, old []change.Value, real bool) []change.Value {
	// keep is increasing, so slot j <= i: compacting in place never
	// overwrites a value still to be read. old is another array.
	out := vals[:0]
	for j, i := range pl.keep {
		v := vals[i]
		switch pl.action[j] {
		case Hash:
			if v.State == change.Text {
				v = change.Value{Text: pl.hasher.Sum(v.Text)}
			}
		case Redact:
			if real && (v.State == change.Text || v.State == change.Null) {
				// Decided only against a value the old tuple really has; an
				// unchanged-TOAST old slot stays a marker, leaving it open.
				ov := change.Value{State: change.Unchanged}
				if old != nil {
					ov = old[i]
				}
				known := ov.State == change.Text || ov.State == change.Null
				changed := known && (ov.State != v.State || ov.Text != v.Text)
				v = change.Value{State: change.Redacted, Changed: changed}
			}
		}
		out = append(out, v)
	}
	return out
}

// Live is the policy a running capture applies, swapped whole on reload
// (SIGHUP). Plans made from an older policy are told apart by Generation.
type Live struct {
	cur atomic.Pointer[live]
}

type live struct {
	policy *Policy
	hasher *Hasher
	key    []byte
	gen    uint64
}

// NewLive starts with p (nil: capture everything as it is). A policy that
// hashes needs a key.
func NewLive(p *Policy, key []byte) (*Live, error) {
	l := &Live{}
	if err := l.Store(p, key); err != nil {
		return nil, err
	}
	return l, nil
}

// Store replaces the policy; the next change of each relation is planned
// with it. It refuses a policy that hashes without a key and keeps the old.
func (l *Live) Store(p *Policy, key []byte) error {
	var h *Hasher
	if p.Hashes() {
		var err error
		if h, err = NewHasher(key); err != nil {
			return err
		}
	}
	var gen uint64
	if old := l.cur.Load(); old != nil {
		gen = old.gen + 1
	}
	l.cur.Store(&live{policy: p, hasher: h, key: key, gen: gen})
	return nil
}

// Policy is the current policy (nil when none).
func (l *Live) Policy() *Policy { return l.cur.Load().policy }

// Generation changes with every Store.
func (l *Live) Generation() uint64 { return l.cur.Load().gen }

// Plan plans a relation with the current policy. Plans share one Hasher,
// which is not safe for concurrent use: they belong to one goroutine (the
// stream's). Another goroutine uses PlanOwn.
func (l *Live) Plan(schema, table string, cols []change.Column) (*Plan, error) {
	c := l.cur.Load()
	return c.policy.Plan(schema, table, cols, c.hasher)
}

// PlanOwn plans a relation with the current policy and a Hasher of the
// plan's own, for a goroutine other than the stream's (a backfill's).
func (l *Live) PlanOwn(schema, table string, cols []change.Column) (*Plan, error) {
	c := l.cur.Load()
	var h *Hasher
	if c.hasher != nil {
		var err error
		if h, err = NewHasher(c.key); err != nil {
			return nil, err
		}
	}
	return c.policy.Plan(schema, table, cols, h)
}
