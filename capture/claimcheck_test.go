package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/claimcheck"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/s3test"
)

// wideColumns is the wide table's column count: fifty 100 kB values make a
// row of 5 MB, five times a Kinesis record, with no value over the
// claim check's threshold.
const wideColumns = 50

// TestClaimCheckEndToEnd runs a 20 MB text value, a 5 MB jsonb document and
// a row of fifty 100 kB columns through capture (claim check on, S3 being
// the s3rver stand-in), the Kinesis emulator and fanout poll to the in-test
// EventBridge: no value is omitted anywhere, every record stays within
// Kinesis's limit, and every reference, in records and in events (resolved
// with claimcheck.Resolve, the consumer's helper), gives back exactly the
// text PostgreSQL has.
func TestClaimCheckEndToEnd(t *testing.T) {
	cols := make([]string, wideColumns)
	fill := make([]string, wideColumns)
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d text", i+1)
		// 100,000 bytes of hex, different in each column.
		fill[i] = fmt.Sprintf(`(SELECT string_agg(md5(g::text || '/%d'), '') FROM generate_series(1, 3125) g)`, i)
	}
	pg, url := setupDB(t,
		`CREATE TABLE docs (id int PRIMARY KEY, body text, doc jsonb)`,
		`CREATE TABLE wide (id int PRIMARY KEY, `+strings.Join(cols, ", ")+`)`,
	)
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 2)
	s3 := s3test.Start(t, "values")
	env := claimCheckEnv(k.URL, s3, url)
	p := startCapture(t, env)
	pg.Exec(t, "app",
		// 20,000,000 bytes of text; a 5 MB document of 90,000 objects.
		`INSERT INTO docs VALUES (1, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 625000) g),
			(SELECT jsonb_agg(jsonb_build_object('n', g, 'h', md5(g::text))) FROM generate_series(1, 90000) g))`,
		`INSERT INTO wide VALUES (1, `+strings.Join(fill, ", ")+`)`,
	)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	dbText := func(table, column string) string {
		t.Helper()
		var s string
		if err := conn.QueryRow(context.Background(), fmt.Sprintf(`SELECT %s::text FROM %s WHERE id = 1`, column, table)).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	insertedDoc := dbText("docs", "doc")
	pg.Exec(t, "app", `UPDATE docs SET doc = jsonb_set(doc, '{0,n}', '-1')`)
	waitConfirmed(t, url, currentLSN(t, url), 2*time.Minute)
	p.stop(t)
	// want is the database's text of a column as the change of op has it.
	want := func(table, column string, op change.Op) string {
		if table == "docs" && column == "doc" && op == change.Insert {
			return insertedDoc
		}
		return dbText(table, column)
	}
	if n := len(dbText("docs", "body")); n != 20_000_000 {
		t.Fatalf("the body is %d bytes, want 20,000,000", n)
	}
	client := s3test.Client(t, s3.URL)

	// The records: references in place of the large values, nothing
	// omitted, each object the database's text.
	byKey := dedupe(t, streamChanges(t, k.URL, "changes"))
	stored := map[string]int{}
	for _, key := range []string{"public.docs/1", "public.wide/1"} {
		table := strings.TrimSuffix(strings.TrimPrefix(key, "public."), "/1")
		if len(byKey[key]) == 0 {
			t.Fatalf("no changes of %s in the stream", key)
		}
		for _, c := range byKey[key] {
			for i, v := range c.New {
				col := c.Columns[i].Name
				switch v.State {
				case change.Omitted:
					t.Errorf("%s.%s omitted in a record", key, col)
				case change.Stored:
					stored[string(c.Op)+" "+table]++
					got, err := claimcheck.Fetch(context.Background(), client, *v.Ref, v.Size)
					if err != nil {
						t.Fatalf("%s.%s: %v", key, col, err)
					}
					if got != want(table, col, c.Op) {
						t.Errorf("%s %s.%s: the object (%d bytes) is not the database's text", c.Op, key, col, len(got))
					}
				}
			}
		}
	}
	t.Logf("values kept in S3 by capture: %v", stored)
	if stored["insert docs"] != 2 || stored["update docs"] != 1 || stored["insert wide"] < 40 {
		t.Errorf("values kept in S3: %v; want docs' body and doc, the updated doc, and at least 40 of wide's 50 columns", stored)
	}

	// fanout, as a process, to the in-test EventBridge, with its own claim
	// check for events over the PutEvents limit: a bus that takes 256 KiB
	// a request, so that the wide row's record (1 MiB) is too large as an
	// event.
	const busLimit = 256 << 10
	eb := eventbridgetest.Start(t, eventbridgetest.Options{MaxRequestBytes: busLimit})
	cmd := exec.Command(buildFanout(t), "poll", "-stream", "changes", "-idle-exit", "-poll-interval", "20ms", "-checkpoint", filepath.Join(t.TempDir(), "cp.json"))
	cmd.Env = append(append(os.Environ(), env...), "AWS_ENDPOINT_URL_EVENTBRIDGE="+eb.URL, "AWS_LAMBDA_RUNTIME_API=", fmt.Sprintf("WALBRIDGE_MAX_EVENT_BYTES=%d", busLimit))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fanout poll: %v\n%s", err, logs)
	}
	if !strings.Contains(string(logs), "largest values kept in S3") {
		t.Errorf("fanout kept no value of an event in S3:\n%s", logs)
	}
	events := eb.Events()
	if len(events) != 3 {
		t.Fatalf("%d events, want 3 (two inserts, an update)", len(events))
	}
	for _, ev := range events {
		if strings.Contains(ev.Detail, `"omitted"`) {
			t.Errorf("an event has an omitted marker")
		}
		resolved, err := claimcheck.Resolve(context.Background(), client, []byte(ev.Detail))
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Table     string
			Operation string
			NewValues map[string]struct {
				Value         json.RawMessage
				ValueEncoding string
			}
		}
		if err := json.Unmarshal(resolved, &d); err != nil {
			t.Fatal(err)
		}
		for col, v := range d.NewValues {
			if col == "id" || v.Value == nil { // the update's body: unchanged TOAST
				continue
			}
			want := want(d.Table, col, change.Op(d.Operation))
			var got string
			if d.Table == "docs" && col == "doc" && v.ValueEncoding == "" {
				got = string(v.Value) // embedded: compare as the document
				var a, b any
				json.Unmarshal([]byte(got), &a)
				json.Unmarshal([]byte(want), &b)
				if fmt.Sprint(a) != fmt.Sprint(b) {
					t.Errorf("%s %s.%s: the embedded document differs", d.Operation, d.Table, col)
				}
				continue
			}
			if err := json.Unmarshal(v.Value, &got); err != nil {
				t.Fatalf("%s.%s: %v", d.Table, col, err)
			}
			if got != want {
				t.Errorf("%s %s.%s: %d bytes resolved, not the database's %d", d.Operation, d.Table, col, len(got), len(want))
			}
		}
	}
}

