package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// StartStandby starts a hot standby of primary for the test, streaming
// from it through the physical replication slot slot (created here), with
// logical slot synchronization on (PostgreSQL 17+: failover slots of
// primary appear on the standby, synced). db is the database the slot sync
// worker connects to. The base backup is taken with PostgreSQL's low-level
// API (pg_backup_start, a file copy, pg_backup_stop) rather than
// pg_basebackup, which the test builds of PostgreSQL do not ship.
func StartStandby(tb testing.TB, primary *Cluster, slot, db string) *Cluster {
	tb.Helper()
	settings := map[string]string{
		"hot_standby":            "on",
		"hot_standby_feedback":   "on",
		"primary_slot_name":      slot,
		"primary_conninfo":       fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=%s", primary.Port, db),
		"sync_replication_slots": "on",
	}
	primary.Exec(tb, "postgres", fmt.Sprintf(`SELECT pg_create_physical_replication_slot('%s', true)`, slot))
	pg, err := start(Options{Settings: settings}, func(dataDir string) error { return baseBackup(primary, dataDir) })
	if err != nil {
		tb.Fatalf("start a standby: %v", err)
	}
	tb.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			tb.Errorf("stop the standby: %v", err)
		}
	})
	return pg
}

// baseBackup copies primary's data directory to dst inside
// pg_backup_start/pg_backup_stop, leaves out what a base backup must not
// hold (the postmaster's files, WAL, replication slots), and writes the
// backup label and standby.signal.
func baseBackup(primary *Cluster, dst string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, primary.URL("postgres"))
	if err != nil {
		return fmt.Errorf("base backup: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SELECT pg_backup_start('walbridge test standby', true)`); err != nil {
		return fmt.Errorf("pg_backup_start: %w", err)
	}
	// cp -a keeps modes and, run as root, the postgres user's ownership.
	if out, err := exec.Command("cp", "-a", primary.DataDir, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the data directory: %v: %s", err, out)
	}
	var label string
	if err := conn.QueryRow(ctx, `SELECT labelfile FROM pg_backup_stop(false)`).Scan(&label); err != nil {
		return fmt.Errorf("pg_backup_stop: %w", err)
	}
	for _, f := range []string{"postmaster.pid", "postmaster.opts"} {
		os.Remove(filepath.Join(dst, f))
	}
	for _, dir := range []string{"pg_wal", "pg_replslot"} {
		entries, err := os.ReadDir(filepath.Join(dst, dir))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Name() != "archive_status" && e.Name() != "summaries" {
				if err := os.RemoveAll(filepath.Join(dst, dir, e.Name())); err != nil {
					return err
				}
			}
		}
	}
	st, err := os.Stat(dst)
	if err != nil {
		return err
	}
	uid, gid := int(st.Sys().(*syscall.Stat_t).Uid), int(st.Sys().(*syscall.Stat_t).Gid)
	for name, body := range map[string]string{"backup_label": label, "standby.signal": ""} {
		path := filepath.Join(dst, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			return err
		}
		if err := os.Chown(path, uid, gid); err != nil {
			return err
		}
	}
	return nil
}
