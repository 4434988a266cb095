// Package replication runs capture's logical replication session: it
// connects with the session settings the event contract relies on, starts
// pgoutput on the slot, answers keepalives, decodes XLogData through package
// pgoutput into a Sink, and reports to PostgreSQL only the positions the Sink
// calls Confirmable. It reconnects after failures, resuming from the slot's
// confirmed position, and waits as a standby while another process holds the
// slot.
package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/walbridge/walbridge/capture/pgoutput"
	"github.com/walbridge/walbridge/capture/shapes"
	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/metrics"
	"github.com/walbridge/walbridge/shared/policy"
)

// Sink is where decoded changes go: capture's Kinesis writer. It is the one
// place that decides what is durable; the stream only confirms to PostgreSQL
// what Confirmable reports.
type Sink interface {
	// Add queues a change, in stream order; it may block for backpressure.
	Add(ctx context.Context, c *change.Change) error
	// Mark says: once everything added so far is durable, lsn may be confirmed.
	Mark(ctx context.Context, lsn change.LSN) error
	// Confirmable is the highest marked LSN whose preceding changes are durable.
	Confirmable() change.LSN
	// Close drains everything in flight, bounded by ctx.
	Close(ctx context.Context) error
}

// StreamConfig configures Stream.
type StreamConfig struct {
	DatabaseURL string
	Slot        string
	Publication string
	// StatusInterval is how often the confirmed position is reported to the
	// server (and WAL retention sampled); default 1 s, at most 10 s.
	StatusInterval time.Duration
	// DrainTimeout bounds the drain on shutdown; default 20 s.
	DrainTimeout time.Duration
	Logger       *zap.Logger
	Metrics      *metrics.Registry
	// Policy, when set, is the column policy applied to every change before
	// the sink sees it (reloadable: see policy.Live).
	Policy *policy.Live
	// Interleaver, when set, sees every decoded change before the sink and
	// may hold it back or put rows before it: backfills (package backfill)
	// merge their reads into the stream this way.
	Interleaver Interleaver
	// Shapes, when set, are the tables' known shapes: a Relation message
	// with another shape becomes a schema-change record (package shapes),
	// and the shapes confirmed are written back as the position advances.
	Shapes *shapes.Store
}

// Interleaver merges other rows into the stream at positions the stream
// itself carries (a backfill's watermarks). The stream calls it from its one
// goroutine, in stream order.
type Interleaver interface {
	// Observe is told each decoded change. It returns the changes to add
	// before it (nil for none) and whether c itself goes to the sink.
	Observe(c *change.Change) (before []change.Change, keep bool)
	// Marked is told each position the stream hands to the sink's Mark,
	// after the changes it follows were added.
	Marked(lsn change.LSN)
}

// Stream reads the slot's pgoutput stream and feeds the sink, reconnecting
// after failures and resuming from the slot's confirmed position.
type Stream struct {
	cfg  StreamConfig
	sink Sink
	log  *zap.Logger

	changes      *metrics.CounterVec
	tableCounter map[tableOp]metrics.Counter
	confirmedG   metrics.Gauge
	retainedG    metrics.Gauge
	advancedG    metrics.Gauge
	reconnects   metrics.Counter
	confirmedLSN change.LSN // last position reported to the server
	lastMarked   change.LSN // last position handed to the sink's Mark
	streaming    bool       // the current session started replication
	everStreamed bool       // some session did: from then on every failure is retried

	// onReconnect, when set (tests), is told each wait before a reconnect.
	onReconnect func(delay time.Duration)
}

type tableOp struct {
	schema, table string
	op            change.Op
}

