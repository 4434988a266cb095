package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/pgtest"
)

// TestFailoverToStandby (PostgreSQL 17+): capture streams from a primary
// whose slot was made with setup --failover, while a physical standby
// synchronizes it (sync_replication_slots) and the primary holds logical
// changes back until the standby has them (synchronized_standby_slots).
// The primary is killed mid-write and the standby promoted; capture,
// pointed at the new primary, resumes from the synchronized slot, the
// writer goes on there, and every change the new primary holds reaches the
// stream at least once, in order per row. Before 17 setup refuses
// --failover (TestSetupFailover checks the message).
func TestFailoverToStandby(t *testing.T) {
	primary := pgtest.Start(t, pgtest.Options{})
	url := primary.CreateDatabase(t, "app")
	if v := serverVersion(t, url); v < 17 {
		if code, out := runCmd(t, map[string]string{"DATABASE_URL": url}, "setup", "--failover"); code == 0 || !strings.Contains(out, "PostgreSQL 17 or later") {
			t.Fatalf("setup --failover on PostgreSQL %d: exit %d\n%s", v, code, out)
		}
		return
	}
	primary.Exec(t, "app", `CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)`)
	if code, out := runCmd(t, map[string]string{"DATABASE_URL": url}, "setup", "--failover"); code != 0 {
		t.Fatalf("setup --failover: exit %d\n%s", code, out)
	}
	standby := pgtest.StartStandby(t, primary, "standby1", "app")
	primary.Exec(t, "postgres", `ALTER SYSTEM SET synchronized_standby_slots = 'standby1'`, `SELECT pg_reload_conf()`)
	standbyURL := standby.URL("app")

	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 2})
	env := func(db string) []string {
		return append(awsEnv(fk.URL), "DATABASE_URL="+db, "WALBRIDGE_STREAM=changes", "WALBRIDGE_STATUS_INTERVAL=100ms")
	}
	const keys = 40
	primary.Exec(t, "app", fmt.Sprintf(`INSERT INTO counters SELECT g, 0 FROM generate_series(1, %d) g`, keys))
	p := startCapture(t, env(url))
	rng := rand.New(rand.NewPCG(9, 10))
	if n := writeCounters(t, url, rng, keys, 1500, nil); n != 1500 {
		t.Fatalf("%d of 1500 transactions committed on the primary before the failover", n)
	}
	waitConfirmed(t, url, currentLSN(t, url), time.Minute)
	// The standby's copy of the slot becomes usable once the primary's slot
	// has moved past where the copy was made (capture confirming).
	waitUntil(t, "the standby to hold a synchronized copy of the slot", time.Minute, func() bool {
		var ok bool
		err := queryOne(t, standbyURL, `SELECT coalesce(bool_or(synced AND NOT temporary), false) FROM pg_replication_slots WHERE slot_name = 'walbridge'`, &ok)
		return err == nil && ok
	})
	// status shows both ends: the primary's slot is failover-enabled and
	// guarded by the standby's slot, the standby's copy is synced.
	for _, tc := range []struct{ db, want string }{
		{url, `"standbySlots":[{"name":"standby1","exists":true,"active":true}]`},
		{standbyURL, `"synced":true`},
	} {
		code, out := runCmd(t, map[string]string{"DATABASE_URL": tc.db}, "status", "--json", "--no-stream")
		compact := strings.Join(strings.Fields(out), "")
		if code != 0 || !strings.Contains(compact, `"failover":true`) || !strings.Contains(compact, tc.want) {
			t.Fatalf("status on %s: exit %d, want failover true and %s\n%s", tc.db, code, tc.want, out)
		}
	}
	// Mid-write: a writer still committing when the primary dies.
	done := make(chan int, 1)
	var committed atomic.Int64
	go func() { done <- writeCounters(t, url, rand.New(rand.NewPCG(11, 12)), keys, 1<<30, &committed) }()
	waitUntil(t, "the writer to commit 500 transactions", time.Minute, func() bool { return committed.Load() >= 500 })
	primary.Kill()
	cut := <-done
	var promoted bool
	if err := queryOne(t, standbyURL, `SELECT pg_promote(true, 60)`, &promoted); err != nil || !promoted {
		t.Fatalf("promote the standby: %v %v", promoted, err)
	}
	p.kill() // it was retrying the dead primary

	p = startCapture(t, env(standbyURL))
	if n := writeCounters(t, standbyURL, rng, keys, 1500, nil); n != 1500 {
		t.Fatalf("%d of 1500 transactions committed on the new primary", n)
	}
	waitConfirmed(t, standbyURL, currentLSN(t, standbyURL), time.Minute)
	p.stop(t)

	final := map[int]int{}
	conn, err := pgx.Connect(context.Background(), standbyURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT id, n FROM counters`)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for rows.Next() {
		var id, n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		final[id] = n
		total += n
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	recs := fk.Records()
	inStream := 0
	for _, r := range recs {
		rec, err := change.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		inStream += len(rec.Changes)
	}
	byKey := dedupeRecords(t, recs)
	distinct := 0
	for _, cs := range byKey {
		distinct += len(cs)
	}
	t.Logf("%d increments on the new primary (the writer the kill cut off had committed %d transactions on the old one); %d changes in %d records, %d distinct (%d delivered again after the failover)",
		total, cut, inStream, len(recs), distinct, inStream-distinct)
	checkCounters(t, byKey, keys, final)
}

// writeCounters commits up to txns transactions of 1-5 increments on url
// and returns how many committed (counted in progress too, when given); it
// stops at the first error (the server going away).
func writeCounters(t *testing.T, url string, rng *rand.Rand, keys, txns int, progress *atomic.Int64) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	for i := range txns {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return i
		}
		for range 1 + rng.IntN(5) {
			if _, err := tx.Exec(ctx, `UPDATE counters SET n = n + 1 WHERE id = $1`, 1+rng.IntN(keys)); err != nil {
				return i
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return i
		}
		if progress != nil {
			progress.Add(1)
		}
	}
	return txns
}

// waitUntil polls cond until it holds, failing the test after within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond) // a poll interval
	}
}

func serverVersion(t *testing.T, url string) int {
	t.Helper()
	var v int
	if err := queryOne(t, url, `SELECT current_setting('server_version_num')::int / 10000`, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// queryOne scans one value of a one-row query.
func queryOne(t *testing.T, url, sql string, dst any) error {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dst)
}
