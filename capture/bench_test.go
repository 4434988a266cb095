package main

// Benchmarks of the capture binary against the same workload read by
// pg_recvlogical (PostgreSQL's own client, pgoutput to /dev/null) in the same
// run, so that the figures are ratios against a baseline on this machine.
// Kinesis is the in-test endpoint acknowledging at once (Discard), so the
// numbers are capture's, not an emulator's. scripts/bench runs them.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/walbridge/walbridge/capture/backfill"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/pgtest"
)

// envInt is the positive integer in the environment variable name, or def.
// The workloads' sizes: WALBRIDGE_BENCH_CHANGES (backlog, 1,000,000),
// WALBRIDGE_BENCH_ROUNDS (drains per side, 3), WALBRIDGE_BENCH_RATE
// (changes/s offered in the latency benchmark, 5,000).
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkBacklog drains a backlog of changes (10 transactions of inserts
// into a small table) through pg_recvlogical and through capture, in
// alternating rounds, each from a slot of its own created before the
// backlog was written. On a small shared machine one drain can take twice
// as long as the next; alternating and summing over rounds keeps drift (a
// checkpoint, the page cache, another tenant) from landing on one side.
func BenchmarkBacklog(b *testing.B) {
	n, rounds := envInt("WALBRIDGE_BENCH_CHANGES", 1000000), envInt("WALBRIDGE_BENCH_ROUNDS", 3)
	pg := pgtest.Start(b, pgtest.Options{})
	url := pg.CreateDatabase(b, "app")
	pg.Exec(b, "app", `CREATE TABLE orders (id bigint PRIMARY KEY, customer int, total numeric(10,2), note text)`)
	for r := range rounds {
		if code, out := runBenchCmd(b, url, "WALBRIDGE_SLOT="+captureSlot(r), "setup"); code != 0 {
			b.Fatalf("setup: %s", out)
		}
		pg.Exec(b, "app", fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, baselineSlot(r)))
	}
	per := n / 10
	for i := 0; i < 10; i++ {
		pg.Exec(b, "app", fmt.Sprintf(`INSERT INTO orders SELECT g, g %% 1000, (g %% 10000) / 100.0, 'order ' || g FROM generate_series(%d, %d) g`, i*per+1, (i+1)*per))
	}
	end := currentLSN(b, url)

	bin, err := pgtest.BinDir()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var baseline, elapsed, cpu, endpointCPU time.Duration
		var requests, entries int
		for r := range rounds {
			// Baseline: pg_recvlogical decoding the same backlog from its own slot.
			start := time.Now()
			cmd := exec.Command(filepath.Join(bin, "pg_recvlogical"), "-d", url, "--slot", baselineSlot(r), "--start",
				"-o", "proto_version=1", "-o", "publication_names=walbridge", "-E", end.String(), "-f", "/dev/null", "--no-loop")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("pg_recvlogical: %v\n%s", err, out)
			}
			baseline += time.Since(start)

			d := drain(b, url, captureSlot(r), end, n, r == 0)
			elapsed, cpu, endpointCPU = elapsed+d.elapsed, cpu+d.cpu, endpointCPU+d.endpointCPU
			requests, entries = requests+d.requests, entries+d.entries
		}
		total := float64(n * rounds)
		capRate := total / elapsed.Seconds()
		baseRate := total / baseline.Seconds()
		b.ReportMetric(capRate, "capture-changes/s")
		b.ReportMetric(baseRate, "pg_recvlogical-changes/s")
		b.ReportMetric(capRate/baseRate, "ratio")
		b.ReportMetric(float64(cpu.Microseconds())/total, "cpu-µs/change")
		// The in-test endpoint shares the machine's cores with capture and
		// PostgreSQL; its CPU (this process) says how much of them it took.
		b.ReportMetric(float64(endpointCPU.Microseconds())/total, "endpoint-cpu-µs/change")
		b.ReportMetric(float64(entries)/float64(requests), "records/request")
	}
}

// drained is what one capture run from a slot to the backlog's end took.
type drained struct {
	elapsed, cpu, endpointCPU time.Duration
	requests, entries, bytes  int
}

