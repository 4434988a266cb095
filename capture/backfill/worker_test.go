package backfill

// This test runs the worker and a real replication stream in one process,
// against a real throwaway PostgreSQL cluster, into an in-memory sink that
// makes everything durable at once: the concurrency between the stream's
// goroutine and the worker's runs under the race detector here.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/capture/replication"
	"github.com/walbridge/walbridge/capture/slot"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/pgtest"
)

type memSink struct {
	mu       sync.Mutex
	byKey    map[string][]change.Change
	marked   change.LSN
	maxBytes int
}

func (m *memSink) Add(_ context.Context, c *change.Change) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := *c
	cp.New = append([]change.Value(nil), c.New...)
	k := change.PartitionKey(c)
	m.byKey[k] = append(m.byKey[k], cp)
	return nil
}

func (m *memSink) Mark(_ context.Context, lsn change.LSN) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.marked = max(m.marked, lsn)
	return nil
}

func (m *memSink) Confirmable() change.LSN {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.marked
}

func (m *memSink) Close(context.Context) error { return nil }

func (m *memSink) Buffered() (int, int) { return 0, 1 << 20 }

// Acked is always ready: Confirmable moves with Mark.
func (m *memSink) Acked() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func TestWorkerWithStream(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{})
	url := pg.CreateDatabase(t, "app")
	pg.Exec(t, "app", `CREATE TABLE t (id int PRIMARY KEY, v text)`, `INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := slot.Setup(ctx, conn, slot.SetupOptions{Slot: "walbridge", Publication: "walbridge"}); err != nil {
		t.Fatal(err)
	}
	if err := Install(ctx, conn); err != nil {
		t.Fatal(err)
	}

	sink := &memSink{byKey: map[string][]change.Change{}}
	co := NewCoordinator()
	stream := replication.NewStream(replication.StreamConfig{DatabaseURL: url, Slot: "walbridge", Publication: "walbridge",
		StatusInterval: 100 * time.Millisecond, Interleaver: co}, sink)
	wk := NewWorker(WorkerConfig{DatabaseURL: url, Slot: "walbridge", Publication: "walbridge", Coordinator: co, Sink: sink, Idle: time.Second})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stream.Run(ctx) }()
	go func() { defer wg.Done(); wk.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()

	bs, err := Register(ctx, conn, Request{Slot: "walbridge", Publication: "walbridge", Tables: []string{"t"}, ChunkRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	// Live updates while the backfill runs: each row ends with its update's
	// value, whichever order the read and the update took.
	for i := 1; i <= 5000; i += 50 {
		if _, err := conn.Exec(ctx, `UPDATE t SET v = 'updated' WHERE id = $1`, i); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := Get(ctx, conn, []int64{bs[0].ID})
		if err != nil {
			t.Fatal(err)
		}
		if got[0].State == Done {
			if got[0].RowsDone+got[0].RowsDropped < 5000 {
				t.Fatalf("done after %d rows read and %d dropped of 5000", got[0].RowsDone, got[0].RowsDropped)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backfill still %s after a minute: %+v", got[0].State, got[0])
		}
		time.Sleep(20 * time.Millisecond) // polling the server's view of the backfill
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for id := 1; id <= 5000; id++ {
		cs := sink.byKey[fmt.Sprintf("public.t/%d", id)]
		if len(cs) == 0 {
			t.Fatalf("row %d never reached the sink", id)
		}
		last := cs[len(cs)-1]
		want := fmt.Sprintf("v%d", id)
		if id%50 == 1 {
			want = "updated"
		}
		if last.New[1].Text != want {
			t.Fatalf("row %d ends as %q (%s), want %q", id, last.New[1].Text, last.Op, want)
		}
	}
}

// TestHighWatermarkIsFlushed writes a high watermark on a cluster that
// commits asynchronously and flushes WAL only every 10 s: the statement's
// own commit must have flushed the message, or the stream would wait for
// the WAL writer at every chunk.
func TestHighWatermarkIsFlushed(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"synchronous_commit": "off", "wal_writer_delay": "10s"}})
	url := pg.CreateDatabase(t, "app")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, tc := range []struct {
		sql     string
		flushed bool
	}{
		{`SELECT '', pg_logical_emit_message(true, $1, $2)`, false}, // the control: without set_config
		{highWatermarkSQL, true},
	} {
		var ignored, msg, flushed string
		if err := conn.QueryRow(ctx, tc.sql, WatermarkPrefix, "test").Scan(&ignored, &msg); err != nil {
			t.Fatal(err)
		}
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text, pg_current_wal_flush_lsn() > $1::pg_lsn`, msg).Scan(&flushed, &got); err != nil {
			t.Fatal(err)
		}
		if got != tc.flushed {
			t.Errorf("%s: message at %s, WAL flushed to %s: flushed = %v, want %v", tc.sql, msg, flushed, got, tc.flushed)
		}
	}
}
