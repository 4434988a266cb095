package schema

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/event"
	"github.com/walbridge/walbridge/shared/pgtest"
	"github.com/walbridge/walbridge/shared/repo"
)

// zooSetup creates the types the zoo table uses.
var zooSetup = []string{
	"CREATE EXTENSION citext",
	"CREATE TYPE mood AS ENUM ('sad', 'so-so', 'happy')",
	"CREATE DOMAIN posint AS int4 CHECK (VALUE > 0)",
	"CREATE DOMAIN email AS text NOT NULL CHECK (VALUE LIKE '%@%')",
	"CREATE DOMAIN grid AS int4[][]",
	"CREATE TYPE pair AS (n int4, s text)",
}

// zooColumns is a column of every type family of shared/event/README.md,
// NOT NULL and nullable, with one value per row (SQL expressions).
var zooColumns = []struct {
	name, sqlType string
	values        [2]string
}{
	{"c_int2", "int2 NOT NULL", [2]string{"-32768", "32767"}},
	{"c_int4", "int4", [2]string{"2147483647", "NULL"}},
	{"c_int8", "int8 NOT NULL", [2]string{"9223372036854775807", "-9223372036854775808"}},
	{"c_oid", "oid", [2]string{"4294967295", "NULL"}},
	{"c_posint", "posint", [2]string{"1", "NULL"}},
	{"c_numeric", "numeric", [2]string{"'1234567890123456789012345678901234567890.0123456789'", "'-Infinity'"}},
	{"c_numeric_nan", "numeric(10,2) NOT NULL", [2]string{"'NaN'", "-0.5"}},
	{"c_float4", "float4", [2]string{"3.4028235e38", "'NaN'"}},
	{"c_float8", "float8 NOT NULL", [2]string{"'-Infinity'", "5e-324"}},
	{"c_bool", "bool", [2]string{"true", "NULL"}},
	{"c_text", "text NOT NULL", [2]string{`E'quote" back\\ \u00e9\U0001F389 \n\t'`, "''"}},
	{"c_varchar", "varchar(20)", [2]string{"'abc'", "NULL"}},
	{"c_bpchar", "char(5)", [2]string{"'ab'", "NULL"}},
	{"c_char", `"char"`, [2]string{"'x'", "NULL"}},
	{"c_name", "name", [2]string{"'pg_class'", "NULL"}},
	{"c_citext", "citext", [2]string{"'MiXeD'", "NULL"}},
	{"c_uuid", "uuid NOT NULL", [2]string{"'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'"}},
	{"c_json", "json", [2]string{`'{"b": 1, "a": [true, null, 2.5e10]}'`, `'null'`}},
	{"c_jsonb", "jsonb NOT NULL", [2]string{`'[1, "x", {"k": null}]'`, `'{"big": 12345678901234567890}'`}},
	{"c_bytea", "bytea", [2]string{`'\x00ff10'`, `''`}},
	{"c_date", "date", [2]string{"'2021-04-28'", "'0044-03-15 BC'"}},
	{"c_date_inf", "date NOT NULL", [2]string{"'infinity'", "'-infinity'"}},
	{"c_time", "time", [2]string{"'16:01:22.131231'", "'24:00:00'"}},
	{"c_timetz", "timetz", [2]string{"'16:01:22.131231+05:30'", "'00:00:00-12'"}},
	{"c_timestamp", "timestamp", [2]string{"'2021-04-28 16:01:22.131231'", "'-infinity'"}},
	{"c_timestamptz", "timestamptz NOT NULL", [2]string{"'2021-04-28 16:01:22.131231+00'", "'4713-01-01 00:00:00+00 BC'"}},
	{"c_interval", "interval", [2]string{"'1 year 2 months 3 days 04:05:06.5'", "'-1 day +02:00'"}},
	{"c_money", "money", [2]string{"1000.5", "NULL"}},
	{"c_inet", "inet", [2]string{"'192.168.0.1/24'", "'::1'"}},
	{"c_cidr", "cidr", [2]string{"'10.0.0.0/8'", "NULL"}},
	{"c_macaddr", "macaddr", [2]string{"'08:00:2b:01:02:03'", "NULL"}},
	{"c_macaddr8", "macaddr8", [2]string{"'08:00:2b:01:02:03:04:05'", "NULL"}},
	{"c_bit", "bit(4)", [2]string{"B'1010'", "NULL"}},
	{"c_varbit", "varbit", [2]string{"B'1'", "B''"}},
	{"c_point", "point", [2]string{"'(1.5,-2)'", "NULL"}},
	{"c_line", "line", [2]string{"'{1,2,3}'", "NULL"}},
	{"c_lseg", "lseg", [2]string{"'[(0,0),(1,1)]'", "NULL"}},
	{"c_box", "box", [2]string{"'(1,1),(0,0)'", "NULL"}},
	{"c_path", "path", [2]string{"'[(0,0),(1,1),(2,0)]'", "NULL"}},
	{"c_polygon", "polygon", [2]string{"'((0,0),(1,1),(1,0))'", "NULL"}},
	{"c_circle", "circle", [2]string{"'<(0,0),2>'", "NULL"}},
	{"c_tsvector", "tsvector", [2]string{"'a fat cat:3 sat'", "NULL"}},
	{"c_tsquery", "tsquery", [2]string{"'fat & (rat | cat)'", "NULL"}},
	{"c_xml", "xml", [2]string{`'<a x="1">t&amp;</a>'`, "NULL"}},
	{"c_mood", "mood NOT NULL", [2]string{"'happy'", "'so-so'"}},
	{"c_email", "email", [2]string{"'ben@example.com'", "'x@y'"}},
	{"c_pair", "pair", [2]string{`ROW(1, 'a "b", c')`, "ROW(NULL, NULL)"}},
	{"c_int4range", "int4range", [2]string{"'[1,10)'", "'empty'"}},
	{"c_tstzrange", "tstzrange", [2]string{"'[2021-01-01,infinity)'", "NULL"}},
	{"c_int4multirange", "int4multirange", [2]string{"'{[1,3),[5,7)}'", "'{}'"}},
	{"c_pg_lsn", "pg_lsn", [2]string{"'16/B374D848'", "NULL"}},
	{"c_int4_arr", "int4[]", [2]string{"'{1,NULL,3}'", "'[0:1]={7,8}'"}},
	{"c_int4_2d", "int4[][]", [2]string{"'{{1,2},{3,NULL}}'", "NULL"}},
	{"c_grid", "grid", [2]string{"'{{1},{2}}'", "NULL"}},
	{"c_int8_arr", "int8[] NOT NULL", [2]string{"'{9223372036854775807,-9223372036854775808}'", "'{}'"}},
	{"c_text_arr", "text[]", [2]string{`ARRAY['NULL', NULL, '', 'a,b', 'q"x']`, "NULL"}},
	{"c_float8_arr", "float8[]", [2]string{"'{NaN,Infinity,-Infinity,0.1}'", "NULL"}},
	{"c_numeric_arr", "numeric[]", [2]string{"'{1.5,NaN}'", "NULL"}},
	{"c_bool_arr", "bool[]", [2]string{"'{t,f,NULL}'", "NULL"}},
	{"c_jsonb_arr", "jsonb[]", [2]string{`ARRAY['{"a": 1}'::jsonb, '[1, "x"]', NULL]`, "NULL"}},
	{"c_bytea_arr", "bytea[]", [2]string{`ARRAY['\x0102'::bytea, NULL, '']`, "NULL"}},
	{"c_date_arr", "date[]", [2]string{"'{2021-04-28,infinity}'", "NULL"}},
	{"c_timestamptz_arr", "timestamptz[]", [2]string{`'{"2021-04-28 16:01:22.5+00",-infinity}'`, "NULL"}},
	{"c_uuid_arr", "uuid[]", [2]string{"'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'", "NULL"}},
	{"c_box_arr", "box[]", [2]string{"'{(1,1),(0,0);(3,3),(2,2)}'", "NULL"}},
	{"c_mood_arr", "mood[]", [2]string{"'{sad,happy,NULL}'", "NULL"}},
	{"c_pair_arr", "pair[]", [2]string{`ARRAY[ROW(1,'x')::pair, ROW(2,'y, "z"')::pair]`, "NULL"}},
	{"c_range_arr", "int4range[]", [2]string{`'{"[1,2)",empty}'`, "NULL"}},
	{"c_posint_arr", "posint[]", [2]string{"'{1,2}'", "NULL"}},
}

