package main

// End-to-end tests of the capture binary: a real PostgreSQL cluster
// (pgtest.Start), the real Kinesis emulator (kinesalite) or the
// in-test fake Kinesis endpoint, and capture built from this package and run
// as its own process, so that signals and crashes are real.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/pgtest"
	"github.com/walbridge/walbridge/shared/shardmap"
	"github.com/walbridge/walbridge/shared/syncbuf"
)

var captureBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "walbridge-capture-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	captureBin = filepath.Join(dir, "capture")
	if out, err := exec.Command("go", "build", "-o", captureBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build capture: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running capture process.
type proc struct {
	cmd  *exec.Cmd
	logs *syncbuf.Buffer
	done chan error
}

func awsEnv(kinesisURL string) []string {
	return []string{
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL_KINESIS=" + kinesisURL, "AWS_EC2_METADATA_DISABLED=true",
	}
}

func startCapture(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startProc(t, "capture", captureBin, env, append([]string{"run"}, args...)...)
}

// startProc starts bin as a process of its own, its output collected, killed
// at the test's end if it still runs; the output is logged when the test
// fails.
func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, logs: &syncbuf.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, p.logs.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit. It first waits for capture
// to have logged that it started: a SIGTERM that arrives while the Go runtime
// is still starting, before main installs its handler, kills the process
// (seen when a test's condition already held at start).
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.waitLog(t, "capture starting", 1, 40*time.Second)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("capture exited with %v after SIGTERM\n%s", err, p.logs.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatalf("capture did not exit within 40s of SIGTERM")
	}
}

// waitLog waits until capture's output holds what at least n times.
func (p *proc) waitLog(t *testing.T, what string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for strings.Count(p.logs.String(), what) < n {
		select {
		case <-p.logs.Wrote():
		case err := <-p.done:
			p.done <- err // leave it for stop and the cleanup
			t.Fatalf("capture exited (%v) before logging %q\n%s", err, what, p.logs.String())
		case <-deadline:
			t.Fatalf("no %q in capture's log within %s:\n%s", what, timeout, p.logs.String())
		}
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// runCmd runs a capture command in-process and returns exit code and output.
func runCmd(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	code := run(context.Background(), args, &out, &out)
	return code, out.String()
}

func confirmedLSN(t testing.TB, url string) change.LSN {
	t.Helper()
	return slotConfirmedLSN(t, url, "walbridge")
}

func slotConfirmedLSN(t testing.TB, url, slot string) change.LSN {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s *string
	if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&s); err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return 0
	}
	l, err := change.ParseLSN(*s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func currentLSN(t testing.TB, url string) change.LSN {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	// The insert position, not pg_current_wal_lsn (the write position): with
	// synchronous_commit off, as the test clusters run, a commit that has
	// returned may not be written yet, so the write position can still be
	// before its commit record, a point the slot may legitimately confirm
	// (from a keepalive) before the transaction is even sent.
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	l, _ := change.ParseLSN(s)
	return l
}

// waitConfirmed waits until the slot has confirmed past lsn: capture has
// everything before it durably in Kinesis.
func waitConfirmed(t testing.TB, url string, lsn change.LSN, within time.Duration) {
	t.Helper()
	waitSlotConfirmed(t, url, "walbridge", lsn, within)
}

func waitSlotConfirmed(t testing.TB, url, slot string, lsn change.LSN, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for slotConfirmedLSN(t, url, slot) < lsn {
		if time.Now().After(deadline) {
			t.Fatalf("slot %s did not confirm %s within %s (at %s)", slot, lsn, within, slotConfirmedLSN(t, url, slot))
		}
		time.Sleep(50 * time.Millisecond) // polling the server's view of the slot
	}
}

// streamChanges reads every record of the stream and returns the changes
// by partition key, in stream order.
func streamChanges(t *testing.T, kinesisURL, stream string) map[string][]change.Change {
	t.Helper()
	c := kinesistest.Client(t, kinesisURL)
	m, err := shardmap.List(context.Background(), c, stream)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]change.Change{}
	for shard, recs := range kinesistest.ReadAll(t, c, stream) {
		own, ok := m.Shard(shard)
		if !ok {
			t.Fatalf("records on shard %s, which ListShards does not know", shard)
		}
		for _, r := range recs {
			rec, err := change.Decode(r.Data)
			if err != nil {
				t.Fatalf("record %s: %v", *r.SequenceNumber, err)
			}
			for _, ch := range rec.Changes {
				key := change.PartitionKey(&ch)
				switch {
				case rec.Version == change.Version2 && !own.Range.Contains(shardmap.KeyHash([]byte(key))):
					continue // another shard's: fanout drops it too
				case rec.Version != change.Version2 && key != *r.PartitionKey:
					t.Fatalf("change with key %q in a record with partition key %q", key, *r.PartitionKey)
				}
				out[key] = append(out[key], ch)
			}
		}
	}
	return out
}

// dedupe drops repeats of positions already seen (at-least-once delivery),
// and fails if a key's positions go backwards: per-row order.
func dedupe(t *testing.T, byKey map[string][]change.Change) map[string][]change.Change {
	t.Helper()
	out := map[string][]change.Change{}
	for k, cs := range byKey {
		seen := map[[2]uint64]bool{}
		var last [2]uint64
		for _, c := range cs {
			pos := [2]uint64{uint64(c.CommitLSN), uint64(c.Seq)}
			if seen[pos] {
				continue
			}
			if pos[0] < last[0] || pos[0] == last[0] && pos[1] < last[1] {
				t.Fatalf("key %s: change at %s/%d after %s/%d: per-key order broken", k, c.CommitLSN, c.Seq, change.LSN(last[0]), last[1])
			}
			seen[pos], last = true, pos
			out[k] = append(out[k], c)
		}
	}
	return out
}

func setupDB(t *testing.T, schema ...string) (*pgtest.Cluster, string) {
	t.Helper()
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", schema...)
	if code, out := runCmd(t, map[string]string{"DATABASE_URL": url}, "setup", "--keyless=full"); code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, out)
	}
	return pg, url
}

