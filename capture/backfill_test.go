package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/capture/replication"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
)

// backfillState polls walbridge.backfills until backfill id has ended (or
// within passes) and returns its state, rows done and error text.
func waitBackfill(t *testing.T, url string, id int64, within time.Duration) (state string, rows int64) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	deadline := time.Now().Add(within)
	for {
		var errText *string
		if err := conn.QueryRow(ctx, `SELECT state, rows_done, error FROM walbridge.backfills WHERE id = $1`, id).Scan(&state, &rows, &errText); err != nil {
			t.Fatal(err)
		}
		if state != "pending" && state != "running" {
			if errText != nil {
				t.Logf("backfill %d: %s", id, *errText)
			}
			return state, rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("backfill %d still %s after %s (%d rows)", id, state, within, rows)
		}
		time.Sleep(50 * time.Millisecond) // polling the server's view of the backfill
	}
}

// registerBackfill runs `capture backfill` in-process and returns the id it
// registered.
func registerBackfill(t *testing.T, url string, args ...string) int64 {
	t.Helper()
	code, out := runCmd(t, map[string]string{"DATABASE_URL": url}, append([]string{"backfill"}, args...)...)
	if code != 0 {
		t.Fatalf("backfill %v: exit %d\n%s", args, code, out)
	}
	var id int64
	if _, err := fmt.Sscanf(out[strings.Index(out, "registered backfill "):], "registered backfill %d:", &id); err != nil {
		t.Fatalf("no id in %q: %v", out, err)
	}
	return id
}