// zooDB is a cluster with the zoo table (id plus zooColumns, two rows).
type zooDB struct {
	pg   *pgtest.Cluster
	conn *pgx.Conn
}

func startZoo(t *testing.T) zooDB {
	t.Helper()
	pg := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.CreateDatabase(t, "zoo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	defs := []string{"id int PRIMARY KEY"}
	for _, c := range zooColumns {
		defs = append(defs, c.name+" "+c.sqlType)
	}
	stmts := append(slices.Clone(zooSetup), "CREATE TABLE zoo ("+strings.Join(defs, ", ")+")")
	for r := range 2 {
		names, vals := []string{"id"}, []string{strconv.Itoa(r + 1)}
		for _, c := range zooColumns {
			names, vals = append(names, c.name), append(vals, c.values[r])
		}
		stmts = append(stmts, fmt.Sprintf("INSERT INTO zoo (%s) VALUES (%s)", strings.Join(names, ", "), strings.Join(vals, ", ")))
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return zooDB{pg: pg, conn: conn}
}

func readTable(t *testing.T, q Querier, publication, name string) Table {
	t.Helper()
	tables, err := Read(context.Background(), q, publication)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.QualifiedName() == name {
			return tb
		}
	}
	t.Fatalf("Read found no %s in %v", name, tables)
	return Table{}
}

// TestReadZoo reads the zoo table from a real PostgreSQL
// (pgtest.Start) and checks what the catalog says of its columns.
func TestReadZoo(t *testing.T) {
	db := startZoo(t)
	zoo := readTable(t, db.conn, "", "public.zoo")
	if got, want := len(zoo.Columns), len(zooColumns)+1; got != want {
		t.Fatalf("%d columns, want %d", got, want)
	}
	byName := map[string]Column{}
	for _, c := range zoo.Columns {
		byName[c.Name] = c
	}
	tests := []struct {
		column    string
		eventType string
		base      string
		kind      change.Kind
		dims      int
		notNull   bool
		labels    []string
	}{
		{column: "id", eventType: "integer", base: "int4", kind: change.KindBase, notNull: true},
		{column: "c_int4", eventType: "integer", base: "int4", kind: change.KindBase},
		{column: "c_posint", eventType: "integer", base: "int4", kind: change.KindBase},
		{column: "c_email", eventType: "string", base: "text", kind: change.KindBase, notNull: true},
		{column: "c_numeric", eventType: "numeric", base: "numeric", kind: change.KindBase},
		{column: "c_float8", eventType: "float", base: "float8", kind: change.KindBase, notNull: true},
		{column: "c_citext", eventType: "string", base: "citext", kind: change.KindBase},
		{column: "c_jsonb", eventType: "json", base: "jsonb", kind: change.KindBase, notNull: true},
		{column: "c_bytea", eventType: "bytes", base: "bytea", kind: change.KindBase},
		{column: "c_bit", eventType: "bits", base: "bit", kind: change.KindBase},
		{column: "c_mood", eventType: "enum", base: "mood", kind: change.KindEnum, notNull: true, labels: []string{"sad", "so-so", "happy"}},
		{column: "c_pair", eventType: "composite", base: "pair", kind: change.KindComposite},
		{column: "c_int4range", eventType: "range", base: "int4range", kind: change.KindRange},
		{column: "c_int4multirange", eventType: "multirange", base: "int4multirange", kind: change.KindMultirange},
		{column: "c_pg_lsn", eventType: "pg_lsn", base: "pg_lsn", kind: change.KindBase},
		{column: "c_int4_arr", eventType: "integer[]", base: "int4", kind: change.KindBase, dims: 1},
		{column: "c_int4_2d", eventType: "integer[]", base: "int4", kind: change.KindBase, dims: 2},
		{column: "c_grid", eventType: "integer[]", base: "int4", kind: change.KindBase, dims: 2},
		{column: "c_int8_arr", eventType: "integer[]", base: "int8", kind: change.KindBase, dims: 1, notNull: true},
		{column: "c_mood_arr", eventType: "enum[]", base: "mood", kind: change.KindEnum, dims: 1, labels: []string{"sad", "so-so", "happy"}},
		{column: "c_posint_arr", eventType: "integer[]", base: "int4", kind: change.KindBase, dims: 1},
		{column: "c_box_arr", eventType: "box[]", base: "box", kind: change.KindBase, dims: 1},
	}
	for _, tc := range tests {
		c, ok := byName[tc.column]
		if !ok {
			t.Errorf("no column %s", tc.column)
			continue
		}
		got := []any{c.EventType, c.Base, c.Kind, c.Dims, c.Array, c.NotNull, c.Labels}
		want := []any{tc.eventType, tc.base, tc.kind, tc.dims, tc.dims > 0, tc.notNull, tc.labels}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: (type, base, kind, dims, array, not null, labels) = %v, want %v", tc.column, got, want)
		}
	}
}

