package change

import (
	"encoding/base64"
	"slices"
	"strconv"
	"time"

	"github.com/walbridge/walbridge/shared/jsontext"
)

// timeLayout is RFC 3339 with exactly six fractional digits: PostgreSQL's
// timestamps have microsecond precision and the event contract shows all six.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Encode appends the wire form of r to dst and returns it. It allocates
// nothing beyond growing dst, which is why it does not use encoding/json.
func Encode(dst []byte, r *Record) []byte {
	var b RecordBuilder
	b.Start(dst)
	for i := range r.Changes {
		b.Add(&r.Changes[i])
	}
	return b.Finish()
}

// AppendChange appends one change as a JSON object: a record's element.
// Encode uses it; capture uses it to size a change before packing it.
func AppendChange(dst []byte, c *Change) []byte {
	return appendFields(append(dst, '{'), c, false, nil)
}

// Memo makes AppendChange cheaper for a run of changes that share columns
// and a commit, as a transaction's changes to one table do: the columns
// array of every version 1 record and the commit time were most of the
// work of encoding one. It keeps the last encoding of each and appends it
// again while the next change's are equal; equality is by value (a copy of
// the columns is kept), so no change can carry another relation's columns.
// The zero value is ready; a Memo is for one goroutine.
type Memo struct {
	cols       []Column
	colsJSON   []byte
	commit     time.Time
	commitJSON []byte
	haveCommit bool
}

// AppendChange is AppendChange with m's memory of the last change.
func (m *Memo) AppendChange(dst []byte, c *Change) []byte {
	return appendFields(append(dst, '{'), c, false, m)
}

// AppendBody is AppendBody with m's memory of the last change.
func (m *Memo) AppendBody(dst []byte, c *Change) []byte {
	return appendFields(dst, c, HasShape(c), m)
}

// Shrink is Shrink encoding with m.
func (m *Memo) Shrink(dst []byte, c *Change, limit int) (out []byte, omitted int, err error) {
	return shrink(dst, c, limit, m.AppendChange)
}

// ShrinkBody is ShrinkBody encoding with m.
func (m *Memo) ShrinkBody(dst []byte, c *Change, limit int) (out []byte, omitted int, err error) {
	return shrink(dst, c, limit, m.AppendBody)
}

func (m *Memo) appendColumns(dst []byte, cols []Column) []byte {
	if m.colsJSON == nil || !slices.Equal(m.cols, cols) {
		m.cols = append(m.cols[:0], cols...)
		m.colsJSON = appendColumns(m.colsJSON[:0], cols)
	}
	return append(dst, m.colsJSON...)
}

func (m *Memo) appendTime(dst []byte, t time.Time) []byte {
	if !m.haveCommit || !m.commit.Equal(t) {
		m.commit, m.haveCommit = t, true
		m.commitJSON = appendTime(m.commitJSON[:0], t)
	}
	return append(dst, m.commitJSON...)
}