// NewStream prepares a stream; Run starts it.
func NewStream(cfg StreamConfig, sink Sink) *Stream {
	if cfg.StatusInterval <= 0 || cfg.StatusInterval > 10*time.Second {
		cfg.StatusInterval = time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	m := cfg.Metrics
	return &Stream{
		cfg: cfg, sink: sink, log: cfg.Logger,
		changes:      m.Counter("walbridge_changes_total", "Row changes decoded from the slot, by table and operation.", "table", "op"),
		tableCounter: map[tableOp]metrics.Counter{},
		confirmedG:   m.Gauge("walbridge_confirmed_lsn", "LSN last confirmed to PostgreSQL (as a number).").With(),
		retainedG:    m.Gauge("walbridge_slot_wal_retained_bytes", "WAL bytes the slot keeps (current WAL LSN minus restart_lsn).").With(),
		advancedG:    m.Gauge("walbridge_confirmed_lsn_advanced_timestamp_seconds", "Unix time at which the confirmed LSN last moved forward.").With(),
		reconnects:   m.Counter("walbridge_reconnects_total", "Replication sessions restarted after an error.").With(),
	}
}

// ErrSlotMissing is returned when the slot does not exist (setup creates it).
var ErrSlotMissing = errors.New("replication slot does not exist")

// Refusals that end Run when no session has streamed yet: retrying cannot
// fix them, and a process that retries them forever never says it never
// worked. Once a session has streamed, every failure is retried (a
// password rotated mid-flight comes back; an outage ends).
var (
	ErrAuthentication     = errors.New("PostgreSQL refused the login")
	ErrNoDatabase         = errors.New("the database does not exist")
	ErrNoReplicationRight = errors.New("the role may not start logical replication")
	ErrPublicationMissing = errors.New("the publication does not exist")
)

// firstSessionRefusal classifies an error of a session before any has
// streamed: a wrapped refusal, or nil when it is worth retrying.
func firstSessionRefusal(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil // refused or dropped connections, timeouts: retry
	}
	switch pgErr.Code {
	case "28P01", "28000": // invalid_password, invalid_authorization_specification (pg_hba)
		return fmt.Errorf("%w: %s", ErrAuthentication, pgErr.Message)
	case "3D000": // invalid_catalog_name
		return fmt.Errorf("%w: %s", ErrNoDatabase, pgErr.Message)
	case "42501": // insufficient_privilege
		return fmt.Errorf("%w: %s", ErrNoReplicationRight, pgErr.Message)
	}
	return nil
}

// reconnectPolicy spaces reconnects: 100-200 ms after the first failure,
// doubling to 12.8-25.6 s. A session that got as far as streaming resets
// it, so each outage starts again from the shortest wait.
var reconnectPolicy = backoff.Policy{Base: 200 * time.Millisecond, Max: 200 * time.Millisecond << 7, Equal: true}

// Run streams until ctx is cancelled, then drains the sink, confirms what is
// durable and returns nil. Errors that a retry cannot fix (no slot, bad
// credentials, sink failure) are returned; others are retried with backoff.
func (s *Stream) Run(ctx context.Context) error {
	failures := 0
	for {
		s.streaming = false
		err := s.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fatal fatalError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		if s.streaming {
			s.everStreamed = true
			failures = 0 // a healthy session ended: this outage is new
		}
		if !s.everStreamed {
			if refusal := firstSessionRefusal(err); refusal != nil {
				return refusal
			}
		}
		delay := reconnectPolicy.Delay(failures)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			// "replication slot ... is active for PID n": another capture
			// holds the slot; wait as a hot standby.
			s.log.Info("slot is in use by another process; standing by", zap.String("slot", s.cfg.Slot), zap.String("detail", pgErr.Message))
			delay = 2 * time.Second
		} else if !s.everStreamed {
			s.log.Warn("cannot start a replication session yet; retrying", zap.Error(err), zap.Duration("in", delay), zap.Int("attempt", failures+1))
			failures++
		} else {
			s.log.Warn("replication session ended; reconnecting", zap.Error(err), zap.Duration("in", delay))
			failures++
		}
		s.reconnects.Inc()
		if s.onReconnect != nil {
			s.onReconnect(delay)
		}
		if !backoff.Sleep(ctx, delay) {
			return nil
		}
	}
}

// Close drains the sink; call after Run returns.
func (s *Stream) Close(ctx context.Context) error { return s.sink.Close(ctx) }

type fatalError struct{ err error }

func (f fatalError) Error() string { return f.err.Error() }