// tableRows reads a table as pgoutput renders it (capture's session
// settings, text format): key text -> column -> value (nil for NULL).
func tableRows(t *testing.T, url, query string) map[string]map[string]*string {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range replication.SessionSettings() {
		cfg.RuntimeParams[k] = v
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rr := conn.PgConn().ExecParams(ctx, query, nil, nil, nil, nil)
	out := map[string]map[string]*string{}
	fields := rr.FieldDescriptions()
	for rr.NextRow() {
		row := map[string]*string{}
		for i, v := range rr.Values() {
			if v != nil {
				s := string(v)
				row[fields[i].Name] = &s
			} else {
				row[fields[i].Name] = nil
			}
		}
		out[*row["id"]] = row
	}
	if _, err := rr.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// model applies changes per key in stream order as a consumer would: read,
// insert and update upsert the new values (an unchanged TOAST value keeps
// the one the consumer has), delete removes the row. It returns the rows by
// id, the ids whose row has a value the consumer never learnt, and the
// reads seen per backfill and id.
func model(t *testing.T, byKey map[string][]change.Change, table string) (rows map[string]map[string]*string, unknown map[string]bool, reads map[string]map[string]int) {
	t.Helper()
	rows, unknown, reads = map[string]map[string]*string{}, map[string]bool{}, map[string]map[string]int{}
	for _, cs := range byKey {
		for _, c := range cs {
			if c.Schema+"."+c.Table != table {
				continue
			}
			id := func(tuple []change.Value) string {
				for i, col := range c.Columns {
					if col.Name == "id" {
						return tuple[i].Text
					}
				}
				t.Fatalf("no id column in %s change", c.Op)
				return ""
			}
			switch c.Op {
			case change.Read, change.Insert, change.Update:
				k := id(c.New)
				if c.Op == change.Read {
					if reads[c.Backfill] == nil {
						reads[c.Backfill] = map[string]int{}
					}
					reads[c.Backfill][k]++
				}
				prev := rows[k]
				row := map[string]*string{}
				for i, col := range c.Columns {
					v := c.New[i]
					switch v.State {
					case change.Text:
						s := v.Text
						row[col.Name] = &s
					case change.Null:
						row[col.Name] = nil
					case change.Unchanged:
						if p, ok := prev[col.Name]; ok && !unknown[k+"/"+col.Name] {
							row[col.Name] = p
						} else {
							row[col.Name] = nil
							unknown[k+"/"+col.Name] = true
						}
					default:
						t.Fatalf("value state %d in a %s of %s", v.State, c.Op, k)
					}
					if v.State != change.Unchanged {
						delete(unknown, k+"/"+col.Name)
					}
				}
				rows[k] = row
			case change.Delete:
				k := id(c.Old)
				delete(rows, k)
				for u := range unknown {
					if strings.HasPrefix(u, k+"/") {
						delete(unknown, u)
					}
				}
			case change.Truncate:
				t.Fatalf("unexpected truncate")
			}
		}
	}
	return rows, unknown, reads
}

// compareRows fails on the first difference between the table and the
// consumer's model, for the ids want selects.
func compareRows(t *testing.T, table, got map[string]map[string]*string, unknown map[string]bool, want func(id string) bool) {
	t.Helper()
	str := func(p *string) string {
		if p == nil {
			return "NULL"
		}
		if len(*p) > 40 {
			return (*p)[:40] + "..."
		}
		return *p
	}
	checked := 0
	for id, row := range table {
		if !want(id) {
			continue
		}
		checked++
		m, ok := got[id]
		if !ok {
			t.Fatalf("row %s is in the table but not in the consumer's model", id)
		}
		for col, v := range row {
			if unknown[id+"/"+col] {
				t.Fatalf("row %s: column %s never reached the consumer (an unchanged TOAST value of a row whose read was dropped)", id, col)
			}
			mv, ok := m[col]
			if !ok {
				t.Fatalf("row %s: column %s missing in the model", id, col)
			}
			if (v == nil) != (mv == nil) || v != nil && *v != *mv {
				t.Fatalf("row %s column %s: table %s, model %s", id, col, str(v), str(mv))
			}
		}
	}
	for id := range got {
		if _, ok := table[id]; !ok && want(id) {
			t.Fatalf("row %s is in the consumer's model but not in the table", id)
		}
	}
	t.Logf("%d rows equal, value for value", checked)
}

// TestBackfillBasics: a backfill of a quiet table sends each row once as a
// read, byte-identical to what an insert of the same row sends, and the
// progress is recorded.
func TestBackfillBasics(t *testing.T) {
	pg, url := setupDB(t, `CREATE TYPE mood AS ENUM ('sad', 'happy')`,
		`CREATE TABLE zoo (id int PRIMARY KEY, t text, n numeric(8,3), f float8, ts timestamptz, d date, i interval, b bytea,
		   j jsonb, a int[], m mood, u uuid, big text)`)
	fill := `SELECT g, 'row ' || g, g / 7.0, g / 3.0, timestamptz '2024-02-29 12:34:56.789012+02' + g * interval '1 hour',
		date '2024-01-01' + g, g * interval '90 minutes', decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'x', array[g, g]),
		array[g, NULL, g + 1], CASE WHEN g %% 2 = 0 THEN 'happy'::mood END, md5(g::text)::uuid,
		CASE WHEN g %% 100 = 0 THEN (SELECT string_agg(md5(g::text || x), '') FROM generate_series(1, 200) x) END
		FROM generate_series(%d, %d) g`
	pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO zoo `+fill, 1, 1000))
	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 4})
	p := startCapture(t, append(awsEnv(fk.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes"))
	id := registerBackfill(t, url, "--table", "public.zoo", "--chunk-rows", "128")
	if state, rows := waitBackfill(t, url, id, 2*time.Minute); state != "done" || rows != 1000 {
		t.Fatalf("backfill ended %s after %d rows, want done after 1000", state, rows)
	}
	// The same rows inserted live, to compare with.
	pg.Exec(t, "app", `CREATE TABLE zoo2 (LIKE zoo INCLUDING ALL)`, fmt.Sprintf(`INSERT INTO zoo2 `+fill, 1, 1000))
	waitConfirmed(t, url, currentLSN(t, url), time.Minute)
	p.stop(t)

	byKey := map[string][]change.Change{}
	for _, r := range fk.Records() {
		rec, err := change.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rec.Changes {
			byKey[c.Table+"/"+string(c.Op)+"/"+change.PartitionKey(&c)] = append(byKey[c.Table+"/"+string(c.Op)+"/"+change.PartitionKey(&c)], c)
		}
	}
	reads := 0
	for g := 1; g <= 1000; g++ {
		rs := byKey["zoo/read/public.zoo/"+strconv.Itoa(g)]
		ins := byKey["zoo2/insert/public.zoo2/"+strconv.Itoa(g)]
		if len(rs) != 1 || len(ins) != 1 {
			t.Fatalf("row %d: %d reads, %d inserts; want one each", g, len(rs), len(ins))
		}
		r, in := rs[0], ins[0]
		if r.Backfill != strconv.FormatInt(id, 10) {
			t.Fatalf("read names backfill %q, want %d", r.Backfill, id)
		}
		if len(r.Columns) != len(in.Columns) {
			t.Fatalf("row %d: read has %d columns, insert %d", g, len(r.Columns), len(in.Columns))
		}
		for i := range r.Columns {
			rc, ic := r.Columns[i], in.Columns[i]
			if rc != ic {
				t.Fatalf("row %d column %s: read describes %+v, insert %+v", g, rc.Name, rc, ic)
			}
			if rc.Name != ic.Name || r.New[i] != in.New[i] {
				t.Fatalf("row %d column %s: read %+v, insert %+v", g, rc.Name, r.New[i], in.New[i])
			}
		}
		if r.Identity != in.Identity {
			t.Fatalf("identity %s vs %s", r.Identity, in.Identity)
		}
		reads++
	}
	for k := range byKey {
		if strings.HasPrefix(k, "backfills/") || strings.Contains(k, "message:walbridge") {
			t.Fatalf("walbridge's own bookkeeping reached the stream: %s", k)
		}
	}
	t.Logf("%d reads equal to inserts of the same rows", reads)
}

// TestBackfillConsistency backfills a 200,000-row table while four writers
// insert, update and delete random rows of it; a consumer applying the
// stream per key ends equal to the table. Then again with --where.
func TestBackfillConsistency(t *testing.T) {
	const rows = 200000
	pg, url := setupDB(t, `CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL, note text, price numeric(12,2),
		at timestamptz, tags text[], doc text)`)
	pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO items SELECT g, 0, 'note ' || g, g / 100.0, now(), array['a', g::text],
		CASE WHEN g %% 100 = 0 THEN (SELECT string_agg(md5(g::text || x), '') FROM generate_series(1, 100) x) END
		FROM generate_series(1, %d) g`, rows))
	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 4})
	p := startCapture(t, append(awsEnv(fk.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes"))

	for _, run := range []struct {
		name  string
		where string
		want  func(id string) bool
	}{
		{"all rows", "", func(string) bool { return true }},
		{"where", "id % 3 = 0", func(id string) bool { n, _ := strconv.Atoi(id); return n%3 == 0 }},
	} {
		t.Run(run.name, func(t *testing.T) {
			stop := startWriters(t, url, rows)
			args := []string{"--table", "items", "--chunk-rows", "5000"}
			if run.where != "" {
				args = append(args, "--where", run.where)
			}
			started := time.Now()
			id := registerBackfill(t, url, args...)
			state, n := waitBackfill(t, url, id, 5*time.Minute)
			took := time.Since(started)
			ops := stop()
			if state != "done" {
				t.Fatalf("backfill ended %s", state)
			}
			waitConfirmed(t, url, currentLSN(t, url), 2*time.Minute)
			got, unknown, reads := model(t, dedupeRecords(t, fk.Records()), "public.items")
			table := tableRows(t, url, `SELECT * FROM items`)
			compareRows(t, table, got, unknown, run.want)
			var dropped int64
			conn, err := pgx.Connect(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if err := conn.QueryRow(context.Background(), `SELECT rows_dropped FROM walbridge.backfills WHERE id = $1`, id).Scan(&dropped); err != nil {
				t.Fatal(err)
			}
			for k := range reads[strconv.FormatInt(id, 10)] {
				if !run.want(k) {
					t.Fatalf("row %s read although --where %q excludes it", k, run.where)
				}
			}
			t.Logf("backfill %d: %d rows read in %s, %d dropped by the watermark rule; writers committed %d operations meanwhile", id, n, took.Round(time.Millisecond), dropped, ops)
			if ops == 0 {
				t.Fatal("the writers did nothing during the backfill")
			}
		})
	}
	p.stop(t)
}

// dedupeRecords groups the fake's records by partition key, in arrival
// order, without repeats (at-least-once delivery).
func dedupeRecords(t *testing.T, recs []kinesistest.FakeRecord) map[string][]change.Change {
	t.Helper()
	byKey := map[string][]change.Change{}
	for _, r := range recs {
		rec, err := change.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		byKey[r.PartitionKey] = append(byKey[r.PartitionKey], rec.Changes...)
	}
	return dedupe(t, byKey)
}

// startWriters runs four writers that insert, update and delete random rows
// of items (ids up to 1.5 times rows) until the returned stop is called,
// which returns how many operations they committed.
func startWriters(t *testing.T, url string, rows int) (stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	ops := 0
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(context.Background(), url)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close(context.Background())
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				id := 1 + rng.IntN(rows*3/2)
				var sql string
				switch r := rng.IntN(10); {
				case r < 6:
					sql = `UPDATE items SET n = n + 1, price = price + 1 WHERE id = $1` // leaves doc unchanged (TOAST)
				case r < 7:
					sql = `UPDATE items SET note = md5(random()::text), doc = CASE WHEN id % 2 = 0 THEN repeat(md5(random()::text), 80) END WHERE id = $1`
				case r < 8:
					sql = `DELETE FROM items WHERE id = $1`
				default:
					sql = `INSERT INTO items VALUES ($1, 1, 'new', 1, now(), array['n'], NULL) ON CONFLICT (id) DO UPDATE SET n = items.n + 1`
				}
				if _, err := conn.Exec(context.Background(), sql, id); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ops++
				mu.Unlock()
			}
		}()
	}
	return func() int {
		cancel()
		wg.Wait()
		select {
		case err := <-errs:
			t.Fatalf("writer: %v", err)
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		return ops
	}
}
