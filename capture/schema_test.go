package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/event"
	"github.com/walbridge/walbridge/shared/kinesistest"
)

// TestSchemaChangeEvents: ADD, RENAME, ALTER TYPE and DROP of a column
// while capture streams give one schema-change record each, on the table's
// schema partition key, in order, before the first change with the new
// shape; a restart without DDL gives none (the confirmed shapes survive it
// in walbridge.schema_shapes); fanout publishes each as one
// DatabaseSchemaChange event; WALBRIDGE_PUBLISH_SCHEMA_CHANGES=false turns
// them off in capture.
func TestSchemaChangeEvents(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE items (id int PRIMARY KEY, name text, n int)`)
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 2)
	env := append(awsEnv(k.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_STATUS_INTERVAL=100ms")

	p := startCapture(t, env)
	p.waitLog(t, "streaming", 1, 40*time.Second)
	pg.Exec(t, "app", `INSERT INTO items VALUES (1, 'a', 1)`,
		`ALTER TABLE items ADD COLUMN note text`, `INSERT INTO items VALUES (2, 'b', 2, 'x')`,
		`ALTER TABLE items RENAME COLUMN name TO title`, `UPDATE items SET title = 'c' WHERE id = 1`,
		`ALTER TABLE items ALTER COLUMN n TYPE bigint`, `INSERT INTO items VALUES (3, 'd', 3, 'y')`,
		`ALTER TABLE items DROP COLUMN note`, `INSERT INTO items VALUES (4, 'e', 4)`)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
	p.stop(t)

	// A restart without DDL: PostgreSQL sends the Relation message again,
	// and nothing changed.
	p = startCapture(t, env)
	p.waitLog(t, "streaming", 1, 40*time.Second)
	pg.Exec(t, "app", `INSERT INTO items VALUES (5, 'f', 5)`)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
	p.stop(t)
	// And with schema changes off, a DDL gives nothing either.
	p = startCapture(t, append(env, "WALBRIDGE_PUBLISH_SCHEMA_CHANGES=false"))
	p.waitLog(t, "streaming", 1, 40*time.Second)
	pg.Exec(t, "app", `ALTER TABLE items ADD COLUMN extra int`, `INSERT INTO items VALUES (6, 'g', 6, 6)`)
	waitConfirmed(t, url, currentLSN(t, url), 60*time.Second)
	p.stop(t)

	byKey := streamChanges(t, k.URL, "changes")
	var schema []change.Change
	for key, cs := range byKey {
		for _, c := range cs {
			if c.Op == change.SchemaChange {
				if key != "schema:public.items" {
					t.Errorf("schema change under partition key %q", key)
				}
				schema = append(schema, c)
			}
		}
	}
	// At least once: drop repeats of a position.
	seen := map[change.LSN]bool{}
	var uniq []change.Change
	for _, c := range schema {
		if !seen[c.LSN] {
			seen[c.LSN] = true
			uniq = append(uniq, c)
		}
	}
	type diff struct {
		added, dropped []string
		renamed        []event.Rename
		retyped        []event.Retype
	}
	want := []diff{
		{added: []string{"note"}},
		{renamed: []event.Rename{{From: "name", To: "title"}}},
		{retyped: []event.Retype{{Name: "n", From: "int4", To: "int8"}}},
		{dropped: []string{"note"}},
	}
	if len(uniq) != len(want) {
		for _, c := range uniq {
			t.Logf("schema change at %s: %v -> %v", c.LSN, names(c.OldColumns), names(c.Columns))
		}
		t.Fatalf("%d schema changes (%d records), want %d", len(uniq), len(schema), len(want))
	}
	for i, c := range uniq {
		var got diff
		got.added, got.dropped, got.renamed, got.retyped, _ = event.Diff(c.OldColumns, c.Columns)
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("schema change %d (%v -> %v): %+v, want %+v", i, names(c.OldColumns), names(c.Columns), got, want[i])
		}
		if i > 0 && c.LSN <= uniq[i-1].LSN {
			t.Errorf("schema change %d at %s, after %s", i, c.LSN, uniq[i-1].LSN)
		}
	}
	// Each applies from the first change with its shape: that change has
	// the same columns and sits at the schema change's position.
	for i, c := range uniq {
		found := false
		for _, r := range byKey["public.items/"+[]string{"2", "1", "3", "4"}[i]] {
			if r.LSN == c.LSN && reflect.DeepEqual(names(r.Columns), names(c.Columns)) {
				found = true
			}
		}
		if !found {
			t.Errorf("schema change %d at %s: no row change there with columns %v", i, c.LSN, names(c.Columns))
		}
	}

	// fanout publishes each as a DatabaseSchemaChange event.
	fanoutBin := buildFanout(t)
	cmd := exec.Command(fanoutBin, "poll", "-stream", "changes", "-stdout", "-idle-exit", "-poll-interval", "20ms")
	cmd.Env = append(os.Environ(), append(awsEnv(k.URL), "AWS_LAMBDA_RUNTIME_API=")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fanout poll -stdout: %v\n%s", err, stderr.String())
	}
	events := map[string]event.SchemaDetail{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			DetailType string          `json:"detail-type"`
			Detail     json.RawMessage `json:"detail"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("fanout output %q: %v", sc.Text(), err)
		}
		if ev.DetailType != event.DefaultSchemaDetailType {
			continue
		}
		var d event.SchemaDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			t.Fatal(err)
		}
		events[d.LSN] = d
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading fanout's output: %v", err)
	}
	if len(events) != len(want) {
		t.Fatalf("%d DatabaseSchemaChange events at distinct positions, want %d:\n%s", len(events), len(want), out)
	}
	d := events[uniq[0].LSN.String()]
	if d.Schema != "public" || d.Table != "items" || d.Operation != "schema" || !reflect.DeepEqual(d.Added, []string{"note"}) ||
		len(d.NewColumns) != 4 || d.NewColumns[3] != (event.SchemaColumn{Name: "note", Type: "string", PGType: "text"}) ||
		d.NewColumns[0] != (event.SchemaColumn{Name: "id", Type: "integer", PGType: "int4", Key: true}) || len(d.OldColumns) != 3 {
		t.Errorf("the ADD COLUMN event: %+v", d)
	}
}

func names(cols []change.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name + ":" + c.Type
	}
	return out
}
