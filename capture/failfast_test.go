package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/kinesistest"
)

// TestRunFailsFastBeforeAFirstSession: what retrying cannot fix before any
// session has streamed ends capture run at once, non-zero, with the error
// and one line naming the setting to fix, and no secret in the output; a
// refused connection is retried, one line per attempt.
func TestRunFailsFastBeforeAFirstSession(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	pg.Exec(t, "app", `CREATE ROLE norepl LOGIN PASSWORD 'right-password'`, `CREATE ROLE repl LOGIN REPLICATION PASSWORD 'right-password'`)
	// Passwords count for these two roles only; the rest stays trust.
	hba := filepath.Join(pg.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	rules := "host all norepl,repl 127.0.0.1/32 scram-sha-256\nhost replication norepl,repl 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(hba, append([]byte(rules), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	pg.Exec(t, "app", `SELECT pg_reload_conf()`)
	fk := kinesistest.StartFake(t, kinesistest.FakeOptions{Stream: "changes"})
	at := func(userinfo, db string) string {
		return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", userinfo, pg.Port, db)
	}
	for _, tc := range []struct {
		name   string
		url    string
		env    []string
		want   []string
		secret string
	}{
		{"wrong password", at("repl:wrong-password-123", "app"), nil,
			[]string{"PostgreSQL refused the login", "Fix the user and password in DATABASE_URL"}, "wrong-password-123"},
		{"no such database", at("postgres", "nope"), nil,
			[]string{"the database does not exist", "Fix the database name at the end of DATABASE_URL"}, ""},
		{"no replication right", at("norepl:right-password", "app"), nil,
			[]string{"the role may not start logical replication", "ALTER ROLE <user> REPLICATION"}, "right-password"},
		{"no publication", url, []string{"WALBRIDGE_PUBLICATION=nope"},
			[]string{`publication "nope": the publication does not exist`, "Run capture setup first (with the same --publication)"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(captureBin, "run")
			cmd.Env = append(append(os.Environ(), awsEnv(fk.URL)...), append(tc.env, "DATABASE_URL="+tc.url, "WALBRIDGE_STREAM=changes")...)
			start := time.Now()
			timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
			defer timer.Stop()
			out, err := cmd.CombinedOutput()
			if err == nil || cmd.ProcessState.ExitCode() != 1 {
				t.Fatalf("exit %v after %s, want status 1:\n%s", err, time.Since(start), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Fatalf("no %q in:\n%s", w, out)
				}
			}
			if tc.secret != "" && strings.Contains(string(out), tc.secret) {
				t.Fatalf("the password is in capture's output:\n%s", out)
			}
			t.Logf("exit after %s", time.Since(start).Round(time.Millisecond))
		})
	}

	// AWS: no region, no credentials. An EC2 metadata endpoint that refuses
	// everything stands in for a machine off EC2; the SDK's IMDS fallback
	// chatter stays below info.
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	defer imds.Close()
	var bare []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			bare = append(bare, kv)
		}
	}
	bare = append(bare, "AWS_CONFIG_FILE=/nonexistent", "AWS_SHARED_CREDENTIALS_FILE=/nonexistent", "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL,
		"DATABASE_URL="+url, "WALBRIDGE_STREAM=changes")
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"no AWS region", nil, []string{"no AWS region configured", "Set AWS_REGION", "AWS_ENDPOINT_URL_KINESIS"}},
		{"no AWS credentials", []string{"AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_KINESIS=" + fk.URL}, []string{"no AWS credentials found", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(captureBin, "run")
			cmd.Env = append(append([]string(nil), bare...), tc.env...)
			timer := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
			defer timer.Stop()
			out, err := cmd.CombinedOutput()
			if err == nil || cmd.ProcessState.ExitCode() != 1 {
				t.Fatalf("exit %v, want status 1:\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Fatalf("no %q in:\n%s", w, out)
				}
			}
			if lines := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; lines != 2 || strings.Contains(string(out), "falling back to IMDSv1") {
				t.Fatalf("want the error and its advice, two lines, got %d:\n%s", lines, out)
			}
		})
	}

	t.Run("refused connection is retried", func(t *testing.T) {
		p := startCapture(t, append(awsEnv(fk.URL), "DATABASE_URL=postgres://postgres@127.0.0.1:1/app?sslmode=disable", "WALBRIDGE_STREAM=changes"))
		p.waitLog(t, "cannot start a replication session yet; retrying", 2, 30*time.Second)
		p.cmd.Process.Signal(syscall.SIGTERM)
		if err := <-p.done; err != nil {
			t.Fatalf("exit %v after SIGTERM:\n%s", err, p.logs.String())
		}
		p.done <- nil
	})
}
