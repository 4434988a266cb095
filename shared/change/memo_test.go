package change

import (
	"bytes"
	"testing"
	"time"
)

// TestMemoEncodesLikeAppendChange runs one Memo through a sequence of
// changes whose columns and commit times repeat, change and come back, and
// checks each encoding (version 1 and 2 bodies) against the memo-less one.
// The columns of one step are rewritten in place after the memo saw them:
// it must not hand back what it saw then.
func TestMemoEncodesLikeAppendChange(t *testing.T) {
	base := sample()
	later := base.CommitTime.Add(time.Microsecond)
	sameInstant := base.CommitTime.In(time.FixedZone("elsewhere", 3600))
	otherCols := append([]Column(nil), base.Columns...)
	otherCols[1].Name = "mail"
	inPlace := append([]Column(nil), base.Columns...)
	inPlace[3].Name = "labels" // unlike the step before it: the memo takes these

	steps := []struct {
		name string
		edit func(c *Change)
	}{
		{"first", func(c *Change) {}},
		{"same columns and commit", func(c *Change) { c.Seq = 4; c.New[1] = Value{Text: "other"} }},
		{"same instant in another zone", func(c *Change) { c.CommitTime = sameInstant }},
		{"next commit", func(c *Change) { c.CommitTime = later }},
		{"another relation's columns", func(c *Change) { c.Columns = otherCols; c.Table = "people" }},
		{"back to the first columns", func(c *Change) {}},
		{"columns the memo will see rewritten", func(c *Change) { c.Columns = inPlace }},
		{"the same array, rewritten in place", func(c *Change) { inPlace[2].Type = "varchar"; c.Columns = inPlace }},
		{"no columns", func(c *Change) { c.Columns, c.New, c.Old = nil, nil, nil; c.Op = Truncate }},
		{"empty columns", func(c *Change) { c.Columns = []Column{}; c.New, c.Old = []Value{}, nil }},
		{"zero commit time", func(c *Change) { c.CommitTime = time.Time{} }},
		{"first again", func(c *Change) {}},
	}
	var m Memo
	for _, st := range steps {
		c := sample()
		c.New = append([]Value(nil), c.New...)
		st.edit(&c)
		if got, want := m.AppendChange([]byte("x"), &c), AppendChange([]byte("x"), &c); !bytes.Equal(got, want) {
			t.Errorf("%s: v1\n got %s\nwant %s", st.name, got, want)
		}
		if got, want := m.AppendBody(nil, &c), AppendBody(nil, &c); !bytes.Equal(got, want) {
			t.Errorf("%s: v2 body\n got %s\nwant %s", st.name, got, want)
		}
		got, gotOmitted, gotErr := m.Shrink(nil, &c, 300)
		want, wantOmitted, wantErr := Shrink(nil, &c, 300)
		if !bytes.Equal(got, want) || gotOmitted != wantOmitted || gotErr != wantErr {
			t.Errorf("%s: Shrink to 300 bytes\n got %s (%d, %v)\nwant %s (%d, %v)", st.name, got, gotOmitted, gotErr, want, wantOmitted, wantErr)
		}
	}
}

// BenchmarkAppendChange is one change of a transaction's run of changes to
// one table, encoded without and with a Memo.
func BenchmarkAppendChange(b *testing.B) {
	c := sample()
	var buf []byte
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			buf = AppendChange(buf[:0], &c)
		}
	})
	b.Run("memo", func(b *testing.B) {
		var m Memo
		for b.Loop() {
			buf = m.AppendChange(buf[:0], &c)
		}
	})
}