// TestReadPublication reads a publication's tables and column lists, and
// sees a column added by ALTER TABLE.
func TestReadPublication(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app",
		"CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, secret text, full_name text GENERATED ALWAYS AS (email || '!') STORED)",
		"CREATE TABLE orders (id int PRIMARY KEY, total numeric)",
		"CREATE SCHEMA billing",
		"CREATE TABLE billing.invoices (id int PRIMARY KEY)",
	)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Column lists arrived in PostgreSQL 15; before, a publication has
	// every (non-generated) column.
	var version int
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	published := "billing.invoices(id) public.users(id,email)"
	if version >= 150000 {
		pg.Exec(t, "app", "CREATE PUBLICATION walbridge FOR TABLE users (id, email), billing.invoices")
	} else {
		pg.Exec(t, "app", "CREATE PUBLICATION walbridge FOR TABLE users, billing.invoices")
		published = "billing.invoices(id) public.users(id,email,secret)"
	}

	summary := func(publication string) string {
		tables, err := Read(ctx, conn, publication)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, tb := range tables {
			var cols []string
			for _, c := range tb.Columns {
				cols = append(cols, c.Name)
			}
			parts = append(parts, tb.QualifiedName()+"("+strings.Join(cols, ",")+")")
		}
		return strings.Join(parts, " ")
	}
	for _, tc := range []struct{ publication, want string }{
		{"walbridge", published},
		{"missing", "billing.invoices(id) public.orders(id,total) public.users(id,email,secret)"},
		{"", "billing.invoices(id) public.orders(id,total) public.users(id,email,secret)"},
	} {
		if got := summary(tc.publication); got != tc.want {
			t.Errorf("publication %q: %s, want %s", tc.publication, got, tc.want)
		}
	}
	pg.Exec(t, "app", "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new'", "ALTER PUBLICATION walbridge ADD TABLE orders")
	if got, want := summary("walbridge"), strings.Replace(published, "public.users", "public.orders(id,total,status) public.users", 1); got != want {
		t.Errorf("after ALTER TABLE: %s, want %s", got, want)
	}
}