// claimCheckEnv is capture's environment for the stream "changes" with the
// claim check on, into the bucket "values" of the S3 stand-in.
func claimCheckEnv(kinesisURL string, s3 *s3test.Server, dbURL string, extra ...string) []string {
	env := append(append(awsEnv(kinesisURL), s3.Env()...), "DATABASE_URL="+dbURL, "WALBRIDGE_STREAM=changes", "WALBRIDGE_CLAIM_CHECK_BUCKET=values")
	return append(env, extra...)
}

// checkStored fetches every reference in the stream's changes and checks
// each against the size and hash it names; it returns how many there were.
func checkStored(t *testing.T, client claimcheck.Getter, byKey map[string][]change.Change) int {
	t.Helper()
	n := 0
	for key, cs := range byKey {
		for _, c := range cs {
			for _, tuple := range [][]change.Value{c.New, c.Old} {
				for i, v := range tuple {
					if v.State == change.Omitted {
						t.Errorf("%s.%s omitted", key, c.Columns[i].Name)
					}
					if v.State != change.Stored {
						continue
					}
					n++
					if _, err := claimcheck.Fetch(context.Background(), client, *v.Ref, v.Size); err != nil {
						t.Errorf("%s.%s at %s: %v", key, c.Columns[i].Name, c.LSN, err)
					}
				}
			}
		}
	}
	return n
}

