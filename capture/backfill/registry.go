// Package backfill reads the rows a table already holds and merges them into
// capture's live stream as "read" changes, without locks beyond ACCESS SHARE,
// without long transactions, and without pausing live changes.
//
// The algorithm is the watermark one of Netflix's DBLog, on PostgreSQL's own
// WAL. A table is read in chunks in key order (keyset pagination). For each
// chunk the worker writes a low watermark into the WAL (a transactional
// logical message), reads the chunk in a short transaction of its own, and
// writes a high watermark. While the stream passes between the two
// watermarks, every live change of the table removes the rows it touched
// from the chunk: its own event carries their newer state. At the high
// watermark the rows left are added to the stream as reads, under the same
// partition keys live changes use, so a row's read can never overtake a later
// change to it.
//
// Two PostgreSQL details need more than the paper:
//   - A transaction's commit record can be in the WAL before the low
//     watermark while the transaction is still finishing (not yet visible to
//     new snapshots). Its changes then sit before the window although the
//     chunk's snapshot missed them. The chunk query records its snapshot;
//     if a transaction it saw as running committed before the low
//     watermark, the chunk is read again.
//   - An update under REPLICA IDENTITY DEFAULT may leave a TOASTed value out
//     ("unchanged"). A consumer that gets such an update for a row whose read
//     was dropped cannot know that value, so the row is read again: under
//     row locks (FOR SHARE) in the transaction that commits the watermark,
//     so that a row updated all the time cannot be dropped again forever.
//
// State lives in the database (walbridge.backfills): the request, the
// cursor (the last key whose read Kinesis acknowledged), the keys waiting to
// be read again, counts and times. A request travels through the WAL too (a
// logical message committed with its row), which wakes the running capture;
// after a crash capture resumes from the saved cursor.
package backfill

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Schema is the schema walbridge owns in the captured database. Changes to
// its tables are capture's bookkeeping and never published.
const Schema = "walbridge"

// Logical message prefixes. They never reach Kinesis: the stream hands
// them to the Coordinator, which consumes them.
const (
	// RequestPrefix: a backfill was registered or cancelled (content: ids).
	RequestPrefix = "walbridge.backfill"
	// WatermarkPrefix: a chunk's low or high watermark.
	WatermarkPrefix = "walbridge.watermark"
)

// DefaultChunkRows is the default number of rows per chunk query. A chunk's
// reads enter the stream at once, at its high watermark; 2,000 keeps live
// changes' commit-to-ack p99 within 50 ms at 1,000 changes/s during a
// backfill on a two-core machine (10,000 let it reach 250 ms) for about a
// tenth less backfill throughput (BenchmarkBackfillLatency, BenchmarkBackfill).
const DefaultChunkRows = 2000

// State is where a backfill is in its life.
type State string

// Backfill states.
const (
	Pending   State = "pending"
	Running   State = "running"
	Done      State = "done"
	Cancelled State = "cancelled"
	Failed    State = "failed"
)

// Active reports whether the state is pending or running.
func (s State) Active() bool { return s == Pending || s == Running }

// Backfill is one table's backfill as walbridge.backfills records it. The
// cursor and the keys waiting to be read again are row values: they stay in
// the database and out of this struct's JSON and of every log.
type Backfill struct {
	ID               int64      `json:"id"`
	Slot             string     `json:"slot"`
	Schema           string     `json:"schema"`
	Table            string     `json:"table"`
	Where            string     `json:"where,omitempty"`
	ChunkRows        int        `json:"chunkRows"`
	MaxRowsPerSecond int        `json:"maxRowsPerSecond,omitempty"`
	State            State      `json:"state"`
	RowsDone         int64      `json:"rowsDone"`
	RowsDropped      int64      `json:"rowsDropped"`
	Chunks           int64      `json:"chunks"`
	Estimate         int64      `json:"estimate"`
	Error            string     `json:"error,omitempty"`
	CreatedAt        time.Time  `json:"createdAt"`
	StartedAt        *time.Time `json:"startedAt,omitempty"`
	UpdatedAt        *time.Time `json:"updatedAt,omitempty"`
	FinishedAt       *time.Time `json:"finishedAt,omitempty"`

	cursor  []*string   // last acknowledged key (raw values), nil before the first chunk
	recheck [][]*string // keys to read again
}

