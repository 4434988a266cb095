package putrecords

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
)

// BenchmarkWriter pushes small row changes (about 300 bytes encoded)
// through the writer, a real SDK client and a fake endpoint that
// acknowledges at once without keeping anything, all in this process. It
// reports changes/s end to end (Add to the last acknowledgement in Close)
// and the p99 commit-to-acknowledgement latency (bucket bound). The writer,
// the SDK and the fake share the machine's cores.
//
//	go test -run '^$' -bench BenchmarkWriter -benchtime 1000000x ./capture/putrecords/
func BenchmarkWriter(b *testing.B) {
	for _, bc := range []struct {
		name string
		keys int
		rtt  time.Duration
	}{
		{"keys=65536", 1 << 16, 0}, // mostly one change per record
		{"keys=256", 256, 0},       // hot rows: changes pack into records
		// A round trip like AWS's: 8 requests of at most 500 records in
		// flight bound distinct-key throughput near 8·500/RTT.
		{"keys=65536/rtt=20ms", 1 << 16, 20 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := kinesistest.StartFake(b, kinesistest.FakeOptions{Discard: true, Shards: 4, Latency: bc.rtt})
			w := newWriter(b, fakeClient(b, f.URL), Config{})
			changes := make([]change.Change, bc.keys)
			for i := range changes {
				changes[i] = row("orders", i, 0, 0, "shipped")
			}
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			commit := change.LSN(1 << 20)
			now := time.Now()
			for i := range b.N {
				c := &changes[i%len(changes)]
				if i%10 == 0 {
					commit += 1000
					now = time.Now()
				}
				c.CommitLSN, c.LSN, c.Seq, c.CommitTime = commit, commit-100+change.LSN(i%10), uint32(i%10), now
				if err := w.Add(ctx, c); err != nil {
					b.Fatal(err)
				}
				if i%10 == 9 {
					if err := w.Mark(ctx, commit); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := w.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			st := w.Stats()
			if st.Changes != int64(b.N) {
				b.Fatalf("%d changes acknowledged, want %d", st.Changes, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "changes/s")
			// CPU time of the whole process (writer, SDK client and fake
			// endpoint) per change: steadier than changes/s on a busy machine.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/change")
			b.ReportMetric(float64(b.N)/float64(st.Records), "changes/record")
			b.ReportMetric(st.CommitToAckP99.Seconds()*1000, "p99-ms")
		})
	}
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
