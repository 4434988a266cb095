package policy

import (
	"fmt"
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
	notes := make([]string, 1024) // distinct values, as a backlog of inserts has
	for i := range notes {
		notes[i] = fmt.Sprintf("order %d", i)
	}
	tuple := make([]change.Value, 4)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// The decoder's tuple, fresh per message.
		tuple = append(tuple[:0], change.Value{Text: "123456"}, change.Value{Text: "456"}, change.Value{Text: "34.56"}, change.Value{Text: notes[i%len(notes)]})
		c := change.Change{Columns: cols, New: tuple}
		pl.Apply(&c)
		i++
	}
}
