// Package event is the DatabaseEvent contract: the EventBridge entry that
// fanout publishes for one row change, built from a change record.
//
// FromChange renders a change.Change into an Event whose Detail is the JSON
// object consumers see as "detail". Every column value is an object with a
// "type" next to its "value" (see README.md for the type mapping); unchanged
// TOAST values and values left out for size are explicit markers, never null.
// The encoder is hand-written: it runs once per row change on fanout's hot
// path, and it records where each value sits in Detail so that Shrink can
// replace the largest ones without rendering the event again.
//
// Size: about 1,100 lines, because this is the contract: the envelope, the
// type mapping of every PostgreSQL type family (values.go, types.go), the
// markers and the size policy, which build and measure one Detail together.
package event

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/jsontext"
)

// Defaults for Config's empty fields.
const (
	DefaultSource            = "walbridge.database"
	DefaultDetailType        = "DatabaseEvent"
	DefaultMessageDetailType = "DatabaseMessage"
)

// timestampLayout is the contract's commit timestamp: six fractional digits
// and an explicit +00:00 offset.
const timestampLayout = "2006-01-02T15:04:05.000000-07:00"

// Config holds the entry fields that do not come from the change.
type Config struct {
	// Source is the entry's source (DefaultSource when empty).
	Source string
	// DetailType is the detail-type of row changes (DefaultDetailType when empty).
	DetailType string
	// MessageDetailType is the detail-type of logical messages
	// (DefaultMessageDetailType when empty).
	MessageDetailType string
	// SchemaDetailType is the detail-type of schema changes
	// (DefaultSchemaDetailType when empty).
	SchemaDetailType string
	// Resource is the single entry of resources; the change's database name
	// when empty.
	Resource string
}

// Event is one PutEvents entry.
type Event struct {
	Source     string
	DetailType string
	Resources  []string
	// Time is the commit time, the entry's Time. Zero leaves Time unset (so
	// EventBridge stamps the time of receipt).
	Time time.Time
	// Detail is the JSON object sent as the entry's Detail.
	Detail []byte

	// Identification for logs and metrics; never row values.
	Schema, Table string
	Operation     change.Op
	LSN           change.LSN // commit LSN, as in Detail
	Seq           uint32

	values []valueSpan // the column values in Detail, for Shrink
}

// valueSpan locates one column's value object in Detail: Detail[start:end]
// is the object and Detail[start:typeEnd] its `{"type":"..."` prefix.
type valueSpan struct {
	start, typeEnd, end int
	size                int // the value's size in bytes (PostgreSQL text form)
	// text and ct are the value and its column's type, for a claim-check
	// reference in its place (ShrinkToRefs).
	text string
	ct   columnType
}

// ErrNotRowChange is returned (wrapped) by FromChange for a change that has no
// DatabaseEvent form. Use FromMessage for logical messages.
var ErrNotRowChange = errors.New("not a row change")

// FromChange builds the DatabaseEvent for an insert, update, delete,
// truncate or a backfill's read.
func FromChange(c *change.Change, cfg Config) (Event, error) {
	switch c.Op {
	case change.Insert, change.Update, change.Delete, change.Truncate, change.Read:
	default:
		return Event{}, fmt.Errorf("build event for %q change: %w", c.Op, ErrNotRowChange)
	}
	if err := c.Validate(); err != nil {
		return Event{}, fmt.Errorf("build event: %w", err)
	}
	cfg = cfg.withDefaults()
	ev := Event{
		Source:     cfg.Source,
		DetailType: cfg.DetailType,
		Resources:  cfg.resources(c.Database),
		Time:       c.CommitTime,
		Schema:     c.Schema,
		Table:      c.Table,
		Operation:  c.Op,
		LSN:        c.CommitLSN,
		Seq:        c.Seq,
	}
	b := builder{dst: make([]byte, 0, estimateDetail(c))}
	b.rowChange(c)
	ev.Detail, ev.values = b.dst, b.spans
	return ev, nil
}

// FromMessage builds the DatabaseMessage event for a logical message
// (pg_logical_emit_message). Content is a string when it is valid UTF-8 and
// otherwise base64 with "contentEncoding":"base64".
func FromMessage(c *change.Change, cfg Config) (Event, error) {
	if c.Op != change.Message {
		return Event{}, fmt.Errorf("build message event for %q change: not a logical message", c.Op)
	}
	cfg = cfg.withDefaults()
	ev := Event{
		Source:     cfg.Source,
		DetailType: cfg.MessageDetailType,
		Resources:  cfg.resources(c.Database),
		Time:       c.CommitTime,
		Operation:  c.Op,
		LSN:        c.CommitLSN,
		Seq:        c.Seq,
	}
	b := builder{dst: make([]byte, 0, 256+len(c.Prefix)+2*len(c.Content))}
	b.head(c)
	b.dst = append(b.dst, `,"lsn":`...)
	b.lsn(c.CommitLSN)
	b.dst = append(b.dst, `,"seq":`...)
	b.dst = strconv.AppendUint(b.dst, uint64(c.Seq), 10)
	b.dst = append(b.dst, `,"prefix":`...)
	b.dst = jsontext.AppendString(b.dst, c.Prefix)
	b.dst = append(b.dst, `,"content":`...)
	if utf8.Valid(c.Content) {
		b.dst = jsontext.AppendString(b.dst, string(c.Content))
	} else {
		b.dst = append(b.dst, '"')
		b.dst = base64.StdEncoding.AppendEncode(b.dst, c.Content)
		b.dst = append(b.dst, `","contentEncoding":"base64"`...)
	}
	b.dst = append(b.dst, `,"transactional":`...)
	b.dst = strconv.AppendBool(b.dst, c.Transactional)
	b.dst = append(b.dst, '}')
	ev.Detail = b.dst
	return ev, nil
}