// drain runs capture from slot until it has confirmed end, into a fake
// Kinesis endpoint that acknowledges at once, and checks that n changes
// arrived. profile: save WALBRIDGE_BENCH_CPUPROFILE of this run, if set (a
// %s in the name is replaced by the slot, so that each side of a comparison
// keeps its own profile).
func drain(b *testing.B, url, slot string, end change.LSN, n int, profile bool, env ...string) drained {
	return drainInto(b, kinesistest.FakeOptions{Stream: "changes", Shards: 4, Discard: true}, url, slot, end, n, profile, env...)
}

// drainInto is drain into a fake Kinesis endpoint with these options. A
// version 2 run (WALBRIDGE_RECORD_FORMAT=v2 in env or the environment)
// packs many changes per record: the slot's confirmation says they all
// arrived.
func drainInto(b *testing.B, opts kinesistest.FakeOptions, url, slot string, end change.LSN, n int, profile bool, env ...string) drained {
	fk := kinesistest.StartFake(b, opts)
	// Capture reports its confirmed position every status interval (1 s by
	// default): the drain's end is seen up to that late, a second in four
	// at these rates, which made rounds land on two rates 25% apart.
	extra := append([]string{"WALBRIDGE_SLOT=" + slot, "WALBRIDGE_STATUS_INTERVAL=20ms"}, env...)
	file := os.Getenv("WALBRIDGE_BENCH_CPUPROFILE")
	profile = profile && file != ""
	if profile && strings.Contains(file, "%s") {
		file = fmt.Sprintf(file, slot) // one profile per side of a comparison
	}
	addr := freeAddr(b)
	if profile {
		extra = append(extra, "WALBRIDGE_PPROF=1", "WALBRIDGE_METRICS_ADDR="+addr)
	}
	selfStart := selfCPU(b)
	start := time.Now()
	p := startBenchCapture(b, url, fk.URL, extra...)
	if profile {
		go saveProfile(addr, file)
	}
	waitSlotConfirmed(b, url, slot, end, 10*time.Minute)
	d := drained{elapsed: time.Since(start), cpu: processCPU(b, p.Process.Pid), endpointCPU: selfCPU(b) - selfStart}
	p.Process.Signal(os.Interrupt)
	p.Wait()
	st := fk.Stats()
	v2 := os.Getenv("WALBRIDGE_RECORD_FORMAT") == "v2"
	for _, e := range env {
		if strings.HasPrefix(e, "WALBRIDGE_RECORD_FORMAT=") {
			v2 = e == "WALBRIDGE_RECORD_FORMAT=v2"
		}
	}
	if st.Accepted < n && !v2 {
		b.Fatalf("%d records accepted, want %d", st.Accepted, n)
	}
	d.requests, d.entries, d.bytes = st.PutRecordsRequests, st.Entries, st.AcceptedBytes
	return d
}

// benchPolicy has five rules, three of which touch every change of the
// backlog's table (one an HMAC per change).
const benchPolicy = `columns:
  - match: public.orders.note
    action: hash
  - match: public.orders.customer
    action: exclude
  - match: public.orders.total
    action: redact
  - match: "*.*.password*"
    action: exclude
tables:
  - match: audit.*
    action: skip
`