// Name is schema.table.
func (b *Backfill) Name() string { return b.Schema + "." + b.Table }

// Rate is the rows read per second since the backfill started, up to its end
// or now.
func (b *Backfill) Rate(now time.Time) float64 {
	if b.StartedAt == nil {
		return 0
	}
	end := now
	if b.FinishedAt != nil {
		end = *b.FinishedAt
	}
	if d := end.Sub(*b.StartedAt).Seconds(); d > 0 {
		return float64(b.RowsDone) / d
	}
	return 0
}

const ddl = `
CREATE SCHEMA IF NOT EXISTS walbridge;
CREATE TABLE IF NOT EXISTS walbridge.backfills (
  id                  bigserial PRIMARY KEY,
  slot_name           text NOT NULL,
  schema_name         text NOT NULL,
  table_name          text NOT NULL,
  filter              text,
  chunk_rows          integer NOT NULL CHECK (chunk_rows > 0),
  max_rows_per_second integer NOT NULL DEFAULT 0 CHECK (max_rows_per_second >= 0),
  state               text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'cancelled', 'failed')),
  cursor_key          text[],
  recheck_keys        jsonb NOT NULL DEFAULT '[]',
  rows_done           bigint NOT NULL DEFAULT 0,
  rows_dropped        bigint NOT NULL DEFAULT 0,
  chunks              bigint NOT NULL DEFAULT 0,
  estimate            bigint NOT NULL DEFAULT 0,
  error               text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  started_at          timestamptz,
  updated_at          timestamptz,
  finished_at         timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS backfills_one_active ON walbridge.backfills (slot_name, schema_name, table_name)
  WHERE state IN ('pending', 'running');
COMMENT ON TABLE walbridge.backfills IS 'walbridge capture: backfill requests and progress (capture backfill --list)';`

// Install creates the walbridge schema and its backfills table if they are
// missing (setup calls it; it is idempotent).
func Install(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("create walbridge.backfills: %w", err)
	}
	return nil
}

// Installed reports whether walbridge.backfills exists.
func Installed(ctx context.Context, conn *pgx.Conn) (bool, error) { return installed(ctx, conn) }

func installed(ctx context.Context, q querier) (bool, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('walbridge.backfills') IS NOT NULL`).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up walbridge.backfills: %w", err)
	}
	return exists, nil
}

// Drop removes the walbridge schema and everything in it.
func Drop(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS walbridge CASCADE`); err != nil {
		return fmt.Errorf("drop schema walbridge: %w", err)
	}
	return nil
}

// Errors of Register and Cancel. Their texts name tables and ids, never rows.
var (
	ErrNoTable        = errors.New("no such table")
	ErrNotPublished   = errors.New("table is not in the publication")
	ErrNoKey          = errors.New("table has no primary key or replica identity index to read it in key order")
	ErrInvalidWhere   = errors.New("invalid --where")
	ErrAlreadyActive  = errors.New("a backfill of this table is already pending or running")
	ErrSkipped        = errors.New("the column policy skips this table")
	ErrNotInstalled   = errors.New("walbridge.backfills does not exist: run capture setup")
	ErrNoSuchBackfill = errors.New("no such backfill")
	ErrNotActive      = errors.New("backfill is not pending or running")
)

// Request is what `capture backfill` registers.
type Request struct {
	Slot, Publication string
	// Tables are schema.table names (a bare name means public); All takes
	// every published table instead.
	Tables []string
	All    bool
	// Where is an SQL condition on the table's rows (optional).
	Where            string
	ChunkRows        int
	MaxRowsPerSecond int
	// Skip, when set, names the tables the column policy skips.
	Skip func(schema, table string) bool
}

