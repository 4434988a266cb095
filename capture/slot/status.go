package slot

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// TeardownOptions configures Teardown.
type TeardownOptions struct {
	Slot             string
	Publication      string
	DropPublication  bool
	DropEventTrigger bool
}

// Teardown drops the slot (so it stops retaining WAL) and optionally the
// publication and event trigger. It returns what it did.
func Teardown(ctx context.Context, conn *pgx.Conn, opts TeardownOptions) ([]string, error) {
	var done []string
	var active *int32
	err := conn.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, opts.Slot).Scan(&active)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		done = append(done, "slot "+opts.Slot+" does not exist")
	case err != nil:
		return nil, fmt.Errorf("look up slot: %w", err)
	case active != nil:
		return nil, fmt.Errorf("slot %s is in use by PID %d: stop capture first", opts.Slot, *active)
	default:
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, opts.Slot); err != nil {
			return nil, fmt.Errorf("drop slot %s: %w", opts.Slot, err)
		}
		done = append(done, "dropped replication slot "+opts.Slot)
	}
	if opts.DropPublication {
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{opts.Publication}.Sanitize()); err != nil {
			return nil, fmt.Errorf("drop publication: %w", err)
		}
		done = append(done, "dropped publication "+opts.Publication)
	}
	if opts.DropEventTrigger {
		if _, err := conn.Exec(ctx, "DROP EVENT TRIGGER IF EXISTS walbridge_new_tables; DROP FUNCTION IF EXISTS walbridge.on_new_table()"); err != nil {
			return nil, fmt.Errorf("drop event trigger: %w", err)
		}
		done = append(done, "dropped event trigger walbridge_new_tables")
	}
	return done, nil
}

// SlotStatus is the slot's row in pg_replication_slots plus retention.
type SlotStatus struct {
	Exists            bool   `json:"exists"`
	Active            bool   `json:"active"`
	ActivePID         *int32 `json:"activePid,omitempty"`
	ConfirmedFlushLSN string `json:"confirmedFlushLsn,omitempty"`
	RestartLSN        string `json:"restartLsn,omitempty"`
	WALRetainedBytes  int64  `json:"walRetainedBytes"`
	WALStatus         string `json:"walStatus,omitempty"`
	// Failover is the slot's failover flag (PostgreSQL 17+; absent before).
	Failover *bool `json:"failover,omitempty"`
	// Synced (17+): this is a standby's synchronized copy of a primary's
	// failover slot (status run against the standby).
	Synced *bool `json:"synced,omitempty"`
	// StandbySlots (17+) are the physical slots in the server's
	// synchronized_standby_slots: logical decoding sends nothing those
	// standbys have not received, so the slot's copy on them is never
	// behind what capture was sent. Active means a standby streams through
	// the slot now.
	StandbySlots []StandbySlot `json:"standbySlots,omitempty"`
}

// StandbySlot is one physical slot named by synchronized_standby_slots.
type StandbySlot struct {
	Name   string `json:"name"`
	Exists bool   `json:"exists"`
	Active bool   `json:"active"`
}

// Status is what `capture status` reports about the database side.
type Status struct {
	Slot        SlotStatus  `json:"slot"`
	Publication string      `json:"publication"`
	PubExists   bool        `json:"publicationExists"`
	Tables      []TableInfo `json:"tables"`
	// Broken lists published tables whose UPDATE/DELETE PostgreSQL rejects.
	Broken []string `json:"brokenTables"`
	// Incomplete lists published tables whose oldValues hold keys only.
	Incomplete []string `json:"incompleteOldValues"`
	// Keyless lists tables (published or not) with no key at all.
	Keyless []string `json:"keylessTables"`
	// Unpublished lists tables with a key that the publication leaves out:
	// their changes are not captured.
	Unpublished []string `json:"unpublishedTables"`
}

// standbySlots reads synchronized_standby_slots and the state of each
// physical slot it names.
func standbySlots(ctx context.Context, conn *pgx.Conn) ([]StandbySlot, error) {
	var setting string
	if err := conn.QueryRow(ctx, `SELECT current_setting('synchronized_standby_slots')`).Scan(&setting); err != nil {
		return nil, fmt.Errorf("read synchronized_standby_slots: %w", err)
	}
	var out []StandbySlot
	for _, name := range strings.Split(setting, ",") {
		name = strings.Trim(strings.TrimSpace(name), `"`)
		if name == "" {
			continue
		}
		s := StandbySlot{Name: name}
		err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1 AND slot_type = 'physical'`, name).Scan(&s.Active)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("read standby slot %s: %w", name, err)
		default:
			s.Exists = true
		}
		out = append(out, s)
	}
	return out, nil
}

// ReadStatus gathers the slot and publication state.
func ReadStatus(ctx context.Context, conn *pgx.Conn, slot, publication string) (*Status, error) {
	st := &Status{Publication: publication}
	// On a standby (a synced copy of the slot) the WAL position is the
	// replayed one: pg_current_wal_lsn() fails during recovery.
	err := conn.QueryRow(ctx, `SELECT active, active_pid, coalesce(confirmed_flush_lsn::text, ''), coalesce(restart_lsn::text, ''),
		coalesce(pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::bigint, 0),
		coalesce(wal_status, '')
		FROM pg_replication_slots WHERE slot_name = $1`, slot).
		Scan(&st.Slot.Active, &st.Slot.ActivePID, &st.Slot.ConfirmedFlushLSN, &st.Slot.RestartLSN, &st.Slot.WALRetainedBytes, &st.Slot.WALStatus)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("read slot: %w", err)
	default:
		st.Slot.Exists = true
		var version int
		if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
			return nil, fmt.Errorf("server version: %w", err)
		}
		if version >= 170000 {
			if err := conn.QueryRow(ctx, `SELECT failover, synced FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&st.Slot.Failover, &st.Slot.Synced); err != nil {
				return nil, fmt.Errorf("read slot: %w", err)
			}
			if st.Slot.StandbySlots, err = standbySlots(ctx, conn); err != nil {
				return nil, err
			}
		}
	}
	if err := conn.QueryRow(ctx, `SELECT EXISTS(SELECT 1 FROM pg_publication WHERE pubname = $1)`, publication).Scan(&st.PubExists); err != nil {
		return nil, fmt.Errorf("read publication: %w", err)
	}
	all, err := CapturedTables(ctx, conn, publication, nil, nil)
	if err != nil {
		return nil, err
	}
	for _, t := range all {
		if t.Published {
			st.Tables = append(st.Tables, t)
			if t.Keyless() {
				st.Broken = append(st.Broken, t.Name())
			} else if t.Identity != "f" {
				st.Incomplete = append(st.Incomplete, t.Name())
			}
		}
		if t.Keyless() {
			st.Keyless = append(st.Keyless, t.Name())
		} else if !t.Published && st.PubExists {
			st.Unpublished = append(st.Unpublished, t.Name())
		}
	}
	return st, nil
}

// Columns lists the columns of tables, as schema, table, column triples in
// table and column order: what the column policy and its warnings look at.
func Columns(ctx context.Context, conn *pgx.Conn, tables []TableInfo) ([][3]string, error) {
	oids := make([]uint32, 0, len(tables))
	for _, t := range tables {
		oids = append(oids, t.OID)
	}
	rows, err := conn.Query(ctx, `
		SELECT n.nspname, c.relname, a.attname FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY n.nspname, c.relname, a.attnum`, oids)
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([3]string, error) {
		var c [3]string
		err := r.Scan(&c[0], &c[1], &c[2])
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	return out, nil
}
