// Package schema describes the DatabaseEvents of a database's tables, read
// from its catalog, and writes that description as JSON Schema (draft
// 2020-12), TypeScript and Go, so that consumers get typed events.
//
// Read resolves every published column with package pgtypes, as capture
// resolves a relation: domains to their base type, arrays to their element
// type, the type's category (enum, composite, range, multirange), plus what
// only the catalog knows: nullability (NOT NULL on the column or on a
// domain), the declared array dimensions and enum labels. The event "type"
// of each column is asked of package event itself, so the generated types
// follow the one type mapping that fanout uses.
//
// Size: about 1,100 lines, one model (Read) and its three renderings (JSON
// Schema, TypeScript, Go), which share the model's walk and naming rules;
// a package per language would export that walk only to each other.
package schema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/pgtypes"
	"github.com/walbridge/walbridge/shared/policy"
)

// Table is one table whose changes become DatabaseEvents.
type Table struct {
	Schema, Name string
	// Columns are the published columns, in the table's column order (the
	// order of newValues).
	Columns []Column
}

// QualifiedName is "schema.table", the form rules and files use.
func (t Table) QualifiedName() string { return t.Schema + "." + t.Name }

// Column is one published column.
type Column struct {
	Name string
	// OID is the declared type's OID (a domain's or an array's, not the base).
	OID uint32
	// TypeName is the declared type's pg_type name ("_int4", "posint");
	// Declared is how SQL writes it (format_type: "integer[]",
	// "character varying(20)").
	TypeName, Declared string
	// Base is the type that decides the rendering (pg_type.typname after
	// domains and array wrappers are stripped), Kind its category, and
	// Array whether the column holds arrays of it.
	Base  string
	Kind  change.Kind
	Array bool
	// Dims is the declared number of array dimensions, at least 1 for an
	// array. PostgreSQL does not enforce it; the generated types follow it.
	Dims int
	// NotNull is true when the column or a domain it uses is NOT NULL.
	NotNull bool
	// Labels are an enum's labels in sort order.
	Labels []string
	// EventType is the column's "type" in events ("integer", "string[]").
	EventType string
}

// ChangeColumn is the column as a change record describes it, for building
// events with package event.
func (c Column) ChangeColumn() change.Column {
	return change.Column{Name: c.Name, OID: c.OID, Type: c.TypeName, Base: c.Base, Kind: c.Kind, Array: c.Array}
}

// Querier runs a query; *pgx.Conn and *pgxpool.Pool are Queriers.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Read describes the tables of a publication (pg_publication_tables, with
// its column lists), or, when publication is empty or does not exist, every
// user table (ordinary and partitioned). Tables come sorted by schema and
// name. Generated columns are left out, as pgoutput leaves them out before
// PostgreSQL 18; from 18 on the publication's own column list decides.
func Read(ctx context.Context, q Querier, publication string) ([]Table, error) {
	var version int
	if err := queryRow(ctx, q, `SELECT current_setting('server_version_num')::int`, nil, &version); err != nil {
		return nil, fmt.Errorf("read server version: %w", err)
	}
	usePublication := false
	if publication != "" {
		if err := queryRow(ctx, q, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, []any{publication}, &usePublication); err != nil {
			return nil, fmt.Errorf("look up publication %q: %w", publication, err)
		}
	}
	rels, err := readRelations(ctx, q, publication, usePublication, version)
	if err != nil {
		return nil, err
	}
	if len(rels) == 0 {
		return nil, nil
	}
	tables, typeOIDs, err := readColumns(ctx, q, rels, version)
	if err != nil {
		return nil, err
	}
	types, err := pgtypes.Resolve(ctx, q, typeOIDs)
	if err != nil {
		return nil, err
	}
	for ti := range tables {
		for ci := range tables[ti].Columns {
			col := &tables[ti].Columns[ci]
			rt := types[col.OID]
			col.TypeName, col.Base, col.Kind, col.Array = rt.Name, rt.Base, rt.Kind, rt.Array
			col.NotNull = col.NotNull || rt.NotNull
			col.Labels = rt.Labels
			if rt.Dims > col.Dims { // a domain over an array declares them
				col.Dims = rt.Dims
			}
			if col.Array && col.Dims < 1 {
				col.Dims = 1
			}
			if !col.Array {
				col.Dims = 0
			}
		}
		if err := setEventTypes(&tables[ti]); err != nil {
			return nil, err
		}
	}
	return tables, nil
}

