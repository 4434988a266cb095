// Package change defines the record that crosses Kinesis between capture and
// fanout: one or more row changes decoded from PostgreSQL's pgoutput stream,
// self-describing enough (column names, resolved types, key columns, explicit
// NULL and unchanged-TOAST markers) that fanout never needs the database.
//
// The wire form is JSON with a version field: version 1 holds one partition
// key's changes (Encode), version 2 those of many keys, each relation's shape
// once, optionally zstd-compressed (EncodeV2, RecordBuilderV2; see v2.go).
// Encoding is hand-written because it sits on capture's hot path; Decode
// uses encoding/json, reads both versions and rejects others with
// ErrUnknownVersion.
//
// Size: about 800 lines, the whole wire contract: the record, its codec and
// framing (RecordBuilder), partition keys, LSNs and the size policy
// (Shrink). Both stages depend on all of it.
package change

import (
	"errors"
	"fmt"
	"time"
)

// Version is the wire-format version written by Encode. Decode accepts only
// the versions it knows; anything else is ErrUnknownVersion, never a guess.
const Version = 1

// ErrUnknownVersion is returned (wrapped) by Decode for a record written by a
// newer or foreign producer.
var ErrUnknownVersion = errors.New("unknown change record version")

// Op is what happened. The names are the ones DatabaseEvents use.
type Op string

// The operations a change can carry.
const (
	Insert   Op = "insert"
	Update   Op = "update"
	Delete   Op = "delete"
	Truncate Op = "truncate"
	Message  Op = "message"
	// Read is a row as a backfill read it: the current state of a row that
	// existed before (or regardless of) the changes around it. It carries
	// New, like an insert, and the Backfill that read it.
	Read Op = "read"
	// SchemaChange is a table's new shape: PostgreSQL sent a Relation
	// message whose columns (names, types, key) differ from the last shape
	// capture knew. Columns is the new shape and OldColumns the old; LSN is
	// the position of the first change decoded with the new shape (the
	// shape applies from there), CommitLSN that change's transaction. It
	// travels on a partition key of its own (see AppendPartitionKey).
	SchemaChange Op = "schema"
)

// Identity is the table's REPLICA IDENTITY at the time of the change, as sent in
// pgoutput's Relation message. It tells a consumer how complete Old is.
type Identity string

// Replica identities (pg_class.relreplident).
const (
	IdentityDefault Identity = "default" // old tuple carries the primary key only
	IdentityFull    Identity = "full"    // old tuple carries every column
	IdentityIndex   Identity = "index"   // old tuple carries the identity index columns
	IdentityNothing Identity = "nothing" // no old tuple at all
)

// Kind is the resolved type category of a column (pg_type.typtype after
// stripping domains and array wrappers).
type Kind string

// Type categories.
const (
	KindBase       Kind = "base"
	KindEnum       Kind = "enum"
	KindComposite  Kind = "composite"
	KindRange      Kind = "range"
	KindMultirange Kind = "multirange"
	KindPseudo     Kind = "pseudo"
)

// KindOf maps pg_type.typtype ('e', 'c', 'r', 'm', 'p'; anything else is
// base) to a Kind. capture and the schema generator both read pg_type.
func KindOf(typtype string) Kind {
	switch typtype {
	case "e":
		return KindEnum
	case "c":
		return KindComposite
	case "r":
		return KindRange
	case "m":
		return KindMultirange
	case "p":
		return KindPseudo
	default:
		return KindBase
	}
}

// Column describes one column of the relation as it was when the change was
// decoded. Type is the declared type's name; Base is the type that decides how
// the value is rendered: domains are replaced by their base type and arrays by
// their element type (itself resolved), with Array set and Dims counted from
// the value. Key marks the columns that identify the row: the primary key, or
// else the replica identity index; a table with neither has no Key columns
// (pgoutput's own flag marks every column under REPLICA IDENTITY FULL, which
// would make the partition key change with every update).
type Column struct {
	Name  string `json:"name"`
	OID   uint32 `json:"oid"`
	Type  string `json:"type"`
	Base  string `json:"base"`
	Kind  Kind   `json:"kind"`
	Array bool   `json:"array,omitempty"`
	Key   bool   `json:"key,omitempty"`
}

// ValueState says which of the things a tuple slot holds.
type ValueState uint8

// Tuple slot states. The zero value is a text value.
const (
	Text      ValueState = iota // Text holds PostgreSQL's text output for the value
	Null                        // SQL NULL
	Unchanged                   // unchanged TOAST value: PostgreSQL did not send it
	Omitted                     // dropped by capture's size policy; Size says how large it was
	Redacted                    // withheld by the column policy; Changed says whether it changed
	Stored                      // kept in S3 by capture's claim check: Ref says where, Size how large
)