// BenchmarkBacklogPolicy drains the same backlog through capture without a
// policy and with benchPolicy, in alternating rounds, each from a slot of
// its own: ratio is the policy's throughput over none's (target >= 0.95),
// with each side's capture CPU and Kinesis data bytes per change. The first
// round of each side is profiled when WALBRIDGE_BENCH_CPUPROFILE is set
// (name it with a %s, e.g. /tmp/cpu-%s.prof, to keep both).
// WALBRIDGE_BENCH_POLICY names another policy file.
func BenchmarkBacklogPolicy(b *testing.B) {
	n, rounds := envInt("WALBRIDGE_BENCH_CHANGES", 1000000), envInt("WALBRIDGE_BENCH_ROUNDS", 3)
	// Two slots a round, each drained once.
	pg := pgtest.Start(b, pgtest.Options{Settings: map[string]string{"max_replication_slots": strconv.Itoa(2*rounds + 4)}})
	url := pg.CreateDatabase(b, "app")
	pg.Exec(b, "app", `CREATE TABLE orders (id bigint PRIMARY KEY, customer int, total numeric(10,2), note text)`)
	// WALBRIDGE_BENCH_POLICY=FILE drains with another policy.
	polFile := os.Getenv("WALBRIDGE_BENCH_POLICY")
	if polFile == "" {
		polFile = filepath.Join(b.TempDir(), "policy.yaml")
		if err := os.WriteFile(polFile, []byte(benchPolicy), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	slotOf := func(side string, r int) string { return fmt.Sprintf("%s_%d", side, r) }
	for r := range rounds {
		for _, side := range []string{"plain", "policy"} {
			if code, out := runBenchCmd(b, url, "WALBRIDGE_SLOT="+slotOf(side, r), "setup"); code != 0 {
				b.Fatalf("setup: %s", out)
			}
		}
	}
	per := n / 10
	for i := 0; i < 10; i++ {
		pg.Exec(b, "app", fmt.Sprintf(`INSERT INTO orders SELECT g, g %% 1000, (g %% 10000) / 100.0, 'order ' || g FROM generate_series(%d, %d) g`, i*per+1, (i+1)*per))
	}
	end := currentLSN(b, url)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var plain, withPolicy drained
		var pairs []float64 // each round's ratio: its two drains ran back to back
		for r := range rounds {
			// Each side goes first every other round.
			var p, q time.Duration
			for k := range 2 {
				if (k+r)%2 == 0 {
					d := drain(b, url, slotOf("plain", r), end, n, r == 0)
					plain.elapsed, plain.cpu, plain.bytes = plain.elapsed+d.elapsed, plain.cpu+d.cpu, plain.bytes+d.bytes
					p = d.elapsed
				} else {
					d := drain(b, url, slotOf("policy", r), end, n, r == 0, "WALBRIDGE_POLICY="+polFile, "WALBRIDGE_HASH_KEY=bench-key")
					withPolicy.elapsed, withPolicy.cpu, withPolicy.bytes = withPolicy.elapsed+d.elapsed, withPolicy.cpu+d.cpu, withPolicy.bytes+d.bytes
					q = d.elapsed
				}
			}
			pairs = append(pairs, p.Seconds()/q.Seconds())
			b.Logf("round %d: plain %.0f changes/s, policy %.0f changes/s, ratio %.3f", r, float64(n)/p.Seconds(), float64(n)/q.Seconds(), pairs[r])
		}
		total := float64(n * rounds)
		b.ReportMetric(total/plain.elapsed.Seconds(), "plain-changes/s")
		b.ReportMetric(total/withPolicy.elapsed.Seconds(), "policy-changes/s")
		b.ReportMetric(plain.elapsed.Seconds()/withPolicy.elapsed.Seconds(), "ratio")
		// The machine's speed drifts between rounds (other tenants, the page
		// cache) by more than the policy costs; the median of the rounds'
		// own ratios is the figure least moved by one disturbed drain.
		slices.Sort(pairs)
		b.ReportMetric(pairs[len(pairs)/2], "median-round-ratio")
		b.ReportMetric(float64(plain.cpu.Microseconds())/total, "plain-cpu-µs/change")
		b.ReportMetric(float64(withPolicy.cpu.Microseconds())/total, "policy-cpu-µs/change")
		b.ReportMetric(float64(plain.bytes)/total, "plain-bytes/change")
		b.ReportMetric(float64(withPolicy.bytes)/total, "policy-bytes/change")
	}
}

// BenchmarkBurst is a data migration into a one-shard stream that enforces
// Kinesis's write limits (1,000 records/s, 1 MiB/s): one UPDATE of
// 1,000,000 rows (WALBRIDGE_BENCH_ROWS) of a six-column table, committed,
// then the time until capture with version 2 records has the slot confirm
// past it. Version 1 records (one row each) are held to 1,000 rows a second
// by the shard; the same run measures them on an UPDATE of 20,000 rows
// (WALBRIDGE_BENCH_V1_ROWS) for the comparison. Bytes per change are the
// record data Kinesis accepted, against what pgoutput sent pg_recvlogical
// for the big UPDATE (its messages, as written to a file).
func BenchmarkBurst(b *testing.B) {
	n, n1 := envInt("WALBRIDGE_BENCH_ROWS", 1000000), envInt("WALBRIDGE_BENCH_V1_ROWS", 20000)
	pg := pgtest.Start(b, pgtest.Options{})
	url := pg.CreateDatabase(b, "app")
	pg.Exec(b, "app", `CREATE TABLE accounts (id bigint PRIMARY KEY, owner int NOT NULL, balance numeric(12,2) NOT NULL, status text NOT NULL, updated_at timestamptz NOT NULL, note text)`,
		fmt.Sprintf(`INSERT INTO accounts SELECT g, g %% 5000, g %% 100000 / 100.0, 'active', '2026-01-01', 'account ' || g FROM generate_series(1, %d) g`, n))
	if code, out := runBenchCmd(b, url, "WALBRIDGE_SLOT=burst_v2", "setup"); code != 0 {
		b.Fatalf("setup: %s", out)
	}
	pg.Exec(b, "app", `SELECT pg_create_logical_replication_slot('burst_pgoutput', 'pgoutput')`)
	pg.Exec(b, "app", `UPDATE accounts SET balance = balance + 1, updated_at = '2026-12-01 12:00:00+00'`)
	end := currentLSN(b, url)
	if code, out := runBenchCmd(b, url, "WALBRIDGE_SLOT=burst_v1", "setup"); code != 0 {
		b.Fatalf("setup: %s", out)
	}
	pg.Exec(b, "app", fmt.Sprintf(`UPDATE accounts SET balance = balance + 1 WHERE id <= %d`, n1))
	end1 := currentLSN(b, url)

	bin, err := pgtest.BinDir()
	if err != nil {
		b.Fatal(err)
	}
	pgoutputFile := filepath.Join(b.TempDir(), "pgoutput.bin")
	cmd := exec.Command(filepath.Join(bin, "pg_recvlogical"), "-d", url, "--slot", "burst_pgoutput", "--start",
		"-o", "proto_version=1", "-o", "publication_names=walbridge", "-E", end.String(), "-f", pgoutputFile, "--no-loop")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	fi, err := os.Stat(pgoutputFile)
	if err != nil {
		b.Fatal(err)
	}
	limited := kinesistest.FakeOptions{Stream: "changes", Shards: 1, ShardLimits: true, Discard: true}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v2 := drainInto(b, limited, url, "burst_v2", end, n, false, "WALBRIDGE_RECORD_FORMAT=v2")
		v1 := drainInto(b, limited, url, "burst_v1", end1, n1, false, "WALBRIDGE_RECORD_FORMAT=v1")
		b.ReportMetric(v2.elapsed.Seconds(), "v2-seconds")
		b.ReportMetric(float64(n)/v2.elapsed.Seconds(), "v2-changes/s")
		b.ReportMetric(float64(n1)/v1.elapsed.Seconds(), "v1-changes/s")
		b.ReportMetric(float64(v2.bytes)/float64(n), "v2-bytes/change")
		b.ReportMetric(float64(v1.bytes)/float64(n1), "v1-bytes/change")
		b.ReportMetric(float64(fi.Size())/float64(n), "pgoutput-bytes/change")
		b.ReportMetric(float64(v2.bytes)/float64(fi.Size()), "v2/pgoutput-bytes")
		b.ReportMetric(float64(v2.entries)/float64(v2.requests), "v2-records/request")
		b.ReportMetric(float64(v2.cpu.Microseconds())/float64(n), "v2-cpu-µs/change")
	}
}

