package change

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// v2Sample is a record's worth of mixed changes: two tables (one with a
// second shape after a migration), a truncate, a message and a schema
// change, with every kind of marker.
func v2Sample() []Change {
	users := sample()
	ins := sample()
	ins.Op, ins.Old, ins.Seq = Insert, nil, 4
	ins.New = []Value{{Text: "2"}, {State: Redacted, Changed: true}, {State: Null}, {Text: "{}"}}
	orders := Change{Database: "app", Schema: "shop", Table: "orders", Op: Delete, XID: 42, CommitLSN: 0x16B3748, LSN: 0x16B3710,
		CommitTime: users.CommitTime, Seq: 5, Identity: IdentityDefault, OldIsKey: true,
		Columns: []Column{{Name: "id", OID: 20, Type: "int8", Base: "int8", Kind: KindBase, Key: true}, {Name: "note", OID: 25, Type: "text", Base: "text", Kind: KindBase}},
		Old:     []Value{{Text: "7"}, {State: Null}}}
	migrated := orders
	migrated.Op, migrated.Old, migrated.OldIsKey, migrated.Seq = Insert, nil, false, 6
	migrated.Columns = append(append([]Column{}, orders.Columns...), Column{Name: "total", OID: 1700, Type: "numeric", Base: "numeric", Kind: KindBase})
	migrated.New = []Value{{Text: "8"}, {Text: "é \"q\""}, {Text: "1.50"}}
	read := migrated
	read.Op, read.Backfill, read.Seq = Read, "3", 7
	schema := Change{Database: "app", Schema: "shop", Table: "orders", Op: SchemaChange, CommitLSN: 0x16B3748, LSN: 0x16B3711, CommitTime: users.CommitTime,
		Columns: migrated.Columns, OldColumns: orders.Columns}
	trunc := Change{Database: "app", Schema: "s", Table: "t", Op: Truncate, XID: 42, CommitLSN: 1, LSN: 1, CommitTime: time.Unix(0, 0).UTC(), Cascade: true}
	msg := Change{Database: "app", Op: Message, CommitLSN: 9, LSN: 9, CommitTime: time.Unix(1, 1000).UTC(), Prefix: "p", Content: []byte{0, 1, 255}}
	return []Change{users, ins, orders, schema, migrated, read, trunc, msg}
}

func TestV2RoundTrip(t *testing.T) {
	in := v2Sample()
	raw := EncodeV2(nil, &Record{Changes: in})
	if !json.Valid(raw) {
		t.Fatalf("not valid JSON: %s", raw)
	}
	// Three shapes: users, orders before and after the migration.
	var head struct {
		Shapes []json.RawMessage `json:"shapes"`
	}
	if err := json.Unmarshal(raw, &head); err != nil || len(head.Shapes) != 3 {
		t.Fatalf("shapes %d (%v), want 3:\n%s", len(head.Shapes), err, raw)
	}
	compressed := NewCompressor(1).Compress(nil, raw)
	if !bytes.HasPrefix(compressed, zstdMagic) {
		t.Fatalf("a %d-byte record did not compress (%d bytes)", len(raw), len(compressed))
	}
	for _, data := range [][]byte{raw, compressed} {
		if plain, err := Plain(data); err != nil || !bytes.Equal(plain, raw) {
			t.Errorf("Plain: %d bytes (%v), want the %d-byte record", len(plain), err, len(raw))
		}
	}
	for name, data := range map[string][]byte{"raw": raw, "zstd": compressed} {
		t.Run(name, func(t *testing.T) {
			rec, err := Decode(data)
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, raw)
			}
			if len(rec.Changes) != len(in) {
				t.Fatalf("%d changes, want %d", len(rec.Changes), len(in))
			}
			for i := range in {
				got, _ := json.Marshal(rec.Changes[i])
				want, _ := json.Marshal(in[i])
				if string(got) != string(want) {
					t.Errorf("change %d differs:\n got %s\nwant %s", i, got, want)
				}
			}
		})
	}
}

// TestV2ElementsMatchV1 pins that a v2 element is a v1 change minus what
// its shape holds: the two versions cannot drift apart field by field.
func TestV2ElementsMatchV1(t *testing.T) {
	for i, c := range v2Sample() {
		var v1, v2 map[string]any
		json.Unmarshal(AppendChange(nil, &c), &v1)
		body := AppendBody(nil, &c)
		if err := json.Unmarshal(append([]byte{'{'}, body...), &v2); err != nil {
			t.Fatalf("change %d: body %s: %v", i, body, err)
		}
		if HasShape(&c) {
			for _, f := range []string{"database", "schema", "table", "identity", "columns"} {
				delete(v1, f)
			}
		}
		a, _ := json.Marshal(v1)
		b, _ := json.Marshal(v2)
		if string(a) != string(b) {
			t.Errorf("change %d (%s): v2 element %s, want %s", i, c.Op, b, a)
		}
	}
}

func TestCompressKeepsIncompressible(t *testing.T) {
	c := NewCompressor(1)
	tiny := []byte(`{"v":2}`)
	if got := c.Compress([]byte("x"), tiny); string(got) != "x"+string(tiny) {
		t.Errorf("tiny record: %q", got)
	}
}

func TestDecompressBounded(t *testing.T) {
	// A frame that inflates past MaxDecompressed is refused, not allocated.
	big := bytes.Repeat([]byte{' '}, MaxDecompressed+1)
	bomb := NewCompressor(1).Compress(nil, big)
	if _, err := Decode(bomb); err == nil || !strings.Contains(err.Error(), "decompress") {
		t.Fatalf("decompression bomb: %v", err)
	}
}

// BenchmarkV2Bytes reports the bytes per change of a burst of updates to
// distinct rows of one table, as v1 records (one per row), a v2 record and
// a compressed v2 record.
func BenchmarkV2Bytes(b *testing.B) {
	var changes []Change
	for i := range 5000 {
		c := sample()
		c.Old, c.Seq, c.LSN = nil, uint32(i), LSN(0x16B3700+i*64)
		c.New = []Value{{Text: fmt.Sprint(i)}, {Text: fmt.Sprintf("user%d@example.com", i)}, {Text: "bio"}, {Text: "{a,b}"}}
		changes = append(changes, c)
	}
	comp := NewCompressor(1)
	var v1, v2, z int
	for b.Loop() {
		v1 = 0
		for i := range changes {
			v1 += len(Encode(nil, &Record{Changes: changes[i : i+1]}))
		}
		raw := EncodeV2(nil, &Record{Changes: changes})
		v2, z = len(raw), len(comp.Compress(nil, raw))
	}
	n := float64(len(changes))
	b.ReportMetric(float64(v1)/n, "v1-bytes/change")
	b.ReportMetric(float64(v2)/n, "v2-bytes/change")
	b.ReportMetric(float64(z)/n, "v2zstd-bytes/change")
}
