package change

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestRecordBuilderFramesLikeEncode builds the same record three ways: change
// by change, from one run of comma-joined encodings (what capture holds), and
// with Encode; all must be byte-equal and decode to the changes.
func TestRecordBuilderFramesLikeEncode(t *testing.T) {
	a, b := sample(), sample()
	b.Seq, b.Op, b.Old = 4, Insert, nil
	want := Encode([]byte("prefix:"), &Record{Changes: []Change{a, b}})

	var rb RecordBuilder
	rb.Start([]byte("prefix:"))
	rb.Add(&a)
	rb.Add(&b)
	byChange := rb.Finish()

	joined := append(append(AppendChange(nil, &a), ','), AppendChange(nil, &b)...)
	rb.Start([]byte("prefix:"))
	rb.AddEncoded(joined)
	byRun := rb.Finish()

	for name, got := range map[string][]byte{"Add": byChange, "AddEncoded": byRun} {
		if !bytes.Equal(got, want) {
			t.Errorf("%s framing:\n got %s\nwant %s", name, got, want)
		}
	}
	r, err := Decode(bytes.TrimPrefix(want, []byte("prefix:")))
	if err != nil || len(r.Changes) != 2 || r.Changes[1].Seq != 4 {
		t.Fatalf("Decode = %+v, %v", r, err)
	}
	if got := len(Encode(nil, &Record{})); got != RecordOverhead {
		t.Errorf("an empty record is %d bytes, RecordOverhead says %d", got, RecordOverhead)
	}
}

func TestShrink(t *testing.T) {
	big := strings.Repeat("x", 5000)
	bigger := strings.Repeat("y", 9000)
	withValues := func(id, email, bio string) *Change {
		c := sample()
		c.New = []Value{{Text: id}, {Text: email}, {Text: bio}, {State: Null}}
		c.Old = nil
		return &c
	}
	for _, tc := range []struct {
		name        string
		c           *Change
		limit       int
		wantOmitted []int // column indexes of New that must be omitted markers
		wantErr     bool
	}{
		{"fits as it is", withValues("1", "a@x", "short"), 1 << 20, nil, false},
		{"largest first, only as many as needed", withValues("1", big, bigger), 7000, []int{2}, false},
		{"both when one is not enough", withValues("1", big, bigger), 2000, []int{1, 2}, false},
		{"key columns are never omitted", withValues(bigger, "a@x", "b"), 2000, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.c.New)
			out, omitted, err := Shrink([]byte("head"), tc.c, tc.limit)
			if !slices.Equal(tc.c.New, before) {
				t.Error("Shrink modified its input")
			}
			if tc.wantErr {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("err %v, want ErrTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, []byte("head")) || len(out)-4 > tc.limit {
				t.Fatalf("%d bytes after the prefix for limit %d", len(out)-4, tc.limit)
			}
			if omitted != len(tc.wantOmitted) {
				t.Fatalf("omitted %d values, want %d", omitted, len(tc.wantOmitted))
			}
			got := decodeOne(t, out[4:]).New
			for _, i := range tc.wantOmitted {
				if got[i].State != Omitted || got[i].Size != len(tc.c.New[i].Text) {
					t.Errorf("column %d: %+v, want an omitted marker of %d bytes", i, got[i], len(tc.c.New[i].Text))
				}
			}
		})
	}
}

func decodeOne(t *testing.T, encoded []byte) *Change {
	t.Helper()
	var rb RecordBuilder
	rb.Start(nil)
	rb.AddEncoded(encoded)
	r, err := Decode(rb.Finish())
	if err != nil {
		t.Fatal(err)
	}
	return &r.Changes[0]
}

// TestSchemaChangeRecord: a schema change travels with both shapes, on its
// table's schema key, and decodes to what was encoded.
func TestSchemaChangeRecord(t *testing.T) {
	c := Change{Database: "app", Schema: "public", Table: "items", Op: SchemaChange, XID: 9, CommitLSN: 0x300, LSN: 0x200, Seq: 1,
		Columns:    []Column{{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: KindBase, Key: true}, {Name: "note", OID: 25, Type: "text", Base: "text", Kind: KindBase}},
		OldColumns: []Column{{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: KindBase, Key: true}}}
	if k := PartitionKey(&c); k != "schema:public.items" {
		t.Errorf("partition key %q", k)
	}
	r, err := Decode(Encode(nil, &Record{Changes: []Change{c}}))
	if err != nil {
		t.Fatal(err)
	}
	got := r.Changes[0]
	got.CommitTime = c.CommitTime
	if !reflect.DeepEqual(got, c) {
		t.Errorf("decoded %+v\nwant %+v", got, c)
	}
	bad := c
	bad.Columns, bad.OldColumns = nil, nil
	if err := bad.Validate(); err == nil {
		t.Error("a schema change without columns validated")
	}
}
