package backfill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/capture/replication"
	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/metrics"
	"github.com/walbridge/walbridge/shared/pgtypes"
	"github.com/walbridge/walbridge/shared/policy"
)

// Sink is what the worker needs of capture's Kinesis writer: how much is
// buffered (a chunk waits while it is more than half full, so backpressure
// pauses chunk reads and never the live stream) and what is durable.
type Sink interface {
	Buffered() (bytes, limit int)
	Confirmable() change.LSN
}

// Policy plans the column policy for a relation on the worker's goroutine
// (policy.Live's PlanOwn).
type Policy interface {
	PlanOwn(schema, table string, cols []change.Column) (*policy.Plan, error)
}

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	DatabaseURL string
	Slot        string
	Publication string
	Coordinator *Coordinator
	Sink        Sink
	Policy      Policy // nil: none
	// ChunkBytes bounds a chunk's values in memory: a chunk that comes back
	// larger shrinks the next one (default 16 MiB).
	ChunkBytes int
	// Idle is how often the worker looks for work without a wake-up
	// (default 30 s): requests also arrive through the stream.
	Idle    time.Duration
	Logger  *zap.Logger
	Metrics *metrics.Registry
}

// Worker runs the slot's backfills, one table at a time, oldest first.
type Worker struct {
	cfg   WorkerConfig
	log   *zap.Logger
	types map[uint32]pgtypes.Type

	rows, dropped, chunks, retries *metrics.CounterVec
}

// NewWorker prepares a worker; Run starts it.
func NewWorker(cfg WorkerConfig) *Worker {
	if cfg.ChunkBytes <= 0 {
		cfg.ChunkBytes = 16 << 20
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	m := cfg.Metrics
	return &Worker{cfg: cfg, log: cfg.Logger, types: map[uint32]pgtypes.Type{},
		rows:    m.Counter("walbridge_backfill_rows_total", "Rows read by backfills and added to the stream, by table.", "table"),
		dropped: m.Counter("walbridge_backfill_rows_dropped_total", "Rows a backfill read but left out because a live change in the same window carries them, by table.", "table"),
		chunks:  m.Counter("walbridge_backfill_chunks_total", "Backfill chunks completed (acknowledged by Kinesis), by table.", "table"),
		retries: m.Counter("walbridge_backfill_chunk_retries_total", "Backfill chunks read again because their snapshot raced a commit, by table.", "table"),
	}
}

var retryPolicy = backoff.Policy{Base: time.Second, Max: 30 * time.Second, Equal: true}

// Run works until ctx ends. Failures of the database connection are
// retried; a backfill that cannot go on (its table dropped, its filter
// invalid) is marked failed with the reason and the next one starts.
func (wk *Worker) Run(ctx context.Context) error {
	for failures := 0; ; failures++ {
		err := wk.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		delay := retryPolicy.Delay(failures)
		wk.log.Warn("backfill worker stopped; restarting", zap.Error(err), zap.Duration("in", delay))
		if !backoff.Sleep(ctx, delay) {
			return nil
		}
	}
}

func (wk *Worker) session(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(wk.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	for k, v := range replication.SessionSettings() {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["application_name"] = "walbridge-backfill"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	var database string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&database); err != nil {
		return fmt.Errorf("current database: %w", err)
	}
	for {
		bs, err := List(ctx, conn, wk.cfg.Slot)
		if err != nil {
			return err
		}
		var next *Backfill
		for i := range bs {
			if bs[i].State.Active() {
				next = &bs[i]
				break
			}
		}
		if next == nil {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-wk.cfg.Coordinator.Wake():
			case <-time.After(wk.cfg.Idle):
			}
			continue
		}
		if err := wk.backfill(ctx, conn, database, next); err != nil {
			return err
		}
	}
}

// failure is a reason a backfill cannot go on (as opposed to a failure of
// the worker's connection, which is retried).
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }

func (wk *Worker) backfill(ctx context.Context, conn *pgx.Conn, database string, b *Backfill) error {
	err := wk.work(ctx, conn, database, b)
	var f failure
	if !errors.As(err, &f) {
		return err
	}
	wk.log.Warn("backfill failed", zap.Int64("backfill", b.ID), zap.String("table", b.Name()), zap.Error(f.err))
	if _, err := conn.Exec(ctx, `UPDATE walbridge.backfills SET state = 'failed', error = $2, finished_at = now(), updated_at = now()
		WHERE id = $1 AND state IN ('pending', 'running')`, b.ID, f.err.Error()); err != nil {
		return fmt.Errorf("record failure of backfill %d: %w", b.ID, err)
	}
	return nil
}