// relation is a table to describe; columns, when set, is the publication's
// column list.
type relation struct {
	oid           uint32
	schema, table string
	columns       []string
}

func readRelations(ctx context.Context, q Querier, publication string, usePublication bool, version int) ([]relation, error) {
	var sql string
	var args []any
	switch {
	case usePublication && version >= 150000:
		sql = `SELECT c.oid, pt.schemaname::text, pt.tablename::text, pt.attnames::text[]
			FROM pg_publication_tables pt
			JOIN pg_namespace n ON n.nspname = pt.schemaname
			JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
			WHERE pt.pubname = $1 ORDER BY 2, 3`
		args = []any{publication}
	case usePublication:
		sql = `SELECT c.oid, pt.schemaname::text, pt.tablename::text, NULL::text[]
			FROM pg_publication_tables pt
			JOIN pg_namespace n ON n.nspname = pt.schemaname
			JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
			WHERE pt.pubname = $1 ORDER BY 2, 3`
		args = []any{publication}
	default:
		sql = `SELECT c.oid, n.nspname::text, c.relname::text, NULL::text[]
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema'
			  AND n.nspname NOT LIKE 'pg\_%'
			ORDER BY 2, 3`
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (relation, error) {
		var rel relation
		err := r.Scan(&rel.oid, &rel.schema, &rel.table, &rel.columns)
		return rel, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	return rels, nil
}

func readColumns(ctx context.Context, q Querier, rels []relation, version int) ([]Table, []uint32, error) {
	oids := make([]uint32, len(rels))
	index := make(map[uint32]int, len(rels))
	tables := make([]Table, len(rels))
	published := make([]map[string]bool, len(rels))
	for i, r := range rels {
		oids[i], index[r.oid] = r.oid, i
		tables[i] = Table{Schema: r.schema, Name: r.table}
		if r.columns != nil {
			published[i] = map[string]bool{}
			for _, c := range r.columns {
				published[i][c] = true
			}
		}
	}
	generated := `a.attgenerated <> ''`
	if version < 120000 {
		generated = `false`
	}
	rows, err := q.Query(ctx, `SELECT a.attrelid, a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod),
			a.attnotnull, a.attndims, `+generated+`
		FROM pg_attribute a
		WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return nil, nil, fmt.Errorf("list columns: %w", err)
	}
	defer rows.Close()
	seen := map[uint32]bool{}
	var typeOIDs []uint32
	for rows.Next() {
		var rel uint32
		var col Column
		var dims int32
		var isGenerated bool
		if err := rows.Scan(&rel, &col.Name, &col.OID, &col.Declared, &col.NotNull, &dims, &isGenerated); err != nil {
			return nil, nil, fmt.Errorf("list columns: %w", err)
		}
		i := index[rel]
		switch {
		case published[i] != nil && !published[i][col.Name]:
			continue
		case isGenerated && (published[i] == nil || version < 180000):
			// Before PostgreSQL 18 pgoutput never sends generated columns;
			// from 18 only a publication that says so (its column list, or
			// publish_generated_columns = stored) does, and attnames then
			// lists them.
			continue
		}
		col.Dims = int(dims)
		tables[i].Columns = append(tables[i].Columns, col)
		if !seen[col.OID] {
			seen[col.OID] = true
			typeOIDs = append(typeOIDs, col.OID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list columns: %w", err)
	}
	return tables, typeOIDs, nil
}

func queryRow(ctx context.Context, q Querier, sql string, args []any, dest ...any) error {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// ApplyPolicy makes tables what events carry under the column policy p:
// skipped tables and excluded columns go, hashed columns become strings
// (their value is a hex HMAC). Redacted columns stay as they are: every
// value type allows the redacted marker.
func ApplyPolicy(tables []Table, p *policy.Policy) []Table {
	if p == nil {
		return tables
	}
	var out []Table
	for _, t := range tables {
		if _, skip := p.Table(t.Schema, t.Name); skip {
			continue
		}
		cols := make([]Column, 0, len(t.Columns))
		for _, c := range t.Columns {
			r, ok := p.Column(t.Schema, t.Name, c.Name)
			switch {
			case !ok || r.Action == policy.Redact:
			case r.Action == policy.Exclude:
				continue
			case r.Action == policy.Hash:
				c = Column{Name: c.Name, OID: 25, TypeName: "text", Declared: "text", Base: "text", Kind: change.KindBase,
					NotNull: c.NotNull, EventType: "string"}
			}
			cols = append(cols, c)
		}
		t.Columns = cols
		out = append(out, t)
	}
	return out
}