// session is one replication connection's life.
func (s *Stream) session(ctx context.Context) error {
	catConn, err := pgx.Connect(ctx, s.cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer catConn.Close(context.Background())
	var database string
	var slotExists bool
	var confirmed *string
	if err := catConn.QueryRow(ctx, `SELECT current_database(), EXISTS(SELECT 1 FROM pg_replication_slots WHERE slot_name = $1),
		(SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1)`, s.cfg.Slot).Scan(&database, &slotExists, &confirmed); err != nil {
		return fmt.Errorf("read slot: %w", err)
	}
	if !slotExists {
		return fatalError{fmt.Errorf("slot %q: %w", s.cfg.Slot, ErrSlotMissing)}
	}
	var pubExists bool
	if err := catConn.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.cfg.Publication).Scan(&pubExists); err != nil {
		return fmt.Errorf("read publication: %w", err)
	}
	if !pubExists {
		// pgoutput would only fail at the first change, possibly hours
		// later; a running capture retries (the publication may be being
		// recreated), a starting one stops.
		err := fmt.Errorf("publication %q: %w", s.cfg.Publication, ErrPublicationMissing)
		if !s.everStreamed {
			return fatalError{err}
		}
		return err
	}
	if confirmed != nil {
		if l, err := change.ParseLSN(*confirmed); err == nil && l > s.confirmedLSN {
			s.confirmedLSN = l
		}
	}

	conn, err := connectReplication(ctx, s.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	err = pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names '" + strings.ReplaceAll(s.cfg.Publication, "'", "''") + "'",
			"messages 'true'",
		},
	})
	if err != nil {
		return fmt.Errorf("start replication on slot %q: %w", s.cfg.Slot, err)
	}
	s.streaming = true
	if s.advancedG.Value() == 0 {
		s.advancedG.Set(float64(time.Now().Unix()))
	}
	s.log.Info("streaming", zap.String("slot", s.cfg.Slot), zap.String("publication", s.cfg.Publication), zap.Stringer("confirmed", s.confirmedLSN))

	var pol pgoutput.Policy
	if s.cfg.Policy != nil {
		pol = s.cfg.Policy
	}
	dec := pgoutput.NewDecoder(database, NewPGCatalog(catConn), pol)
	if sh := s.cfg.Shapes; sh != nil {
		if err := sh.Load(ctx, catConn); err != nil {
			return err
		}
		// This session replays from the confirmed position: compare with
		// the shapes as of there.
		if err := sh.Begin(ctx, catConn, s.confirmedLSN); err != nil {
			s.log.Warn("table shapes not written; they are kept in memory", zap.Error(err))
		}
		dec.WithShapes(sh)
	}
	var (
		received   change.LSN // newest WAL position seen
		nextStatus = time.Now()
	)
	s.lastMarked = max(s.lastMarked, s.confirmedLSN)
	sendStatus := func(reply bool) error {
		if c := s.sink.Confirmable(); c > s.confirmedLSN {
			s.confirmedLSN = c
			s.advancedG.Set(float64(time.Now().Unix()))
			if sh := s.cfg.Shapes; sh != nil {
				// Also on shutdown, when ctx is done: a short write of its own.
				wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				err := sh.Confirmed(wctx, catConn, s.confirmedLSN)
				cancel()
				if err != nil {
					s.log.Warn("table shapes not written; trying again at the next confirmation", zap.Error(err))
				}
			}
		}
		if err := sendStandbyStatus(conn, max(received, s.confirmedLSN), s.confirmedLSN, reply); err != nil {
			return fmt.Errorf("send standby status: %w", err)
		}
		s.confirmedG.Set(float64(s.confirmedLSN))
		nextStatus = time.Now().Add(s.cfg.StatusInterval)
		return nil
	}
	lastRetained := time.Time{}
	// Reads time out on a socket deadline, set about twice a second, rather
	// than through a per-message context: pgconn watches a context with a
	// timer and a callback on every call, which cost a sixth of capture's
	// CPU at 100k messages/s. A timed-out read resumes where it stopped
	// (pgconn keeps the partial message), and the loop checks ctx and the
	// status schedule after each one.
	netConn := conn.Conn()
	var readDeadline time.Time
	for {
		if ctx.Err() != nil {
			return s.shutdown(conn, &received, sendStatus)
		}
		now := time.Now()
		if now.After(nextStatus) {
			if err := sendStatus(false); err != nil {
				return err
			}
			if time.Since(lastRetained) >= 10*time.Second {
				s.sampleRetained(ctx, catConn)
				lastRetained = time.Now()
			}
		}
		if !now.Before(readDeadline) || nextStatus.Before(readDeadline) {
			readDeadline = minTime(nextStatus, now.Add(500*time.Millisecond))
			if err := netConn.SetReadDeadline(readDeadline); err != nil {
				return fmt.Errorf("set read deadline: %w", err)
			}
		}
		raw, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch msg := raw.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				end := change.LSN(ka.ServerWALEnd)
				// The server has decoded up to end. Between transactions,
				// marking it lets an idle slot (other databases busy,
				// checkpoints) confirm and release WAL instead of keeping it.
				// Mark's ordering makes this safe whatever is in flight;
				// inside a transaction it would confirm its unsent rest.
				if ce := s.log.Check(zap.DebugLevel, "keepalive"); ce != nil {
					ce.Write(zap.Stringer("wal_end", end), zap.Bool("in_transaction", dec.InTransaction()), zap.Stringer("last_marked", s.lastMarked))
				}
				if !dec.InTransaction() && end > s.lastMarked {
					if err := s.sink.Mark(ctx, end); err != nil {
						return s.sinkFailed(err)
					}
					s.lastMarked = end
				}
				received = max(received, end)
				if ka.ReplyRequested {
					if err := sendStatus(false); err != nil {
						return err
					}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse XLogData: %w", err)
				}
				walStart := change.LSN(xld.WALStart)
				wasIn := dec.InTransaction()
				step, err := dec.Decode(ctx, walStart, xld.WALData)
				if err != nil {
					return fatalError{fmt.Errorf("decode pgoutput at %s: %w", walStart, err)}
				}
				if !wasIn && dec.InTransaction() {
					if ce := s.log.Check(zap.DebugLevel, "begin"); ce != nil {
						ce.Write(zap.Stringer("wal_start", walStart), zap.Stringer("commit_lsn", dec.CommitLSN()))
					}
				}
				for i := range step.Changes {
					c := &step.Changes[i]
					if il := s.cfg.Interleaver; il != nil {
						before, keep := il.Observe(c)
						for j := range before {
							s.count(&before[j])
							if err := s.sink.Add(ctx, &before[j]); err != nil {
								return s.sinkFailed(err)
							}
						}
						if !keep {
							continue
						}
					}
					s.count(c)
					if err := s.sink.Add(ctx, c); err != nil {
						return s.sinkFailed(err)
					}
				}
				if step.Commit != 0 {
					if ce := s.log.Check(zap.DebugLevel, "commit"); ce != nil {
						ce.Write(zap.Stringer("end", step.Commit), zap.Stringer("wal_start", walStart))
					}
				}
				if mark := max(step.Commit, step.Position); mark > s.lastMarked {
					if err := s.sink.Mark(ctx, mark); err != nil {
						return s.sinkFailed(err)
					}
					s.lastMarked = mark
					if il := s.cfg.Interleaver; il != nil {
						il.Marked(mark)
					}
				}
				received = max(received, walStart)
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			return errors.New("server ended the replication stream")
		}
	}
}

