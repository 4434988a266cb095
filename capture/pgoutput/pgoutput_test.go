package pgoutput

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/policy"
)

// msg builds pgoutput messages byte by byte, as the protocol docs lay them out.
type msg []byte

func (m msg) u8(b byte) msg      { return append(m, b) }
func (m msg) u16(v uint16) msg   { return binary.BigEndian.AppendUint16(m, v) }
func (m msg) u32(v uint32) msg   { return binary.BigEndian.AppendUint32(m, v) }
func (m msg) u64(v uint64) msg   { return binary.BigEndian.AppendUint64(m, v) }
func (m msg) str(s string) msg   { return append(append(m, s...), 0) }
func (m msg) text(s string) msg  { return append(m.u8('t').u32(uint32(len(s))), s...) }
func (m msg) null() msg          { return m.u8('n') }
func (m msg) unchanged() msg     { return m.u8('u') }
func (m msg) tuple(n uint16) msg { return m.u16(n) }

// fixedCatalog resolves a few built-in OIDs without a database.
type fixedCatalog struct{ pk []string }

func (f fixedCatalog) ResolveTypes(_ context.Context, oids []uint32) (map[uint32]TypeInfo, error) {
	known := map[uint32]TypeInfo{
		23:   {Name: "int4", Base: "int4", Kind: change.KindBase},
		25:   {Name: "text", Base: "text", Kind: change.KindBase},
		1007: {Name: "_int4", Base: "int4", Kind: change.KindBase, Array: true},
	}
	out := map[uint32]TypeInfo{}
	for _, o := range oids {
		t, ok := known[o]
		if !ok {
			return nil, errors.New("unknown oid")
		}
		out[o] = t
	}
	return out, nil
}

func (f fixedCatalog) PrimaryKey(context.Context, uint32) ([]string, error) { return f.pk, nil }

func relationFixture(identity byte, keyFlags ...byte) []byte {
	m := msg{'R'}.u32(16384).str("public").str("users").u8(identity).u16(3)
	m = m.u8(keyFlags[0]).str("id").u32(23).u32(0xFFFFFFFF)
	m = m.u8(keyFlags[1]).str("email").u32(25).u32(0xFFFFFFFF)
	m = m.u8(keyFlags[2]).str("tags").u32(1007).u32(0xFFFFFFFF)
	return m
}

func beginFixture(xid uint32) []byte {
	us := time.Date(2021, 4, 28, 16, 1, 22, 131231000, time.UTC).Sub(Epoch).Microseconds()
	return msg{'B'}.u64(0x16B3748).u64(uint64(us)).u32(xid)
}

func TestDecodeTransaction(t *testing.T) {
	ctx := context.Background()
	d := NewDecoder("app", fixedCatalog{}, nil)
	steps := [][]byte{
		beginFixture(777),
		relationFixture('d', 1, 0, 0),
		msg{'I'}.u32(16384).u8('N').tuple(3).text("1").text("ben@example.com").text("{1,2}"),
		msg{'U'}.u32(16384).u8('K').tuple(3).text("1").null().null().u8('N').tuple(3).text("2").null().unchanged(),
		msg{'D'}.u32(16384).u8('K').tuple(3).text("2").null().null(),
		msg{'M'}.u8(1).u64(0x16B3700).str("app.audit").u32(5).text("hello")[:0],
		msg{'T'}.u32(1).u8(3).u32(16384),
		msg{'C'}.u8(0).u64(0x16B3748).u64(0x16B3778).u64(0),
	}
	// The message fixture above is built separately: content is raw bytes.
	steps[5] = append(msg{'M'}.u8(1).u64(0x16B3700).str("app.audit").u32(5), "hello"...)

	var got []change.Change
	var commit change.LSN
	for i, data := range steps {
		st, err := d.Decode(ctx, change.LSN(0x16B3000+i), data)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		got = append(got, st.Changes...)
		if st.Commit != 0 {
			commit = st.Commit
		}
	}
	if commit != 0x16B3778 {
		t.Errorf("commit position %s, want the commit record's end 0/16B3778", commit)
	}
	if d.InTransaction() {
		t.Errorf("still in a transaction after commit")
	}
	wantOps := []change.Op{change.Insert, change.Update, change.Delete, change.Message, change.Truncate}
	if len(got) != len(wantOps) {
		t.Fatalf("%d changes, want %d", len(got), len(wantOps))
	}
	for i, c := range got {
		if c.Op != wantOps[i] {
			t.Errorf("change %d: op %s want %s", i, c.Op, wantOps[i])
		}
		if c.Seq != uint32(i) || c.XID != 777 || c.CommitLSN != 0x16B3748 {
			t.Errorf("change %d: seq %d xid %d commit %s", i, c.Seq, c.XID, c.CommitLSN)
		}
		if want := time.Date(2021, 4, 28, 16, 1, 22, 131231000, time.UTC); !c.CommitTime.Equal(want) {
			t.Errorf("change %d: commit time %v", i, c.CommitTime)
		}
	}
	ins := got[0]
	if ins.New[2].Text != "{1,2}" || !ins.Columns[2].Array || !ins.Columns[0].Key || ins.Columns[1].Key {
		t.Errorf("insert: %+v", ins)
	}
	upd := got[1]
	if !upd.OldIsKey || upd.Old[0].Text != "1" || upd.New[2].State != change.Unchanged || upd.New[1].State != change.Null {
		t.Errorf("update: %+v", upd)
	}
	if m := got[3]; string(m.Content) != "hello" || m.Prefix != "app.audit" || !m.Transactional {
		t.Errorf("message: %+v", m)
	}
	if tr := got[4]; !tr.Cascade || !tr.RestartIdentity || tr.Table != "users" {
		t.Errorf("truncate: %+v", tr)
	}
}

