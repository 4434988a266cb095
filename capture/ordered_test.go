package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walbridge/walbridge/fanout/orderedbus/orderedbustest"
	"github.com/walbridge/walbridge/shared/kinesistest"
)

// buildFanout builds the fanout binary into a test's temporary folder.
func buildFanout(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fanout")
	if out, err := exec.Command("go", "build", "-o", bin, "../fanout").CombinedOutput(); err != nil {
		t.Fatalf("build fanout: %v\n%s", err, out)
	}
	return bin
}

// startFanout runs "fanout poll" as a process of its own, so that it can be
// killed like capture.
func startFanout(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	return startProc(t, "fanout", bin, env, append([]string{"poll"}, args...)...)
}

// TestCrashSafetyOrderedBus is the crash test through the ordered bus:
// capture is killed with SIGKILL a dozen times (and fanout every third
// time) while a writer commits, and 30% of the bus's entries fail. Capture
// writes again what it had not confirmed and fanout publishes again what it
// had not checkpointed; the bus's deduplication (DeduplicationId lsn:seq,
// within its 5-minute window) must suppress every one of those repeats, so
// that the FIFO subscriber receives each committed change exactly once, in
// commit order per row. Capture writes version 2 records here (many rows
// per record, routed by explicit hash key; fanout publishes each row's
// changes from the shard that owns its key).
func TestCrashSafetyOrderedBus(t *testing.T) {
	const bus = "arn:aws:events:us-east-1:123456789012:event-busv2/cdc/abcdefghijklmnopqrstuvwxy"
	pg, url := setupDB(t, `CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)`)
	k := kinesistest.StartEmulator(t)
	kinesistest.CreateStream(t, kinesistest.Client(t, k.URL), "changes", 4)
	f := orderedbustest.Start(t, orderedbustest.Options{Bus: bus, FailRate: 0.3, ThrottleEvery: 7, Seed: 11})
	capEnv := append(awsEnv(k.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_STATUS_INTERVAL=100ms", "WALBRIDGE_RECORD_FORMAT=v2")
	fanEnv := append(awsEnv(k.URL), "AWS_ENDPOINT_URL_EVENTBRIDGE=http://127.0.0.1:1", // the classic bus must not be used
		"AWS_ENDPOINT_URL_EVENTBRIDGEV2="+f.URL, "WALBRIDGE_EVENT_BUS="+bus, "AWS_LAMBDA_RUNTIME_API=")
	fanoutBin := buildFanout(t)
	checkpoint := filepath.Join(t.TempDir(), "checkpoint.json")
	pollArgs := []string{"-stream", "changes", "-checkpoint", checkpoint, "-poll-interval", "20ms"}

	const keys = 40
	pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO counters SELECT g, 0 FROM generate_series(1, %d) g`, keys))
	stopWriter := startCounterWriter(t, url, keys, 2500)

	rng := rand.New(rand.NewPCG(5, 6))
	const kills = 12
	fan := startFanout(t, fanoutBin, fanEnv, pollArgs...)
	for i := 0; i < kills; i++ {
		p := startCapture(t, capEnv)
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond) // a random moment to crash at
		p.kill()
		if i%3 == 2 {
			fan.kill()
			fan = startFanout(t, fanoutBin, fanEnv, pollArgs...)
		}
	}
	committed, total := stopWriter()
	p := startCapture(t, capEnv)
	waitConfirmed(t, url, currentLSN(t, url), 3*time.Minute)
	p.stop(t)
	// Everything is in the stream now: the running poller stops, and a last
	// one from its checkpoint publishes the rest and exits at the end.
	// A SIGTERM before the process has installed its handler would kill it
	// (a fanout restarted by the last kill may still be starting).
	fan.waitLog(t, `"msg":"polling"`, 1, 40*time.Second)
	fan.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-fan.done; err != nil {
		t.Fatalf("fanout poll exited with %v after SIGTERM\n%s", err, fan.logs.String())
	}
	last := startFanout(t, fanoutBin, fanEnv, append(pollArgs, "-idle-exit")...)
	select {
	case err := <-last.done:
		if err != nil {
			t.Fatalf("the last fanout poll: %v\n%s", err, last.logs.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the last fanout poll did not reach the end of the stream within 3 minutes")
	}

	records := 0
	for _, cs := range streamChanges(t, k.URL, "changes") {
		records += len(cs)
	}
	all := f.All()
	stats := f.Stats()
	t.Logf("%d capture kills, %d fanout kills; committed %d changes (%d inserts, %d updates); %d changes in the stream; delivered %d; bus %+v",
		kills, kills/3, keys+total, keys, total, records, len(all), stats)

	// Per row: the insert (n=0), then n=1, 2, ... with nothing missing and
	// nothing twice.
	byRow := map[string][]int{}
	for _, d := range all {
		var det struct {
			NewValues struct {
				N struct {
					Value json.Number `json:"value"`
				} `json:"n"`
			} `json:"newValues"`
		}
		if err := json.Unmarshal([]byte(d.Detail), &det); err != nil {
			t.Fatalf("event detail: %v", err)
		}
		n, err := strconv.Atoi(det.NewValues.N.Value.String())
		if err != nil {
			t.Fatalf("group %s: n = %q", d.Group, det.NewValues.N.Value)
		}
		byRow[d.Group] = append(byRow[d.Group], n)
	}
	for id := 1; id <= keys; id++ {
		group := "public.counters/" + strconv.Itoa(id)
		ns := byRow[group]
		for i, n := range ns {
			if n != i {
				t.Fatalf("row %d: event %d has n=%d, want %d (lost, repeated or out of order): %v", id, i, n, i, ns)
			}
		}
		if len(ns) != committed[id]+1 {
			t.Fatalf("row %d: %d events delivered, %d changes committed", id, len(ns), committed[id]+1)
		}
	}
	if len(byRow) != keys {
		groups := make([]string, 0, len(byRow))
		for g := range byRow {
			groups = append(groups, g)
		}
		t.Fatalf("events in %d groups, want %d: %s", len(byRow), keys, strings.Join(groups, ", "))
	}
	if stats.Failed == 0 || stats.Deduplicated == 0 {
		t.Fatalf("failing entries (%d) or suppressed repeats (%d) not exercised", stats.Failed, stats.Deduplicated)
	}
}
