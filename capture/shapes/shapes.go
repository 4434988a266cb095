// Package shapes remembers, per table, the shape capture last knew: its
// columns as change records carry them (names, types, key; after the
// column policy). PostgreSQL sends a Relation message before a table's
// first change in a session and again after DDL; one whose shape differs
// from the known one becomes a schema-change record, and one that only
// repeats it (every restart, every reconnect) becomes nothing.
//
// What "known" means follows the confirmed WAL position, so that a replay
// compares like with like. A shape observed at position P is pending until
// the slot's confirmed position passes P; then it is written to
// walbridge.schema_shapes (keyed by slot and table OID) and becomes
// durable. A new session (a reconnect, or a restart that loaded the table)
// starts from the durable shapes plus the pending ones at or before the
// confirmed position, and forgets the rest: PostgreSQL sends their WAL
// again, with the Relation messages as of that WAL (historic catalog), so
// each change of shape is seen again where it happened. A crash after a
// schema-change record was written but before its position was confirmed
// therefore writes it again (at least once, like every record); one after
// the position was confirmed does not.
//
// Without the table (setup not run since this version, or no privilege to
// create it) the store works in memory only and says so once: a restart
// then takes the first shape it sees as known, and a change of shape made
// while capture was down is not reported.
package shapes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/shared/change"
)

// DDL creates the table; setup runs it (idempotent), and Open tries it.
const DDL = `
CREATE SCHEMA IF NOT EXISTS walbridge;
CREATE TABLE IF NOT EXISTS walbridge.schema_shapes (
  slot_name   text   NOT NULL,
  relid       oid    NOT NULL,
  schema_name text   NOT NULL,
  table_name  text   NOT NULL,
  columns     jsonb  NOT NULL,
  lsn         pg_lsn NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (slot_name, relid)
);
COMMENT ON TABLE walbridge.schema_shapes IS 'walbridge capture: the last confirmed shape of each table, for schema-change events';`

// Install creates walbridge.schema_shapes if it is missing.
func Install(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, DDL); err != nil {
		return fmt.Errorf("create walbridge.schema_shapes: %w", err)
	}
	return nil
}

