package replication

// These tests run a real throwaway PostgreSQL cluster (pgtest.Start,
// wal_level=logical) and stream from a real pgoutput slot into memSink, a
// sink that makes every change durable at once, so that what is checked is
// the decoding and the bookkeeping, not Kinesis.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/capture/slot"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/pgtest"
)

type memSink struct {
	mu      sync.Mutex
	changes []change.Change
	marked  change.LSN
	notify  chan struct{}
	closed  bool
}

func newMemSink() *memSink { return &memSink{notify: make(chan struct{}, 1)} }

func (m *memSink) Add(_ context.Context, c *change.Change) error {
	m.mu.Lock()
	cp := *c
	cp.New = append([]change.Value(nil), c.New...)
	cp.Old = append([]change.Value(nil), c.Old...)
	if c.New == nil {
		cp.New = nil
	}
	if c.Old == nil {
		cp.Old = nil
	}
	m.changes = append(m.changes, cp)
	m.mu.Unlock()
	return nil
}

func (m *memSink) Mark(_ context.Context, lsn change.LSN) error {
	m.mu.Lock()
	m.marked = lsn
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
	return nil
}

func (m *memSink) Confirmable() change.LSN {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marked
}

func (m *memSink) Close(context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return nil
}

// waitFor waits until pred holds over the collected changes.
func (m *memSink) waitFor(t *testing.T, what string, pred func([]change.Change) bool) []change.Change {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		m.mu.Lock()
		got := append([]change.Change(nil), m.changes...)
		m.mu.Unlock()
		if pred(got) {
			return got
		}
		select {
		case <-m.notify:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; have %d changes", what, len(got))
		}
	}
}

type harness struct {
	pg     *pgtest.Cluster
	url    string
	sink   *memSink
	cancel context.CancelFunc
	done   chan error
}

// startStream creates a database with the given schema, runs setup (keyless
// tables get REPLICA IDENTITY FULL) and streams into a memSink.
func startStream(t *testing.T, schema ...string) *harness {
	t.Helper()
	return startStreamWith(t, nil, schema...)
}

