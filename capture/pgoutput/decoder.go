package pgoutput

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/walbridge/walbridge/capture/shapes"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/policy"
)

// Catalog answers the questions pgoutput leaves open: what a type OID is
// (name, domain base, array element, category) and which columns form a
// table's primary key. The stream implements it with a second, ordinary
// connection; tests can use a fixed table.
type Catalog interface {
	// ResolveTypes describes each OID; the result has an entry for every OID.
	ResolveTypes(ctx context.Context, oids []uint32) (map[uint32]TypeInfo, error)
	// PrimaryKey returns the primary key's column names of schema.table, or
	// nil when it has none.
	PrimaryKey(ctx context.Context, relid uint32) ([]string, error)
}

// TypeInfo is a column type resolved through domains and arrays.
type TypeInfo struct {
	Name  string      // declared type (pg_type.typname)
	Base  string      // rendering type: domains stripped, array element for arrays
	Kind  change.Kind // category of Base
	Array bool
}

// Policy is the column policy as the decoder applies it (package policy's
// Live): a plan per relation, made again when the policy's Generation
// changes (a reload).
type Policy interface {
	Generation() uint64
	Plan(schema, table string, cols []change.Column) (*policy.Plan, error)
}

// Shapes is the known shape of each table (package shapes): Observe
// compares a Relation message's shape with it, and reports a change.
type Shapes interface {
	Observe(relid uint32, sh shapes.Shape, at change.LSN) (old shapes.Shape, changed bool)
}

// internalSchema holds walbridge's own tables (backfill state, shapes),
// whose changes are not published.
const internalSchema = "walbridge"

// relation is a cached Relation message with its columns resolved.
type relation struct {
	schema, name string
	identity     change.Identity
	columns      []change.Column
	plan         *policy.Plan // nil: the policy leaves the relation alone
	planned      bool
	planGen      uint64
	checkShape   bool // compare the shape with the known one at the next change
}

// Decoder turns pgoutput messages into change records. It keeps the relation
// cache and the current transaction's identity (xid, commit LSN and time, the
// running position), which pgoutput sends once per transaction.
type Decoder struct {
	database string
	catalog  Catalog
	policy   Policy // nil: none
	shapes   Shapes // nil: no schema-change records
	rels     map[uint32]*relation

	inTxn      bool
	xid        uint32
	commitLSN  change.LSN
	commitTime time.Time
	seq        uint32

	// out backs Step.Changes for row changes and truncates, reused by
	// every Decode: a change is a few hundred bytes, and a backlog
	// allocated one slice of them per message.
	out []change.Change
}

// NewDecoder returns a decoder for changes in database. pol, when not nil,
// is applied to every row change and truncate before Decode returns it, so
// that what the policy withholds never leaves the decoder.
func NewDecoder(database string, catalog Catalog, pol Policy) *Decoder {
	return &Decoder{database: database, catalog: catalog, policy: pol, rels: map[uint32]*relation{}}
}

// WithShapes makes the decoder compare every Relation message with the
// known shapes and return a change of shape as a schema-change record
// (change.SchemaChange).
func (d *Decoder) WithShapes(s Shapes) *Decoder {
	d.shapes = s
	return d
}

// planOf is the relation's plan under the current policy.
func (d *Decoder) planOf(rel *relation) (*policy.Plan, error) {
	if d.policy == nil {
		return nil, nil
	}
	if gen := d.policy.Generation(); !rel.planned || rel.planGen != gen {
		plan, err := d.policy.Plan(rel.schema, rel.name, rel.columns)
		if err != nil {
			return nil, fmt.Errorf("column policy: %w", err)
		}
		rel.plan, rel.planned, rel.planGen = plan, true, gen
	}
	return rel.plan, nil
}

// Step is what one message meant for the stream's bookkeeping.
type Step struct {
	// Changes may be the decoder's own array: valid until the next Decode.
	Changes []change.Change
	// Commit is set on a Commit message: the end of the commit record, the
	// position to confirm once Changes up to here are durable.
	Commit change.LSN
	// Position is set for a non-transactional logical message: once it is
	// durable, its LSN may be confirmed.
	Position change.LSN
}

