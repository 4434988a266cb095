package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
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
	// --wait follows a second backfill to its end (no terminal: lines).
	code, out := runCmd(t, map[string]string{"DATABASE_URL": url}, "backfill", "--table", "zoo", "--wait", "--chunk-rows", "300")
	if code != 0 || !strings.Contains(out, "public.zoo") || !regexp.MustCompile(`done\s+1000 rows 100.0%`).MatchString(out) {
		t.Fatalf("backfill --wait: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, map[string]string{"DATABASE_URL": url}, "status", "--json", "--no-stream")
	var st struct {
		Backfills []struct {
			ID       int64  `json:"id"`
			Table    string `json:"table"`
			State    string `json:"state"`
			RowsDone int64  `json:"rowsDone"`
			Estimate int64  `json:"estimate"`
			Chunks   int64  `json:"chunks"`
		} `json:"backfills"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.Backfills) != 2 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, out)
	}
	if b := st.Backfills[0]; b.ID != id || b.State != "done" || b.RowsDone != 1000 || b.Chunks != 8 {
		t.Fatalf("status lists %+v; want backfill %d done, 1000 rows in 8 chunks", b, id)
	}
	if code, out := runCmd(t, map[string]string{"DATABASE_URL": url}, "status", "--no-stream"); code != 0 || !strings.Contains(out, "BACKFILLS") {
		t.Fatalf("status: exit %d\n%s", code, out)
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
	// Delivery is at least once: a PutRecords answer lost on the way is
	// sent again, so duplicates of a change (same position) are dropped.
	byKey = dedupe(t, byKey)
	reads := 0
	for g := 1; g <= 1000; g++ {
		var rs []change.Change
		for _, r := range byKey["zoo/read/public.zoo/"+strconv.Itoa(g)] {
			if r.Backfill == strconv.FormatInt(id, 10) {
				rs = append(rs, r)
			}
		}
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
	url := itemsTable(t, rows)
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

// itemsTable sets up a database whose items table holds rows rows of
// several types, every hundredth with a TOASTed doc, and returns its URL.
func itemsTable(t *testing.T, rows int) string {
	t.Helper()
	pg, url := setupDB(t, `CREATE TABLE items (id bigint PRIMARY KEY, n int NOT NULL, note text, price numeric(12,2),
		at timestamptz, tags text[], doc text)`)
	pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO items SELECT g, 0, 'note ' || g, g / 100.0, now(), array['a', g::text],
		CASE WHEN g %% 100 = 0 THEN (SELECT string_agg(md5(g::text || x), '') FROM generate_series(1, 100) x) END
		FROM generate_series(1, %d) g`, rows))
	return url
}

