// Package pgoutput turns the messages of PostgreSQL's pgoutput logical
// decoding plugin (protocol version 1) into walbridge's change records. It
// holds the parser and the decoder and nothing that talks to a server: no
// pgx, no sockets, so it can be fuzzed and tested with byte fixtures alone.
// The decoder asks a Catalog (implemented over a connection by package
// replication) what pgoutput leaves open: type names and primary keys.
package pgoutput

import (
	"errors"
	"fmt"
	"time"

	"github.com/walbridge/walbridge/shared/change"
)

// This file parses pgoutput protocol version 1 messages ("Logical Replication
// Message Formats" in the PostgreSQL docs). pglogrepl has parsers too, but they
// copy each value byte by byte, allocate per column and panic on truncated
// input; capture's hot path and its fuzz target want one bounds-checked pass
// that slices values out of a single string.

// Message types (the first byte of a pgoutput message).
const (
	msgBegin    = 'B'
	msgCommit   = 'C'
	msgOrigin   = 'O'
	msgRelation = 'R'
	msgType     = 'Y'
	msgInsert   = 'I'
	msgUpdate   = 'U'
	msgDelete   = 'D'
	msgTruncate = 'T'
	msgMessage  = 'M'
)

// errShort is wrapped by every parse error caused by a truncated message.
var errShort = errors.New("message truncated")

// Epoch is PostgreSQL's timestamp epoch: protocol timestamps count
// microseconds from it.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

type reader struct {
	s   string // the whole message: values are substrings of it
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s at byte %d: %w", what, r.off, errShort)
	}
}

func (r *reader) byte1(what string) byte {
	if r.err != nil || r.off+1 > len(r.s) {
		r.fail(what)
		return 0
	}
	b := r.s[r.off]
	r.off++
	return b
}

func (r *reader) uint16(what string) uint16 {
	if r.err != nil || r.off+2 > len(r.s) {
		r.fail(what)
		return 0
	}
	v := uint16(r.s[r.off])<<8 | uint16(r.s[r.off+1])
	r.off += 2
	return v
}

func (r *reader) uint32(what string) uint32 {
	if r.err != nil || r.off+4 > len(r.s) {
		r.fail(what)
		return 0
	}
	s := r.s[r.off : r.off+4]
	r.off += 4
	return uint32(s[0])<<24 | uint32(s[1])<<16 | uint32(s[2])<<8 | uint32(s[3])
}

func (r *reader) uint64(what string) uint64 {
	hi := r.uint32(what)
	lo := r.uint32(what)
	return uint64(hi)<<32 | uint64(lo)
}

func (r *reader) time(what string) time.Time {
	us := int64(r.uint64(what))
	return Epoch.Add(time.Duration(us) * time.Microsecond)
}

// cstring reads a NUL-terminated string.
func (r *reader) cstring(what string) string {
	if r.err != nil {
		return ""
	}
	for i := r.off; i < len(r.s); i++ {
		if r.s[i] == 0 {
			v := r.s[r.off:i]
			r.off = i + 1
			return v
		}
	}
	r.fail(what)
	return ""
}

func (r *reader) bytes(n int, what string) string {
	if r.err != nil || n < 0 || r.off+n > len(r.s) {
		r.fail(what)
		return ""
	}
	v := r.s[r.off : r.off+n]
	r.off += n
	return v
}

// tuple reads a TupleData submessage into vals (reused when large enough).
func (r *reader) tuple(vals []change.Value) []change.Value {
	n := int(r.uint16("tuple column count"))
	if r.err != nil {
		return nil
	}
	if cap(vals) < n {
		vals = make([]change.Value, n)
	}
	vals = vals[:n]
	for i := 0; i < n; i++ {
		switch kind := r.byte1("tuple column kind"); kind {
		case 'n':
			vals[i] = change.Value{State: change.Null}
		case 'u':
			vals[i] = change.Value{State: change.Unchanged}
		case 't':
			l := r.uint32("value length")
			vals[i] = change.Value{Text: r.bytes(int(l), "value")}
		case 'b':
			// Only sent when the binary option is on, which capture never sets.
			if r.err == nil {
				r.err = fmt.Errorf("binary tuple value at byte %d: capture requests text format", r.off)
			}
			return nil
		default:
			if r.err == nil {
				r.err = fmt.Errorf("unknown tuple column kind %q at byte %d", kind, r.off-1)
			}
			return nil
		}
	}
	return vals
}

// relationMsg is pgoutput's Relation message.
type relationMsg struct {
	ID       uint32
	Schema   string
	Name     string
	Identity byte
	Columns  []relationColumn
}

type relationColumn struct {
	Key     bool
	Name    string
	TypeOID uint32
	TypeMod int32
}