func (wk *Worker) work(ctx context.Context, conn *pgx.Conn, database string, b *Backfill) error {
	if b.State == Pending {
		if _, err := conn.Exec(ctx, `UPDATE walbridge.backfills SET state = 'running', started_at = coalesce(started_at, now()), updated_at = now()
			WHERE id = $1 AND state = 'pending'`, b.ID); err != nil {
			return fmt.Errorf("start backfill %d: %w", b.ID, err)
		}
		b.State = Running
	}
	wk.log.Info("backfill running", zap.Int64("backfill", b.ID), zap.String("table", b.Name()),
		zap.Int64("rows_done", b.RowsDone), zap.Int64("estimate", b.Estimate))
	name := b.Name()
	rowsC, droppedC, chunksC, retriesC := wk.rows.With(name), wk.dropped.With(name), wk.chunks.With(name), wk.retries.With(name)
	chunkRows := b.ChunkRows
	if r := b.MaxRowsPerSecond; r > 0 && chunkRows > r {
		chunkRows = r // a chunk is at most a second's worth
	}
	exhausted := false // the key range is read to its end; only rechecks remain
	for {
		var state string
		if err := conn.QueryRow(ctx, `SELECT state FROM walbridge.backfills WHERE id = $1`, b.ID).Scan(&state); err != nil {
			return fmt.Errorf("read state of backfill %d: %w", b.ID, err)
		}
		if State(state) != Running {
			wk.log.Info("backfill stopped", zap.Int64("backfill", b.ID), zap.String("table", name), zap.String("state", state))
			return nil
		}
		t, err := describe(ctx, conn, wk.cfg.Publication, b.Schema, b.Table)
		if err != nil {
			if errors.Is(err, ErrNoTable) || errors.Is(err, ErrNotPublished) || errors.Is(err, ErrNoKey) {
				return failure{err}
			}
			return err
		}
		cols, err := wk.columns(ctx, conn, t)
		if err != nil {
			return err
		}
		var plan *policy.Plan
		if wk.cfg.Policy != nil {
			if plan, err = wk.cfg.Policy.PlanOwn(t.schema, t.name, cols); err != nil {
				return failure{fmt.Errorf("column policy: %w", err)}
			}
			if plan.Skip() {
				return failure{fmt.Errorf("%s: %w", name, ErrSkipped)}
			}
		}
		if err := wk.waitForRoom(ctx); err != nil {
			return err
		}
		start := time.Now()
		var keys [][]*string
		if len(b.recheck) > 0 {
			keys = b.recheck[:min(len(b.recheck), chunkRows)]
		} else if exhausted {
			return wk.finish(ctx, conn, b)
		}
		res, err := wk.chunk(ctx, conn, database, b, t, cols, plan, chunkRows, keys)
		if err != nil {
			return err
		}
		if res.retry {
			retriesC.Inc()
			wk.log.Debug("backfill chunk read again: its snapshot raced a commit", zap.Int64("backfill", b.ID), zap.String("table", name))
			continue
		}
		if keys != nil {
			b.recheck = b.recheck[len(keys):]
		} else {
			if len(res.raw) > 0 {
				b.cursor = res.raw[len(res.raw)-1]
			}
			exhausted = len(res.raw) < chunkRows
		}
		b.recheck = append(b.recheck, res.recheck...)
		b.RowsDone += int64(res.emitted)
		b.RowsDropped += int64(res.dropped)
		b.Chunks++
		rowsC.Add(float64(res.emitted))
		droppedC.Add(float64(res.dropped))
		chunksC.Inc()
		if _, err := conn.Exec(ctx, `UPDATE walbridge.backfills SET cursor_key = $2, recheck_keys = $3, rows_done = $4, rows_dropped = $5,
			chunks = $6, updated_at = now() WHERE id = $1`, b.ID, b.cursor, b.recheck, b.RowsDone, b.RowsDropped, b.Chunks); err != nil {
			return fmt.Errorf("save progress of backfill %d: %w", b.ID, err)
		}
		wk.log.Debug("backfill chunk acknowledged", zap.Int64("backfill", b.ID), zap.String("table", name),
			zap.Int("rows", res.emitted), zap.Int("dropped", res.dropped), zap.Int("to_read_again", len(res.recheck)), zap.Int("bytes", res.bytes))
		// Fit the next chunk to the memory bound, and grow back after
		// large rows have passed.
		switch {
		case res.bytes > wk.cfg.ChunkBytes:
			chunkRows = max(1, int(int64(chunkRows)*int64(wk.cfg.ChunkBytes)/int64(res.bytes)))
		case res.bytes < wk.cfg.ChunkBytes/4 && chunkRows < b.ChunkRows:
			chunkRows = min(b.ChunkRows, chunkRows*2)
		}
		if r := b.MaxRowsPerSecond; r > 0 {
			chunkRows = min(chunkRows, r)
			if !backoff.Sleep(ctx, time.Until(start.Add(time.Duration(float64(len(res.raw))/float64(r)*float64(time.Second))))) {
				return ctx.Err()
			}
		}
	}
}

func (wk *Worker) finish(ctx context.Context, conn *pgx.Conn, b *Backfill) error {
	if _, err := conn.Exec(ctx, `UPDATE walbridge.backfills SET state = 'done', finished_at = now(), updated_at = now()
		WHERE id = $1 AND state = 'running'`, b.ID); err != nil {
		return fmt.Errorf("finish backfill %d: %w", b.ID, err)
	}
	wk.log.Info("backfill done", zap.Int64("backfill", b.ID), zap.String("table", b.Name()),
		zap.Int64("rows", b.RowsDone), zap.Int64("dropped", b.RowsDropped), zap.Int64("chunks", b.Chunks))
	return nil
}