func (cfg Config) withDefaults() Config {
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if cfg.DetailType == "" {
		cfg.DetailType = DefaultDetailType
	}
	if cfg.MessageDetailType == "" {
		cfg.MessageDetailType = DefaultMessageDetailType
	}
	if cfg.SchemaDetailType == "" {
		cfg.SchemaDetailType = DefaultSchemaDetailType
	}
	return cfg
}

func (cfg Config) resources(database string) []string {
	if cfg.Resource != "" {
		return []string{cfg.Resource}
	}
	if database == "" {
		return nil
	}
	return []string{database}
}

// estimateDetail guesses the detail's size so that it is built in one
// allocation most of the time.
func estimateDetail(c *change.Change) int {
	n := 256
	for i := range c.Columns {
		n += 3*len(c.Columns[i].Name) + 48
	}
	for _, t := range [][]change.Value{c.New, c.Old} {
		for i := range t {
			n += len(t[i].Text) + len(t[i].Text)/8
		}
	}
	return n
}

type builder struct {
	dst   []byte
	spans []valueSpan
}

// head writes the fields every event starts with.
func (b *builder) head(c *change.Change) {
	b.dst = append(b.dst, `{"txnid":`...)
	b.dst = strconv.AppendUint(b.dst, uint64(c.XID), 10)
	b.dst = append(b.dst, `,"timestamp":"`...)
	b.dst = c.CommitTime.UTC().Truncate(time.Microsecond).AppendFormat(b.dst, timestampLayout)
	b.dst = append(b.dst, '"')
}

// lsn appends the LSN as a JSON string in pg_lsn's form (16/B374D848).
func (b *builder) lsn(l change.LSN) {
	b.dst = append(b.dst, '"')
	b.dst = change.AppendLSN(b.dst, l)
	b.dst = append(b.dst, '"')
}

func (b *builder) rowChange(c *change.Change) {
	b.head(c)
	b.dst = append(b.dst, `,"schema":`...)
	b.dst = jsontext.AppendString(b.dst, c.Schema)
	b.dst = append(b.dst, `,"table":`...)
	b.dst = jsontext.AppendString(b.dst, c.Table)
	b.dst = append(b.dst, `,"operation":`...)
	b.dst = jsontext.AppendString(b.dst, string(c.Op))

	var types []columnType
	if c.Op != change.Truncate {
		types = make([]columnType, len(c.Columns))
		for i := range c.Columns {
			types[i] = typeOf(&c.Columns[i])
		}
		b.spans = make([]valueSpan, 0, len(c.New)+len(c.Old))
	}
	var complete bool
	switch c.Op {
	case change.Insert, change.Read:
		b.values("newValues", c, types, c.New, nil, false)
		b.allColumns(c)
	case change.Update:
		b.values("newValues", c, types, c.New, c.Old, false)
		if c.Old != nil {
			b.values("oldValues", c, types, c.Old, nil, c.OldIsKey)
		}
		complete = b.changedColumns(c)
	case change.Delete:
		if c.Old != nil {
			b.values("oldValues", c, types, c.Old, nil, c.OldIsKey)
		}
		b.allColumns(c)
	}
	b.dst = append(b.dst, `,"lsn":`...)
	b.lsn(c.CommitLSN)
	b.dst = append(b.dst, `,"seq":`...)
	b.dst = strconv.AppendUint(b.dst, uint64(c.Seq), 10)
	if c.Op == change.Update {
		b.dst = append(b.dst, `,"changedValuesComplete":`...)
		b.dst = strconv.AppendBool(b.dst, complete)
	}
	if c.Op == change.Read {
		b.dst = append(b.dst, `,"backfill":`...)
		b.dst = jsontext.AppendString(b.dst, c.Backfill)
	}
	if c.Op == change.Truncate {
		if c.Cascade {
			b.dst = append(b.dst, `,"cascade":true`...)
		}
		if c.RestartIdentity {
			b.dst = append(b.dst, `,"restartIdentity":true`...)
		}
	}
	b.dst = append(b.dst, '}')
}