// message is one parsed pgoutput message; Kind says which fields are set.
type message struct {
	Kind byte

	// Begin / Commit
	FinalLSN   change.LSN // Begin: the commit record's LSN
	CommitLSN  change.LSN // Commit
	EndLSN     change.LSN // Commit: end of the commit record
	CommitTime time.Time
	XID        uint32

	Relation relationMsg // Relation

	// Insert / Update / Delete
	RelID  uint32
	OldKey byte // 'K', 'O' or 0
	Old    []change.Value
	New    []change.Value

	// Truncate
	RelIDs  []uint32
	Options byte

	// Message
	Transactional bool
	MsgLSN        change.LSN
	Prefix        string
	Content       string
}

// parseMessage parses one pgoutput message. Values in the result are
// substrings of data's string copy; the result does not alias data.
func parseMessage(data []byte) (*message, error) {
	if len(data) == 0 {
		return nil, errors.New("empty pgoutput message")
	}
	r := &reader{s: string(data), off: 1}
	m := &message{Kind: data[0]}
	switch m.Kind {
	case msgBegin:
		m.FinalLSN = change.LSN(r.uint64("begin final LSN"))
		m.CommitTime = r.time("begin commit time")
		m.XID = r.uint32("begin xid")
	case msgCommit:
		r.byte1("commit flags")
		m.CommitLSN = change.LSN(r.uint64("commit LSN"))
		m.EndLSN = change.LSN(r.uint64("commit end LSN"))
		m.CommitTime = r.time("commit time")
	case msgOrigin:
		r.uint64("origin LSN")
		r.cstring("origin name")
	case msgRelation:
		rel := &m.Relation
		rel.ID = r.uint32("relation id")
		rel.Schema = r.cstring("relation namespace")
		rel.Name = r.cstring("relation name")
		rel.Identity = r.byte1("replica identity")
		n := int(r.uint16("relation column count"))
		if r.err == nil {
			if n > 1664 { // MaxTupleAttributeNumber
				return nil, fmt.Errorf("relation %s.%s: %d columns is more than PostgreSQL allows", rel.Schema, rel.Name, n)
			}
			rel.Columns = make([]relationColumn, 0, n)
		}
		for i := 0; i < n && r.err == nil; i++ {
			var c relationColumn
			c.Key = r.byte1("column flags")&1 == 1
			c.Name = r.cstring("column name")
			c.TypeOID = r.uint32("column type")
			c.TypeMod = int32(r.uint32("column typmod"))
			rel.Columns = append(rel.Columns, c)
		}
	case msgType:
		r.uint32("type oid")
		r.cstring("type namespace")
		r.cstring("type name")
	case msgInsert:
		m.RelID = r.uint32("insert relation")
		if tag := r.byte1("insert tuple tag"); r.err == nil && tag != 'N' {
			return nil, fmt.Errorf("insert: tuple tag %q, want 'N'", tag)
		}
		m.New = r.tuple(nil)
	case msgUpdate:
		m.RelID = r.uint32("update relation")
		tag := r.byte1("update tuple tag")
		if tag == 'K' || tag == 'O' {
			m.OldKey = tag
			m.Old = r.tuple(nil)
			tag = r.byte1("update new tuple tag")
		}
		if r.err == nil && tag != 'N' {
			return nil, fmt.Errorf("update: tuple tag %q, want 'N'", tag)
		}
		m.New = r.tuple(nil)
	case msgDelete:
		m.RelID = r.uint32("delete relation")
		tag := r.byte1("delete tuple tag")
		if r.err == nil && tag != 'K' && tag != 'O' {
			return nil, fmt.Errorf("delete: tuple tag %q, want 'K' or 'O'", tag)
		}
		m.OldKey = tag
		m.Old = r.tuple(nil)
	case msgTruncate:
		n := int(r.uint32("truncate relation count"))
		m.Options = r.byte1("truncate options")
		if r.err == nil && n > (len(r.s)-r.off)/4 {
			return nil, fmt.Errorf("truncate: %d relations in %d bytes: %w", n, len(r.s)-r.off, errShort)
		}
		for i := 0; i < n && r.err == nil; i++ {
			m.RelIDs = append(m.RelIDs, r.uint32("truncate relation"))
		}
	case msgMessage:
		m.Transactional = r.byte1("message flags")&1 == 1
		m.MsgLSN = change.LSN(r.uint64("message LSN"))
		m.Prefix = r.cstring("message prefix")
		l := r.uint32("message length")
		m.Content = r.bytes(int(l), "message content")
	default:
		return nil, fmt.Errorf("unknown pgoutput message type %q", m.Kind)
	}
	if r.err != nil {
		return nil, fmt.Errorf("pgoutput %q message: %w", m.Kind, r.err)
	}
	return m, nil
}