// dedupeRecords groups the changes of the fake's records by partition key
// (each change's own: a version 2 record holds many), in arrival order,
// without repeats (at-least-once delivery).
func dedupeRecords(t *testing.T, recs []kinesistest.FakeRecord) map[string][]change.Change {
	t.Helper()
	byKey := map[string][]change.Change{}
	for _, r := range recs {
		rec, err := change.Decode(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range rec.Changes {
			key := change.PartitionKey(&c)
			byKey[key] = append(byKey[key], c)
		}
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
			// About 500 operations a second each: busy, and leaving the two
			// cores of a CI machine to capture and the server.
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
					continue
				case <-tick.C:
				}
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

// TestBackfillCrashSafety kills capture five times during a backfill while
// writers change the table; each restart resumes from the last
// acknowledged chunk and the consumer still ends equal to the table.
func TestBackfillCrashSafety(t *testing.T) {
	const rows = 60000
	url := itemsTable(t, rows)
	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 4})
	env := append(awsEnv(fk.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes")
	stop := startWriters(t, url, rows)
	// Small chunks, rate-limited: the backfill lasts long enough to be
	// killed in the middle of it five times.
	id := registerBackfill(t, url, "--table", "items", "--chunk-rows", "1000", "--max-rows-per-second", "20000")
	rng := rand.New(rand.NewPCG(5, 6))
	var resumedAt []int64
	for range 5 {
		p := startCapture(t, env)
		before := backfillRows(t, url, id)
		resumedAt = append(resumedAt, before)
		// Once this run has acknowledged a chunk of its own, crash it at a
		// random moment.
		deadline := time.Now().Add(2 * time.Minute)
		for backfillRows(t, url, id) == before {
			if time.Now().After(deadline) {
				t.Fatalf("no progress after a restart at %d rows", before)
			}
			time.Sleep(20 * time.Millisecond) // polling the server's view of the backfill
		}
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond) // a random moment to crash at
		p.kill()
	}
	p := startCapture(t, env)
	state, n := waitBackfill(t, url, id, 5*time.Minute)
	ops := stop()
	if state != "done" {
		t.Fatalf("backfill ended %s", state)
	}
	waitConfirmed(t, url, currentLSN(t, url), 2*time.Minute)
	p.stop(t)
	for i := 1; i < len(resumedAt); i++ {
		if resumedAt[i] < resumedAt[i-1] {
			t.Fatalf("progress went back: %v", resumedAt)
		}
	}
	got, unknown, reads := model(t, dedupeRecords(t, fk.Records()), "public.items")
	compareRows(t, tableRows(t, url, `SELECT * FROM items`), got, unknown, func(string) bool { return true })
	twice := 0
	for _, c := range reads[strconv.FormatInt(id, 10)] {
		twice += c - 1
	}
	t.Logf("5 kills; progress at each restart %v; %d rows recorded done; %d rows read twice; %d writer operations", resumedAt, n, twice, ops)
}

func backfillRows(t *testing.T, url string, id int64) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT rows_done FROM walbridge.backfills WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBackfillRefusesBadInput: each mistake gets a clear error naming the
// table and registers nothing.
func TestBackfillRefusesBadInput(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`, `CREATE TABLE b (id int PRIMARY KEY)`, `CREATE TABLE keyless (v text)`)
	pg.Exec(t, "app", `CREATE PUBLICATION only_a FOR TABLE a`)
	env := map[string]string{"DATABASE_URL": url}
	count := func() int {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM walbridge.backfills`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if code, out := runCmd(t, env, "status", "--no-stream", "--publication", "only_a"); code != 0 ||
		!strings.Contains(out, "tables the publication leaves out (their changes are not captured): public.b") {
		t.Fatalf("status of a table-list publication: exit %d\n%s", code, out)
	}
	registerBackfill(t, url, "--table", "b")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown table", []string{"--table", "public.nope"}, "public.nope: no such table"},
		{"not in the publication", []string{"--publication", "only_a", "--table", "b"}, "public.b: table is not in the publication only_a"},
		{"keyless", []string{"--table", "keyless"}, "public.keyless: table has no primary key or replica identity index"},
		{"invalid where", []string{"--table", "a", "--where", "nonsense = "}, "public.a: invalid --where: syntax error"},
		{"unknown column in where", []string{"--table", "a", "--where", "colour = 'red'"}, `invalid --where: column "colour" does not exist`},
		{"already running", []string{"--table", "a", "--table", "b"}, "public.b: a backfill of this table is already pending or running"},
		{"no table", []string{}, "give --table (or --all), --cancel ID or --list"},
		{"cancel unknown", []string{"--cancel", "999"}, "backfill 999: no such backfill"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := count()
			code, out := runCmd(t, env, append([]string{"backfill"}, tc.args...)...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant an error containing %q", code, out, tc.want)
			}
			if after := count(); after != before {
				t.Fatalf("%d backfills registered by a refused request", after-before)
			}
		})
	}
	code, out := runCmd(t, env, "backfill", "--list", "--json")
	if code != 0 || !strings.Contains(out, `"table": "b"`) || !strings.Contains(out, `"state": "pending"`) {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, env, "backfill", "--cancel", "1"); code != 0 || !strings.Contains(out, "cancelled backfill 1") {
		t.Fatalf("cancel: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, env, "backfill", "--cancel", "1"); code == 0 || !strings.Contains(out, "backfill 1 (public.b) is cancelled") {
		t.Fatalf("second cancel: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, env, "teardown", "--yes", "--drop-schema"); code != 0 || !strings.Contains(out, "dropped schema walbridge") {
		t.Fatalf("teardown --drop-schema: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, env, "backfill", "--table", "a"); code == 0 || !strings.Contains(out, "run capture setup") {
		t.Fatalf("backfill without the schema: exit %d\n%s", code, out)
	}
}

// TestBackfillLetsMigrationsThrough: during a backfill, ALTER TABLE ... ADD
// COLUMN under lock_timeout 2s succeeds, later chunks carry the new column,
// and no transaction of the backfill outlives a chunk query.
func TestBackfillLetsMigrationsThrough(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE items (id bigint PRIMARY KEY, n int)`)
	pg.Exec(t, "app", `INSERT INTO items SELECT g, g FROM generate_series(1, 30000) g`)
	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 4})
	p := startCapture(t, append(awsEnv(fk.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes"))
	// Rate-limited to last about 6 s: long enough to migrate in the
	// middle, and a transaction held across chunks would be seconds old.
	id := registerBackfill(t, url, "--table", "items", "--chunk-rows", "500", "--max-rows-per-second", "5000")

	// Watch the backfill's transactions while it runs.
	ctx := context.Background()
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	var oldest time.Duration
	var oldestWhat string
	sample := func() {
		var age *time.Duration
		var what *string
		if err := watch.QueryRow(ctx, `SELECT clock_timestamp() - xact_start, state || ' ' || wait_event_type || ':' || wait_event || ' ' || query FROM pg_stat_activity
			WHERE application_name = 'walbridge-backfill' AND xact_start IS NOT NULL`).Scan(&age, &what); err != nil && err != pgx.ErrNoRows {
			t.Fatal(err)
		}
		if age != nil && *age > oldest {
			oldest = *age
			if what != nil {
				oldestWhat = *what
			}
		}
	}
	for backfillRows(t, url, id) < 5000 {
		sample()
	}
	migrate, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer migrate.Close(ctx)
	if _, err := migrate.Exec(ctx, `SET lock_timeout = '2s'`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrate.Exec(ctx, `ALTER TABLE items ADD COLUMN extra text DEFAULT 'added'`); err != nil {
		t.Fatalf("migration during the backfill: %v", err)
	}
	for {
		var state string
		if err := watch.QueryRow(ctx, `SELECT state FROM walbridge.backfills WHERE id = $1`, id).Scan(&state); err != nil {
			t.Fatal(err)
		}
		if state != "running" && state != "pending" {
			if state != "done" {
				t.Fatalf("backfill ended %s", state)
			}
			break
		}
		sample()
	}
	waitConfirmed(t, url, currentLSN(t, url), time.Minute)
	p.stop(t)
	with, without := 0, 0
	ids := map[string]bool{}
	for _, cs := range dedupeRecords(t, fk.Records()) {
		for _, c := range cs {
			if c.Op != change.Read {
				continue
			}
			ids[c.New[0].Text] = true
			if len(c.Columns) == 3 && c.Columns[2].Name == "extra" && c.New[2].Text == "added" {
				with++
			} else {
				without++
			}
		}
	}
	if with == 0 || without == 0 || len(ids) != 30000 || with+without != 30000 {
		t.Fatalf("%d reads with the new column, %d without, of %d rows; want both, each of the 30000 rows once", with, without, len(ids))
	}
	// A chunk of 500 rows takes milliseconds; two seconds would mean a
	// transaction held across chunks (the backfill lasts about six).
	if oldest > 2*time.Second {
		t.Fatalf("a backfill transaction was %s old (%s)", oldest, oldestWhat)
	}
	t.Logf("reads: %d before the migration, %d after it with the new column; oldest backfill transaction seen %s", without, with, oldest)
}

// TestBackfillAppliesThePolicy: reads pass the column policy exactly as live
// changes do: excluded columns absent, hashed ones HMACs, redacted ones
// markers, and no withheld value anywhere in the records' bytes.
func TestBackfillAppliesThePolicy(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE users (id int PRIMARY KEY, email text, password_digest text, ssn text)`)
	pg.Exec(t, "app", `INSERT INTO users SELECT g, 'user' || g || '@example.com', 'digest-secret-' || g, 'ssn-secret-' || g FROM generate_series(1, 500) g`)
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(polFile, []byte("columns:\n  - match: public.users.password_digest\n    action: exclude\n  - match: public.users.email\n    action: hash\n  - match: public.users.ssn\n    action: redact\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const key = "backfill-test-key"
	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 2})
	p := startCapture(t, append(awsEnv(fk.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_POLICY="+polFile,
		"WALBRIDGE_HASH_KEY="+key, "WALBRIDGE_LOG_LEVEL=debug"))
	id := registerBackfill(t, url, "--table", "users", "--chunk-rows", "100")
	if state, rows := waitBackfill(t, url, id, time.Minute); state != "done" || rows != 500 {
		t.Fatalf("backfill ended %s after %d rows", state, rows)
	}
	waitConfirmed(t, url, currentLSN(t, url), time.Minute)
	p.stop(t)
	recs := fk.Records()
	for _, r := range recs {
		for _, secret := range []string{"digest-secret-", "ssn-secret-", "password_digest", "@example.com"} {
			if strings.Contains(string(r.Data), secret) {
				t.Fatalf("%q in a Kinesis record", secret)
			}
		}
	}
	reads, ids := 0, map[string]bool{}
	for _, cs := range dedupeRecords(t, recs) {
		for _, c := range cs {
			if c.Op != change.Read {
				continue
			}
			reads++
			ids[c.New[0].Text] = true
			if len(c.Columns) != 3 || c.Columns[1].Name != "email" || c.Columns[2].Name != "ssn" {
				t.Fatalf("read columns %+v", c.Columns)
			}
			if want := hmacHex(key, "user"+c.New[0].Text+"@example.com"); c.New[1].Text != want {
				t.Fatalf("row %s: email %q, want its HMAC %q", c.New[0].Text, c.New[1].Text, want)
			}
			if c.New[2].State != change.Redacted {
				t.Fatalf("row %s: ssn not redacted: %+v", c.New[0].Text, c.New[2])
			}
		}
	}
	if reads != 500 || len(ids) != 500 {
		t.Fatalf("%d reads of %d rows, want each of the 500 rows read once", reads, len(ids))
	}
	for _, secret := range []string{"digest-secret-", "ssn-secret-"} {
		if strings.Contains(p.logs.String(), secret) {
			t.Fatalf("%q in capture's debug log", secret)
		}
	}
}

// TestBackfillRereadsRowsOfPartialUpdates: rows that live updates touch
// inside their chunk's window, by updates that leave a TOASTed value out
// ("unchanged"), are read again later, so the consumer still learns every
// value. Slow chunk queries (pg_sleep in --where) keep each window open long
// enough for the updates to land in it.
func TestBackfillRereadsRowsOfPartialUpdates(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE docs (id int PRIMARY KEY, n int NOT NULL, body text)`)
	pg.Exec(t, "app", `ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL`,
		`INSERT INTO docs SELECT g, 0, (SELECT string_agg(md5(g::text || x), '') FROM generate_series(1, 100) x) FROM generate_series(1, 200) g`)
	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 2})
	p := startCapture(t, append(awsEnv(fk.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes"))
	ctx, cancel := context.WithCancel(context.Background())
	writerDone := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			writerDone <- err
			return
		}
		defer conn.Close(context.Background())
		rng := rand.New(rand.NewPCG(8, 9))
		for ctx.Err() == nil {
			if _, err := conn.Exec(context.Background(), `UPDATE docs SET n = n + 1 WHERE id = $1`, 1+rng.IntN(200)); err != nil {
				writerDone <- err
				return
			}
		}
		writerDone <- nil
	}()
	id := registerBackfill(t, url, "--table", "docs", "--chunk-rows", "20", "--where", "pg_sleep(0.01) IS NOT NULL")
	state, n := waitBackfill(t, url, id, 2*time.Minute)
	cancel()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	if state != "done" {
		t.Fatalf("backfill ended %s", state)
	}
	waitConfirmed(t, url, currentLSN(t, url), time.Minute)
	p.stop(t)
	got, unknown, reads := model(t, dedupeRecords(t, fk.Records()), "public.docs")
	compareRows(t, tableRows(t, url, `SELECT * FROM docs`), got, unknown, func(string) bool { return true })
	var dropped int64
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), `SELECT rows_dropped FROM walbridge.backfills WHERE id = $1`, id).Scan(&dropped); err != nil {
		t.Fatal(err)
	}
	again := 0
	for _, c := range reads[strconv.FormatInt(id, 10)] {
		again += c - 1
	}
	if dropped == 0 {
		t.Fatal("no row was dropped by the watermark rule: the test exercised nothing")
	}
	t.Logf("%d reads, %d rows dropped by the watermark rule, %d rows read more than once", n, dropped, again)
}