// appendFields appends c's fields and the closing brace (the opening one is
// the caller's). shaped leaves out what a version 2 record's shape holds
// (database, schema, table, identity, columns). m may be nil.
func appendFields(dst []byte, c *Change, shaped bool, m *Memo) []byte {
	if !shaped {
		dst = appendShapeFields(dst, c)
		dst = append(dst, ',')
	}
	dst = append(dst, `"op":`...)
	dst = jsontext.AppendString(dst, string(c.Op))
	dst = append(dst, `,"xid":`...)
	dst = strconv.AppendUint(dst, uint64(c.XID), 10)
	dst = append(dst, `,"commitLsn":"`...)
	dst = AppendLSN(dst, c.CommitLSN)
	dst = append(dst, `","lsn":"`...)
	dst = AppendLSN(dst, c.LSN)
	dst = append(dst, `","commitTime":"`...)
	if m != nil {
		dst = m.appendTime(dst, c.CommitTime)
	} else {
		dst = appendTime(dst, c.CommitTime)
	}
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, uint64(c.Seq), 10)
	if !shaped {
		if c.Identity != "" {
			dst = append(dst, `,"identity":`...)
			dst = jsontext.AppendString(dst, string(c.Identity))
		}
		if c.Columns != nil {
			dst = append(dst, `,"columns":`...)
			if m != nil {
				dst = m.appendColumns(dst, c.Columns)
			} else {
				dst = appendColumns(dst, c.Columns)
			}
		}
	}
	if c.OldColumns != nil {
		dst = appendColumns(append(dst, `,"oldColumns":`...), c.OldColumns)
	}
	if c.New != nil {
		dst = append(dst, `,"new":`...)
		dst = appendTuple(dst, c.New)
	}
	if c.Old != nil {
		dst = append(dst, `,"old":`...)
		dst = appendTuple(dst, c.Old)
	}
	if c.OldIsKey {
		dst = append(dst, `,"oldIsKey":true`...)
	}
	if c.Cascade {
		dst = append(dst, `,"cascade":true`...)
	}
	if c.RestartIdentity {
		dst = append(dst, `,"restartIdentity":true`...)
	}
	if c.Backfill != "" {
		dst = append(dst, `,"backfill":`...)
		dst = jsontext.AppendString(dst, c.Backfill)
	}
	if c.Op == Message {
		dst = append(dst, `,"prefix":`...)
		dst = jsontext.AppendString(dst, c.Prefix)
		dst = append(dst, `,"content":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, c.Content)
		dst = append(dst, '"')
		if c.Transactional {
			dst = append(dst, `,"transactional":true`...)
		}
	}
	return append(dst, '}')
}

// appendShapeFields appends the database, schema and table fields.
func appendShapeFields(dst []byte, c *Change) []byte {
	dst = append(dst, `"database":`...)
	dst = jsontext.AppendString(dst, c.Database)
	if c.Schema != "" {
		dst = append(dst, `,"schema":`...)
		dst = jsontext.AppendString(dst, c.Schema)
	}
	if c.Table != "" {
		dst = append(dst, `,"table":`...)
		dst = jsontext.AppendString(dst, c.Table)
	}
	return dst
}

func appendColumns(dst []byte, cols []Column) []byte {
	dst = append(dst, '[')
	for i := range cols {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendColumn(dst, &cols[i])
	}
	return append(dst, ']')
}

func appendColumn(dst []byte, col *Column) []byte {
	dst = append(dst, `{"name":`...)
	dst = jsontext.AppendString(dst, col.Name)
	dst = append(dst, `,"oid":`...)
	dst = strconv.AppendUint(dst, uint64(col.OID), 10)
	dst = append(dst, `,"type":`...)
	dst = jsontext.AppendString(dst, col.Type)
	dst = append(dst, `,"base":`...)
	dst = jsontext.AppendString(dst, col.Base)
	dst = append(dst, `,"kind":`...)
	dst = jsontext.AppendString(dst, string(col.Kind))
	if col.Array {
		dst = append(dst, `,"array":true`...)
	}
	if col.Key {
		dst = append(dst, `,"key":true`...)
	}
	return append(dst, '}')
}

func appendTuple(dst []byte, vals []Value) []byte {
	dst = append(dst, '[')
	for i := range vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendValue(dst, vals[i])
	}
	return append(dst, ']')
}

// AppendValue appends one tuple slot: a JSON string for a text value, null for
// NULL, {"unchanged":true} for an unchanged TOAST value and
// {"omitted":true,"bytes":N} for a value dropped by the size policy and
// {"redacted":true} (with "changed":true when it changed) for a value the
// column policy withholds, and {"s3":{"bucket":B,"key":K},"bytes":N,
// "sha256":H} for a value the claim check put in S3.
func AppendValue(dst []byte, v Value) []byte {
	switch v.State {
	case Null:
		return append(dst, "null"...)
	case Unchanged:
		return append(dst, `{"unchanged":true}`...)
	case Omitted:
		dst = append(dst, `{"omitted":true,"bytes":`...)
		dst = strconv.AppendInt(dst, int64(v.Size), 10)
		return append(dst, '}')
	case Redacted:
		if v.Changed {
			return append(dst, `{"redacted":true,"changed":true}`...)
		}
		return append(dst, `{"redacted":true}`...)
	case Stored:
		return AppendRef(dst, v.Ref, v.Size)
	default:
		return jsontext.AppendString(dst, v.Text)
	}
}

// appendTime appends t in timeLayout, in UTC. It writes the digits itself:
// every change carries its commit time, and time.Format's general layout
// machinery was a visible share of capture's encoding cost.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.Truncate(time.Microsecond).AppendFormat(dst, timeLayout)
	}
	hour, minute, sec := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1000, 6)
	return append(dst, 'Z')
}

// appendDigits appends v (>= 0) zero-padded to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// AppendRef appends the members of a claim-check reference, as an object:
// {"s3":{"bucket":B,"key":K},"bytes":N,"sha256":H}. Events carry the same
// members beside the column's type.
func AppendRef(dst []byte, r *Ref, size int) []byte {
	dst = append(dst, '{')
	dst = AppendRefMembers(dst, r, size)
	return append(dst, '}')
}

// AppendRefMembers appends "s3":{...},"bytes":N,"sha256":H.
func AppendRefMembers(dst []byte, r *Ref, size int) []byte {
	dst = append(dst, `"s3":{"bucket":`...)
	dst = jsontext.AppendString(dst, r.Bucket)
	dst = append(dst, `,"key":`...)
	dst = jsontext.AppendString(dst, r.Key)
	dst = append(dst, `},"bytes":`...)
	dst = strconv.AppendInt(dst, int64(size), 10)
	dst = append(dst, `,"sha256":`...)
	return jsontext.AppendString(dst, r.SHA256)
}
