package backfill

import (
	"reflect"
	"strings"
	"testing"

	"github.com/walbridge/walbridge/shared/change"
)

var testCols = []change.Column{{Name: "id", Type: "int4", Base: "int4", Key: true}, {Name: "v", Type: "text", Base: "text"}}

func row(op change.Op, id, v string, xid uint32) change.Change {
	c := change.Change{Schema: "public", Table: "t", Op: op, Columns: testCols, XID: xid}
	tuple := []change.Value{{Text: id}, {Text: v}}
	if v == "" {
		tuple[1] = change.Value{State: change.Unchanged}
	}
	if op == change.Delete {
		c.Old = tuple
	} else {
		c.New = tuple
	}
	return c
}

func watermark(co *Coordinator, w *window, high bool, lsn change.LSN) *change.Change {
	kind := "low"
	if high {
		kind = "high"
	}
	return &change.Change{Op: change.Message, Prefix: WatermarkPrefix, Content: []byte(co.watermark(w, kind)),
		Transactional: true, XID: 99, CommitLSN: lsn + 8, LSN: lsn}
}

// chunkOf fills w with rows 1..n.
func chunkOf(co *Coordinator, w *window, n int, xip []uint32) {
	var rows []change.Change
	var keys []string
	var raw [][]*string
	for i := 1; i <= n; i++ {
		id := string(rune('0' + i))
		r := row(change.Read, id, "v"+id, 0)
		rows = append(rows, r)
		keys = append(keys, string(change.AppendRowKey(nil, &r, r.New)))
		raw = append(raw, []*string{&id})
	}
	co.fill(w, rows, keys, raw, xip)
}

func ids(cs []change.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.New[0].Text)
	}
	return out
}

func TestWindow(t *testing.T) {
	for _, tc := range []struct {
		name      string
		live      []change.Change // between the watermarks
		beforeL   []change.Change // before the low watermark
		xip       []uint32
		want      []string
		dropped   int
		recheck   []string
		retry     bool
		otherKeep bool
	}{
		{name: "quiet", want: []string{"1", "2", "3", "4"}},
		{name: "full update, partial update, delete, insert",
			live:    []change.Change{row(change.Update, "2", "new", 10), row(change.Update, "3", "", 11), row(change.Delete, "4", "x", 12), row(change.Insert, "9", "n", 13)},
			want:    []string{"1"},
			dropped: 3, recheck: []string{"3"}},
		{name: "another table's change", live: []change.Change{{Schema: "public", Table: "u", Op: change.Update, Columns: testCols, New: []change.Value{{Text: "1"}, {Text: "x"}}, XID: 5}},
			want: []string{"1", "2", "3", "4"}},
		{name: "truncate drops the chunk", live: []change.Change{{Schema: "public", Table: "t", Op: change.Truncate, XID: 7}}, dropped: 4},
		{name: "snapshot missed a commit before the low watermark",
			beforeL: []change.Change{row(change.Update, "1", "x", 42)}, xip: []uint32{41, 42}, retry: true},
		{name: "a running transaction that commits in the window is fine",
			live: []change.Change{row(change.Update, "1", "x", 42)}, xip: []uint32{42}, want: []string{"2", "3", "4"}, dropped: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := NewCoordinator()
			w := co.newWindow(7, "public", "t")
			for i := range tc.beforeL {
				if _, keep := co.Observe(&tc.beforeL[i]); !keep {
					t.Fatal("a live change was held back")
				}
			}
			if out, keep := co.Observe(watermark(co, w, false, 100)); out != nil || keep {
				t.Fatalf("low watermark: %d rows, keep %v", len(out), keep)
			}
			for i := range tc.live {
				if out, keep := co.Observe(&tc.live[i]); out != nil || !keep {
					t.Fatalf("live change: %d rows, keep %v", len(out), keep)
				}
			}
			chunkOf(co, w, 4, tc.xip)
			out, keep := co.Observe(watermark(co, w, true, 200))
			if keep {
				t.Fatal("the high watermark reached the stream")
			}
			if got := ids(out); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("reads %v, want %v", got, tc.want)
			}
			for i, r := range out {
				if r.Op != change.Read || r.Backfill != "7" || r.CommitLSN != 208 || r.LSN != 200 || r.Seq != uint32(i+1) || r.XID != 99 {
					t.Fatalf("read %d: %+v", i, r)
				}
			}
			if w.retry != tc.retry || w.dropped != tc.dropped {
				t.Fatalf("retry %v dropped %d, want %v %d", w.retry, w.dropped, tc.retry, tc.dropped)
			}
			var recheck []string
			for _, k := range w.recheck {
				recheck = append(recheck, *k[0])
			}
			if !reflect.DeepEqual(recheck, tc.recheck) {
				t.Fatalf("recheck %v, want %v", recheck, tc.recheck)
			}
			select {
			case <-w.done:
				t.Fatal("done before the commit was marked")
			default:
			}
			co.Marked(216)
			<-w.done
			if w.durableAt != 216 {
				t.Fatalf("durableAt %s", w.durableAt)
			}
			// A replay of both watermarks (a reconnect) changes nothing.
			if out, _ := co.Observe(watermark(co, w, true, 200)); out != nil {
				t.Fatal("a replayed high watermark emitted rows again")
			}
		})
	}
}

