package change

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/walbridge/walbridge/shared/jsontext"
)

// Version 2 records hold the changes of many rows (any keys that Kinesis
// routes to one shard), not of one partition key: capture packs a burst of
// changes to distinct rows into few records instead of one record per row.
// What every change of a relation repeats in version 1 (database, schema,
// table, replica identity and the column list) is written once per record,
// as a shape, and each change of that relation names its shape by index:
//
//	{"v":2,"shapes":[{"database":"app","schema":"public","table":"users",
//	  "identity":"default","columns":[...]}],
//	 "changes":[{"shape":0,"op":"insert",...,"new":[...]}, {"op":"truncate",...}]}
//
// Inserts, updates, deletes and reads have a shape; truncates, logical
// messages and schema changes are written whole, as in version 1. The
// record's data may be zstd-compressed as a whole (a zstd frame: Decode
// tells it by its magic number). Order inside a record is commit order for
// the changes of one partition key; changes of different keys carry no
// order among themselves.
const Version2 = 2

// zstdMagic opens every zstd frame (RFC 8878, section 3.1.1).
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// MaxDecompressed bounds what Decode inflates a compressed record to.
// Capture packs a record by its uncompressed size, within the stream's
// record size (at most 10 MiB), so anything larger is not a record of ours
// (and inflating it would be a way to exhaust fanout's memory).
const MaxDecompressed = 16 << 20

var (
	v2Prefix      = `{"v":` + strconv.Itoa(Version2) + `,"shapes":[`
	v2Changes     = `],"changes":[`
	v2Suffix      = `]}`
	v2ShapeRef    = `{"shape":`
	v2PrefixBytes = []byte(`{"v":` + strconv.Itoa(Version2) + `,`)
)

// HasShape reports whether c travels in a version 2 record as a shape
// reference and its own fields: a row change with columns.
func HasShape(c *Change) bool {
	switch c.Op {
	case Insert, Update, Delete, Read:
		return c.Columns != nil
	}
	return false
}

// AppendShape appends c's shape: the JSON object of its database, schema,
// table, identity and columns. Two changes with the same shape bytes share
// one entry of a record's shapes.
func AppendShape(dst []byte, c *Change) []byte {
	dst = appendShapeFields(append(dst, '{'), c)
	if c.Identity != "" {
		dst = append(dst, `,"identity":`...)
		dst = jsontext.AppendString(dst, string(c.Identity))
	}
	dst = appendColumns(append(dst, `,"columns":`...), c.Columns)
	return append(dst, '}')
}

// AppendBody appends c's element of a version 2 record without its opening
// brace: the fields after the shape reference when HasShape(c), else all of
// them. RecordBuilderV2.AddBody completes it.
func AppendBody(dst []byte, c *Change) []byte {
	return appendFields(dst, c, HasShape(c), nil)
}

// MaxShapeRef is the most bytes RecordBuilderV2.AddBody writes before a
// body: the brace and, for a shaped change, the reference.
const MaxShapeRef = len(`{"shape":`) + 10 + len(`,`)

// V2Overhead is what a version 2 record's framing adds to its shapes and
// changes, before separators.
var V2Overhead = len(v2Prefix) + len(v2Changes) + len(v2Suffix)

// EncodeV2 appends r as one version 2 record (uncompressed) to dst: the
// shapes of its changes once each, in order of first use. Capture's writer
// builds its records from changes it keeps encoded, with RecordBuilderV2;
// this is the same framing for a producer holding Changes.
func EncodeV2(dst []byte, r *Record) []byte {
	var shapes [][]byte
	index := map[string]int{}
	refs := make([]int, len(r.Changes))
	for i := range r.Changes {
		refs[i] = -1
		if c := &r.Changes[i]; HasShape(c) {
			s := AppendShape(nil, c)
			k, ok := index[string(s)]
			if !ok {
				k = len(shapes)
				index[string(s)] = k
				shapes = append(shapes, s)
			}
			refs[i] = k
		}
	}
	var b RecordBuilderV2
	b.Start(dst, shapes)
	var body []byte
	for i := range r.Changes {
		body = AppendBody(body[:0], &r.Changes[i])
		b.AddBody(refs[i], body)
	}
	return b.Finish()
}

// RecordBuilderV2 appends one version 2 record to a buffer: Start with the
// record's shapes, then AddBody for each change, then Finish.
type RecordBuilderV2 struct {
	buf []byte
	n   int
}

// Start begins a record with these shapes (each written by AppendShape) at
// the end of dst.
func (b *RecordBuilderV2) Start(dst []byte, shapes [][]byte) {
	dst = append(dst, v2Prefix...)
	for i, s := range shapes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, s...)
	}
	b.buf = append(dst, v2Changes...)
	b.n = 0
}

