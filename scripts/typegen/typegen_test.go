package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walbridge/walbridge/shared/pgtest"
)

// TestRegenerateAfterMigration runs typegen against a real PostgreSQL
// (pgtest.Start): it writes a schema per published table and the
// TypeScript and Go types, and after ALTER TABLE ... ADD COLUMN and a table
// leaving the publication, a second run has the new column everywhere and
// removes the stale schema, but not a file typegen did not write.
func TestRegenerateAfterMigration(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app",
		"CREATE TYPE plan AS ENUM ('free', 'pro')",
		"CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, plan plan)",
		"CREATE TABLE orders (id bigint PRIMARY KEY, user_id int NOT NULL, total numeric(10,2))",
		"CREATE TABLE audit (id int)",
		"CREATE PUBLICATION walbridge FOR TABLE users, orders",
	)
	out := t.TempDir()
	handWritten := filepath.Join(out, "notes.schema.json")
	if err := os.WriteFile(handWritten, []byte(`{"title": "mine"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	gen := func() {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"--database-url", url, "--out", out, "--package", "appevents"}, &stdout, &stderr); code != exitOK {
			t.Fatalf("typegen exited %d: %s%s", code, stdout.String(), stderr.String())
		}
	}
	// --check: what a consumer's CI runs; 0 while the bindings match.
	check := func() (int, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"--database-url", url, "--out", out, "--package", "appevents", "--check"}, &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	gen()
	if code, msg := check(); code != exitOK || !strings.Contains(msg, "match") {
		t.Fatalf("--check right after generating: exit %d: %s", code, msg)
	}
	if got, want := schemaFiles(t, out), []string{"notes.schema.json", "public.orders.schema.json", "public.users.schema.json"}; !slices.Equal(got, want) {
		t.Fatalf("schema files %v, want %v", got, want)
	}
	users := readSchema(t, filepath.Join(out, "public.users.schema.json"))
	if got := users.columns(); !slices.Equal(got, []string{"id", "email", "plan"}) {
		t.Errorf("public.users columns %v", got)
	}
	goSrc := readString(t, filepath.Join(out, "events.go"))
	if !strings.Contains(goSrc, "package appevents") || !strings.Contains(goSrc, "type PublicOrdersDetail struct") {
		t.Errorf("events.go lacks the package or the orders struct:\n%s", goSrc)
	}
	ts := readString(t, filepath.Join(out, "events.ts"))
	if !strings.Contains(ts, `plan: Value<"enum", "free" | "pro" | null>;`) {
		t.Errorf("events.ts does not type plan by its labels:\n%s", ts)
	}

	pg.Exec(t, "app",
		"ALTER TABLE users ADD COLUMN signed_up_at timestamptz NOT NULL DEFAULT now()",
		"ALTER PUBLICATION walbridge DROP TABLE orders",
	)
	before := readString(t, filepath.Join(out, "events.ts"))
	code, msg := check()
	if code != exitError || !strings.Contains(msg, "events.ts") || !strings.Contains(msg, "public.users.schema.json") || !strings.Contains(msg, "public.orders.schema.json (table gone)") {
		t.Errorf("--check after the migration: exit %d: %s", code, msg)
	}
	if readString(t, filepath.Join(out, "events.ts")) != before {
		t.Error("--check wrote files")
	}
	gen()
	if code, msg := check(); code != exitOK {
		t.Errorf("--check after regenerating: exit %d: %s", code, msg)
	}
	if got, want := schemaFiles(t, out), []string{"notes.schema.json", "public.users.schema.json"}; !slices.Equal(got, want) {
		t.Errorf("after the migration: schema files %v, want %v", got, want)
	}
	users = readSchema(t, filepath.Join(out, "public.users.schema.json"))
	if got := users.columns(); !slices.Equal(got, []string{"id", "email", "plan", "signed_up_at"}) {
		t.Errorf("after ALTER TABLE: public.users columns %v", got)
	}
	if ts := readString(t, filepath.Join(out, "events.ts")); !strings.Contains(ts, `signed_up_at: Value<"timestamptz", string>;`) || strings.Contains(ts, "PublicOrders") {
		t.Errorf("events.ts after the migration:\n%s", ts)
	}
	if goSrc := readString(t, filepath.Join(out, "events.go")); !strings.Contains(goSrc, "SignedUpAt Value[string]") || strings.Contains(goSrc, "PublicOrders") {
		t.Errorf("events.go after the migration:\n%s", goSrc)
	}
}

func TestUsage(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	for _, args := range [][]string{nil, {"--database-url"}, {"--database-url", "postgres://x", "extra"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), "usage: typegen") {
			t.Errorf("%q: no usage on stderr: %s", args, stderr.String())
		}
	}
}

// TestDatabaseURLAndPublication: DATABASE_URL stands in for --database-url,
// and a publication named on the command line must exist.
func TestDatabaseURLAndPublication(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", "CREATE TABLE users (id int PRIMARY KEY)")
	t.Setenv("DATABASE_URL", url)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--out", out, "--publication", "nope"}, &stdout, &stderr); code != exitError ||
		!strings.Contains(stderr.String(), `publication "nope" does not exist`) {
		t.Fatalf("unknown --publication: exit %d\n%s", code, stderr.String())
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"--out", out}, &stdout, &stderr); code != exitOK {
		t.Fatalf("with DATABASE_URL and the default publication missing: exit %d\n%s", code, stderr.String())
	}
}

func TestFileName(t *testing.T) {
	for _, tc := range []struct{ schema, table, want string }{
		{"public", "users", "public.users.schema.json"},
		{"my.schema", "a/b", "my%2Eschema.a%2Fb.schema.json"},
		{"public", "Café", "public.Caf%C3%A9.schema.json"},
	} {
		if got := escape(tc.schema) + "." + escape(tc.table) + schemaSuffix; got != tc.want {
			t.Errorf("%s.%s: %s, want %s", tc.schema, tc.table, got, tc.want)
		}
	}
}

func schemaFiles(t *testing.T, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "*.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range matches {
		matches[i] = filepath.Base(m)
	}
	slices.Sort(matches)
	return matches
}

// eventSchema is the part of a generated schema the test reads.
type eventSchema struct {
	Defs struct {
		ColumnName struct {
			Enum []string `json:"enum"`
		} `json:"columnName"`
	} `json:"$defs"`
}

func (s eventSchema) columns() []string { return s.Defs.ColumnName.Enum }

func readSchema(t *testing.T, name string) eventSchema {
	t.Helper()
	var s eventSchema
	if err := json.Unmarshal([]byte(readString(t, name)), &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

func readString(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestPolicyShapesTypes: with --policy, excluded columns and skipped tables
// vanish from every generated file and hashed columns are strings.
func TestPolicyShapesTypes(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app",
		"CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, password_digest text, age int, ssn text)",
		"CREATE TABLE audit (id int PRIMARY KEY)",
		"CREATE PUBLICATION walbridge FOR TABLE users, audit",
	)
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	os.WriteFile(pol, []byte("columns:\n  - match: public.users.password_digest\n    action: exclude\n  - match: public.users.age\n    action: hash\n  - match: public.users.ssn\n    action: redact\ntables:\n  - match: public.audit\n    action: skip\n"), 0o644)
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--database-url", url, "--out", out, "--policy", pol}, &stdout, &stderr); code != exitOK {
		t.Fatalf("typegen exited %d: %s%s", code, stdout.String(), stderr.String())
	}
	if got := schemaFiles(t, out); !slices.Equal(got, []string{"public.users.schema.json"}) {
		t.Errorf("schema files %v: the skipped table should have none", got)
	}
	if got := readSchema(t, filepath.Join(out, "public.users.schema.json")).columns(); !slices.Equal(got, []string{"id", "email", "age", "ssn"}) {
		t.Errorf("public.users columns %v", got)
	}
	for _, f := range []string{"events.ts", "events.go", "public.users.schema.json"} {
		if s := readString(t, filepath.Join(out, f)); strings.Contains(s, "password_digest") || strings.Contains(s, "audit") {
			t.Errorf("%s names an excluded column or a skipped table", f)
		}
	}
	if ts := readString(t, filepath.Join(out, "events.ts")); !strings.Contains(ts, `age: Value<"string", string`) || !strings.Contains(ts, "redacted: true") {
		t.Errorf("events.ts: the hashed age is not a string, or no redacted marker:\n%s", ts)
	}
	var stderr2 bytes.Buffer
	os.WriteFile(pol, []byte("columns:\n  - match: users.age\n    action: hash\n"), 0o644)
	if code := run(context.Background(), []string{"--database-url", url, "--out", out, "--policy", pol}, &bytes.Buffer{}, &stderr2); code != exitUsage || !strings.Contains(stderr2.String(), pol+":2") {
		t.Errorf("a broken policy: exit %d, %s", code, stderr2.String())
	}
}