// Register validates req and records one backfill per table, all or none,
// in one transaction that also writes a RequestPrefix message into the WAL.
func Register(ctx context.Context, conn *pgx.Conn, req Request) ([]Backfill, error) {
	if req.ChunkRows <= 0 {
		req.ChunkRows = DefaultChunkRows
	}
	if req.MaxRowsPerSecond < 0 {
		return nil, errors.New("--max-rows-per-second must not be negative")
	}
	if len(req.Tables) == 0 && !req.All {
		return nil, errors.New("name tables (--table) or ask for --all")
	}
	if len(req.Tables) > 0 && req.All {
		return nil, errors.New("--table and --all exclude each other")
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := checkInstalled(ctx, tx); err != nil {
		return nil, err
	}
	names := req.Tables
	if req.All {
		if names, err = publishedTables(ctx, tx, req.Publication); err != nil {
			return nil, err
		}
		kept := names[:0]
		for _, n := range names {
			s, t, _ := strings.Cut(n, ".")
			if req.Skip == nil || !req.Skip(s, t) {
				kept = append(kept, n)
			}
		}
		if names = kept; len(names) == 0 {
			return nil, fmt.Errorf("publication %s has no tables to backfill", req.Publication)
		}
	}
	var out []Backfill
	seen := map[string]bool{}
	for _, n := range names {
		schema, table := splitName(n)
		if seen[schema+"."+table] {
			continue
		}
		seen[schema+"."+table] = true
		if req.Skip != nil && req.Skip(schema, table) {
			return nil, fmt.Errorf("%s.%s: %w", schema, table, ErrSkipped)
		}
		t, err := describe(ctx, tx, req.Publication, schema, table)
		if err != nil {
			return nil, err
		}
		if req.Where != "" {
			if _, err := tx.Exec(ctx, "SAVEPOINT walbridge_where"); err != nil {
				return nil, fmt.Errorf("savepoint: %w", err)
			}
			if _, err := tx.Exec(ctx, "EXPLAIN SELECT 1 FROM "+t.ident()+" WHERE ("+req.Where+")"); err != nil {
				return nil, fmt.Errorf("%s.%s: %w: %s", schema, table, ErrInvalidWhere, pgMessage(err))
			}
			if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT walbridge_where"); err != nil {
				return nil, fmt.Errorf("release savepoint: %w", err)
			}
		}
		var active int64
		err = tx.QueryRow(ctx, `SELECT id FROM walbridge.backfills WHERE slot_name = $1 AND schema_name = $2 AND table_name = $3 AND state IN ('pending', 'running')`,
			req.Slot, schema, table).Scan(&active)
		if err == nil {
			return nil, fmt.Errorf("%s.%s: %w (id %d; capture backfill --cancel %d)", schema, table, ErrAlreadyActive, active, active)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("look up active backfills: %w", err)
		}
		b := Backfill{Slot: req.Slot, Schema: schema, Table: table, Where: req.Where, ChunkRows: req.ChunkRows,
			MaxRowsPerSecond: req.MaxRowsPerSecond, State: Pending, Estimate: t.estimate}
		err = tx.QueryRow(ctx, `INSERT INTO walbridge.backfills (slot_name, schema_name, table_name, filter, chunk_rows, max_rows_per_second, estimate)
			VALUES ($1, $2, $3, nullif($4, ''), $5, $6, $7) RETURNING id, created_at`,
			b.Slot, b.Schema, b.Table, b.Where, b.ChunkRows, b.MaxRowsPerSecond, b.Estimate).Scan(&b.ID, &b.CreatedAt)
		if err != nil {
			return nil, fmt.Errorf("register backfill of %s.%s: %w", schema, table, err)
		}
		out = append(out, b)
	}
	if err := notify(ctx, tx, out); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return out, nil
}