// sinkFailed turns a sink error into the session's result: a cancelled
// context means shutdown, anything else is fatal (the writer already retried
// everything retryable).
func (s *Stream) sinkFailed(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fatalError{fmt.Errorf("kinesis writer: %w", err)}
}

// shutdown drains the sink and reports the final confirmed position on the
// still-open connection, so a restart re-sends as little as possible.
func (s *Stream) shutdown(conn *pgconn.PgConn, received *change.LSN, sendStatus func(bool) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	err := s.sink.Close(ctx)
	if serr := sendStatus(false); serr != nil && err == nil {
		err = serr
	}
	s.log.Info("stopped", zap.Stringer("confirmed", s.confirmedLSN))
	if err != nil {
		return fatalError{fmt.Errorf("drain on shutdown: %w", err)}
	}
	return nil
}

func (s *Stream) count(c *change.Change) {
	k := tableOp{c.Schema, c.Table, c.Op}
	ctr, ok := s.tableCounter[k]
	if !ok {
		name := c.Schema + "." + c.Table
		if c.Op == change.Message {
			name = "message:" + c.Prefix
			k.table = name
		}
		ctr = s.changes.With(name, string(c.Op))
		s.tableCounter[k] = ctr
	}
	ctr.Inc()
}

func (s *Stream) sampleRetained(ctx context.Context, conn *pgx.Conn) {
	var retained *int64
	err := conn.QueryRow(ctx, `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1`, s.cfg.Slot).Scan(&retained)
	if err != nil {
		s.log.Debug("sample WAL retention", zap.Error(err))
		return
	}
	if retained != nil {
		s.retainedG.Set(float64(*retained))
	}
}

// sendStandbyStatus writes a Standby Status Update with write, flush and
// apply set explicitly. (pglogrepl's helper copies write into flush and apply
// when they are zero, which would confirm what is not yet durable.)
func sendStandbyStatus(conn *pgconn.PgConn, write, flush change.LSN, reply bool) error {
	data := make([]byte, 0, 34)
	data = append(data, pglogrepl.StandbyStatusUpdateByteID)
	data = binary.BigEndian.AppendUint64(data, uint64(write))
	data = binary.BigEndian.AppendUint64(data, uint64(flush))
	data = binary.BigEndian.AppendUint64(data, uint64(flush))
	data = binary.BigEndian.AppendUint64(data, uint64(time.Now().UnixMicro()-pgoutput.Epoch.UnixMicro()))
	if reply {
		data = append(data, 1)
	} else {
		data = append(data, 0)
	}
	buf, err := (&pgproto3.CopyData{Data: data}).Encode(nil)
	if err != nil {
		return err
	}
	return conn.Frontend().SendUnbufferedEncodedCopyData(buf)
}

// connectReplication opens a logical replication connection whose session
// settings make pgoutput's text values canonical: ISO dates, ISO 8601
// intervals, UTC, round-trippable floats and hex bytea.
func connectReplication(ctx context.Context, url string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	for k, v := range SessionSettings() {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["replication"] = "database"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "walbridge-capture"
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open replication connection: %w", err)
	}
	return conn, nil
}

// SessionSettings are the GUCs capture sets on its replication session; the
// event type mapping relies on the text forms they produce.
func SessionSettings() map[string]string {
	return map[string]string{
		"DateStyle":          "ISO, YMD",
		"IntervalStyle":      "iso_8601",
		"TimeZone":           "UTC",
		"extra_float_digits": "3",
		"bytea_output":       "hex",
		"client_encoding":    "UTF8",
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
