package pgtypes

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/pgtest"
)

// zooSetup creates a type of every shape the walk meets: domains (NOT NULL
// or not, over domains, over arrays, over ranges), arrays of domains, enums
// (with and without labels), composites, including one whose name starts
// with "_" like an array's, and a chain of domains as deep as Resolve goes.
func zooSetup() []string {
	stmts := []string{
		"CREATE TYPE mood AS ENUM ('sad', 'so-so', 'happy')",
		"CREATE TYPE nothing AS ENUM ()",
		"CREATE DOMAIN posint AS int4 CHECK (VALUE > 0)",
		"CREATE DOMAIN email AS text NOT NULL CHECK (VALUE LIKE '%@%')",
		"CREATE DOMAIN grid AS int4[][]",
		"CREATE DOMAIN strictgrid AS grid NOT NULL",
		"CREATE DOMAIN emails AS email[]",
		"CREATE DOMAIN moods AS mood[] NOT NULL",
		"CREATE DOMAIN span AS int4range NOT NULL",
		"CREATE TYPE pair AS (n int4, s text)",
		`CREATE TYPE "_odd" AS (a int4)`,
		"CREATE DOMAIN deep0 AS int4",
	}
	for i := 1; i <= maxDepth; i++ {
		stmts = append(stmts, fmt.Sprintf("CREATE DOMAIN deep%d AS deep%d", i, i-1))
	}
	return stmts
}

// startZoo returns a connection to a database with zooSetup's types.
func startZoo(t *testing.T) *pgx.Conn {
	t.Helper()
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "types")
	pg.Exec(t, "types", zooSetup()...)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func oidOf(t *testing.T, conn *pgx.Conn, sqlType string) uint32 {
	t.Helper()
	var oid uint32
	if err := conn.QueryRow(context.Background(), `SELECT $1::text::regtype::oid`, sqlType).Scan(&oid); err != nil {
		t.Fatalf("OID of %s: %v", sqlType, err)
	}
	return oid
}

// countingQuerier counts the queries Resolve makes.
type countingQuerier struct {
	q       Querier
	queries int
}

func (c *countingQuerier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.queries++
	return c.q.Query(ctx, sql, args...)
}

// TestResolve resolves the zoo's types from a real PostgreSQL
// (pgtest.Start).
func TestResolve(t *testing.T) {
	conn := startZoo(t)
	t.Run("types", func(t *testing.T) { testTypes(t, conn) })
	t.Run("queries per level", func(t *testing.T) { testQueriesPerLevel(t, conn) })
	t.Run("errors", func(t *testing.T) { testErrors(t, conn) })
}