// TestLockedRead: a read under row locks has no window: every row goes out,
// whatever live changes passed before it.
func TestLockedRead(t *testing.T) {
	co := NewCoordinator()
	w := co.newWindow(3, "public", "t")
	live := row(change.Update, "2", "", 10)
	co.Observe(&live)
	chunkOf(co, w, 2, nil)
	m := &change.Change{Op: change.Message, Prefix: WatermarkPrefix, Content: []byte(co.watermark(w, "locked")), LSN: 50, CommitLSN: 58}
	out, keep := co.Observe(m)
	if keep || !reflect.DeepEqual(ids(out), []string{"1", "2"}) || w.dropped != 0 {
		t.Fatalf("locked read gave %v (dropped %d, keep %v)", ids(out), w.dropped, keep)
	}
}

func TestObserveBookkeeping(t *testing.T) {
	co := NewCoordinator()
	stale := &change.Change{Op: change.Message, Prefix: WatermarkPrefix, Content: []byte("0123456789abcdef 1 high")}
	if out, keep := co.Observe(stale); out != nil || keep {
		t.Fatal("an earlier process's watermark was acted on or published")
	}
	if _, keep := co.Observe(&change.Change{Op: change.Message, Prefix: RequestPrefix, Content: []byte("3")}); keep {
		t.Fatal("a backfill request was published")
	}
	select {
	case <-co.Wake():
	default:
		t.Fatal("a request did not wake the worker")
	}
	if _, keep := co.Observe(&change.Change{Schema: Schema, Table: "backfills", Op: change.Update}); keep {
		t.Fatal("walbridge.backfills reached the stream")
	}
	if _, keep := co.Observe(&change.Change{Op: change.Message, Prefix: "app", Content: []byte("x")}); !keep {
		t.Fatal("an application's message was held back")
	}
}

func TestParseXIP(t *testing.T) {
	for snap, want := range map[string][]uint32{
		"10:10:":                           nil,
		"10:20:12,15":                      {12, 15},
		"4294967300:4294967310:4294967301": {5},
	} {
		got, err := parseXIP(snap)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseXIP(%q) = %v, %v; want %v", snap, got, err, want)
		}
	}
	if _, err := parseXIP("garbage"); err == nil {
		t.Error("garbage snapshot accepted")
	}
}

func TestChunkSQL(t *testing.T) {
	tab := &table{schema: "public", name: "Memberships", columns: []column{
		{name: "org", typeName: "integer", key: true}, {name: "user", typeName: "uuid", key: true}, {name: "role", typeName: "text"}},
		keys: []int{0, 1}, rowFilter: "(role <> 'x'::text)"}
	one, two := "1", "b1c2"
	for _, tc := range []struct {
		name   string
		where  string
		after  []*string
		keys   [][]*string
		want   string
		params int
	}{
		{"first", "", nil, nil, `SELECT "org", "user", "role" FROM "public"."Memberships" WHERE (role <> 'x'::text) ORDER BY "org", "user" LIMIT 50`, 0},
		{"after", "org > 3", []*string{&one, &two}, nil,
			`SELECT "org", "user", "role" FROM "public"."Memberships" WHERE ("org", "user") > ($1::integer, $2::uuid) AND (role <> 'x'::text) AND (org > 3) ORDER BY "org", "user" LIMIT 50`, 2},
		{"keys", "", nil, [][]*string{{&one, &two}, {&two, &one}},
			`SELECT "org", "user", "role" FROM "public"."Memberships" WHERE ("org", "user") IN (($1::integer, $2::uuid), ($3::integer, $4::uuid)) AND (role <> 'x'::text)`, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sql, params := tab.chunkSQL(tc.where, 50, tc.after, tc.keys)
			if sql != tc.want || len(params) != tc.params {
				t.Fatalf("got  %s (%d params)\nwant %s (%d)", sql, len(params), tc.want, tc.params)
			}
			if strings.Contains(sql, "b1c2") {
				t.Fatal("a key value is in the SQL text")
			}
		})
	}
}