// startStreamWith is startStream with a chance to adjust the Stream before
// it runs.
func startStreamWith(t *testing.T, configure func(*Stream), schema ...string) *harness {
	t.Helper()
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", schema...)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slot.Setup(ctx, conn, slot.SetupOptions{Slot: "walbridge", Publication: "walbridge", Keyless: slot.KeylessFull}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	conn.Close(ctx)
	h := &harness{pg: pg, url: url, sink: newMemSink(), done: make(chan error, 1)}
	runCtx, cancel := context.WithCancel(ctx)
	h.cancel = cancel
	s := NewStream(StreamConfig{DatabaseURL: url, Slot: "walbridge", Publication: "walbridge", StatusInterval: 100 * time.Millisecond}, h.sink)
	if configure != nil {
		configure(s)
	}
	go func() { h.done <- s.Run(runCtx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

func (h *harness) exec(t *testing.T, sql ...string) {
	t.Helper()
	h.pg.Exec(t, "app", sql...)
}

func ofTable(cs []change.Change, table string) []change.Change {
	var out []change.Change
	for _, c := range cs {
		if c.Table == table {
			out = append(out, c)
		}
	}
	return out
}

func values(c change.Change, tuple []change.Value) map[string]change.Value {
	m := map[string]change.Value{}
	for i, col := range c.Columns {
		if i < len(tuple) {
			m[col.Name] = tuple[i]
		}
	}
	return m
}

func TestStreamOperations(t *testing.T) {
	h := startStream(t,
		`CREATE TABLE users (id serial PRIMARY KEY, first_name varchar(50), last_name varchar(50), email varchar(200))`,
		`CREATE TABLE memberships (org_id int, user_id int, role text, PRIMARY KEY (org_id, user_id))`,
		`CREATE TABLE audit (at timestamptz, note text)`, // no key: setup gives it REPLICA IDENTITY FULL
		`CREATE TABLE full_users (id int PRIMARY KEY, email text)`,
		`ALTER TABLE full_users REPLICA IDENTITY FULL`,
	)
	h.exec(t,
		`INSERT INTO users (first_name, last_name, email) VALUES ('Ben', 'Limmer', 'ben@example.com')`,
		`UPDATE users SET email = 'ben_new@example.com' WHERE id = 1`,
		`UPDATE users SET id = 2 WHERE id = 1`,
		`DELETE FROM users WHERE id = 2`,
		`INSERT INTO memberships VALUES (1, 1, 'admin'), (1, 2, 'member')`,
		`UPDATE memberships SET role = 'owner' WHERE org_id = 1 AND user_id = 1`,
		`INSERT INTO audit VALUES ('2021-04-28 16:01:22.131231+00', 'hello')`,
		`UPDATE audit SET note = 'bye'`,
		`DELETE FROM audit`,
		`INSERT INTO full_users VALUES (1, 'a@x'), (2, NULL)`,
		`UPDATE full_users SET email = 'b@x' WHERE id = 1`,
		`DELETE FROM full_users WHERE id = 2`,
		`SELECT pg_logical_emit_message(true, 'walbridge.test', 'in-txn')`,
		`SELECT pg_logical_emit_message(false, 'walbridge.test', 'no-txn')`,
		`TRUNCATE memberships, audit`,
	)
	got := h.sink.waitFor(t, "truncate", func(cs []change.Change) bool {
		n := 0
		for _, c := range cs {
			if c.Op == change.Truncate {
				n++
			}
		}
		return n == 2
	})

	users := ofTable(got, "users")
	wantOps := []change.Op{change.Insert, change.Update, change.Update, change.Delete}
	if len(users) != len(wantOps) {
		t.Fatalf("users: %d changes, want %d", len(users), len(wantOps))
	}
	for i, op := range wantOps {
		if users[i].Op != op {
			t.Errorf("users change %d: op %s, want %s", i, users[i].Op, op)
		}
	}
	ins := users[0]
	if ins.Database != "app" || ins.Schema != "public" || ins.Identity != change.IdentityDefault {
		t.Errorf("insert header: %+v", ins)
	}
	if ins.XID == 0 || ins.CommitLSN == 0 || ins.CommitTime.IsZero() || ins.CommitTime.Location() != time.UTC && ins.CommitTime.Location().String() != "UTC" {
		t.Errorf("insert txn identity: xid %d commit %s time %v", ins.XID, ins.CommitLSN, ins.CommitTime)
	}
	if v := values(ins, ins.New); v["email"].Text != "ben@example.com" || v["id"].Text != "1" {
		t.Errorf("insert values: %+v", v)
	}
	if k := ins.KeyColumns(); len(k) != 1 || ins.Columns[k[0]].Name != "id" {
		t.Errorf("users key columns: %v", k)
	}
	if c := ins.Columns[1]; c.Type != "varchar" || c.Base != "varchar" || c.Kind != change.KindBase {
		t.Errorf("first_name column: %+v", c)
	}
	// Default identity: an update that keeps the key has no old tuple; one
	// that changes the key carries the old key.
	if users[1].Old != nil {
		t.Errorf("plain update under DEFAULT identity has an old tuple")
	}
	if !users[2].OldIsKey || values(users[2], users[2].Old)["id"].Text != "1" {
		t.Errorf("key-changing update: old %+v", users[2].Old)
	}
	if change.PartitionKey(&users[2]) != "public.users/1" {
		t.Errorf("key-changing update partitioned as %q, want the old key", change.PartitionKey(&users[2]))
	}
	if !users[3].OldIsKey || values(users[3], users[3].Old)["id"].Text != "2" {
		t.Errorf("delete old key: %+v", users[3].Old)
	}

	mem := ofTable(got, "memberships")
	if len(mem) != 4 {
		t.Fatalf("memberships: %d changes, want 4 (2 inserts, update, truncate)", len(mem))
	}
	if pk := change.PartitionKey(&mem[2]); pk != "public.memberships/1/1" {
		t.Errorf("composite key partition key %q", pk)
	}
	if mem[0].Seq+1 != mem[1].Seq || mem[0].CommitLSN != mem[1].CommitLSN {
		t.Errorf("two rows of one statement: seq %d,%d commit %s,%s", mem[0].Seq, mem[1].Seq, mem[0].CommitLSN, mem[1].CommitLSN)
	}

	audit := ofTable(got, "audit")
	if len(audit) != 4 {
		t.Fatalf("audit: %d changes, want 4", len(audit))
	}
	if audit[0].Identity != change.IdentityFull || len(audit[0].KeyColumns()) != 0 {
		t.Errorf("keyless FULL table: identity %s keys %v", audit[0].Identity, audit[0].KeyColumns())
	}
	if pk := change.PartitionKey(&audit[1]); pk != "public.audit" {
		t.Errorf("keyless partition key %q", pk)
	}
	if v := values(audit[1], audit[1].Old); audit[1].OldIsKey || v["note"].Text != "hello" {
		t.Errorf("FULL update old tuple: %+v", v)
	}
	if v := values(audit[0], audit[0].New); v["at"].Text != "2021-04-28 16:01:22.131231+00" {
		t.Errorf("timestamptz text form %q (session settings not applied?)", v["at"].Text)
	}

	fu := ofTable(got, "full_users")
	if len(fu) != 4 {
		t.Fatalf("full_users: %d changes", len(fu))
	}
	if k := fu[0].KeyColumns(); len(k) != 1 || fu[0].Columns[k[0]].Name != "id" {
		t.Errorf("FULL table with a primary key: key columns %v, want [id] from the catalog", k)
	}
	if v := values(fu[2], fu[2].New); v["email"].Text != "b@x" {
		t.Errorf("full update new %+v", v)
	}
	if v := values(fu[2], fu[2].Old); v["email"].Text != "a@x" {
		t.Errorf("full update old %+v", v)
	}
	if v := values(fu[3], fu[3].Old); v["email"].State != change.Null {
		t.Errorf("NULL in old tuple: %+v", v["email"])
	}

	var msgs []change.Change
	var truncs []change.Change
	for _, c := range got {
		switch c.Op {
		case change.Message:
			msgs = append(msgs, c)
		case change.Truncate:
			truncs = append(truncs, c)
		}
	}
	if len(msgs) != 2 || string(msgs[0].Content) != "in-txn" || !msgs[0].Transactional || msgs[0].XID == 0 ||
		string(msgs[1].Content) != "no-txn" || msgs[1].Transactional || msgs[0].Prefix != "walbridge.test" {
		t.Errorf("logical messages: %+v", msgs)
	}
	if truncs[0].CommitLSN != truncs[1].CommitLSN || truncs[0].Table == truncs[1].Table {
		t.Errorf("one TRUNCATE of two tables should give two changes of one transaction: %+v", truncs)
	}

	// Confirmation reaches the server.
	last := got[len(got)-1].CommitLSN
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var confirmed string
		conn, err := pgx.Connect(ctx, h.url)
		if err != nil {
			t.Fatal(err)
		}
		err = conn.QueryRow(ctx, `SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'walbridge'`).Scan(&confirmed)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if l, _ := change.ParseLSN(confirmed); l > last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("confirmed_flush_lsn %s never passed the last commit %s", confirmed, last)
		}
		time.Sleep(50 * time.Millisecond) // polling the server's view, not synchronising with our code
	}
}

func TestStreamMigrations(t *testing.T) {
	h := startStream(t, `CREATE TABLE items (id int PRIMARY KEY, name text, qty int)`)
	h.exec(t,
		`INSERT INTO items VALUES (1, 'a', 1)`,
		`ALTER TABLE items ADD COLUMN price numeric(10,2)`,
		`INSERT INTO items VALUES (2, 'b', 2, 9.99)`,
		`ALTER TABLE items DROP COLUMN qty`,
		`INSERT INTO items VALUES (3, 'c', 1.5)`,
		`ALTER TABLE items RENAME COLUMN name TO title`,
		`INSERT INTO items VALUES (4, 'd', 2.5)`,
		`ALTER TABLE items ALTER COLUMN price TYPE text`,
		`INSERT INTO items VALUES (5, 'e', 'free')`,
		`CREATE TABLE later (id bigint PRIMARY KEY, v text)`,
		`INSERT INTO later VALUES (1, 'new table')`,
		`ALTER TABLE items RENAME TO products`,
		`INSERT INTO products VALUES (6, 'f', 'x')`,
	)
	got := h.sink.waitFor(t, "products insert", func(cs []change.Change) bool { return len(ofTable(cs, "products")) == 1 })
	cols := func(c change.Change) string {
		var s []string
		for _, col := range c.Columns {
			s = append(s, col.Name+":"+col.Type)
		}
		return strings.Join(s, ",")
	}
	items := ofTable(got, "items")
	want := []string{
		"id:int4,name:text,qty:int4",
		"id:int4,name:text,qty:int4,price:numeric",
		"id:int4,name:text,price:numeric",
		"id:int4,title:text,price:numeric",
		"id:int4,title:text,price:text",
	}
	if len(items) != len(want) {
		t.Fatalf("items: %d changes, want %d", len(items), len(want))
	}
	for i, w := range want {
		if g := cols(items[i]); g != w {
			t.Errorf("items change %d columns %s, want %s", i, g, w)
		}
	}
	if later := ofTable(got, "later"); len(later) != 1 || cols(later[0]) != "id:int8,v:text" {
		t.Errorf("table created while streaming: %+v", later)
	}
	if p := ofTable(got, "products")[0]; cols(p) != "id:int4,title:text,price:text" || values(p, p.New)["price"].Text != "x" {
		t.Errorf("renamed table: %s %+v", cols(p), p.New)
	}
}

func TestStreamUnchangedToast(t *testing.T) {
	h := startStream(t,
		`CREATE TABLE docs (id int PRIMARY KEY, body text, n int)`,
		`CREATE TABLE docs_full (id int PRIMARY KEY, body text, n int)`,
		`ALTER TABLE docs_full REPLICA IDENTITY FULL`,
		// Random text doesn't compress below the TOAST threshold.
		`CREATE FUNCTION big() RETURNS text LANGUAGE sql AS $$ SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 400) $$`,
	)
	h.exec(t,
		`INSERT INTO docs VALUES (1, big(), 0)`,
		`INSERT INTO docs_full VALUES (1, big(), 0)`,
		`UPDATE docs SET n = 1`,
		`UPDATE docs_full SET n = 1`,
	)
	got := h.sink.waitFor(t, "both updates", func(cs []change.Change) bool {
		return len(ofTable(cs, "docs")) == 2 && len(ofTable(cs, "docs_full")) == 2
	})
	upd := ofTable(got, "docs")[1]
	if v := values(upd, upd.New)["body"]; v.State != change.Unchanged {
		t.Errorf("DEFAULT identity: untouched >8kB value is %+v, want the unchanged marker", v.State)
	}
	full := ofTable(got, "docs_full")
	upd = full[1]
	body := values(upd, upd.Old)["body"]
	if body.State != change.Text || len(body.Text) != 12800 || body.Text != values(full[0], full[0].New)["body"].Text {
		t.Errorf("FULL identity: old tuple body state %v len %d, want the real value", body.State, len(body.Text))
	}
	if v := values(upd, upd.New)["body"]; v.State == change.Null {
		t.Errorf("untouched TOAST value came through as NULL")
	}
}

// TestStreamColumnTypes: every column of a relation gets its declared type,
// rendering base and array flag, also when a column's element or domain base
// is not itself a column of the table. (Capture's own pg_type walk once
// reused the slice of OIDs it had been asked about for the next round, and
// a table (id int, tags text[]) came out with id's type empty.)
func TestStreamColumnTypes(t *testing.T) {
	h := startStream(t,
		`CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%')`,
		`CREATE TYPE mood AS ENUM ('sad', 'ok')`,
		`CREATE TABLE posts (id int PRIMARY KEY, tags text[], grid int8[][], contact email, moods mood[], contacts email[])`,
		`CREATE TABLE later (id bigint PRIMARY KEY, ids int4[])`, // int4 is cached from posts by then
	)
	h.exec(t, `INSERT INTO posts VALUES (1, '{a}', '{{1}}', 'x@y', '{ok}', '{a@b}')`, `INSERT INTO later VALUES (1, '{1}')`)
	got := h.sink.waitFor(t, "both inserts", func(cs []change.Change) bool { return len(cs) >= 2 })
	want := map[string][]change.Column{
		"posts": {
			{Name: "id", Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
			{Name: "tags", Type: "_text", Base: "text", Kind: change.KindBase, Array: true},
			{Name: "grid", Type: "_int8", Base: "int8", Kind: change.KindBase, Array: true},
			{Name: "contact", Type: "email", Base: "text", Kind: change.KindBase},
			{Name: "moods", Type: "_mood", Base: "mood", Kind: change.KindEnum, Array: true},
			{Name: "contacts", Type: "_email", Base: "text", Kind: change.KindBase, Array: true},
		},
		"later": {
			{Name: "id", Type: "int8", Base: "int8", Kind: change.KindBase, Key: true},
			{Name: "ids", Type: "_int4", Base: "int4", Kind: change.KindBase, Array: true},
		},
	}
	for _, c := range got {
		w, ok := want[c.Table]
		if !ok {
			continue
		}
		if len(c.Columns) != len(w) {
			t.Fatalf("%s: %d columns, want %d", c.Table, len(c.Columns), len(w))
		}
		for i, col := range c.Columns {
			col.OID = 0 // OIDs differ between clusters
			if col != w[i] {
				t.Errorf("%s column %d: %+v, want %+v", c.Table, i, col, w[i])
			}
		}
		delete(want, c.Table)
	}
	if len(want) != 0 {
		t.Errorf("no change for %v", want)
	}
}

// TestReconnectWaitResetsAfterHealthySession ends nine healthy sessions from
// the server side, one after the other. Each is a new outage, so each
// reconnect must wait the first step of the backoff (at most 200 ms), not a
// wait that grew over the process's life (12.8-25.6 s by the eighth).
func TestReconnectWaitResetsAfterHealthySession(t *testing.T) {
	var mu sync.Mutex
	var delays []time.Duration
	h := startStreamWith(t, func(s *Stream) {
		s.onReconnect = func(d time.Duration) { mu.Lock(); delays = append(delays, d); mu.Unlock() }
	}, `CREATE TABLE beats (id int PRIMARY KEY)`)
	const outages = 9
	for i := 1; i <= outages+1; i++ {
		h.exec(t, fmt.Sprintf(`INSERT INTO beats VALUES (%d)`, i))
		want := strconv.Itoa(i)
		h.sink.waitFor(t, "beat "+want, func(cs []change.Change) bool {
			for _, c := range ofTable(cs, "beats") {
				if c.Op == change.Insert && c.New[0].Text == want {
					return true
				}
			}
			return false
		})
		if i > outages {
			break
		}
		// The session streamed beat i: end it, and wait until its
		// walsender is gone, so beat i+1 needs a new session.
		h.exec(t, `SELECT pg_terminate_backend(active_pid, 30000) FROM pg_replication_slots WHERE slot_name = 'walbridge' AND active_pid IS NOT NULL`)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(delays) < outages {
		t.Fatalf("%d reconnects for %d outages", len(delays), outages)
	}
	for i, d := range delays {
		if d > reconnectPolicy.Base && d != 2*time.Second { // 2 s: standing by for a slot still held
			t.Errorf("reconnect %d waited %v; after a healthy session the wait should restart at <= %v (all: %v)", i+1, d, reconnectPolicy.Base, delays)
		}
	}
}
