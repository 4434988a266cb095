package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/pgtest"
)

const leakPolicy = `columns:
  - match: public.users.password_digest
    action: exclude
  - match: "*.*.*_token"
    action: exclude
  - match: public.users.email
    action: hash
  - match: public.users.ssn
    action: redact
`

// secrets are values that must appear nowhere downstream of capture.
var secrets = []string{"pbkdf2-SECRET-1", "pbkdf2-SECRET-2", "tok-SECRET-a", "tok-SECRET-b", "reset-SECRET-x",
	"111-11-1111", "222-22-2222", "ada@example.com", "ada@analytical.example", "bob@example.com"}

// withheldNames are column names that must appear nowhere downstream.
var withheldNames = []string{"password_digest", "api_token", "reset_token"}

func hmacHex(key, text string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(text))
	return hex.EncodeToString(m.Sum(nil))
}

func checkNoLeak(t *testing.T, where string, data []byte) {
	t.Helper()
	for _, s := range append(append([]string(nil), secrets...), withheldNames...) {
		if strings.Contains(string(data), s) {
			t.Errorf("%s contains %q", where, s)
		}
	}
}

// TestPolicyLeak runs PostgreSQL -> capture -> the Kinesis emulator ->
// fanout (its binary, "fanout poll") -> the in-test EventBridge (the local
// bus's PutEvents), every part logging at debug level, with a policy that
// excludes, hashes and redacts. No excluded column's name or value, no
// redacted value and no hashed value in clear may appear in the records'
// bytes, the delivered events, or either log; hashes are the HMAC-SHA256
// computed here, the same after a restart; a column added by a migration
// while streaming is excluded from its first change.
func TestPolicyLeak(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE users (id int PRIMARY KEY, email text, password_digest text, api_token text, ssn text, name text)`,
		`ALTER TABLE users REPLICA IDENTITY FULL`)
	dir := t.TempDir()
	polFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(polFile, []byte(leakPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	const key = "test-hash-key"
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 2)
	env := append(awsEnv(k.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_LOG_LEVEL=debug",
		"WALBRIDGE_POLICY="+polFile, "WALBRIDGE_HASH_KEY="+key)

	p := startCapture(t, env)
	pg.Exec(t, "app",
		`INSERT INTO users VALUES (1, 'ada@example.com', 'pbkdf2-SECRET-1', 'tok-SECRET-a', '111-11-1111', 'Ada')`,
		`UPDATE users SET email = 'ada@analytical.example' WHERE id = 1`,
		`UPDATE users SET password_digest = 'pbkdf2-SECRET-2', api_token = 'tok-SECRET-b' WHERE id = 1`, // only excluded columns
		`UPDATE users SET ssn = '222-22-2222' WHERE id = 1`,
		`ALTER TABLE users ADD COLUMN reset_token text`,
		`INSERT INTO users VALUES (2, 'bob@example.com', 'pbkdf2-SECRET-1', NULL, NULL, 'Bob', 'reset-SECRET-x')`,
	)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
	p.stop(t)
	first := p.logs.String()

	// A restart: the same key gives the same hashes.
	p = startCapture(t, env)
	pg.Exec(t, "app", `UPDATE users SET name = 'Ada L' WHERE id = 1`, `DELETE FROM users WHERE id = 2`)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
	p.stop(t)
	checkNoLeak(t, "capture's debug log", []byte(first+p.logs.String()))

	// The records, byte for byte.
	var changes []change.Change
	for _, recs := range kinesistest.ReadAll(t, kinesistest.Client(t, k.URL), "changes") {
		for _, r := range recs {
			plain, err := change.Plain(r.Data) // a v2 record may be compressed
			if err != nil {
				t.Fatal(err)
			}
			checkNoLeak(t, "a Kinesis record", plain)
			rec, err := change.Decode(r.Data)
			if err != nil {
				t.Fatal(err)
			}
			changes = append(changes, rec.Changes...)
		}
	}
	hashes := map[string]bool{}
	var sawRedacted, sawChangedRedaction bool
	for _, c := range changes {
		if c.Table != "users" {
			continue
		}
		var names []string
		for i, col := range c.Columns {
			names = append(names, col.Name)
			for _, tuple := range [][]change.Value{c.New, c.Old} {
				if tuple == nil || (c.OldIsKey && &tuple[0] == &c.Old[0]) {
					continue
				}
				switch col.Name {
				case "email":
					if tuple[i].State == change.Text {
						hashes[tuple[i].Text] = true
					}
				case "ssn":
					if tuple[i].State == change.Redacted {
						sawRedacted = true
						sawChangedRedaction = sawChangedRedaction || tuple[i].Changed
					} else if tuple[i].State != change.Null {
						t.Errorf("ssn slot %+v, want a redacted marker", tuple[i])
					}
				}
			}
		}
		if got := strings.Join(names, ","); got != "id,email,ssn,name" {
			t.Errorf("%s at %s: columns %s, want id,email,ssn,name", c.Op, c.LSN, got)
		}
	}
	for _, want := range []string{hmacHex(key, "ada@example.com"), hmacHex(key, "ada@analytical.example"), hmacHex(key, "bob@example.com")} {
		if !hashes[want] {
			t.Errorf("hash %s not among the records' email values %v", want, hashes)
		}
	}
	if len(hashes) != 3 {
		t.Errorf("%d distinct email hashes across both runs, want 3 (stable across the restart)", len(hashes))
	}
	if !sawRedacted || !sawChangedRedaction {
		t.Errorf("redacted markers seen %v, one marked changed %v", sawRedacted, sawChangedRedaction)
	}

	// fanout, as a process, to the in-test EventBridge.
	eb := eventbridgetest.Start(t, eventbridgetest.Options{})
	fanoutBin := buildFanout(t)
	cmd := exec.Command(fanoutBin, "poll", "-stream", "changes", "-idle-exit", "-poll-interval", "20ms", "-on-failure", filepath.Join(dir, "failures.jsonl"))
	cmd.Env = append(os.Environ(), "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_KINESIS="+k.URL, "AWS_ENDPOINT_URL_EVENTBRIDGE="+eb.URL, "WALBRIDGE_LOG_LEVEL=debug", "AWS_LAMBDA_RUNTIME_API=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fanout poll: %v\n%s", err, logs)
	}
	checkNoLeak(t, "fanout's debug log", logs)
	events := eb.Events()
	if len(events) < 7 {
		t.Fatalf("%d events delivered, want at least 7", len(events))
	}
	var redactedEvent bool
	for _, ev := range events {
		checkNoLeak(t, "a delivered event", []byte(ev.Detail))
		var d struct {
			NewValues map[string]json.RawMessage `json:"newValues"`
		}
		json.Unmarshal([]byte(ev.Detail), &d)
		if v, ok := d.NewValues["ssn"]; ok && strings.Contains(string(v), `"redacted":true`) {
			redactedEvent = true
		}
	}
	if !redactedEvent {
		t.Error(`no event carries ssn as {"type":...,"redacted":true}`)
	}
}

// TestPolicyReload: SIGHUP applies a new rule from the next change on; a
// broken file is refused, named with its line, and the old policy stays.
func TestPolicyReload(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE notes (id int PRIMARY KEY, body text)`)
	dir := t.TempDir()
	polFile := filepath.Join(dir, "policy.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(polFile, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("columns: []\n")
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 1)
	p := startCapture(t, append(awsEnv(k.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_POLICY="+polFile))
	waitLog := func(what string, n int) {
		t.Helper()
		p.waitLog(t, what, n, 30*time.Second)
	}
	waitLog("streaming", 1)
	pg.Exec(t, "app", `INSERT INTO notes VALUES (1, 'before')`)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)

	write("columns:\n  - match: public.notes.body\n    action: redact\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog("column policy reloaded", 1)
	pg.Exec(t, "app", `INSERT INTO notes VALUES (2, 'after')`)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)

	write("columns:\n  - match: public.notes.body\n    action: shred\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog("column policy not reloaded", 1)
	pg.Exec(t, "app", `INSERT INTO notes VALUES (3, 'still')`)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
	p.stop(t)
	if logs := p.logs.String(); !strings.Contains(logs, polFile+":2: action") {
		t.Errorf("the refusal does not name file and line:\n%s", logs)
	}

	got := map[string]change.Value{}
	for _, cs := range streamChanges(t, k.URL, "changes") {
		for _, c := range cs {
			got[c.New[0].Text] = c.New[1]
		}
	}
	if v := got["1"]; v.State != change.Text || v.Text != "before" {
		t.Errorf("row 1 (before the reload): %+v", v)
	}
	for _, id := range []string{"2", "3"} {
		if v := got[id]; v.State != change.Redacted {
			t.Errorf("row %s (after the reload): %+v, want redacted", id, v)
		}
	}
}

// TestSetupWarnsAboutSensitiveColumns: setup lists published columns that
// look sensitive until a rule covers them; --strict-policy refuses.
func TestSetupWarnsAboutSensitiveColumns(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE users (id int PRIMARY KEY, email text, password_digest text)`)
	env := map[string]string{"DATABASE_URL": url}
	code, out := runCmd(t, env, "setup", "--strict-policy")
	if code == 0 || !strings.Contains(out, "public.users.password_digest") || !strings.Contains(out, "{match: public.users.password_digest, action: exclude}") {
		t.Fatalf("setup --strict-policy without a policy: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, env, "status", "--no-stream"); code != 0 || strings.Contains(out, "password_digest") {
		t.Fatalf("status before setup: exit %d\n%s", code, out) // nothing is published yet
	}
	code, out = runCmd(t, env, "setup")
	if code != 0 || !strings.Contains(out, "public.users.password_digest") {
		t.Fatalf("setup without --strict-policy: exit %d\n%s", code, out)
	}
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(polFile, []byte("columns:\n  - match: \"*.*.password_*\"\n    action: exclude\n"), 0o644)
	code, out = runCmd(t, env, "setup", "--strict-policy", "--policy", polFile)
	if code != 0 || strings.Contains(out, "warning") {
		t.Fatalf("setup --strict-policy with a covering policy: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, env, "status", "--no-stream", "--policy", polFile)
	if code != 0 || !strings.Contains(out, "public.users.password_digest") || !strings.Contains(out, polFile+":2") || strings.Contains(out, "warning") {
		t.Fatalf("status with the policy: exit %d\n%s", code, out)
	}
}

// TestRunRefusesABrokenPolicy: a policy that does not parse, or hashes
// without a key, stops run at once with the file and line.
func TestRunRefusesABrokenPolicy(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("columns:\n  - match: public.users\n    action: exclude\n"), 0o644)
	hashes := filepath.Join(dir, "hashes.yaml")
	os.WriteFile(hashes, []byte("columns:\n  - match: public.users.email\n    action: hash\n"), 0o644)
	env := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none", "WALBRIDGE_STREAM": "changes", "WALBRIDGE_HASH_KEY": ""}
	if code, out := runCmd(t, env, "run", "--policy", bad); code == 0 || !strings.Contains(out, bad+":2: match") {
		t.Errorf("malformed policy: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, env, "run", "--policy", hashes); code == 0 || !strings.Contains(out, "WALBRIDGE_HASH_KEY") {
		t.Errorf("hash rules without a key: exit %d\n%s", code, out)
	}
}

// TestSetupLeavesSkippedTablesOut: a table the policy skips stays out of a
// table-list publication.
func TestSetupLeavesSkippedTablesOut(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE users (id int PRIMARY KEY)`, `CREATE TABLE audit (id int PRIMARY KEY)`)
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(polFile, []byte("tables:\n  - match: public.audit\n    action: skip\n"), 0o644)
	if code, out := runCmd(t, map[string]string{"DATABASE_URL": url}, "setup", "--tables", "public.users,public.audit", "--policy", polFile); code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, out)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), `SELECT tablename FROM pg_publication_tables WHERE pubname = 'walbridge' ORDER BY 1`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(tables, ",") != "users" {
		t.Errorf("published %v (%v), want users only", tables, err)
	}
}