// AddBody adds a change written by AppendBody; shape is the index of its
// shape among Start's, or -1 for a change without one.
func (b *RecordBuilderV2) AddBody(shape int, body []byte) {
	if b.n > 0 {
		b.buf = append(b.buf, ',')
	}
	b.n++
	if shape >= 0 {
		b.buf = append(b.buf, v2ShapeRef...)
		b.buf = strconv.AppendInt(b.buf, int64(shape), 10)
		b.buf = append(b.buf, ',')
	} else {
		b.buf = append(b.buf, '{')
	}
	b.buf = append(b.buf, body...)
}

// Finish closes the record and returns the buffer given to Start with the
// record appended.
func (b *RecordBuilderV2) Finish() []byte {
	out := append(b.buf, v2Suffix...)
	b.buf = nil
	return out
}

// Compressor zstd-compresses records. It is safe for concurrent use.
type Compressor struct{ enc *zstd.Encoder }

// NewCompressor returns a compressor at zstd's fastest level that
// compresses up to concurrency records at once (more calls wait): capture
// compresses on its way to Kinesis, where a shard's 1 MiB/s, not CPU, is
// the bound, and the fastest level already shrinks change records several
// times over (their JSON repeats field names and transaction fields).
func NewCompressor(concurrency int) *Compressor {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(max(concurrency, 1)),
		zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(true))
	if err != nil {
		panic(fmt.Sprintf("zstd encoder: %v", err)) // only bad options fail
	}
	return &Compressor{enc: enc}
}

// Compress appends the compressed form of record to dst, or record itself
// when compressing would not make it smaller.
func (c *Compressor) Compress(dst, record []byte) []byte {
	start := len(dst)
	dst = c.enc.EncodeAll(record, dst)
	if len(dst)-start >= len(record) {
		return append(dst[:start], record...)
	}
	return dst
}

var decoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxDecompressed))
	if err != nil {
		panic(fmt.Sprintf("zstd decoder: %v", err))
	}
	return d
})

// Plain is a record's data uncompressed: data itself unless it is a zstd
// frame. For readers that inspect the bytes (tests that scan records for
// values that must not be there, tools that print records).
func Plain(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, zstdMagic) {
		return data, nil
	}
	return decompress(data)
}

// decompress inflates a zstd-compressed record.
func decompress(data []byte) ([]byte, error) {
	out, err := decoder().DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("decode change record: decompress: %w", err)
	}
	return out, nil
}

// shape is a version 2 record's shapes entry.
type shape struct {
	Database string   `json:"database"`
	Schema   string   `json:"schema"`
	Table    string   `json:"table"`
	Identity Identity `json:"identity"`
	Columns  []Column `json:"columns"`
}

// v2Change is a version 2 record's changes entry.
type v2Change struct {
	Shape *int `json:"shape"`
	Change
}

// decodeV2 parses a version 2 record (uncompressed). The changes of one
// shape share its Columns slice.
func decodeV2(data []byte) (*Record, error) {
	var body struct {
		V       int        `json:"v"`
		Shapes  []shape    `json:"shapes"`
		Changes []v2Change `json:"changes"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("decode change record: %w", withoutValues(err))
	}
	if len(body.Changes) == 0 {
		return nil, errors.New("decode change record: no changes")
	}
	for i := range body.Shapes {
		if s := &body.Shapes[i]; s.Table == "" || len(s.Columns) == 0 {
			return nil, fmt.Errorf("decode change record: shape %d without a table or columns", i)
		}
	}
	out := make([]Change, len(body.Changes))
	for i := range body.Changes {
		e := &body.Changes[i]
		c := e.Change
		if e.Shape != nil {
			k := *e.Shape
			if k < 0 || k >= len(body.Shapes) {
				return nil, fmt.Errorf("decode change record: change %d: shape %d of %d", i, k, len(body.Shapes))
			}
			if c.Database != "" || c.Schema != "" || c.Table != "" || c.Identity != "" || c.Columns != nil {
				return nil, fmt.Errorf("decode change record: change %d has a shape and fields of its own", i)
			}
			s := &body.Shapes[k]
			c.Database, c.Schema, c.Table, c.Identity, c.Columns = s.Database, s.Schema, s.Table, s.Identity, s.Columns
			if !HasShape(&c) {
				return nil, fmt.Errorf("decode change record: change %d: a %s change has no shape", i, c.Op)
			}
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("decode change record: change %d: %w", i, err)
		}
		out[i] = c
	}
	return &Record{Changes: out, Version: Version2}, nil
}

// isV2 reports data written by RecordBuilderV2.
func isV2(data []byte) bool { return bytes.HasPrefix(data, v2PrefixBytes) }