// Cancel stops a pending or running backfill; capture finishes the chunk in
// hand and stops there.
func Cancel(ctx context.Context, conn *pgx.Conn, id int64) (*Backfill, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := checkInstalled(ctx, tx); err != nil {
		return nil, err
	}
	bs, err := query(ctx, tx, `WHERE id = $1 FOR UPDATE`, id)
	if err != nil {
		return nil, err
	}
	if len(bs) == 0 {
		return nil, fmt.Errorf("backfill %d: %w", id, ErrNoSuchBackfill)
	}
	b := bs[0]
	if !b.State.Active() {
		return nil, fmt.Errorf("backfill %d (%s) is %s: %w", id, b.Name(), b.State, ErrNotActive)
	}
	if _, err := tx.Exec(ctx, `UPDATE walbridge.backfills SET state = 'cancelled', finished_at = now(), updated_at = now() WHERE id = $1`, id); err != nil {
		return nil, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	b.State = Cancelled
	if err := notify(ctx, tx, bs); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return &b, nil
}

// List returns the slot's backfills (every slot's when slot is empty), oldest
// first. A database without walbridge.backfills has none.
func List(ctx context.Context, conn *pgx.Conn, slot string) ([]Backfill, error) {
	if ok, err := Installed(ctx, conn); err != nil || !ok {
		return nil, err
	}
	return query(ctx, conn, `WHERE $1 = '' OR slot_name = $1 ORDER BY id`, slot)
}

// Get returns the backfills with these ids.
func Get(ctx context.Context, conn *pgx.Conn, ids []int64) ([]Backfill, error) {
	return query(ctx, conn, `WHERE id = ANY($1) ORDER BY id`, ids)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

const columns = `id, slot_name, schema_name, table_name, coalesce(filter, ''), chunk_rows, max_rows_per_second, state,
	rows_done, rows_dropped, chunks, estimate, coalesce(error, ''), created_at, started_at, updated_at, finished_at, cursor_key, recheck_keys`

func query(ctx context.Context, q querier, where string, args ...any) ([]Backfill, error) {
	rows, err := q.Query(ctx, `SELECT `+columns+` FROM walbridge.backfills `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read walbridge.backfills: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Backfill, error) {
		var b Backfill
		var state string
		err := r.Scan(&b.ID, &b.Slot, &b.Schema, &b.Table, &b.Where, &b.ChunkRows, &b.MaxRowsPerSecond, &state,
			&b.RowsDone, &b.RowsDropped, &b.Chunks, &b.Estimate, &b.Error, &b.CreatedAt, &b.StartedAt, &b.UpdatedAt, &b.FinishedAt,
			&b.cursor, &b.recheck)
		b.State = State(state)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("read walbridge.backfills: %w", err)
	}
	return out, nil
}

func checkInstalled(ctx context.Context, q querier) error {
	ok, err := installed(ctx, q)
	if err == nil && !ok {
		err = ErrNotInstalled
	}
	return err
}

// notify writes the RequestPrefix message that wakes the running capture.
func notify(ctx context.Context, q querier, bs []Backfill) error {
	ids := make([]string, len(bs))
	for i, b := range bs {
		ids[i] = strconv.FormatInt(b.ID, 10)
	}
	if _, err := q.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, RequestPrefix, strings.Join(ids, ",")); err != nil {
		return fmt.Errorf("write backfill request to the WAL: %w", err)
	}
	return nil
}

func publishedTables(ctx context.Context, q querier, publication string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables
		WHERE pubname = $1 AND schemaname <> 'walbridge' ORDER BY 1`, publication)
	if err != nil {
		return nil, fmt.Errorf("list published tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list published tables: %w", err)
	}
	return names, nil
}

// splitName splits schema.table; a bare name is in public. Quoted names are
// not parsed: walbridge takes names as the catalog spells them.
func splitName(n string) (string, string) {
	if s, t, ok := strings.Cut(n, "."); ok {
		return s, t
	}
	return "public", n
}

// pgMessage is a PostgreSQL error's message and position, without the
// wrapping (the statement is ours, the condition the user's).
func pgMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	return err.Error()
}