func TestRunEndToEnd(t *testing.T) {
	pg, url := setupDB(t,
		`CREATE TABLE memberships (org_id int, user_id int, role text, PRIMARY KEY (org_id, user_id))`,
		`CREATE TABLE audit (note text)`,
		`CREATE TABLE people (id int PRIMARY KEY, email text)`,
		`ALTER TABLE people REPLICA IDENTITY FULL`,
	)
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 4)
	p := startCapture(t, append(awsEnv(k.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes"))

	pg.Exec(t, "app",
		`INSERT INTO memberships VALUES (1, 1, 'member'), (1, 2, 'member'), (2, 1, 'member')`,
		`UPDATE memberships SET role = 'admin' WHERE org_id = 1 AND user_id = 1`,
		`UPDATE memberships SET role = 'owner' WHERE org_id = 1 AND user_id = 1`,
		`DELETE FROM memberships WHERE org_id = 2`,
		`INSERT INTO audit VALUES ('a'), ('b')`,
		`UPDATE audit SET note = 'c' WHERE note = 'a'`,
		`INSERT INTO people VALUES (1, 'a@x')`,
		`UPDATE people SET email = 'b@x'`,
		`DELETE FROM people`,
		`SELECT pg_logical_emit_message(true, 'app.jobs', 'run-report')`,
		`TRUNCATE memberships, audit`,
	)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
	p.stop(t)

	byKey := dedupe(t, streamChanges(t, k.URL, "changes"))
	summary := func(key string) string {
		var s []string
		for _, c := range byKey[key] {
			v := ""
			for i, col := range c.Columns {
				if col.Name == "role" || col.Name == "note" || col.Name == "email" {
					if c.New != nil {
						v = c.New[i].Text
					} else if c.Old != nil {
						v = c.Old[i].Text
					}
				}
			}
			s = append(s, string(c.Op)+":"+v)
		}
		return strings.Join(s, " ")
	}
	tests := []struct{ key, want string }{
		{"public.memberships/1/1", "insert:member update:admin update:owner"},
		{"public.memberships/1/2", "insert:member"},
		{"public.memberships/2/1", "insert:member delete:"},
		{"public.audit", "insert:a insert:b update:c truncate:"},
		{"public.people/1", "insert:a@x update:b@x delete:b@x"},
		{"public.memberships", "truncate:"},
		{"message:app.jobs", "message:"},
	}
	for _, tc := range tests {
		if got := summary(tc.key); got != tc.want {
			t.Errorf("key %s: %q, want %q", tc.key, got, tc.want)
		}
	}
	if m := byKey["message:app.jobs"]; len(m) == 1 && string(m[0].Content) != "run-report" {
		t.Errorf("message content %q", m[0].Content)
	}
	if u := byKey["public.people/1"]; len(u) == 3 && (u[1].Old == nil || u[1].Old[1].Text != "a@x") {
		t.Errorf("FULL identity update without complete old tuple: %+v", u[1].Old)
	}
}

// TestRunKeepsOrderUnderThrottling runs capture against the in-test Kinesis
// endpoint failing 30% of PutRecords entries and some whole requests.
func TestRunKeepsOrderUnderThrottling(t *testing.T) {
	for _, format := range []string{"v1", "v2"} {
		t.Run(format, func(t *testing.T) {
			pg, url := setupDB(t, `CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)`)
			fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 4, ThrottleFraction: 0.3, ThrottleRequestFraction: 0.05, ServerErrorFraction: 0.05, Seed: 7})
			p := startCapture(t, append(awsEnv(fk.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_RECORD_FORMAT="+format))
			const keys, rounds = 50, 40
			pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO counters SELECT g, 0 FROM generate_series(1, %d) g`, keys))
			for r := 0; r < rounds; r++ {
				pg.Exec(t, "app", fmt.Sprintf(`UPDATE counters SET n = n + 1 WHERE id %% %d = %d`, 1+r%3, r%(1+r%3)))
			}
			waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
			p.stop(t)
			if st := fk.Stats(); st.Throttled == 0 || st.RequestErrors == 0 {
				t.Fatalf("the endpoint injected no failures: %+v", st)
			}
			byKey := map[string][]change.Change{}
			for _, r := range fk.Records() {
				rec, err := change.Decode(r.Data)
				if err != nil {
					t.Fatal(err)
				}
				if want := map[string]int{"v1": change.Version, "v2": change.Version2}[format]; rec.Version != want {
					t.Fatalf("a version %d record, want %d", rec.Version, want)
				}
				for _, c := range rec.Changes {
					key := change.PartitionKey(&c)
					byKey[key] = append(byKey[key], c)
				}
			}
			checkCounters(t, dedupe(t, byKey), keys, nil)
		})
	}
}

// checkCounters: each counter row's changes, in stream order, are its insert
// then updates with n = 1, 2, 3, ... and nothing missing (final value from
// want when given).
func checkCounters(t *testing.T, byKey map[string][]change.Change, keys int, want map[int]int) {
	t.Helper()
	for id := 1; id <= keys; id++ {
		cs := byKey["public.counters/"+strconv.Itoa(id)]
		if len(cs) == 0 || cs[0].Op != change.Insert {
			t.Fatalf("counter %d: no insert first (%d changes)", id, len(cs))
		}
		for i, c := range cs {
			if n, _ := strconv.Atoi(c.New[1].Text); n != i {
				t.Fatalf("counter %d: change %d has n=%s, want %d (lost or reordered)", id, i, c.New[1].Text, i)
			}
		}
		if want != nil && len(cs)-1 != want[id] {
			t.Fatalf("counter %d: %d updates in the stream, %d committed", id, len(cs)-1, want[id])
		}
	}
}

// TestCrashSafety kills capture with SIGKILL at random moments while a
// writer commits transactions; every committed change must be in the stream
// at least once and in per-key order.
func TestCrashSafety(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)`)
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 4)
	env := append(awsEnv(k.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_STATUS_INTERVAL=100ms")
	const keys = 40
	pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO counters SELECT g, 0 FROM generate_series(1, %d) g`, keys))

	stopWriter := startCounterWriter(t, url, keys, 6000)

	rng := rand.New(rand.NewPCG(3, 4))
	const kills = 20
	for i := 0; i < kills; i++ {
		p := startCapture(t, env)
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond) // a random moment to crash at
		p.kill()
	}
	committed, total := stopWriter()
	// A last, clean run catches up; then SIGTERM drains and confirms.
	p := startCapture(t, env)
	waitConfirmed(t, url, currentLSN(t, url), 3*time.Minute)
	p.stop(t)

	t.Logf("%d kills; %d committed updates over %d rows", kills, total, keys)
	checkCounters(t, dedupe(t, streamChanges(t, k.URL, "changes")), keys, committed)
}

// startCounterWriter commits transactions of 1-5 increments of random
// counters (ids 1..keys) until stopped or maxTxns transactions (bounded so
// that the final catch-up stays quick on a loaded machine); stop returns how
// many increments of each counter were committed, and their total.
func startCounterWriter(t *testing.T, url string, keys, maxTxns int) (stop func() (map[int]int, int)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	committed := map[int]int{}
	done := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(context.Background())
		rng := rand.New(rand.NewPCG(1, 2))
		for txns := 0; ctx.Err() == nil && txns < maxTxns; txns++ {
			tx, err := conn.Begin(context.Background())
			if err != nil {
				done <- err
				return
			}
			ids := map[int]bool{}
			for i := 0; i < 1+rng.IntN(5); i++ {
				id := 1 + rng.IntN(keys)
				if ids[id] {
					continue
				}
				ids[id] = true
				if _, err := tx.Exec(context.Background(), `UPDATE counters SET n = n + 1 WHERE id = $1`, id); err != nil {
					done <- err
					return
				}
			}
			if err := tx.Commit(context.Background()); err != nil {
				done <- err
				return
			}
			for id := range ids {
				committed[id]++
			}
		}
		done <- nil
	}()
	return func() (map[int]int, int) {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("writer: %v", err)
		}
		total := 0
		for _, n := range committed {
			total += n
		}
		return committed, total
	}
}

// TestLargeTransactionMemory streams a 1,000,000-row transaction and reads
// capture's peak resident set (VmHWM) from /proc.
func TestLargeTransactionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1M-row transaction; run without -short")
	}
	pg, url := setupDB(t, `CREATE TABLE big (id int PRIMARY KEY, payload text)`)
	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes", Shards: 4, Discard: true})
	addr := freeAddr(t)
	p := startCapture(t, append(awsEnv(fk.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_METRICS_ADDR="+addr, "WALBRIDGE_LOG_LEVEL=debug"))
	pg.Exec(t, "app", `INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 1000000) g`)
	waitConfirmed(t, url, currentLSN(t, url), 5*time.Minute)
	hwm := peakRSS(t, p.cmd.Process.Pid)
	metrics := metricsLines(t, "http://"+addr+"/metrics")
	acked := counter(t, metrics, "walbridge_kinesis_changes_total")
	// capture's series, and the process and Go runtime ones beside them.
	for _, prefix := range []string{"walbridge_changes_total{", "walbridge_kinesis_records_total ", "walbridge_confirmed_lsn ",
		"walbridge_commit_to_ack_seconds_bucket{", "walbridge_kinesis_buffered_bytes ", "process_resident_memory_bytes ", "process_cpu_seconds_total ",
		"go_goroutines ", "go_gc_duration_seconds"} {
		if !slices.ContainsFunc(metrics, func(l string) bool { return strings.HasPrefix(l, prefix) }) {
			t.Errorf("/metrics has no %s... series", prefix)
		}
	}
	for _, l := range metrics {
		if strings.Contains(l, "retries_total{") || strings.Contains(l, "records_total ") || strings.Contains(l, "reconnects") {
			t.Log(l)
		}
	}
	t.Logf("fake before stop: %+v", fk.Stats())
	p.stop(t)
	// Records may pack several changes of one key, so count changes.
	if acked != 1000000 {
		t.Fatalf("capture confirmed the transaction with %v changes acknowledged, want 1,000,000 (%d records accepted)", acked, fk.Stats().Accepted)
	}
	t.Logf("capture peak RSS (VmHWM) over a 1,000,000-row transaction: %.1f MiB (%d Kinesis records)", float64(hwm)/(1<<20), fk.Stats().Accepted)
	if hwm > 100<<20 {
		t.Fatalf("peak RSS %.1f MiB, want under 100 MiB", float64(hwm)/(1<<20))
	}
}

// metricsLines fetches a Prometheus text endpoint, a line each.
func metricsLines(tb testing.TB, url string) []string {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read %s: %v", url, err)
	}
	return strings.Split(string(body), "\n")
}

// counter is the value of an unlabelled counter among metrics lines.
func counter(tb testing.TB, lines []string, name string) float64 {
	tb.Helper()
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return f
		}
	}
	tb.Fatalf("no %s among the metrics", name)
	return 0
}

func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

func TestSetupRefusesKeylessTables(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE events (at timestamptz, what text)`, `CREATE TABLE users (id int PRIMARY KEY)`)
	env := map[string]string{"DATABASE_URL": url}
	code, out := runCmd(t, env, "setup")
	if code == 0 || !strings.Contains(out, "public.events") || !strings.Contains(out, "--keyless=full") || !strings.Contains(out, "--keyless=exclude") {
		t.Fatalf("setup with a keyless table: exit %d\n%s", code, out)
	}
	// Nothing was created: the application keeps working.
	pg.Exec(t, "app", `INSERT INTO events VALUES (now(), 'x')`, `UPDATE events SET what = 'y'`)
	code, out = runCmd(t, env, "status", "--json", "--no-stream")
	if code != 0 || !strings.Contains(out, `"publicationExists": false`) {
		t.Fatalf("status after refused setup: %d\n%s", code, out)
	}

	if code, out := runCmd(t, env, "setup", "--keyless=exclude"); code != 0 || !strings.Contains(out, "tables created later are not captured") {
		t.Fatalf("setup --keyless=exclude: %d\n%s", code, out)
	}
	pg.Exec(t, "app", `UPDATE events SET what = 'z'`) // would fail with SQLSTATE 55000 if published
	code, out = runCmd(t, env, "status")
	if code != 0 || !strings.Contains(out, "public.users") || strings.Contains(out, "DANGER") {
		t.Fatalf("status after exclude: %d\n%s", code, out)
	}
	// Idempotent.
	if code, out := runCmd(t, env, "setup", "--keyless=exclude"); code != 0 || !strings.Contains(out, "exists") {
		t.Fatalf("second setup: %d\n%s", code, out)
	}
}

func TestSetupEventTriggerProtectsNewTables(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	env := map[string]string{"DATABASE_URL": url}
	if code, out := runCmd(t, env, "setup", "--keyless=full", "--event-trigger"); code != 0 {
		t.Fatalf("setup: %d\n%s", code, out)
	}
	// A migration creates a keyless table: UPDATE must keep working.
	pg.Exec(t, "app", `CREATE TABLE later (v text)`, `INSERT INTO later VALUES ('a')`, `UPDATE later SET v = 'b'`, `DELETE FROM later`)
	code, out := runCmd(t, env, "status", "--json", "--no-stream")
	if code != 0 || !strings.Contains(out, `"brokenTables": null`) {
		t.Fatalf("status: %d\n%s", code, out)
	}
}

func TestStatusShoutsAboutBrokenTables(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	env := map[string]string{"DATABASE_URL": url}
	if code, out := runCmd(t, env, "setup"); code != 0 {
		t.Fatalf("setup: %d\n%s", code, out)
	}
	pg.Exec(t, "app", `CREATE TABLE oops (v text)`) // no event trigger: now published and keyless
	code, out := runCmd(t, env, "status")
	if code != 0 || !strings.Contains(out, "DANGER") || !strings.Contains(out, "public.oops") {
		t.Fatalf("status: %d\n%s", code, out)
	}
}

func TestSetupExplainsWalLevel(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{WALLevel: "replica"})
	code, out := runCmd(t, map[string]string{"DATABASE_URL": pg.URL("postgres")}, "setup")
	if code == 0 || !strings.Contains(out, "wal_level") || !strings.Contains(out, "ALTER SYSTEM SET wal_level = logical") || !strings.Contains(out, "rds.logical_replication") {
		t.Fatalf("setup on wal_level=replica: exit %d\n%s", code, out)
	}
}

func TestTeardown(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	env := map[string]string{"DATABASE_URL": url}
	if code, out := runCmd(t, env, "setup"); code != 0 {
		t.Fatalf("setup: %d\n%s", code, out)
	}
	if code, out := runCmd(t, env, "teardown"); code != 2 || !strings.Contains(out, "--yes") {
		t.Fatalf("teardown without --yes: %d\n%s", code, out)
	}
	if confirmedLSN(t, url) == 0 {
		t.Fatalf("slot gone after a refused teardown")
	}
	if code, out := runCmd(t, env, "teardown", "--yes", "--drop-publication"); code != 0 || !strings.Contains(out, "dropped replication slot walbridge") {
		t.Fatalf("teardown: %d\n%s", code, out)
	}
	code, out := runCmd(t, env, "status", "--json", "--no-stream")
	if code != 0 || !strings.Contains(out, `"exists": false`) || !strings.Contains(out, `"publicationExists": false`) {
		t.Fatalf("status after teardown: %s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"run"}, 2, "DATABASE_URL"},
		{[]string{"run", "--database-url", "postgres://x/y"}, 2, "WALBRIDGE_STREAM"},
		{[]string{"setup", "--keyless", "maybe", "--database-url", "postgres://x/y"}, 2, "full or exclude"},
		{[]string{"status", "--bogus"}, 2, "bogus"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &out); code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("capture %v: exit %d, want %d with %q\n%s", tc.args, code, tc.code, tc.want, out.String())
		}
	}
}

// TestSetupFailover: --failover creates a failover slot on PostgreSQL 17+,
// and on older servers is refused with the version it needs.
func TestSetupFailover(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE t (id int PRIMARY KEY)`)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	version := serverVersion(t, url)
	env := map[string]string{"DATABASE_URL": url}
	code, out := runCmd(t, env, "setup", "--failover")
	if version < 17 {
		want := fmt.Sprintf("PostgreSQL 17 or later, and this server runs %d", version)
		if code == 0 || !strings.Contains(out, want) || !strings.Contains(out, "Leave --failover out") {
			t.Fatalf("setup --failover on PostgreSQL %d: exit %d\n%s", version, code, out)
		}
		var slots int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil || slots != 0 {
			t.Fatalf("%d slots after the refusal (%v)", slots, err)
		}
		return
	}
	if code != 0 || !strings.Contains(out, "(pgoutput, failover)") {
		t.Fatalf("setup --failover on PostgreSQL %d: exit %d\n%s", version, code, out)
	}
	var failover bool
	if err := conn.QueryRow(ctx, `SELECT failover FROM pg_replication_slots WHERE slot_name = 'walbridge'`).Scan(&failover); err != nil || !failover {
		t.Fatalf("slot failover = %v (%v)", failover, err)
	}
	if code, out := runCmd(t, env, "status", "--json", "--no-stream"); code != 0 || !strings.Contains(out, `"failover": true`) {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
}