// InTransaction reports whether a Begin has been seen without its Commit.
func (d *Decoder) InTransaction() bool { return d.inTxn }

// CommitLSN is the commit LSN of the open (or last) transaction, as its
// Begin message announced it.
func (d *Decoder) CommitLSN() change.LSN { return d.commitLSN }

// Reset forgets the relation cache and any open transaction, as a new
// replication connection must (pgoutput re-sends Relation messages).
func (d *Decoder) Reset() {
	clear(d.rels)
	d.inTxn = false
}

// Decode handles one pgoutput message whose XLogData started at walStart.
func (d *Decoder) Decode(ctx context.Context, walStart change.LSN, data []byte) (Step, error) {
	m, err := parseMessage(data)
	if err != nil {
		return Step{}, err
	}
	switch m.Kind {
	case msgBegin:
		d.inTxn, d.xid, d.commitLSN, d.commitTime, d.seq = true, m.XID, m.FinalLSN, m.CommitTime, 0
		return Step{}, nil
	case msgCommit:
		if !d.inTxn {
			return Step{}, fmt.Errorf("commit %s without begin", m.CommitLSN)
		}
		d.inTxn = false
		return Step{Commit: m.EndLSN}, nil
	case msgRelation:
		return Step{}, d.relation(ctx, &m.Relation)
	case msgInsert, msgUpdate, msgDelete:
		rel, ok := d.rels[m.RelID]
		if !ok {
			return Step{}, fmt.Errorf("change for relation %d before its Relation message", m.RelID)
		}
		plan, err := d.planOf(rel)
		if err != nil {
			return Step{}, err
		}
		if plan.Skip() {
			return Step{}, nil
		}
		out := d.out[:0]
		if sc := d.schemaChange(walStart, m.RelID, rel, plan); sc != nil {
			out = append(out, *sc)
		}
		c := d.base(walStart)
		c.Schema, c.Table, c.Identity, c.Columns = rel.schema, rel.name, rel.identity, rel.columns
		switch m.Kind {
		case msgInsert:
			c.Op = change.Insert
		case msgUpdate:
			c.Op = change.Update
		default:
			c.Op = change.Delete
		}
		c.New = m.New
		if m.Old != nil {
			c.Old = m.Old
			c.OldIsKey = m.OldKey == 'K'
		}
		if err := c.Validate(); err != nil {
			return Step{}, fmt.Errorf("relation %d: %w (was the table altered without a new Relation message?)", m.RelID, err)
		}
		plan.Apply(&c)
		d.out = append(out, c)
		return Step{Changes: d.out}, nil
	case msgTruncate:
		out := d.out[:0]
		for _, id := range m.RelIDs {
			rel, ok := d.rels[id]
			if !ok {
				return Step{}, fmt.Errorf("truncate of relation %d before its Relation message", id)
			}
			plan, err := d.planOf(rel)
			if err != nil {
				return Step{}, err
			}
			if plan.Skip() {
				continue
			}
			if sc := d.schemaChange(walStart, id, rel, plan); sc != nil {
				out = append(out, *sc)
			}
			c := d.base(walStart)
			c.Op, c.Schema, c.Table, c.Identity = change.Truncate, rel.schema, rel.name, rel.identity
			c.Cascade = m.Options&1 != 0
			c.RestartIdentity = m.Options&2 != 0
			out = append(out, c)
		}
		d.out = out
		return Step{Changes: out}, nil
	case msgMessage:
		c := change.Change{Database: d.database, Op: change.Message, LSN: m.MsgLSN, CommitLSN: m.MsgLSN,
			Prefix: m.Prefix, Content: []byte(m.Content), Transactional: m.Transactional, CommitTime: time.Now().UTC()}
		if m.Transactional && d.inTxn {
			c.XID, c.CommitLSN, c.CommitTime, c.Seq = d.xid, d.commitLSN, d.commitTime, d.seq
			d.seq++
			return Step{Changes: []change.Change{c}}, nil
		}
		return Step{Changes: []change.Change{c}, Position: m.MsgLSN}, nil
	default: // Origin, Type: nothing to record
		return Step{}, nil
	}
}

