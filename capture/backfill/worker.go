package backfill

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// Acked is closed when Confirmable may have moved.
	Acked() <-chan struct{}
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
	p := &progress{b: b, chunkRows: b.ChunkRows, next: b.cursor,
		rows: wk.rows.With(name), dropped: wk.dropped.With(name), chunks: wk.chunks.With(name), retries: wk.retries.With(name)}
	if r := b.MaxRowsPerSecond; r > 0 && p.chunkRows > r {
		p.chunkRows = r // a chunk is at most a second's worth
	}
	// Two chunks in flight: while the stream adds one chunk's reads and
	// Kinesis acknowledges them, the next chunk is read. Chunks finish in
	// the order they started, so the saved cursor only moves forward.
	var inflight *pending
	defer func() {
		if inflight != nil {
			wk.cfg.Coordinator.forget(inflight.w)
		}
	}()
	for {
		var state string
		if err := conn.QueryRow(ctx, `SELECT state FROM walbridge.backfills WHERE id = $1`, b.ID).Scan(&state); err != nil {
			return fmt.Errorf("read state of backfill %d: %w", b.ID, err)
		}
		if State(state) != Running {
			wk.log.Info("backfill stopped", zap.Int64("backfill", b.ID), zap.String("table", name), zap.String("state", state))
			return nil
		}
		// The next chunk: keys to read again (one such chunk at a time, when
		// nothing else is in flight), else the next range of keys.
		var started *pending
		var keys [][]*string
		switch {
		case len(b.recheck) > 0 && inflight == nil:
			keys = b.recheck[:min(len(b.recheck), p.chunkRows)]
			fallthrough
		case !p.exhausted:
			var err error
			if started, err = wk.start(ctx, conn, database, p, keys); err != nil {
				return err
			}
		}
		if inflight != nil {
			if err := wk.finish(ctx, conn, p, inflight); err != nil {
				return err
			}
		}
		inflight = started
		if inflight == nil && len(b.recheck) == 0 && p.exhausted {
			return wk.finishBackfill(ctx, conn, b)
		}
	}
}

// progress is a running backfill's state in the worker.
type progress struct {
	b         *Backfill
	chunkRows int
	next      []*string // where the next range chunk starts (the cursor once acknowledged)
	exhausted bool      // the key range is read to its end; only rechecks remain
	lastStart time.Time

	rows, dropped, chunks, retries metrics.Counter
}

// pending is a chunk whose watermarks are written, not yet acknowledged.
type pending struct {
	w     *window
	keys  [][]*string // the keys a recheck chunk asked for (nil: a range chunk)
	raw   [][]*string // the keys read, in order
	bytes int
}