// TestClaimCheckWaitsForS3: with S3 down, capture retries the put with
// backoff and confirms nothing from the large change on, though later
// transactions commit, and a SIGTERM then stops it cleanly; with S3 back,
// the next capture sends everything.
func TestClaimCheckWaitsForS3(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE notes (id int PRIMARY KEY, body text)`)
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 1)
	s3 := s3test.Start(t, "values")
	env := claimCheckEnv(k.URL, s3, url, "WALBRIDGE_STATUS_INTERVAL=100ms")
	p := startCapture(t, env)
	p.waitLog(t, "streaming", 1, 30*time.Second)
	pg.Exec(t, "app", `INSERT INTO notes VALUES (1, 'small')`)
	waitConfirmed(t, url, currentLSN(t, url), 30*time.Second)

	s3.Stop()
	pg.Exec(t, "app", `INSERT INTO notes VALUES (2, repeat('x', 400000))`)
	large := currentLSN(t, url) // the end of the large change's commit
	for i := 3; i <= 5; i++ {
		pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO notes VALUES (%d, 'after')`, i))
	}
	p.waitLog(t, "claim check: S3 put failed; retrying", 3, 60*time.Second)
	if got := confirmedLSN(t, url); got >= large {
		t.Fatalf("the slot confirmed %s while S3 was down, past the large change's commit (%s)", got, large)
	}

	// SIGTERM while S3 is still down: a clean stop, nothing confirmed past
	// the large change; the next capture, with S3 back, sends it all.
	p.stop(t)
	if got := confirmedLSN(t, url); got >= large {
		t.Fatalf("the slot confirmed %s at shutdown, past the large change's commit (%s)", got, large)
	}
	s3.Restart(t)
	p = startCapture(t, env)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
	p.stop(t)
	byKey := dedupe(t, streamChanges(t, k.URL, "changes"))
	for id := 1; id <= 5; id++ {
		if n := len(byKey[fmt.Sprintf("public.notes/%d", id)]); n != 1 {
			t.Errorf("row %d: %d changes in the stream, want its insert", id, n)
		}
	}
	if n := checkStored(t, s3test.Client(t, s3.URL), byKey); n != 1 {
		t.Errorf("%d references in the stream, want row 2's body", n)
	}
}

// TestClaimCheckCrashSafety kills capture (SIGKILL) again and again while
// a writer commits rows with values large enough for S3, some of the kills
// falling between a value's put and its record's write: no record
// references an object that is not there, and every committed row arrives.
func TestClaimCheckCrashSafety(t *testing.T) {
	_, url := setupDB(t, `CREATE TABLE blobs (id int PRIMARY KEY, body text)`)
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 2)
	s3 := s3test.Start(t, "values")
	env := claimCheckEnv(k.URL, s3, url, "WALBRIDGE_CLAIM_CHECK_BYTES=10000", "WALBRIDGE_STATUS_INTERVAL=100ms")
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows := 0
	insert := func(n int) {
		for range n {
			rows++
			// 16,000 bytes, different in every row.
			if _, err := conn.Exec(context.Background(), `INSERT INTO blobs SELECT $1::int, string_agg(md5(g::text || '/' || $1::text), '') FROM generate_series(1, 500) g`, rows); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each kill comes the moment a new object appears in S3: most often
	// after a value's put and before its record's write.
	const kills = 6
	for range kills {
		p := startCapture(t, env)
		p.waitLog(t, "streaming", 1, 30*time.Second)
		seen := s3.Objects("values")
		done := make(chan struct{})
		go func() { defer close(done); insert(30) }()
		deadline := time.Now().Add(time.Minute)
		for s3.Objects("values") == seen && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		p.kill()
		<-done
	}
	p := startCapture(t, env)
	waitConfirmed(t, url, currentLSN(t, url), 2*time.Minute)
	p.stop(t)

	byKey := dedupe(t, streamChanges(t, k.URL, "changes"))
	for id := 1; id <= rows; id++ {
		if len(byKey[fmt.Sprintf("public.blobs/%d", id)]) != 1 {
			t.Fatalf("row %d: %d inserts in the stream, want 1", id, len(byKey[fmt.Sprintf("public.blobs/%d", id)]))
		}
	}
	n := checkStored(t, s3test.Client(t, s3.URL), byKey)
	t.Logf("%d kills; %d rows committed, each in the stream with its body in S3 (%d references checked)", kills, rows, n)
	if n != rows {
		t.Errorf("%d references, want one per row (%d)", n, rows)
	}
}
