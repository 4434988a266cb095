package wal

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/walbridge/walbridge/shared/change"
)

// PGCatalog implements Catalog over an ordinary (non-replication) connection.
// Types are cached by OID for the life of the process: a type's name and
// category don't change under a running OID.
type PGCatalog struct {
	mu    sync.Mutex
	conn  *pgx.Conn
	types map[uint32]TypeInfo
}

// NewPGCatalog wraps a connection; the caller keeps ownership of conn.
func NewPGCatalog(conn *pgx.Conn) *PGCatalog {
	return &PGCatalog{conn: conn, types: map[uint32]TypeInfo{}}
}

type pgTypeRow struct {
	oid      uint32
	name     string
	typtype  string
	base     uint32
	elem     uint32
	category string
}

// ResolveTypes implements Catalog.
func (c *PGCatalog) ResolveTypes(ctx context.Context, oids []uint32) (map[uint32]TypeInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint32]TypeInfo, len(oids))
	var missing []uint32
	for _, o := range oids {
		if t, ok := c.types[o]; ok {
			out[o] = t
		} else {
			missing = append(missing, o)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	rows := map[uint32]pgTypeRow{}
	// Follow domain bases and array elements until every type is known.
	for want := missing; len(want) > 0; {
		res, err := c.conn.Query(ctx, `SELECT oid, typname, typtype::text, typbasetype, typelem, typcategory::text FROM pg_type WHERE oid = ANY($1)`, want)
		if err != nil {
			return nil, fmt.Errorf("query pg_type: %w", err)
		}
		var next []uint32
		for res.Next() {
			var r pgTypeRow
			if err := res.Scan(&r.oid, &r.name, &r.typtype, &r.base, &r.elem, &r.category); err != nil {
				res.Close()
				return nil, fmt.Errorf("scan pg_type: %w", err)
			}
			rows[r.oid] = r
			if r.typtype == "d" && r.base != 0 {
				next = append(next, r.base)
			}
			if isArray(r) {
				next = append(next, r.elem)
			}
		}
		res.Close()
		if err := res.Err(); err != nil {
			return nil, fmt.Errorf("query pg_type: %w", err)
		}
		want = want[:0]
		for _, o := range next {
			if _, ok := rows[o]; !ok {
				want = append(want, o)
			}
		}
	}
	for _, o := range missing {
		t, err := resolve(rows, o)
		if err != nil {
			return nil, err
		}
		c.types[o] = t
		out[o] = t
	}
	return out, nil
}

// isArray: a true array type. typelem alone is not enough (name, point and
// int2vector have one too); array types are category 'A' named "_elem".
func isArray(r pgTypeRow) bool {
	return r.category == "A" && r.elem != 0 && strings.HasPrefix(r.name, "_")
}

func resolve(rows map[uint32]pgTypeRow, oid uint32) (TypeInfo, error) {
	r, ok := rows[oid]
	if !ok {
		return TypeInfo{}, fmt.Errorf("type %d not in pg_type", oid)
	}
	info := TypeInfo{Name: r.name}
	for depth := 0; ; depth++ {
		if depth > 32 {
			return TypeInfo{}, fmt.Errorf("type %s: domain/array nesting too deep", info.Name)
		}
		switch {
		case r.typtype == "d":
			r, ok = rows[r.base]
		case isArray(r):
			info.Array = true
			r, ok = rows[r.elem]
		default:
			info.Base = r.name
			info.Kind = change.KindOf(r.typtype)
			return info, nil
		}
		if !ok {
			return TypeInfo{}, fmt.Errorf("type %s: base or element type missing from pg_type", info.Name)
		}
	}
}

// PrimaryKey implements Catalog.
func (c *PGCatalog) PrimaryKey(ctx context.Context, relid uint32) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rows, err := c.conn.Query(ctx, `
		SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1 AND i.indisprimary
		ORDER BY array_position(i.indkey::int2[], a.attnum)`, relid)
	if err != nil {
		return nil, fmt.Errorf("query primary key: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("query primary key: %w", err)
	}
	return names, nil
}
