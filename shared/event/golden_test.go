package event

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/change"
)

// usersColumns is users(id serial primary key, first_name varchar,
// last_name varchar, email varchar) as capture describes it.
var usersColumns = []change.Column{
	{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
	{Name: "first_name", OID: 1043, Type: "varchar", Base: "varchar", Kind: change.KindBase},
	{Name: "last_name", OID: 1043, Type: "varchar", Base: "varchar", Kind: change.KindBase},
	{Name: "email", OID: 1043, Type: "varchar", Base: "varchar", Kind: change.KindBase},
}

func texts(vals ...string) []change.Value {
	out := make([]change.Value, len(vals))
	for i, v := range vals {
		out[i] = change.Value{Text: v}
	}
	return out
}

// seedChanges are the changes capture produces for the seed's story on a
// table with REPLICA IDENTITY FULL.
func seedChanges() map[string]*change.Change {
	base := change.Change{Database: "monolith_database", Schema: "public", Table: "users", Identity: change.IdentityFull,
		Columns: usersColumns, CommitTime: time.Date(2021, 4, 28, 16, 1, 22, 131231000, time.UTC)}
	ins, upd, del := base, base, base
	ins.Op, ins.XID, ins.CommitLSN = change.Insert, 123456789, 0x16_B374D848
	ins.New = texts("1", "Ben", "Limmer", "ben@example.com")
	upd.Op, upd.XID, upd.CommitLSN = change.Update, 234567891, 0x16_B374E000
	upd.New = texts("1", "Ben", "Limmer", "ben_new@example.com")
	upd.Old = texts("1", "Ben", "Limmer", "ben@example.com")
	del.Op, del.XID, del.CommitLSN = change.Delete, 345678912, 0x16_B3750000
	del.Old = texts("1", "Ben", "Limmer", "ben_new@example.com")
	return map[string]*change.Change{"insert": &ins, "update": &upd, "delete": &del}
}

// entryJSON renders an event the way the seed files show an entry.
func entryJSON(t testing.TB, ev *Event) []byte {
	t.Helper()
	out, err := json.Marshal(map[string]any{
		"detail-type": ev.DetailType,
		"resources":   ev.Resources,
		"source":      ev.Source,
		"detail":      json.RawMessage(ev.Detail),
	})
	if err != nil {
		t.Fatalf("marshal entry: %v (detail %s)", err, ev.Detail)
	}
	return out
}

func TestSeedEvents(t *testing.T) {
	cfg := Config{Source: "com.benlimmer.Database"}
	for op, c := range seedChanges() {
		t.Run(op, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", "event-"+op+".json"))
			if err != nil {
				t.Fatal(err)
			}
			ev, err := FromChange(c, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var gotEntry, wantEntry map[string]any
			mustUnmarshal(t, entryJSON(t, &ev), &gotEntry)
			mustUnmarshal(t, want, &wantEntry)
			got, exp := gotEntry["detail"].(map[string]any), wantEntry["detail"].(map[string]any)

			// txnid and timestamp: same shape, values from the change.
			if got["txnid"] != float64(c.XID) {
				t.Errorf("txnid = %v, want %d", got["txnid"], c.XID)
			}
			if got["timestamp"] != "2021-04-28T16:01:22.131231+00:00" {
				t.Errorf("timestamp = %v", got["timestamp"])
			}
			// The additions.
			if got["lsn"] != c.CommitLSN.String() || got["seq"] != float64(0) {
				t.Errorf("lsn, seq = %v, %v; want %s, 0", got["lsn"], got["seq"], c.CommitLSN)
			}
			if v, ok := got["changedValuesComplete"]; ok != (c.Op == change.Update) || (ok && v != true) {
				t.Errorf("changedValuesComplete = %v (present %v)", v, ok)
			}
			for _, k := range []string{"txnid", "timestamp", "lsn", "seq", "changedValuesComplete"} {
				delete(got, k)
				delete(exp, k)
			}
			if !reflect.DeepEqual(gotEntry, wantEntry) {
				t.Errorf("entry differs from the seed\n got: %s\nwant: %s", entryJSON(t, &ev), want)
			}

			// Field order: the seed's fields first, in the seed's order.
			gotKeys, wantKeys := detailKeys(t, ev.Detail), detailKeys(t, want)
			if len(gotKeys) < len(wantKeys) || !slices.Equal(gotKeys[:len(wantKeys)], wantKeys) {
				t.Errorf("detail field order = %v, want %v first", gotKeys, wantKeys)
			}
		})
	}
}

func TestSeedUpdateChangedValues(t *testing.T) {
	ev, err := FromChange(seedChanges()["update"], Config{})
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		ChangedValues []string `json:"changedValues"`
	}
	mustUnmarshal(t, ev.Detail, &d)
	if !slices.Equal(d.ChangedValues, []string{"email"}) {
		t.Fatalf("changedValues = %q, want [email]", d.ChangedValues)
	}
}

func mustUnmarshal(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
}

// detailKeys lists the top-level keys of the detail object (of an entry or
// of a bare detail), in document order.
func detailKeys(t testing.TB, doc []byte) []string {
	t.Helper()
	var probe map[string]json.RawMessage
	mustUnmarshal(t, doc, &probe)
	if d, ok := probe["detail"]; ok {
		doc = d
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