// waitForRoom holds the next chunk while the writer's buffer is more than
// half full.
func (wk *Worker) waitForRoom(ctx context.Context) error {
	for {
		used, limit := wk.cfg.Sink.Buffered()
		if used <= limit/2 {
			return nil
		}
		if !backoff.Sleep(ctx, 10*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// chunkResult is what one window gave.
type chunkResult struct {
	raw              [][]*string // the keys read, in order
	recheck          [][]*string
	emitted, dropped int
	bytes            int
	retry            bool
}

// chunk runs one window: low watermark, the chunk's query, high watermark,
// then waits until the stream has passed the high watermark and Kinesis has
// acknowledged the reads it added.
func (wk *Worker) chunk(ctx context.Context, conn *pgx.Conn, database string, b *Backfill, t *table,
	cols []change.Column, plan *policy.Plan, limit int, keys [][]*string) (chunkResult, error) {
	co := wk.cfg.Coordinator
	w := co.newWindow(b.ID, t.schema, t.name)
	abandon := func(err error) (chunkResult, error) {
		co.forget(w)
		return chunkResult{}, err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, WatermarkPrefix, co.watermark(w, false)); err != nil {
		return abandon(fmt.Errorf("write low watermark: %w", err))
	}
	sql, params := t.chunkSQL(b.Where, limit, b.cursor, keys)
	var res chunkResult
	var rows []change.Change
	var rowKeys []string
	var xip []uint32
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Repeatable read so that the snapshot read here is the one the
		// chunk's SELECT uses; the transaction lasts one query.
		var snap string
		if err := tx.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&snap); err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		var err error
		if xip, err = parseXIP(snap); err != nil {
			return err
		}
		rr := tx.Conn().PgConn().ExecParams(ctx, sql, params, nil, nil, nil)
		for rr.NextRow() {
			vals := rr.Values()
			c := change.Change{Database: database, Schema: t.schema, Table: t.name, Op: change.Read, Identity: t.identity, Columns: cols}
			c.New = make([]change.Value, len(vals))
			for i, v := range vals {
				if v == nil {
					c.New[i] = change.Value{State: change.Null}
				} else {
					c.New[i] = change.Value{Text: string(v)}
					res.bytes += len(v)
				}
			}
			key := make([]*string, len(t.keys))
			for i, ki := range t.keys {
				if c.New[ki].State == change.Text {
					s := c.New[ki].Text
					key[i] = &s
				}
			}
			res.raw = append(res.raw, key)
			rows = append(rows, c)
		}
		if _, err := rr.Close(); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && (pgErr.Code[:2] == "42" || pgErr.Code[:2] == "22") {
				// Syntax, undefined column, bad cast: the filter broke (a
				// migration renamed what it names).
				return failure{fmt.Errorf("chunk query of %s: %s (SQLSTATE %s)", t.qualified(), pgErr.Message, pgErr.Code)}
			}
			return fmt.Errorf("chunk query of %s: %w", t.qualified(), err)
		}
		return nil
	})
	if err != nil {
		return abandon(err)
	}
	rowKeys = make([]string, len(rows))
	for i := range rows {
		plan.Apply(&rows[i])
		rowKeys[i] = string(change.AppendRowKey(nil, &rows[i], rows[i].New))
	}
	co.fill(w, rows, rowKeys, res.raw, xip)
	if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, WatermarkPrefix, co.watermark(w, true)); err != nil {
		return abandon(fmt.Errorf("write high watermark: %w", err))
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		return abandon(ctx.Err())
	}
	for wk.cfg.Sink.Confirmable() < w.durableAt {
		if !backoff.Sleep(ctx, 5*time.Millisecond) {
			return chunkResult{}, ctx.Err()
		}
	}
	res.recheck, res.emitted, res.dropped, res.retry = w.recheck, w.emitted, w.dropped, w.retry
	return res, nil
}

// columns resolves the table's columns as change records describe them,
// exactly as the decoder does for a Relation message.
func (wk *Worker) columns(ctx context.Context, conn *pgx.Conn, t *table) ([]change.Column, error) {
	var missing []uint32
	for _, c := range t.columns {
		if _, ok := wk.types[c.typeOID]; !ok {
			missing = append(missing, c.typeOID)
		}
	}
	if len(missing) > 0 {
		got, err := pgtypes.Resolve(ctx, conn, missing)
		if err != nil {
			return nil, fmt.Errorf("resolve column types of %s: %w", t.qualified(), err)
		}
		for o, ty := range got {
			wk.types[o] = ty
		}
	}
	out := make([]change.Column, len(t.columns))
	for i, c := range t.columns {
		ty := wk.types[c.typeOID]
		out[i] = change.Column{Name: c.name, OID: c.typeOID, Type: ty.Name, Base: ty.Base, Kind: ty.Kind, Array: ty.Array, Key: c.key}
	}
	return out, nil
}