func (d *Decoder) base(walStart change.LSN) change.Change {
	c := change.Change{Database: d.database, XID: d.xid, CommitLSN: d.commitLSN, LSN: walStart, CommitTime: d.commitTime, Seq: d.seq}
	d.seq++
	return c
}

func (d *Decoder) relation(ctx context.Context, m *relationMsg) error {
	oids := make([]uint32, 0, len(m.Columns))
	for _, c := range m.Columns {
		oids = append(oids, c.TypeOID)
	}
	types, err := d.catalog.ResolveTypes(ctx, oids)
	if err != nil {
		return fmt.Errorf("resolve column types of %s.%s: %w", m.Schema, m.Name, err)
	}
	rel := &relation{schema: m.Schema, name: m.Name, identity: identityOf(m.Identity)}
	// Under DEFAULT and INDEX identity pgoutput's key flags are the identity
	// columns as of this point in the WAL. Under FULL it flags every column
	// and under NOTHING none, so the primary key comes from the catalog.
	var pk map[string]bool
	if rel.identity == change.IdentityFull || rel.identity == change.IdentityNothing {
		names, err := d.catalog.PrimaryKey(ctx, m.ID)
		if err != nil {
			return fmt.Errorf("primary key of %s.%s: %w", m.Schema, m.Name, err)
		}
		pk = map[string]bool{}
		for _, n := range names {
			pk[n] = true
		}
	}
	for _, c := range m.Columns {
		t := types[c.TypeOID]
		key := c.Key
		if pk != nil {
			key = pk[c.Name]
		}
		rel.columns = append(rel.columns, change.Column{Name: c.Name, OID: c.TypeOID, Type: t.Name, Base: t.Base, Kind: t.Kind, Array: t.Array, Key: key})
	}
	// Its shape is compared at its next change, whose position it applies
	// from (a Relation message's own XLogData carries no WAL position).
	rel.checkShape = d.shapes != nil && rel.schema != internalSchema
	d.rels[m.ID] = rel
	return nil
}

// schemaChange compares the relation's shape, as records will carry it
// (the column policy applied: an excluded column is no part of it), with
// the known one, and returns the schema-change record when they differ. It
// takes no sequence number of its own (Seq is the next change's, and its
// event's lsn is its own position, which no row event has), so that
// whether it is sent never renumbers the transaction's row changes.
func (d *Decoder) schemaChange(walStart change.LSN, relid uint32, rel *relation, plan *policy.Plan) *change.Change {
	if !rel.checkShape {
		return nil
	}
	rel.checkShape = false
	c := change.Change{Database: d.database, Schema: rel.schema, Table: rel.name, Op: change.SchemaChange, Identity: rel.identity,
		XID: d.xid, CommitLSN: d.commitLSN, CommitTime: d.commitTime, LSN: walStart, Seq: d.seq, Columns: slices.Clone(rel.columns)}
	if !d.inTxn {
		c.XID, c.CommitLSN = 0, walStart
	}
	if plan != nil {
		plan.Apply(&c) // drops excluded columns from Columns
	}
	old, changed := d.shapes.Observe(relid, shapes.Shape{Schema: rel.schema, Table: rel.name, Columns: c.Columns}, walStart)
	if !changed {
		return nil
	}
	c.OldColumns = old.Columns
	if c.OldColumns == nil {
		c.OldColumns = []change.Column{}
	}
	return &c
}

func identityOf(b byte) change.Identity {
	switch b {
	case 'f':
		return change.IdentityFull
	case 'n':
		return change.IdentityNothing
	case 'i':
		return change.IdentityIndex
	default:
		return change.IdentityDefault
	}
}