// values writes one tuple as an object keyed by column name. Unchanged TOAST
// values in tuple are taken from fill (the old tuple) when it has them. With
// keyOnly (pgoutput's key tuple) only the key columns are written: the other
// slots are placeholders.
func (b *builder) values(name string, c *change.Change, types []columnType, tuple, fill []change.Value, keyOnly bool) {
	b.dst = append(b.dst, ',', '"')
	b.dst = append(b.dst, name...)
	b.dst = append(b.dst, `":{`...)
	first := true
	for i := range tuple {
		if keyOnly && !inKeyTuple(c, i) {
			continue
		}
		v := tuple[i]
		if v.State == change.Unchanged && fill != nil && carries(c, fill, i) {
			v = fill[i]
		}
		if !first {
			b.dst = append(b.dst, ',')
		}
		first = false
		b.dst = jsontext.AppendString(b.dst, c.Columns[i].Name)
		b.dst = append(b.dst, ':')
		start := len(b.dst)
		var typeEnd int
		b.dst, typeEnd = appendField(b.dst, types[i], v)
		if v.State == change.Text {
			b.spans = append(b.spans, valueSpan{start: start, typeEnd: typeEnd, end: len(b.dst), size: len(v.Text), text: v.Text, ct: types[i]})
		}
	}
	b.dst = append(b.dst, '}')
}

// carries reports whether slot i of the old tuple holds the column's real
// value (a NULL in a key-only tuple is a placeholder).
func carries(c *change.Change, old []change.Value, i int) bool {
	switch old[i].State {
	case change.Text:
		return true
	case change.Null:
		return !c.OldIsKey
	}
	return false
}

// inKeyTuple reports whether slot i of a key-only old tuple carries a value.
// Replica identity columns (primary key or identity index) are NOT NULL, so a
// NULL slot is always a placeholder; going by the slot rather than by
// Column.Key stays right even if the two ever disagree.
func inKeyTuple(c *change.Change, i int) bool {
	return c.Old[i].State != change.Null
}

// allColumns writes changedValues for inserts and deletes: every column.
func (b *builder) allColumns(c *change.Change) {
	b.dst = append(b.dst, `,"changedValues":[`...)
	for i := range c.Columns {
		if i > 0 {
			b.dst = append(b.dst, ',')
		}
		b.dst = jsontext.AppendString(b.dst, c.Columns[i].Name)
	}
	b.dst = append(b.dst, ']')
}

// changedColumns writes changedValues for an update and reports whether the
// list is complete. With a full old tuple every column is decided by
// comparing text forms (one output function per type, so equal values print
// equally); a column whose old or new value was not sent (omitted, or
// unchanged TOAST on the old side only) leaves the list incomplete. Without a
// full old tuple the list holds only what is provably changed: key columns of
// a key-only old tuple whose value differs from the new one.
func (b *builder) changedColumns(c *change.Change) bool {
	full := c.Old != nil && !c.OldIsKey // pgoutput's 'O' tuple: the whole old row
	complete := full
	b.dst = append(b.dst, `,"changedValues":[`...)
	first := true
	for i := range c.Columns {
		nv := c.New[i]
		var changed, decided bool
		switch {
		case nv.State == change.Unchanged:
			changed, decided = false, true
		case c.Old == nil || (c.OldIsKey && !inKeyTuple(c, i)):
			decided = false
		default:
			changed, decided = differs(nv, c.Old[i])
		}
		if !decided {
			complete = false
		}
		if !changed {
			continue
		}
		if !first {
			b.dst = append(b.dst, ',')
		}
		first = false
		b.dst = jsontext.AppendString(b.dst, c.Columns[i].Name)
	}
	b.dst = append(b.dst, ']')
	return complete
}

// differs compares a new and an old slot; decided is false when either side
// was not sent.
func differs(nv, ov change.Value) (changed, decided bool) {
	if nv.State == change.Redacted && ov.State == change.Redacted {
		return nv.Changed, true // capture compared the real values
	}
	if nv.State == change.Stored || ov.State == change.Stored {
		return storedDiffers(nv, ov)
	}
	known := func(v change.Value) bool { return v.State == change.Text || v.State == change.Null }
	if !known(nv) || !known(ov) {
		return false, false
	}
	if nv.State != ov.State {
		return true, true
	}
	return nv.State == change.Text && nv.Text != ov.Text, true
}

// storedDiffers compares slots of which one at least the claim check keeps
// in S3: by size, then by content hash (a text side is hashed only when the
// sizes match). A slot that was not sent leaves it undecided.
func storedDiffers(nv, ov change.Value) (changed, decided bool) {
	type seen struct {
		null bool
		size int
		hash func() string
	}
	look := func(v change.Value) (seen, bool) {
		switch v.State {
		case change.Null:
			return seen{null: true}, true
		case change.Stored:
			return seen{size: v.Size, hash: func() string { return v.Ref.SHA256 }}, true
		case change.Text:
			return seen{size: len(v.Text), hash: func() string {
				sum := sha256.Sum256([]byte(v.Text))
				return hex.EncodeToString(sum[:])
			}}, true
		}
		return seen{}, false
	}
	a, okA := look(nv)
	b, okB := look(ov)
	switch {
	case !okA || !okB:
		return false, false
	case a.null || b.null:
		return a.null != b.null, true
	case a.size != b.size:
		return true, true
	}
	return a.hash() != b.hash(), true
}
