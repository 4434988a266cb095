package checkpoint

import (
	"math/rand/v2"
	"testing"

	"github.com/walbridge/walbridge/shared/change"
)

// step is one call on a tracker: track a change (remembered under name),
// mark an LSN, or ack a remembered change; want is Confirmable after it.
type step struct {
	track, ack string
	mark       change.LSN
	want       change.LSN
}

func TestTracker(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"nothing tracked: a mark is confirmable at once", []step{{mark: 10, want: 10}, {mark: 20, want: 20}}},
		{"a mark waits for the change before it", []step{{track: "a"}, {mark: 10}, {ack: "a", want: 10}}},
		{"changes after a mark do not hold it back", []step{{track: "a"}, {mark: 10}, {track: "b"}, {ack: "a", want: 10}, {mark: 20, want: 10}, {ack: "b", want: 20}}},
		{"a later segment done first waits for the earlier", []step{
			{track: "a"}, {mark: 10}, {track: "b"}, {mark: 20}, {ack: "b"}, {ack: "a", want: 20}}},
		{"two changes in one segment", []step{{track: "a"}, {track: "b"}, {mark: 10}, {ack: "b"}, {ack: "a", want: 10}}},
		{"a lower mark never lowers confirmable", []step{{mark: 30, want: 30}, {track: "a", want: 30}, {mark: 20, want: 30}, {ack: "a", want: 30}}},
		{"idle marks join the waiting segment", []step{{track: "a"}, {mark: 10}, {mark: 15}, {mark: 12}, {ack: "a", want: 15}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New()
			tickets := map[string]Ticket{}
			for i, s := range tc.steps {
				switch {
				case s.track != "":
					tickets[s.track] = tr.Track()
				case s.ack != "":
					tr.Ack(tickets[s.ack])
				default:
					tr.Mark(s.mark)
				}
				if got := tr.Confirmable(); got != s.want {
					t.Fatalf("step %d %+v: Confirmable %s, want %s", i, s, got, s.want)
				}
			}
		})
	}
}

// TestTrackerRandomOrder acks changes in random order and checks
// Confirmable against the definition: the highest mark all of whose
// preceding changes are acked.
func TestTrackerRandomOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		tr := New()
		type tracked struct {
			ticket Ticket
			before change.LSN // the first mark after the change
		}
		var changes []tracked
		var marks []change.LSN
		lsn := change.LSN(0)
		for range 50 {
			if rng.IntN(3) == 0 {
				lsn += change.LSN(1 + rng.IntN(5))
				tr.Mark(lsn)
				marks = append(marks, lsn)
				for i := range changes {
					if changes[i].before == 0 {
						changes[i].before = lsn
					}
				}
				continue
			}
			changes = append(changes, tracked{ticket: tr.Track()})
		}
		acked := make([]bool, len(changes))
		for _, i := range rng.Perm(len(changes)) {
			tr.Ack(changes[i].ticket)
			acked[i] = true
			want := change.LSN(0)
			for _, m := range marks {
				ok := true
				for j, c := range changes {
					if !acked[j] && c.before != 0 && c.before <= m {
						ok = false
						break
					}
				}
				if ok {
					want = m
				}
			}
			if got := tr.Confirmable(); got != want {
				t.Fatalf("round %d: Confirmable %s, want %s", round, got, want)
			}
		}
		if tr.Open() != 1 {
			t.Fatalf("round %d: %d segments open after every ack, want 1", round, tr.Open())
		}
	}
}
