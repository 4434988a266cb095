package shapes

import (
	"context"
	"testing"

	"github.com/walbridge/walbridge/shared/change"
)

func cols(names ...string) []change.Column {
	out := make([]change.Column, len(names))
	for i, n := range names {
		out[i] = change.Column{Name: n, OID: 25, Type: "text", Base: "text", Kind: change.KindBase, Key: i == 0}
	}
	return out
}

// TestKnownFollowsTheConfirmedPosition: the first shape is taken as known,
// a repeat is nothing, a change is reported once; a new session forgets
// what was observed after the confirmed position (PostgreSQL sends that WAL
// again) and keeps what was before it.
func TestKnownFollowsTheConfirmedPosition(t *testing.T) {
	ctx := context.Background()
	s := Memory(nil)
	a, b, c := Shape{"public", "t", cols("id", "x")}, Shape{"public", "t", cols("id", "x", "y")}, Shape{"public", "t", cols("id", "y")}
	if _, changed := s.Observe(1, a, 100); changed {
		t.Fatal("the first shape of a table reported as a change")
	}
	if _, changed := s.Observe(1, a, 110); changed {
		t.Fatal("the same shape again reported as a change")
	}
	old, changed := s.Observe(1, b, 200)
	if !changed || len(old.Columns) != 2 {
		t.Fatalf("ADD COLUMN: changed %v, old %v", changed, old)
	}
	if err := s.Confirmed(ctx, nil, 150); err != nil { // a, not b
		t.Fatal(err)
	}
	// Reconnect from 150: the WAL from there is sent again, b's Relation
	// message with it.
	if err := s.Begin(ctx, nil, 150); err != nil {
		t.Fatal(err)
	}
	if old, changed := s.Observe(1, b, 200); !changed || len(old.Columns) != 2 {
		t.Fatalf("after a reconnect before b was confirmed: changed %v, old %v; want b reported again", changed, old)
	}
	if err := s.Begin(ctx, nil, 250); err != nil { // b confirmed this time
		t.Fatal(err)
	}
	if _, changed := s.Observe(1, b, 300); changed {
		t.Fatal("after b was confirmed, its Relation message again reported as a change")
	}
	if _, changed := s.Observe(1, c, 400); !changed {
		t.Fatal("DROP COLUMN not reported")
	}
	if _, changed := s.Observe(2, c, 400); changed || s.Len() != 2 {
		t.Fatalf("another table's first shape reported, or not kept (%d known)", s.Len())
	}
	retyped := Shape{"public", "t", cols("id", "y")}
	retyped.Columns[1].OID, retyped.Columns[1].Type = 20, "int8"
	if _, changed := s.Observe(1, retyped, 500); !changed {
		t.Fatal("ALTER TYPE not reported")
	}
}
