package replication

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/capture/pgoutput"
	"github.com/walbridge/walbridge/shared/pgtypes"
)

// PGCatalog implements pgoutput.Catalog over an ordinary (non-replication) connection.
// Types are cached by OID for the life of the process: a type's name and
// category don't change under a running OID.
type PGCatalog struct {
	mu    sync.Mutex
	conn  *pgx.Conn
	types map[uint32]pgoutput.TypeInfo
}

// NewPGCatalog wraps a connection; the caller keeps ownership of conn.
func NewPGCatalog(conn *pgx.Conn) *PGCatalog {
	return &PGCatalog{conn: conn, types: map[uint32]pgoutput.TypeInfo{}}
}

// ResolveTypes implements pgoutput.Catalog with pgtypes.Resolve, the resolution the
// schema generator uses too, so generated types describe the events capture
// renders.
func (c *PGCatalog) ResolveTypes(ctx context.Context, oids []uint32) (map[uint32]pgoutput.TypeInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[uint32]pgoutput.TypeInfo, len(oids))
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
	resolved, err := pgtypes.Resolve(ctx, c.conn, missing)
	if err != nil {
		return nil, err
	}
	for o, t := range resolved {
		info := pgoutput.TypeInfo{Name: t.Name, Base: t.Base, Kind: t.Kind, Array: t.Array}
		c.types[o] = info
		out[o] = info
	}
	return out, nil
}

// PrimaryKey implements pgoutput.Catalog.
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