// start runs the first half of a window: low watermark, the chunk's query,
// high watermark. The stream does the rest when it passes them.
func (wk *Worker) start(ctx context.Context, conn *pgx.Conn, database string, p *progress, keys [][]*string) (*pending, error) {
	b := p.b
	t, err := describe(ctx, conn, wk.cfg.Publication, b.Schema, b.Table)
	if err != nil {
		if errors.Is(err, ErrNoTable) || errors.Is(err, ErrNotPublished) || errors.Is(err, ErrNoKey) {
			return nil, failure{err}
		}
		return nil, err
	}
	cols, err := wk.columns(ctx, conn, t)
	if err != nil {
		return nil, err
	}
	var plan *policy.Plan
	if wk.cfg.Policy != nil {
		if plan, err = wk.cfg.Policy.PlanOwn(t.schema, t.name, cols); err != nil {
			return nil, failure{fmt.Errorf("column policy: %w", err)}
		}
		if plan.Skip() {
			return nil, failure{fmt.Errorf("%s: %w", b.Name(), ErrSkipped)}
		}
	}
	if r := b.MaxRowsPerSecond; r > 0 && !p.lastStart.IsZero() {
		// The previous chunk's rows at the configured rate.
		if !backoff.Sleep(ctx, time.Until(p.lastStart.Add(time.Duration(float64(p.chunkRows)/float64(r)*float64(time.Second))))) {
			return nil, ctx.Err()
		}
	}
	if err := wk.waitForRoom(ctx); err != nil {
		return nil, err
	}
	p.lastStart = time.Now()

	co := wk.cfg.Coordinator
	w := co.newWindow(b.ID, t.schema, t.name)
	pd := &pending{w: w, keys: keys}
	abandon := func(err error) (*pending, error) {
		co.forget(w)
		return nil, err
	}
	sql, params := t.chunkSQL(b.Where, p.chunkRows, p.next, keys)
	expect := p.chunkRows
	if keys != nil {
		expect = len(keys)
	}
	rows := make([]change.Change, 0, expect)
	pd.raw = make([][]*string, 0, expect)
	// scan reads the chunk's rows into rows and pd.raw. A row's values are
	// one string, and tuples and keys come from slabs of the chunk's size:
	// a few allocations a row rather than one per value.
	scan := func(pc *pgconn.PgConn, sql string) error {
		var text []byte
		var tuples []change.Value
		var keyText []string
		var keyRefs []*string
		rr := pc.ExecParams(ctx, sql, params, nil, nil, nil)
		for rr.NextRow() {
			vals := rr.Values()
			c := change.Change{Database: database, Schema: t.schema, Table: t.name, Op: change.Read, Identity: t.identity, Columns: cols}
			if len(tuples) < len(vals) {
				tuples = make([]change.Value, slabRows(expect-len(rows))*len(vals))
			}
			c.New, tuples = tuples[:len(vals):len(vals)], tuples[len(vals):]
			text = text[:0]
			for _, v := range vals {
				text = append(text, v...)
			}
			all, off := string(text), 0
			pd.bytes += len(all)
			for i, v := range vals {
				if v == nil {
					c.New[i] = change.Value{State: change.Null}
				} else {
					c.New[i] = change.Value{Text: all[off : off+len(v)]}
					off += len(v)
				}
			}
			if len(keyRefs) < len(t.keys) {
				n := slabRows(expect-len(rows)) * len(t.keys)
				keyText, keyRefs = make([]string, n), make([]*string, n)
			}
			key := keyRefs[:len(t.keys):len(t.keys)]
			keyRefs = keyRefs[len(t.keys):]
			for i, ki := range t.keys {
				key[i] = nil
				if c.New[ki].State == change.Text {
					// A copy: a key outlives its row (the cursor, keys to
					// read again), which must not keep the row's text.
					keyText[0] = strings.Clone(c.New[ki].Text)
					key[i] = &keyText[0]
				}
				keyText = keyText[1:]
			}
			pd.raw = append(pd.raw, key)
			rows = append(rows, c)
		}
		if _, err := rr.Close(); err != nil {
			var pgErr *pgconn.PgError
			switch {
			case errors.As(err, &pgErr) && pgErr.Code[:2] == "42":
				// Syntax, undefined column: the filter broke (a migration
				// renamed what it names). The message names SQL, not rows.
				return failure{fmt.Errorf("chunk query of %s: %s (SQLSTATE %s)", t.qualified(), pgErr.Message, pgErr.Code)}
			case errors.As(err, &pgErr) && pgErr.Code[:2] == "22":
				// A data exception's message may quote a value: only its code.
				return failure{fmt.Errorf("chunk query of %s: data exception (SQLSTATE %s)", t.qualified(), pgErr.Code)}
			}
			return fmt.Errorf("chunk query of %s: %w", t.qualified(), err)
		}
		return nil
	}
	// fill applies the policy and hands the rows to the stream.
	fill := func(xip []uint32) {
		rowKeys := make([]string, len(rows))
		for i := range rows {
			plan.Apply(&rows[i])
			rowKeys[i] = string(change.AppendRowKey(nil, &rows[i], rows[i].New))
		}
		co.fill(w, rows, rowKeys, pd.raw, xip)
	}

	if keys != nil {
		// Rows to read again: a live update hit them inside their window,
		// and a hot row would be hit again in every later one. They are
		// read under row locks (FOR SHARE, a ROW SHARE table lock) in a
		// transaction that also commits the watermark: no change to them
		// can commit in between, so there is no window. The locks last one
		// short query; a row locked longer by the application is left for
		// the next try (lock_timeout).
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '1s'; SET LOCAL synchronous_commit = on`); err != nil {
				return err
			}
			if err := scan(tx.Conn().PgConn(), sql+" FOR SHARE"); err != nil {
				return err
			}
			fill(nil)
			_, err := tx.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, WatermarkPrefix, co.watermark(w, "locked"))
			return err
		})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
			co.forget(w)
			wk.log.Debug("backfill rows to read again are locked; trying later", zap.Int64("backfill", b.ID), zap.String("table", b.Name()))
			return nil, backoffErr(ctx, time.Second)
		}
		if err != nil {
			return abandon(fmt.Errorf("read rows again: %w", err))
		}
		return pd, nil
	}

	if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, WatermarkPrefix, co.watermark(w, "low")); err != nil {
		return abandon(fmt.Errorf("write low watermark: %w", err))
	}
	xip, err := readChunk(ctx, conn.PgConn(), func(pc *pgconn.PgConn) error { return scan(pc, sql) })
	if err != nil {
		return abandon(err)
	}
	fill(xip)
	if _, err := conn.Exec(ctx, highWatermarkSQL, WatermarkPrefix, co.watermark(w, "high")); err != nil {
		return abandon(fmt.Errorf("write high watermark: %w", err))
	}
	if keys == nil {
		if len(pd.raw) > 0 {
			p.next = pd.raw[len(pd.raw)-1]
		}
		p.exhausted = len(pd.raw) < p.chunkRows
	}
	return pd, nil
}

// slabRows is how many rows' tuples or keys one allocation holds when left
// rows are still expected: at most 256, so that a chunk that ends early (the
// table's last) or a table of many columns wastes little.
func slabRows(left int) int { return min(max(left, 1), 256) }

// highWatermarkSQL writes a high watermark in one statement (one round
// trip), committed with synchronous_commit on (set_config's is_local lasts
// to the end of the statement's transaction, its commit included): a
// walsender sends only flushed WAL, and under synchronous_commit = off the
// chunk would otherwise wait for the WAL writer (up to wal_writer_delay)
// before the stream can pass it.
const highWatermarkSQL = `SELECT set_config('synchronous_commit', 'on', true), pg_logical_emit_message(true, $1, $2)`

// readChunk runs scan in a read-only repeatable read transaction and returns
// the in-progress transactions of its snapshot. Repeatable read so that the
// snapshot read first is the one the chunk's SELECT uses; the transaction
// lasts one query. BEGIN and the snapshot share a round trip.
func readChunk(ctx context.Context, pc *pgconn.PgConn, scan func(*pgconn.PgConn) error) (xip []uint32, err error) {
	defer func() {
		if err != nil && ctx.Err() == nil {
			pc.Exec(ctx, "ROLLBACK").ReadAll() // the error at hand says more than this one's
		}
	}()
	res, err := pc.Exec(ctx, `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_current_snapshot()::text`).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if len(res) != 2 || len(res[1].Rows) != 1 || len(res[1].Rows[0]) != 1 {
		return nil, fmt.Errorf("read snapshot: unexpected answer")
	}
	if xip, err = parseXIP(string(res[1].Rows[0][0])); err != nil {
		return nil, err
	}
	if err := scan(pc); err != nil {
		return nil, err
	}
	if _, err := pc.Exec(ctx, "COMMIT").ReadAll(); err != nil {
		return nil, fmt.Errorf("end chunk transaction: %w", err)
	}
	return xip, nil
}

// finish waits until the stream has passed the chunk's high watermark and
// Kinesis has acknowledged the reads it added, then saves the progress.
func (wk *Worker) finish(ctx context.Context, conn *pgx.Conn, p *progress, pd *pending) error {
	b, w := p.b, pd.w
	select {
	case <-w.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		acked := wk.cfg.Sink.Acked() // before reading: no acknowledgement slips between
		if wk.cfg.Sink.Confirmable() >= w.durableAt {
			break
		}
		select {
		case <-acked:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if pd.keys != nil {
		b.recheck = b.recheck[len(pd.keys):]
	}
	if w.retry {
		// The snapshot may have missed a commit: every key of the chunk is
		// read again, by key, in a later window.
		p.retries.Inc()
		wk.log.Debug("backfill chunk to be read again: its snapshot raced a commit", zap.Int64("backfill", b.ID), zap.String("table", b.Name()))
		b.recheck = append(b.recheck, pd.raw...)
	} else {
		b.recheck = append(b.recheck, w.recheck...)
	}
	if pd.keys == nil && len(pd.raw) > 0 {
		b.cursor = pd.raw[len(pd.raw)-1]
	}
	b.RowsDone += int64(w.emitted)
	b.RowsDropped += int64(w.dropped)
	b.Chunks++
	p.rows.Add(float64(w.emitted))
	p.dropped.Add(float64(w.dropped))
	p.chunks.Inc()
	if _, err := conn.Exec(ctx, `UPDATE walbridge.backfills SET cursor_key = $2, recheck_keys = $3, rows_done = $4, rows_dropped = $5,
		chunks = $6, updated_at = now() WHERE id = $1`, b.ID, b.cursor, b.recheck, b.RowsDone, b.RowsDropped, b.Chunks); err != nil {
		return fmt.Errorf("save progress of backfill %d: %w", b.ID, err)
	}
	wk.log.Debug("backfill chunk acknowledged", zap.Int64("backfill", b.ID), zap.String("table", b.Name()),
		zap.Int("rows", w.emitted), zap.Int("dropped", w.dropped), zap.Int("to_read_again", len(w.recheck)), zap.Int("bytes", pd.bytes))
	// Fit later chunks to the memory bound, and grow back after large rows
	// have passed.
	switch {
	case pd.bytes > wk.cfg.ChunkBytes:
		p.chunkRows = max(1, int(int64(p.chunkRows)*int64(wk.cfg.ChunkBytes)/int64(pd.bytes)))
	case pd.bytes < wk.cfg.ChunkBytes/4 && p.chunkRows < b.ChunkRows:
		p.chunkRows = min(b.ChunkRows, p.chunkRows*2)
	}
	if r := b.MaxRowsPerSecond; r > 0 {
		p.chunkRows = min(p.chunkRows, r)
	}
	return nil
}

func (wk *Worker) finishBackfill(ctx context.Context, conn *pgx.Conn, b *Backfill) error {
	if _, err := conn.Exec(ctx, `UPDATE walbridge.backfills SET state = 'done', finished_at = now(), updated_at = now()
		WHERE id = $1 AND state = 'running'`, b.ID); err != nil {
		return fmt.Errorf("finish backfill %d: %w", b.ID, err)
	}
	wk.log.Info("backfill done", zap.Int64("backfill", b.ID), zap.String("table", b.Name()),
		zap.Int64("rows", b.RowsDone), zap.Int64("dropped", b.RowsDropped), zap.Int64("chunks", b.Chunks))
	return nil
}

// backoffErr waits d (a pause before trying again) and reports only ctx's
// end.
func backoffErr(ctx context.Context, d time.Duration) error {
	if !backoff.Sleep(ctx, d) {
		return ctx.Err()
	}
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