// Installed reports whether walbridge.schema_shapes exists.
func Installed(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('walbridge.schema_shapes') IS NOT NULL`).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up walbridge.schema_shapes: %w", err)
	}
	return exists, nil
}

// Shape is a table's name and columns.
type Shape struct {
	Schema, Table string
	Columns       []change.Column
}

type update struct {
	relid uint32
	shape Shape
	at    change.LSN
}

// Store is the known shapes. Its methods are safe for concurrent use.
type Store struct {
	slot    string
	log     *zap.Logger
	persist bool
	loaded  bool

	mu      sync.Mutex
	durable map[uint32]Shape
	pending []update // in WAL order
	known   map[uint32]Shape
}

// Memory returns a store that keeps nothing across restarts.
func Memory(log *zap.Logger) *Store {
	if log == nil {
		log = zap.NewNop()
	}
	return &Store{log: log, durable: map[uint32]Shape{}, known: map[uint32]Shape{}, loaded: true}
}

// New returns the store of slot's shapes, to be loaded (Load) on the first
// connection: capture run makes it before it has one.
func New(slot string, log *zap.Logger) *Store {
	s := Memory(log)
	s.slot, s.loaded = slot, false
	return s
}

// Open is New and Load.
func Open(ctx context.Context, conn *pgx.Conn, slot string, log *zap.Logger) (*Store, error) {
	s := New(slot, log)
	if err := s.Load(ctx, conn); err != nil {
		return nil, err
	}
	return s, nil
}

// Load reads the slot's durable shapes, once, creating the table when it
// can. A table it can neither find nor create leaves the store in memory,
// with a warning; other errors are returned (and Load may be called again).
func (s *Store) Load(ctx context.Context, conn *pgx.Conn) error {
	if s.loaded {
		return nil
	}
	slot := s.slot
	if _, err := conn.Exec(ctx, DDL); err != nil {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "25006") { // insufficient_privilege, read_only_sql_transaction
			return fmt.Errorf("create walbridge.schema_shapes: %w", err)
		}
		exists, err := Installed(ctx, conn)
		if err != nil {
			return err
		}
		if !exists {
			s.log.Warn("walbridge.schema_shapes is missing and cannot be created (run capture setup); table shapes are kept in memory only, "+
				"so a schema change made while capture is stopped is not reported", zap.String("sqlstate", pgErr.Code))
			s.loaded = true
			return nil
		}
	}
	rows, err := conn.Query(ctx, `SELECT relid, schema_name, table_name, columns FROM walbridge.schema_shapes WHERE slot_name = $1`, slot)
	if err != nil {
		return fmt.Errorf("read walbridge.schema_shapes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var relid uint32
		var sh Shape
		var cols []byte
		if err := rows.Scan(&relid, &sh.Schema, &sh.Table, &cols); err != nil {
			return fmt.Errorf("read walbridge.schema_shapes: %w", err)
		}
		if err := json.Unmarshal(cols, &sh.Columns); err != nil {
			return fmt.Errorf("walbridge.schema_shapes: columns of %s.%s: %w", sh.Schema, sh.Table, err)
		}
		s.mu.Lock()
		s.durable[relid] = sh
		s.mu.Unlock()
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read walbridge.schema_shapes: %w", err)
	}
	s.mu.Lock()
	s.persist, s.loaded = true, true
	s.known = maps(s.durable)
	s.mu.Unlock()
	s.log.Info("schema changes on", zap.Int("known_tables", len(s.durable)))
	return nil
}

func maps(m map[uint32]Shape) map[uint32]Shape {
	out := make(map[uint32]Shape, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Len is how many tables have a known shape.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.known)
}

// Observe compares the shape a Relation message at position at gives a
// table with the known one. changed is true when there was a known shape
// and it differs; old is that shape. The new shape becomes known (pending
// until at is confirmed). The first shape of a table is taken as it is.
func (s *Store) Observe(relid uint32, sh Shape, at change.LSN) (old Shape, changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, seen := s.known[relid]
	if seen && prev.Schema == sh.Schema && prev.Table == sh.Table && sameColumns(prev.Columns, sh.Columns) {
		return Shape{}, false
	}
	sh.Columns = slices.Clone(sh.Columns)
	s.known[relid] = sh
	s.pending = append(s.pending, update{relid: relid, shape: sh, at: at})
	return prev, seen
}

// sameColumns compares what a schema change is about: names, types, key.
func sameColumns(a, b []change.Column) bool {
	return slices.EqualFunc(a, b, func(x, y change.Column) bool {
		return x.Name == y.Name && x.OID == y.OID && x.Type == y.Type && x.Key == y.Key && x.Array == y.Array
	})
}

// Confirmed makes the pending shapes at or before lsn durable, writing
// them to the table when the store persists. On a write error they stay
// pending (a later call tries again) and the error is returned.
func (s *Store) Confirmed(ctx context.Context, conn *pgx.Conn, lsn change.LSN) error {
	s.mu.Lock()
	n := sort.Search(len(s.pending), func(i int) bool { return s.pending[i].at > lsn })
	batch := slices.Clone(s.pending[:n])
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if s.persist {
		b := &pgx.Batch{}
		for _, u := range batch {
			cols, err := json.Marshal(u.shape.Columns)
			if err != nil {
				return fmt.Errorf("shape of %s.%s: %w", u.shape.Schema, u.shape.Table, err)
			}
			b.Queue(`INSERT INTO walbridge.schema_shapes (slot_name, relid, schema_name, table_name, columns, lsn) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (slot_name, relid) DO UPDATE SET schema_name = excluded.schema_name, table_name = excluded.table_name,
				columns = excluded.columns, lsn = excluded.lsn, updated_at = now()`,
				s.slot, u.relid, u.shape.Schema, u.shape.Table, cols, u.at.String())
		}
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write walbridge.schema_shapes: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range batch {
		s.durable[u.relid] = u.shape
	}
	s.pending = s.pending[len(batch):]
	return nil
}

// Begin starts a session that streams from the confirmed position: the
// pending shapes up to it become durable (written when the store
// persists), the later ones are forgotten, and the known shapes are the
// durable ones.
func (s *Store) Begin(ctx context.Context, conn *pgx.Conn, confirmed change.LSN) error {
	err := s.Confirmed(ctx, conn, confirmed)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Not written: keep the ones the position covers in memory.
		n := sort.Search(len(s.pending), func(i int) bool { return s.pending[i].at > confirmed })
		for _, u := range s.pending[:n] {
			s.durable[u.relid] = u.shape
		}
	}
	s.pending = nil
	s.known = maps(s.durable)
	return err
}