func captureSlot(round int) string  { return fmt.Sprintf("walbridge_%d", round) }
func baselineSlot(round int) string { return fmt.Sprintf("baseline_%d", round) }

// BenchmarkLatency commits single-row transactions at 5,000 changes/s
// (WALBRIDGE_BENCH_RATE) for 10 s and reads capture's commit-to-ack
// histogram from its metrics endpoint.
func BenchmarkLatency(b *testing.B) {
	rate := envInt("WALBRIDGE_BENCH_RATE", 5000)
	// Commits must reach WAL at once: walsenders only send flushed WAL.
	pg := pgtest.Start(b, pgtest.Options{Settings: map[string]string{"synchronous_commit": "on"}})
	url := pg.CreateDatabase(b, "app")
	pg.Exec(b, "app", `CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())`)
	if code, out := runBenchCmd(b, url, "setup"); code != 0 {
		b.Fatalf("setup: %s", out)
	}
	fk := kinesistest.StartFake(b, kinesistest.FakeOptions{Stream: "changes", Shards: 4, Discard: true})
	addr := freeAddr(b)
	p := startBenchCapture(b, url, fk.URL, "WALBRIDGE_METRICS_ADDR="+addr)
	defer func() { p.Process.Signal(os.Interrupt); p.Wait() }()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dur := 10 * time.Second
		offerLoad(b, url, `INSERT INTO ticks DEFAULT VALUES`, rate, dur)
		waitConfirmed(b, url, currentLSN(b, url), time.Minute)
		h := scrapeHistogram(b, "http://"+addr+"/metrics", "walbridge_commit_to_ack_seconds")
		b.ReportMetric(h.quantile(0.50)*1000, "p50-ms(bucket)")
		b.ReportMetric(h.quantile(0.99)*1000, "p99-ms(bucket)")
		b.ReportMetric(h.count/dur.Seconds(), "changes/s")
		b.Logf("commit-to-ack histogram (upper bound s: cumulative count): %v / %v", h.bounds, h.cum)
	}
}

