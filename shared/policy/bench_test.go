package policy

import (
	"testing"

	"github.com/walbridge/walbridge/shared/change"
)

// BenchmarkApply is the policy's cost per change on capture's reading
// goroutine: one insert of a 4-column row with a column hashed, one
// excluded and one redacted.
func BenchmarkApply(b *testing.B) {
	p, err := Parse([]byte("columns:\n  - match: public.orders.note\n    action: hash\n  - match: public.orders.customer\n    action: exclude\n  - match: public.orders.total\n    action: redact\n"), "p.yaml")
	if err != nil {
		b.Fatal(err)
	}
	h, _ := NewHasher([]byte("bench-key"))
	cols := []change.Column{{Name: "id", Key: true}, {Name: "customer"}, {Name: "total"}, {Name: "note"}}
	pl, err := p.Plan("public", "orders", cols, h)
	if err != nil {
		b.Fatal(err)
	}
	row := []change.Value{{Text: "123456"}, {Text: "456"}, {Text: "34.56"}, {Text: "order 123456"}}
	tuple := make([]change.Value, len(row))
	b.ReportAllocs()
	for b.Loop() {
		copy(tuple, row) // the decoder's tuple, fresh per message
		c := change.Change{Columns: cols, New: tuple}
		pl.Apply(&c)
	}
}