// zooEvents builds real events of the zoo table with package event, from
// the rows' text forms under capture's session settings: an insert of each
// row, an update from row 1 to row 2 (REPLICA IDENTITY FULL) with an
// unchanged TOAST value and an omitted one, a key-only update, a delete and
// a truncate. Each is the event as EventBridge delivers it.
func zooEvents(t *testing.T, db zooDB, zoo Table) [][]byte {
	t.Helper()
	ctx := context.Background()
	for _, s := range []string{"SET DateStyle = 'ISO, YMD'", "SET IntervalStyle = iso_8601", "SET TimeZone = 'UTC'", "SET extra_float_digits = 3", "SET bytea_output = hex"} {
		if _, err := db.conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var cols []change.Column
	var sel []string
	for _, c := range zoo.Columns {
		cols = append(cols, c.ChangeColumn())
		sel = append(sel, pgx.Identifier{c.Name}.Sanitize()+"::text")
	}
	rows, err := db.conn.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM zoo ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var tuples [][]change.Value
	for rows.Next() {
		texts := make([]*string, len(cols))
		dest := make([]any, len(cols))
		for i := range texts {
			dest[i] = &texts[i]
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		tuple := make([]change.Value, len(cols))
		for i, s := range texts {
			if s == nil {
				tuple[i] = change.Value{State: change.Null}
			} else {
				tuple[i] = change.Value{Text: *s}
			}
		}
		tuples = append(tuples, tuple)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(tuples) != 2 {
		t.Fatalf("%d zoo rows", len(tuples))
	}
	index := func(name string) int {
		for i, c := range cols {
			if c.Name == name {
				return i
			}
		}
		t.Fatalf("no column %s", name)
		return -1
	}
	marked := slices.Clone(tuples[1])
	marked[index("c_text")] = change.Value{State: change.Unchanged}
	marked[index("c_jsonb")] = change.Value{State: change.Omitted, Size: 300000}
	keyOnly := make([]change.Value, len(cols))
	for i := range keyOnly {
		keyOnly[i] = change.Value{State: change.Null}
	}
	keyOnly[0] = change.Value{Text: "7"}

	base := change.Change{Database: "zoo", Schema: zoo.Schema, Table: zoo.Name, XID: 771, CommitLSN: 0x16B374D848,
		CommitTime: time.Date(2021, 4, 28, 16, 1, 22, 131231000, time.UTC), Identity: change.IdentityFull, Columns: cols}
	with := func(op change.Op, seq uint32, newT, oldT []change.Value, oldIsKey bool) *change.Change {
		c := base
		c.Op, c.Seq, c.New, c.Old, c.OldIsKey = op, seq, newT, oldT, oldIsKey
		if oldIsKey {
			c.Identity = change.IdentityDefault
		}
		return &c
	}
	changes := []*change.Change{
		with(change.Insert, 0, tuples[0], nil, false),
		with(change.Insert, 1, tuples[1], nil, false),
		with(change.Update, 2, tuples[1], tuples[0], false),
		with(change.Update, 3, marked, tuples[0], false),
		with(change.Update, 4, tuples[0], keyOnly, true),
		with(change.Delete, 5, nil, tuples[1], false),
		with(change.Truncate, 6, nil, nil, false),
	}
	changes[6].Columns, changes[6].Cascade = nil, true
	var out [][]byte
	for _, c := range changes {
		ev, err := event.FromChange(c, event.Config{})
		if err != nil {
			t.Fatal(err)
		}
		delivered, err := json.Marshal(map[string]any{
			"version": "0", "id": fmt.Sprintf("zoo-%d", c.Seq), "detail-type": ev.DetailType, "source": ev.Source,
			"account": "000000000000", "time": ev.Time.Format(time.RFC3339), "region": "us-east-1",
			"resources": ev.Resources, "detail": json.RawMessage(ev.Detail),
		})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, delivered)
	}
	return out
}

func compileSchema(t *testing.T, doc []byte) *jsonschema.Schema {
	t.Helper()
	parsed, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	if err := c.AddResource("zoo.schema.json", parsed); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("zoo.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

func validate(s *jsonschema.Schema, ev []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(ev))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

// TestZooEventsMatchGeneratedTypes is the end-to-end check of the
// generators against a real PostgreSQL (pgtest.Start): real events
// of the zoo table, built by package event, validate against the generated
// JSON Schema, type-check against the generated TypeScript (tsc --strict)
// and decode into the generated Go (go run) and encode back unchanged; and
// wrong values are refused by all three.
func TestZooEventsMatchGeneratedTypes(t *testing.T) {
	db := startZoo(t)
	zoo := readTable(t, db.conn, "", "public.zoo")
	events := zooEvents(t, db, zoo)
	// And a value the claim check keeps in S3, a reference in its place.
	const int2 = `"c_int2":{"type":"integer","value":-32768}`
	if !bytes.Contains(events[0], []byte(int2)) {
		t.Fatalf("event 0 has no %s", int2)
	}
	events = append(events, bytes.Replace(events[0], []byte(int2),
		[]byte(`"c_int2":{"type":"integer","s3":{"bucket":"values","key":"walbridge/values/sha256/`+strings.Repeat("0a", 32)+`"},"bytes":6,"sha256":"`+strings.Repeat("0a", 32)+`","valueEncoding":"text"}`), 1))

	t.Run("JSON Schema", func(t *testing.T) {
		s := compileSchema(t, JSONSchema(zoo))
		for i, ev := range events {
			if err := validate(s, ev); err != nil {
				t.Errorf("event %d does not validate: %v\n%s", i, err, ev)
			}
		}
		wrong := []struct{ name, from, to string }{
			{"integer as a string", `"c_int2":{"type":"integer","value":-32768}`, `"c_int2":{"type":"integer","value":"-32768"}`},
			{"NULL in a NOT NULL column", `"c_int2":{"type":"integer","value":-32768}`, `"c_int2":{"type":"integer","value":null}`},
			{"wrong type name", `"c_int2":{"type":"integer","value":-32768}`, `"c_int2":{"type":"float","value":-32768}`},
			{"unknown enum label", `"c_mood":{"type":"enum","value":"happy"}`, `"c_mood":{"type":"enum","value":"glad"}`},
			{"unknown column", `"c_int2":{`, `"c_nope":{"type":"integer","value":1},"c_int2":{`},
			{"1-D value in a 2-D column", `"value":[[1,2],[3,null]]`, `"value":[1,2]`},
			{"value next to a marker", `"c_int2":{"type":"integer","value":-32768}`, `"c_int2":{"type":"integer","value":-32768,"unchanged":true}`},
			{"unknown changed column", `"changedValues":["id",`, `"changedValues":["nope","id",`},
			{"bad timestamp", `"value":"2021-04-28T16:01:22.131231+00:00"`, `"value":"2021-04-28 16:01:22.131231+00"`},
			{"unknown detail field", `"lsn":`, `"extra":1,"lsn":`},
		}
		for _, w := range wrong {
			ev := string(events[0])
			if !strings.Contains(ev, w.from) {
				t.Fatalf("%s: event 0 has no %s:\n%s", w.name, w.from, ev)
			}
			bad := strings.Replace(ev, w.from, w.to, 1)
			if err := validate(s, []byte(bad)); err == nil {
				t.Errorf("%s: the schema accepts it", w.name)
			}
		}
	})

	t.Run("TypeScript", func(t *testing.T) {
		dir := t.TempDir()
		var lit strings.Builder
		lit.WriteString("import type { DatabaseEvent, PublicZooDetail, PublicZooValues, Tables } from \"./events\";\n\n")
		lit.WriteString("export const events: DatabaseEvent<PublicZooDetail>[] = [\n")
		for _, ev := range events {
			lit.Write(ev)
			lit.WriteString(",\n")
		}
		lit.WriteString(`];

// Reading a value: narrow to the form that carries it.
export function int2(ev: DatabaseEvent<Tables["public.zoo"]>): number | undefined {
  const v = ev.detail.newValues?.c_int2;
  if (v !== undefined && "value" in v && v.valueEncoding === undefined) {
    return v.value;
  }
  return undefined;
}

// @ts-expect-error an integer column's value is a number
export const wrongValue: PublicZooValues["c_int2"] = { type: "integer", value: "1" };
// @ts-expect-error a NOT NULL column has no null value
export const nullValue: PublicZooValues["c_int2"] = { type: "integer", value: null };
// @ts-expect-error the enum's labels only
export const wrongLabel: PublicZooValues["c_mood"] = { type: "enum", value: "glad" };
// @ts-expect-error the type name is fixed per column
export const wrongType: PublicZooValues["c_int2"] = { type: "float", value: 1 };
// @ts-expect-error changedValues names columns of the table
export const wrongColumn: PublicZooDetail["changedValues"] = ["nope"];
`)
		writeFile(t, filepath.Join(dir, "events.ts"), TypeScript([]Table{zoo}))
		writeFile(t, filepath.Join(dir, "consumer.ts"), []byte(lit.String()))
		run(t, dir, tscPath(t), "--strict", "--noEmit", "--target", "es2022", "--module", "node16", "events.ts", "consumer.ts")
	})

	t.Run("Go", func(t *testing.T) {
		src, err := Go([]Table{zoo}, "dbevents")
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "go.mod"), []byte("module zoocheck\n\ngo 1.24\n"))
		writeFile(t, filepath.Join(dir, "dbevents", "events.go"), src)
		writeFile(t, filepath.Join(dir, "main.go"), []byte(goConsumer))
		all := bytes.Join(events, []byte(",\n"))
		writeFile(t, filepath.Join(dir, "events.json"), append(append([]byte("[\n"), all...), "\n]\n"...))
		run(t, dir, "go", "vet", "./...")
		out := run(t, dir, "go", "run", ".", "events.json")
		if want := fmt.Sprintf("%d events decoded and encoded back unchanged; c_int2 of event 0 is -32768\n", len(events)); out != want {
			t.Errorf("go run: %q, want %q", out, want)
		}
	})
}

// goConsumer decodes every event into the generated types, refusing unknown
// fields, and checks that encoding gives the same JSON back.
const goConsumer = `package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"

	"zoocheck/dbevents"
)

func main() {
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var events []json.RawMessage
	if err := json.Unmarshal(data, &events); err != nil {
		panic(err)
	}
	var first dbevents.Event[dbevents.PublicZooDetail]
	for i, raw := range events {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var ev dbevents.Event[dbevents.PublicZooDetail]
		if err := dec.Decode(&ev); err != nil {
			fmt.Fprintf(os.Stderr, "event %d: %v\n", i, err)
			os.Exit(1)
		}
		if i == 0 {
			first = ev
		}
		back, err := json.Marshal(ev)
		if err != nil {
			fmt.Fprintf(os.Stderr, "event %d: encode: %v\n", i, err)
			os.Exit(1)
		}
		var a, b any
		_ = json.Unmarshal(raw, &a)
		_ = json.Unmarshal(back, &b)
		if !reflect.DeepEqual(a, b) {
			fmt.Fprintf(os.Stderr, "event %d changed in a round trip:\n%s\n%s\n", i, raw, back)
			os.Exit(1)
		}
	}
	v := first.Detail.NewValues.CInt2
	if !v.Present() {
		fmt.Fprintln(os.Stderr, "c_int2 is not present")
		os.Exit(1)
	}
	fmt.Printf("%d events decoded and encoded back unchanged; c_int2 of event 0 is %d\n", len(events), v.Value)
}
`

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// run runs a command in dir and returns its standard output; it fails the
// test with the output when the command fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// tscPath is the pinned TypeScript compiler: the toolchain scripts/newhandler
// pins in generated handlers (scripts/newhandler/node-tools). scripts/install-deps
// installs it; when it has not, the test runs the same npm ci.
func tscPath(t *testing.T) string {
	t.Helper()
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "scripts", "newhandler", "node-tools")
	tsc := filepath.Join(dir, "node_modules", ".bin", "tsc")
	lock, lockErr := os.Stat(filepath.Join(dir, "package-lock.json"))
	installed, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if lockErr != nil {
		t.Fatalf("the pinned TypeScript toolchain is missing: %v", lockErr)
	}
	if err != nil || lock.ModTime().After(installed.ModTime()) {
		if _, err := exec.LookPath("npm"); err != nil {
			t.Fatalf("npm is needed to install TypeScript (scripts/install-deps installs Node.js and npm): %v", err)
		}
		run(t, dir, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", "--cache", filepath.Join(root, "scripts", "newhandler", "testdata", ".npm-cache"))
	}
	return tsc
}