func TestDecodeFullIdentityUsesPrimaryKey(t *testing.T) {
	d := NewDecoder("app", fixedCatalog{pk: []string{"id"}}, nil)
	// Under FULL pgoutput flags every column as part of the key.
	if _, err := d.Decode(context.Background(), 1, relationFixture('f', 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	st, err := d.Decode(context.Background(), 2, msg{'I'}.u32(16384).u8('N').tuple(3).text("1").text("a").null())
	if err != nil {
		t.Fatal(err)
	}
	if k := st.Changes[0].KeyColumns(); len(k) != 1 || k[0] != 0 {
		t.Errorf("key columns %v, want [0] (the primary key)", k)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty pgoutput message"},
		{"unknown type", []byte{'Z'}, "unknown pgoutput message type"},
		{"truncated begin", msg{'B'}.u64(1), "truncated"},
		{"insert before relation", msg{'I'}.u32(99).u8('N').tuple(0), "before its Relation message"},
		{"value longer than message", msg{'I'}.u32(16384).u8('N').tuple(1).u8('t').u32(1000), "truncated"},
		{"bad tuple kind", msg{'I'}.u32(16384).u8('N').tuple(1).u8('x'), "unknown tuple column kind"},
		{"binary value", msg{'I'}.u32(16384).u8('N').tuple(1).u8('b').u32(0), "binary tuple value"},
		{"wrong column count", msg{'I'}.u32(16384).u8('N').tuple(1).text("1"), "1 values for 3 columns"},
		{"commit without begin", msg{'C'}.u8(0).u64(1).u64(2).u64(0), "without begin"},
		{"huge truncate count", msg{'T'}.u32(0xFFFFFFFF).u8(0), "truncated"},
		{"unterminated string", msg{'R'}.u32(1).str("public")[:9], "truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder("app", fixedCatalog{}, nil)
			if _, err := d.Decode(context.Background(), 1, relationFixture('d', 1, 0, 0)); err != nil {
				t.Fatal(err)
			}
			_, err := d.Decode(context.Background(), 2, tc.data)
			if err == nil || !contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzDecode feeds arbitrary bytes after a valid Relation message: the
// decoder must return an error or valid changes, never panic, and every change
// it returns must encode and decode back.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(msg{'I'}.u32(16384).u8('N').tuple(3).text("1").text("x").null()))
	f.Add([]byte(msg{'U'}.u32(16384).u8('O').tuple(3).text("1").null().unchanged().u8('N').tuple(3).text("2").null().unchanged()))
	f.Add([]byte(msg{'T'}.u32(1).u8(1).u32(16384)))
	f.Add(beginFixture(1))
	f.Add(relationFixture('f', 1, 1, 1))
	f.Add(append([]byte(msg{'M'}.u8(0).u64(5).str("p").u32(3)), "abc"...))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder("app", fixedCatalog{}, nil)
		if _, err := d.Decode(context.Background(), 1, relationFixture('d', 1, 0, 0)); err != nil {
			t.Fatal(err)
		}
		st, err := d.Decode(context.Background(), 2, data)
		if err != nil {
			return
		}
		for i := range st.Changes {
			rec := change.Record{Changes: st.Changes[i : i+1]}
			if _, err := change.Decode(change.Encode(nil, &rec)); err != nil {
				t.Fatalf("decoded change does not round-trip: %v", err)
			}
		}
	})
}

// BenchmarkDecodeInsert is the decoder's cost per insert of a 3-column row,
// without a policy and with one that hashes a column and redacts another
// (the reading goroutine's share of BenchmarkBacklogPolicy).
func BenchmarkDecodeInsert(b *testing.B) {
	p, err := policy.Parse([]byte("columns:\n  - match: public.users.email\n    action: hash\n  - match: public.users.tags\n    action: redact\n"), "p.yaml")
	if err != nil {
		b.Fatal(err)
	}
	live, err := policy.NewLive(p, []byte("bench-key"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		pol  Policy
	}{{"none", nil}, {"policy", live}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			d := NewDecoder("app", fixedCatalog{}, bc.pol)
			for i, data := range [][]byte{beginFixture(777), relationFixture('d', 1, 0, 0)} {
				if _, err := d.Decode(ctx, change.LSN(i+1), data); err != nil {
					b.Fatal(err)
				}
			}
			inserts := make([][]byte, 1024) // distinct values, as a backlog has
			for i := range inserts {
				inserts[i] = msg{'I'}.u32(16384).u8('N').tuple(3).text(fmt.Sprint(i)).text(fmt.Sprintf("user%d@example.com", i)).text("{1,2}")
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := d.Decode(ctx, change.LSN(i+10), inserts[i%len(inserts)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