// RefKeyPrefix starts every claim-check object key; the rest is the value's
// SHA-256 (hex).
const RefKeyPrefix = "walbridge/values/sha256/"

// Ref locates a value capture's claim check put in S3: the object holds the
// value's text form exactly, under a key made of its SHA-256 (hex), so the
// same value is one object however often it is sent.
type Ref struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	// SHA256 is the hex SHA-256 of the value's text: a consumer checks what
	// it fetched against it.
	SHA256 string `json:"-"`
}

// Value is one column's value in a tuple: PostgreSQL's text form, or one of
// the explicit markers. Null and Unchanged are never confused: a consumer that
// sees Unchanged knows the value exists but was not sent.
type Value struct {
	State ValueState
	// Changed is for Redacted values of an update's new tuple: the value
	// differs from the old one (capture compared them before withholding
	// both), so changedValues can still name the column.
	Changed bool
	Text    string
	Size    int  // Omitted and Stored: the value's size in bytes
	Ref     *Ref // Stored only
}

// Change is one decoded row change (or truncate, or logical message).
type Change struct {
	Database string `json:"database"`
	Schema   string `json:"schema,omitempty"`
	Table    string `json:"table,omitempty"`
	Op       Op     `json:"op"`
	// XID is the transaction id (0 for a non-transactional logical message).
	XID uint32 `json:"xid"`
	// CommitLSN is the LSN of the transaction's commit record; with Seq it
	// identifies the change across replays.
	CommitLSN LSN `json:"commitLsn"`
	// LSN is the change's own WAL position.
	LSN LSN `json:"lsn"`
	// CommitTime is the commit timestamp, microsecond precision, UTC.
	CommitTime time.Time `json:"commitTime"`
	// Seq is the change's position within its transaction, from 0.
	Seq      uint32   `json:"seq"`
	Identity Identity `json:"identity,omitempty"`
	Columns  []Column `json:"columns,omitempty"`
	New      []Value  `json:"new,omitempty"`
	Old      []Value  `json:"old,omitempty"`
	// OldIsKey is true when Old holds only the replica-identity key columns
	// (pgoutput's 'K' tuple); the other slots are Null placeholders.
	OldIsKey bool `json:"oldIsKey,omitempty"`

	// Truncate only.
	Cascade         bool `json:"cascade,omitempty"`
	RestartIdentity bool `json:"restartIdentity,omitempty"`

	// Read only: the backfill that read the row (its id, as a string).
	Backfill string `json:"backfill,omitempty"`

	// SchemaChange only: the shape before (Columns is the shape after).
	OldColumns []Column `json:"oldColumns,omitempty"`

	// Message only (pg_logical_emit_message).
	Prefix        string `json:"prefix,omitempty"`
	Content       []byte `json:"content,omitempty"`
	Transactional bool   `json:"transactional,omitempty"`
}

// Record is the unit written to one Kinesis record. In version 1 it holds
// consecutive changes that share a partition key, in commit order; in
// version 2, changes of any keys routed to one shard, in commit order per
// key.
type Record struct {
	Changes []Change
	// Version is the version Decode read (Encode and EncodeV2 ignore it).
	Version int
}

// KeyColumns returns the indexes of the key columns.
func (c *Change) KeyColumns() []int {
	var idx []int
	for i, col := range c.Columns {
		if col.Key {
			idx = append(idx, i)
		}
	}
	return idx
}

// Validate reports a change that breaks the format's invariants. Decode calls
// it, so a consumer can rely on tuples matching the column list.
func (c *Change) Validate() error {
	switch c.Op {
	case Insert, Update, Delete, Read:
		if c.Table == "" {
			return fmt.Errorf("%s change without a table", c.Op)
		}
		for _, t := range []struct {
			name string
			vals []Value
		}{{"new", c.New}, {"old", c.Old}} {
			if t.vals != nil && len(t.vals) != len(c.Columns) {
				return fmt.Errorf("%s.%s: %s tuple has %d values for %d columns", c.Schema, c.Table, t.name, len(t.vals), len(c.Columns))
			}
		}
		if (c.Op == Insert || c.Op == Update || c.Op == Read) && c.New == nil {
			return fmt.Errorf("%s.%s: %s without a new tuple", c.Schema, c.Table, c.Op)
		}
	case Truncate:
		if c.Table == "" {
			return errors.New("truncate change without a table")
		}
	case SchemaChange:
		if c.Table == "" || len(c.Columns) == 0 && len(c.OldColumns) == 0 {
			return errors.New("schema change without a table or columns")
		}
	case Message:
	default:
		return fmt.Errorf("unknown operation (%d bytes)", len(c.Op))
	}
	return nil
}