// offerLoad commits sql in single-statement transactions at rate per
// second for dur, from sixteen connections each at rate/16: a single-row
// commit takes longer than the 200 µs between commits that one writer at
// 5k/s would need, and a ticker drops the ticks a slow writer misses.
func offerLoad(b *testing.B, url, sql string, rate int, dur time.Duration) {
	b.Helper()
	ctx := context.Background()
	conns := make([]*pgx.Conn, 16)
	for j := range conns {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		conns[j] = c
	}
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func(c *pgx.Conn) {
			tick := time.NewTicker(time.Second * time.Duration(len(conns)) / time.Duration(rate))
			defer tick.Stop()
			stop := time.After(dur)
			for {
				select {
				case <-stop:
					errs <- nil
					return
				case <-tick.C:
					if _, err := c.Exec(ctx, sql); err != nil {
						errs <- err
						return
					}
				}
			}
		}(c)
	}
	for range conns {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// minus is the histogram of the observations made after earlier.
func (h histogram) minus(earlier histogram) histogram {
	out := histogram{bounds: h.bounds, cum: make([]float64, len(h.cum)), count: h.count - earlier.count}
	for i := range h.cum {
		out.cum[i] = h.cum[i] - earlier.cum[i]
	}
	return out
}

// BenchmarkBackfillLatency offers 1,000 live changes/s (WALBRIDGE_BENCH_RATE)
// for 10 s without a backfill, then for 5 s while a 3,000,000-row table
// (WALBRIDGE_BENCH_ROWS) is backfilled, and reports capture's commit-to-ack
// quantiles of the live changes in each phase (reads are not in the
// histogram).
func BenchmarkBackfillLatency(b *testing.B) {
	rate, n := envInt("WALBRIDGE_BENCH_RATE", 1000), envInt("WALBRIDGE_BENCH_ROWS", 3000000)
	pg := pgtest.Start(b, pgtest.Options{Settings: map[string]string{"synchronous_commit": "on"}})
	url := pg.CreateDatabase(b, "app")
	pg.Exec(b, "app", `CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())`,
		`CREATE TABLE orders (id bigint PRIMARY KEY, customer int, total numeric(10,2), note text)`,
		fmt.Sprintf(`INSERT INTO orders SELECT g, g %% 1000, (g %% 10000) / 100.0, 'order ' || g FROM generate_series(1, %d) g`, n),
		`VACUUM ANALYZE orders`)
	if code, out := runBenchCmd(b, url, "setup"); code != 0 {
		b.Fatalf("setup: %s", out)
	}
	fk := kinesistest.StartFake(b, kinesistest.FakeOptions{Stream: "changes", Shards: 4, Discard: true})
	addr := freeAddr(b)
	p := startBenchCapture(b, url, fk.URL, "WALBRIDGE_METRICS_ADDR="+addr)
	defer func() { p.Process.Signal(os.Interrupt); p.Wait() }()
	metricsURL := "http://" + addr + "/metrics"
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dur := 10 * time.Second
		offerLoad(b, url, `INSERT INTO ticks DEFAULT VALUES`, rate, dur)
		waitConfirmed(b, url, currentLSN(b, url), time.Minute)
		quiet := scrapeHistogram(b, metricsURL, "walbridge_commit_to_ack_seconds")

		// WALBRIDGE_BENCH_BACKFILL_FLAGS adds flags (e.g. --max-rows-per-second 20000).
		args := append([]string{"backfill", "--table", "orders"}, strings.Fields(os.Getenv("WALBRIDGE_BENCH_BACKFILL_FLAGS"))...)
		if code, out := runBenchCmd(b, url, args...); code != 0 {
			b.Fatalf("backfill: %s", out)
		}
		// Shorter than the backfill lasts, even unloaded (3M rows: 6 s with
		// version 2 records, 11 s with version 1).
		busyDur := 5 * time.Second
		offerLoad(b, url, `INSERT INTO ticks DEFAULT VALUES`, rate, busyDur)
		var rowsDuring float64
		var state string
		if err := conn.QueryRow(ctx, `SELECT rows_done, state FROM walbridge.backfills ORDER BY id DESC LIMIT 1`).Scan(&rowsDuring, &state); err != nil {
			b.Fatal(err)
		}
		if state == "done" {
			b.Fatalf("the backfill ended before the loaded phase did (%.0f rows): raise WALBRIDGE_BENCH_ROWS", rowsDuring)
		}
		waitConfirmed(b, url, currentLSN(b, url), time.Minute)
		busy := scrapeHistogram(b, metricsURL, "walbridge_commit_to_ack_seconds").minus(quiet)
		if rowsDuring == 0 {
			b.Fatal("no backfill rows during the loaded phase")
		}
		b.ReportMetric(quiet.quantile(0.99)*1000, "quiet-p99-ms(bucket)")
		b.ReportMetric(busy.quantile(0.50)*1000, "backfill-p50-ms(bucket)")
		b.ReportMetric(busy.quantile(0.99)*1000, "backfill-p99-ms(bucket)")
		b.ReportMetric(busy.count/busyDur.Seconds(), "live-changes/s")
		b.ReportMetric(rowsDuring/busyDur.Seconds(), "backfill-rows/s")
		b.Logf("during the backfill (upper bound s: cumulative count): %v / %v", busy.bounds, busy.cum)
	}
}

