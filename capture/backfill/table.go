package backfill

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/change"
)

// table is what a chunk query needs to know about a table, read again for
// every chunk so that a migration during a backfill (a column added or
// dropped) shows in the next chunk.
type table struct {
	schema, name string
	oid          uint32
	identity     change.Identity
	// columns are the ones pgoutput publishes, in attribute order: not
	// dropped, in the publication's columns (attnames, PostgreSQL 15+), and
	// not generated before PostgreSQL 18 (from 18 a publication may publish
	// stored generated columns, and attnames says when).
	columns []column
	// keys are the indexes in columns of the key columns, in the key
	// index's order: the order chunks page in.
	keys []int
	// rowFilter is the publication's row filter for the table (PostgreSQL
	// 15+), which live changes pass too; empty for none.
	rowFilter string
	estimate  int64
}

type column struct {
	name     string
	typeOID  uint32
	typeName string // format_type, for casting key values in the cursor condition
	key      bool
}

func (t *table) ident() string { return pgx.Identifier{t.schema, t.name}.Sanitize() }

func (t *table) qualified() string { return t.schema + "." + t.name }

// describe reads the table's publication membership, columns and key. The
// key is what pgoutput flags as the row's identity: the primary key, or the
// replica identity index under REPLICA IDENTITY USING INDEX.
func describe(ctx context.Context, q querier, publication, schema, name string) (*table, error) {
	t := &table{schema: schema, name: name}
	// The server's version, the table and its publication entry in one
	// round trip (a backfill describes its table again for every chunk).
	// PostgreSQL 15 added column lists and row filters to publications:
	// the entry is read as JSON so that one query serves every version.
	batch := &pgx.Batch{}
	batch.Queue(`SELECT current_setting('server_version_num')::int`)
	batch.Queue(`SELECT c.oid, c.relreplident::text, greatest(c.reltuples, 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, name)
	batch.Queue(`SELECT to_jsonb(p) FROM pg_publication_tables p WHERE pubname = $1 AND schemaname = $2 AND tablename = $3`, publication, schema, name)
	br := q.SendBatch(ctx, batch)
	var version int
	var ident string
	var entry struct {
		Attnames  []string `json:"attnames"`
		RowFilter *string  `json:"rowfilter"`
	}
	errVersion := br.QueryRow().Scan(&version)
	errTable := br.QueryRow().Scan(&t.oid, &ident, &t.estimate)
	errPub := br.QueryRow().Scan(&entry)
	if err := br.Close(); err != nil && errVersion == nil && errTable == nil && errPub == nil {
		return nil, fmt.Errorf("look up %s.%s: %w", schema, name, err)
	}
	if errVersion != nil {
		return nil, fmt.Errorf("server version: %w", errVersion)
	}
	if errors.Is(errTable, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s.%s: %w", schema, name, ErrNoTable)
	}
	if errTable != nil {
		return nil, fmt.Errorf("look up %s.%s: %w", schema, name, errTable)
	}
	t.identity = identityOf(ident)
	if schema == Schema {
		return nil, fmt.Errorf("%s.%s: %w (walbridge's own tables are never published)", schema, name, ErrNotPublished)
	}
	if errors.Is(errPub, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s.%s: %w %s", schema, name, ErrNotPublished, publication)
	}
	if errPub != nil {
		return nil, fmt.Errorf("look up %s.%s in publication %s: %w", schema, name, publication, errPub)
	}
	attnames, rowFilter := entry.Attnames, entry.RowFilter
	if rowFilter != nil {
		t.rowFilter = *rowFilter
	}

	// The key: under REPLICA IDENTITY USING INDEX that index, otherwise the
	// primary key (as the decoder flags keys under FULL and NOTHING too).
	keyIndex := `i.indisprimary`
	if t.identity == change.IdentityIndex {
		keyIndex = `i.indisreplident`
	}
	rows, err := q.Query(ctx, `
		SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod),
		  coalesce((SELECT k.n FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(att, n)
		            WHERE i.indrelid = a.attrelid AND `+keyIndex+` AND i.indisvalid AND k.att = a.attnum LIMIT 1), 0)::int
		FROM pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		  AND (a.attgenerated = '' OR $3)
		  AND ($2::text[] IS NULL OR a.attname = ANY($2::text[]))
		ORDER BY a.attnum`, t.oid, attnames, version >= 180000 && attnames != nil)
	if err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", schema, name, err)
	}
	type keyPos struct{ col, pos int }
	var keys []keyPos
	for rows.Next() {
		var c column
		var pos int
		if err := rows.Scan(&c.name, &c.typeOID, &c.typeName, &pos); err != nil {
			rows.Close()
			return nil, fmt.Errorf("columns of %s.%s: %w", schema, name, err)
		}
		if pos > 0 {
			c.key = true
			keys = append(keys, keyPos{len(t.columns), pos})
		}
		t.columns = append(t.columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", schema, name, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s.%s: %w", schema, name, ErrNoKey)
	}
	for len(keys) > 0 {
		// Insertion order by index position: keys are few.
		best := 0
		for i := range keys {
			if keys[i].pos < keys[best].pos {
				best = i
			}
		}
		t.keys = append(t.keys, keys[best].col)
		keys = append(keys[:best], keys[best+1:]...)
	}
	return t, nil
}

// chunkSQL is the query of one chunk: after is the cursor (nil for the
// first chunk), or keys is a list of keys to read again instead.
func (t *table) chunkSQL(where string, limit int, after []*string, keys [][]*string) (string, [][]byte) {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, c := range t.columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pgx.Identifier{c.name}.Sanitize())
	}
	b.WriteString(" FROM ")
	b.WriteString(t.ident())
	var params [][]byte
	param := func(v *string, col column) string {
		if v == nil {
			params = append(params, nil)
		} else {
			params = append(params, []byte(*v))
		}
		return fmt.Sprintf("$%d::%s", len(params), col.typeName)
	}
	keyList := func() string {
		var k strings.Builder
		k.WriteByte('(')
		for i, ki := range t.keys {
			if i > 0 {
				k.WriteString(", ")
			}
			k.WriteString(pgx.Identifier{t.columns[ki].name}.Sanitize())
		}
		k.WriteByte(')')
		return k.String()
	}
	var conds []string
	switch {
	case keys != nil:
		var list []string
		for _, key := range keys {
			var vals []string
			for i, ki := range t.keys {
				vals = append(vals, param(key[i], t.columns[ki]))
			}
			list = append(list, "("+strings.Join(vals, ", ")+")")
		}
		conds = append(conds, keyList()+" IN ("+strings.Join(list, ", ")+")")
	case after != nil:
		var vals []string
		for i, ki := range t.keys {
			vals = append(vals, param(after[i], t.columns[ki]))
		}
		conds = append(conds, keyList()+" > ("+strings.Join(vals, ", ")+")")
	}
	if t.rowFilter != "" {
		conds = append(conds, t.rowFilter)
	}
	if where != "" {
		conds = append(conds, "("+where+")")
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(conds, " AND "))
	}
	if keys == nil {
		b.WriteString(" ORDER BY ")
		b.WriteString(strings.Trim(keyList(), "()"))
		fmt.Fprintf(&b, " LIMIT %d", limit)
	}
	return b.String(), params
}

func identityOf(s string) change.Identity {
	switch s {
	case "f":
		return change.IdentityFull
	case "n":
		return change.IdentityNothing
	case "i":
		return change.IdentityIndex
	default:
		return change.IdentityDefault
	}
}