// testTypes resolves each type alone, so that every walk starts from an
// unknown type, then all together with duplicates, as a relation with
// several columns of one type asks.
func testTypes(t *testing.T, conn *pgx.Conn) {
	ctx := context.Background()
	labels := []string{"sad", "so-so", "happy"}
	tests := []struct {
		sqlType string
		want    Type
	}{
		{"int4", Type{Name: "int4", Base: "int4", Kind: change.KindBase}},
		{"int4[]", Type{Name: "_int4", Base: "int4", Kind: change.KindBase, Array: true}},
		// pg_type has no dimensions for a plain array: the column does.
		{"int4[][]", Type{Name: "_int4", Base: "int4", Kind: change.KindBase, Array: true}},
		{"posint", Type{Name: "posint", Base: "int4", Kind: change.KindBase}},
		{"posint[]", Type{Name: "_posint", Base: "int4", Kind: change.KindBase, Array: true}},
		{"email", Type{Name: "email", Base: "text", Kind: change.KindBase, NotNull: true}},
		// A NOT NULL domain of the elements leaves the array nullable.
		{"email[]", Type{Name: "_email", Base: "text", Kind: change.KindBase, Array: true}},
		{"emails", Type{Name: "emails", Base: "text", Kind: change.KindBase, Array: true, Dims: 1}},
		{"grid", Type{Name: "grid", Base: "int4", Kind: change.KindBase, Array: true, Dims: 2}},
		{"strictgrid", Type{Name: "strictgrid", Base: "int4", Kind: change.KindBase, Array: true, Dims: 2, NotNull: true}},
		{"mood", Type{Name: "mood", Base: "mood", Kind: change.KindEnum, Labels: labels}},
		{"mood[]", Type{Name: "_mood", Base: "mood", Kind: change.KindEnum, Array: true, Labels: labels}},
		{"moods", Type{Name: "moods", Base: "mood", Kind: change.KindEnum, Array: true, Dims: 1, NotNull: true, Labels: labels}},
		{"nothing", Type{Name: "nothing", Base: "nothing", Kind: change.KindEnum}},
		{"pair", Type{Name: "pair", Base: "pair", Kind: change.KindComposite}},
		{"pair[]", Type{Name: "_pair", Base: "pair", Kind: change.KindComposite, Array: true}},
		{`"_odd"`, Type{Name: "_odd", Base: "_odd", Kind: change.KindComposite}},
		{`"_odd"[]`, Type{Name: "__odd", Base: "_odd", Kind: change.KindComposite, Array: true}},
		{"int4range", Type{Name: "int4range", Base: "int4range", Kind: change.KindRange}},
		{"int4range[]", Type{Name: "_int4range", Base: "int4range", Kind: change.KindRange, Array: true}},
		{"span", Type{Name: "span", Base: "int4range", Kind: change.KindRange, NotNull: true}},
		{"int4multirange", Type{Name: "int4multirange", Base: "int4multirange", Kind: change.KindMultirange}},
		{"anyarray", Type{Name: "anyarray", Base: "anyarray", Kind: change.KindPseudo}},
		// These have a typelem but are not arrays; int2vector is even of
		// category 'A'.
		{"name", Type{Name: "name", Base: "name", Kind: change.KindBase}},
		{"point", Type{Name: "point", Base: "point", Kind: change.KindBase}},
		{"int2vector", Type{Name: "int2vector", Base: "int2vector", Kind: change.KindBase}},
		{"point[]", Type{Name: "_point", Base: "point", Kind: change.KindBase, Array: true}},
		{"int2vector[]", Type{Name: "_int2vector", Base: "int2vector", Kind: change.KindBase, Array: true}},
		{fmt.Sprintf("deep%d", maxDepth-1), Type{Name: fmt.Sprintf("deep%d", maxDepth-1), Base: "int4", Kind: change.KindBase}},
	}
	oids := make([]uint32, len(tests))
	for i, tc := range tests {
		oids[i] = oidOf(t, conn, tc.sqlType)
		got, err := Resolve(ctx, conn, oids[i:i+1])
		if err != nil {
			t.Errorf("%s: %v", tc.sqlType, err)
			continue
		}
		if len(got) != 1 || !reflect.DeepEqual(got[oids[i]], tc.want) {
			t.Errorf("%s (OID %d): %#v, want %#v", tc.sqlType, oids[i], got, tc.want)
		}
	}
	got, err := Resolve(ctx, conn, append(oids, oids...))
	if err != nil {
		t.Fatal(err)
	}
	for oid := range got {
		if !slices.Contains(oids, oid) {
			t.Errorf("all at once: type %d was not asked for: %#v", oid, got[oid])
		}
	}
	for i, tc := range tests {
		if !reflect.DeepEqual(got[oids[i]], tc.want) {
			t.Errorf("all at once, %s: %#v, want %#v", tc.sqlType, got[oids[i]], tc.want)
		}
	}
}

// testQueriesPerLevel checks that the walk costs one query per level of the
// chain, enum labels included: capture resolves on its streaming path.
func testQueriesPerLevel(t *testing.T, conn *pgx.Conn) {
	q := &countingQuerier{q: conn}
	// moods -> _mood -> mood
	if _, err := Resolve(context.Background(), q, []uint32{oidOf(t, conn, "moods")}); err != nil {
		t.Fatal(err)
	}
	if q.queries != 3 {
		t.Errorf("%d queries, want 3", q.queries)
	}
}

// testErrors checks that Resolve fails, rather than returning a partial
// map, for an unknown OID, for a chain deeper than maxDepth and when a query
// fails.
func testErrors(t *testing.T, conn *pgx.Conn) {
	ctx := context.Background()
	tooDeep := oidOf(t, conn, fmt.Sprintf("deep%d", maxDepth))
	for _, tc := range []struct {
		name string
		oids []uint32
		want string
	}{
		{"unknown OID", []uint32{oidOf(t, conn, "int4"), 0}, "type 0 is not in pg_type"},
		{"too deep", []uint32{tooDeep}, fmt.Sprintf("type deep%d: domain/array nesting too deep", maxDepth)},
	} {
		got, err := Resolve(ctx, conn, tc.oids)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, %v; want an error with %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := Resolve(ctx, failingQuerier{}, []uint32{23}); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("failing querier: %v, want the query's error", err)
	}
}

// failingQuerier fails every query, as a lost connection does.
type failingQuerier struct{}

func (failingQuerier) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, fmt.Errorf("connection lost")
}

// TestResolveBrokenCatalog walks rows that a consistent catalog never has:
// a domain over a missing type and domains over each other.
func TestResolveBrokenCatalog(t *testing.T) {
	rows := map[uint32]row{
		1: {oid: 1, name: "orphan", typtype: "d", base: 99},
		2: {oid: 2, name: "_orphans", typtype: "b", category: "A", elem: 99},
		3: {oid: 3, name: "ping", typtype: "d", base: 4},
		4: {oid: 4, name: "pong", typtype: "d", base: 3},
	}
	for oid, want := range map[uint32]string{
		1: "type orphan: base or element type missing from pg_type",
		2: "type _orphans: base or element type missing from pg_type",
		3: "type ping: domain/array nesting too deep",
		5: "type 5 is not in pg_type",
	} {
		if got, err := resolve(rows, oid); err == nil || err.Error() != want {
			t.Errorf("type %d: %+v, %v; want error %q", oid, got, err, want)
		}
	}
}