// saveProfile fetches a 5 s CPU profile of capture once it is up.
func saveProfile(addr, file string) {
	for i := 0; i < 100; i++ {
		resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=5")
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err == nil {
			f.ReadFrom(resp.Body)
			f.Close()
		}
		return
	}
}

// runBenchCmd runs capture; leading NAME=value arguments go to its
// environment.
func runBenchCmd(b *testing.B, url string, args ...string) (int, string) {
	b.Helper()
	env := append(os.Environ(), "DATABASE_URL="+url)
	for len(args) > 0 && strings.Contains(args[0], "=") {
		env, args = append(env, args[0]), args[1:]
	}
	cmd := exec.Command(captureBin, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 1, string(out)
	}
	return 0, string(out)
}

func startBenchCapture(b *testing.B, url, kinesisURL string, env ...string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(captureBin, "run")
	cmd.Env = append(append(os.Environ(), awsEnv(kinesisURL)...), append(env, "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_LOG_LEVEL=warn")...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return cmd
}

// processCPU is user+system CPU time of a running process (/proc/pid/stat).
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are 14 and 15.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

func freeAddr(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type histogram struct {
	bounds []float64
	cum    []float64
	count  float64
}

func (h histogram) quantile(q float64) float64 {
	for i, c := range h.cum {
		if c >= q*h.count {
			return h.bounds[i]
		}
	}
	return -1
}

func scrapeHistogram(b *testing.B, url, name string) histogram {
	b.Helper()
	var h histogram
	for _, line := range metricsLines(b, url) {
		switch {
		case strings.HasPrefix(line, name+`_bucket{le="`):
			rest := strings.TrimPrefix(line, name+`_bucket{le="`)
			le, val, _ := strings.Cut(rest, `"} `)
			if le == "+Inf" {
				continue
			}
			bound, _ := strconv.ParseFloat(le, 64)
			v, _ := strconv.ParseFloat(val, 64)
			h.bounds, h.cum = append(h.bounds, bound), append(h.cum, v)
		case strings.HasPrefix(line, name+"_count "):
			h.count, _ = strconv.ParseFloat(strings.TrimPrefix(line, name+"_count "), 64)
		}
	}
	if h.count == 0 {
		b.Fatalf("no %s observations at %s", name, url)
	}
	return h
}

// selectChunks reads orders the way a backfill's chunks do, by key in
// chunks of chunkRows (each its own query, the next starting after the last
// key), and throws the rows away: the ceiling of any backfill that reads
// with SELECT, measured beside COPY.
func selectChunks(b *testing.B, conn *pgx.Conn, chunkRows int) int {
	b.Helper()
	ctx := context.Background()
	n, last := 0, []byte("-1")
	sql := fmt.Sprintf(`SELECT id, customer, total, note FROM orders WHERE id > $1::bigint ORDER BY id LIMIT %d`, chunkRows)
	for {
		rr := conn.PgConn().ExecParams(ctx, sql, [][]byte{last}, nil, nil, nil)
		got := 0
		for rr.NextRow() {
			got++
			last = append(last[:0], rr.Values()[0]...)
		}
		if _, err := rr.Close(); err != nil {
			b.Fatal(err)
		}
		n += got
		if got < chunkRows {
			return n
		}
	}
}

// copyChunks reads orders by key in chunks of chunkRows as selectChunks
// does, each chunk with COPY (SELECT ...) TO STDOUT, the bytes thrown away:
// what reading pages with COPY instead of SELECT would leave for the rest.
func copyChunks(b *testing.B, conn *pgx.Conn, chunkRows int) int {
	b.Helper()
	ctx := context.Background()
	n, last := 0, "-1"
	for {
		var w lastRow
		tag, err := conn.PgConn().CopyTo(ctx, &w, fmt.Sprintf(`COPY (SELECT id, customer, total, note FROM orders WHERE id > %s ORDER BY id LIMIT %d) TO STDOUT`, last, chunkRows))
		if err != nil {
			b.Fatal(err)
		}
		got := int(tag.RowsAffected())
		n += got
		if got < chunkRows {
			return n
		}
		id, _, _ := strings.Cut(string(w.row), "\t")
		v, err := strconv.ParseInt(id, 10, 64) // the key of the chunk's last row
		if err != nil {
			b.Fatalf("last row of a chunk: %v", err)
		}
		last = strconv.FormatInt(v, 10)
	}
}

// lastRow keeps the last row COPY wrote (pgconn writes one CopyData
// message, one row, per Write).
type lastRow struct{ row []byte }

func (l *lastRow) Write(p []byte) (int, error) {
	l.row = append(l.row[:0], p...)
	return len(p), nil
}

// selfCPU is this process's user+system CPU time.
func selfCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBackfill backfills a 1,000,000-row table (WALBRIDGE_BENCH_ROWS)
// through a running capture into an endpoint that acknowledges at once, and
// reads the same table with COPY (SELECT * FROM t) TO STDOUT into nothing,
// with the backfill's keyset-paged SELECTs (selectChunks) and with the same
// pages by COPY (copyChunks), alternating over rounds: rates, their ratios,
// capture's CPU per row and peak RSS.
func BenchmarkBackfill(b *testing.B) {
	n, rounds := envInt("WALBRIDGE_BENCH_ROWS", 1000000), envInt("WALBRIDGE_BENCH_ROUNDS", 3)
	flags := strings.Fields(os.Getenv("WALBRIDGE_BENCH_BACKFILL_FLAGS"))
	chunkRows := backfill.DefaultChunkRows
	for i, f := range flags {
		if f == "--chunk-rows" && i+1 < len(flags) {
			chunkRows, _ = strconv.Atoi(flags[i+1])
		}
	}
	pg := pgtest.Start(b, pgtest.Options{})
	url := pg.CreateDatabase(b, "app")
	pg.Exec(b, "app", `CREATE TABLE orders (id bigint PRIMARY KEY, customer int, total numeric(10,2), note text)`,
		fmt.Sprintf(`INSERT INTO orders SELECT g, g %% 1000, (g %% 10000) / 100.0, 'order ' || g FROM generate_series(1, %d) g`, n),
		`VACUUM ANALYZE orders`)
	if code, out := runBenchCmd(b, url, "setup"); code != 0 {
		b.Fatalf("setup: %s", out)
	}
	fk := kinesistest.StartFake(b, kinesistest.FakeOptions{Stream: "changes", Shards: 4, Discard: true})
	var extra []string
	addr, profile := freeAddr(b), os.Getenv("WALBRIDGE_BENCH_CPUPROFILE")
	if profile != "" {
		extra = append(extra, "WALBRIDGE_PPROF=1", "WALBRIDGE_METRICS_ADDR="+addr)
	}
	p := startBenchCapture(b, url, fk.URL, extra...)
	defer func() { p.Process.Signal(os.Interrupt); p.Wait() }()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var copyTime, selectTime, copyChunksTime, backfillTime, cpu time.Duration
		for r := range rounds {
			if r == 0 && profile != "" {
				go saveProfile(addr, strings.ReplaceAll(profile, "%s", "backfill"))
			}
			cpuBefore := processCPU(b, p.Process.Pid)
			start := time.Now()
			if _, err := conn.PgConn().CopyTo(ctx, io.Discard, `COPY (SELECT * FROM orders) TO STDOUT`); err != nil {
				b.Fatal(err)
			}
			copyTime += time.Since(start)

			start = time.Now()
			if got := selectChunks(b, conn, chunkRows); got != n {
				b.Fatalf("the chunked SELECT read %d rows, want %d", got, n)
			}
			selectTime += time.Since(start)

			start = time.Now()
			if got := copyChunks(b, conn, chunkRows); got != n {
				b.Fatalf("the chunked COPY read %d rows, want %d", got, n)
			}
			copyChunksTime += time.Since(start)

			start = time.Now()
			code, out := runBenchCmd(b, url, append([]string{"backfill", "--table", "orders", "--wait"}, flags...)...)
			if code != 0 || !regexp.MustCompile(fmt.Sprintf(`done\s+%d rows`, n)).MatchString(out) {
				b.Fatalf("backfill: %s", out)
			}
			backfillTime += time.Since(start)
			cpu += processCPU(b, p.Process.Pid) - cpuBefore
		}
		total := float64(n * rounds)
		b.ReportMetric(total/backfillTime.Seconds(), "backfill-rows/s")
		b.ReportMetric(float64(cpu.Microseconds())/total, "capture-cpu-µs/row")
		b.ReportMetric(total/copyTime.Seconds(), "copy-rows/s")
		b.ReportMetric(copyTime.Seconds()/backfillTime.Seconds(), "ratio")
		b.ReportMetric(total/selectTime.Seconds(), "chunked-select-rows/s")
		b.ReportMetric(copyTime.Seconds()/selectTime.Seconds(), "chunked-select-ratio")
		b.ReportMetric(copyTime.Seconds()/copyChunksTime.Seconds(), "chunked-copy-ratio")
		b.ReportMetric(float64(peakRSS(b, p.Process.Pid))/(1<<20), "capture-peak-rss-MiB")
	}
}
