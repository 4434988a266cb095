package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/jackc/pgx/v5"

	"github.com/walbridge/walbridge/shared/kinesistest"
	"github.com/walbridge/walbridge/shared/shardmap"
)

// TestReshardKeepsRowOrder: capture writes version 2 records while a
// writer updates 1,000 rows and the test splits the stream's shard twice
// and merges two shards once. fanout then reads the whole stream, parents
// before children, and must publish every committed change once, in order
// per row. The changes capture re-sent after a record landed on a shard
// that did not own their key are exactly the ones fanout skipped.
func TestReshardKeepsRowOrder(t *testing.T) {
	pg, url := setupDB(t, `CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)`)
	k := kinesistest.StartEmulator(t)
	kc := kinesistest.Client(t, k.URL)
	kinesistest.CreateStream(t, kc, "changes", 1)
	capEnv := append(awsEnv(k.URL), "DATABASE_URL="+url, "WALBRIDGE_STREAM=changes", "WALBRIDGE_RECORD_FORMAT=v2")
	const keys = 1000
	pg.Exec(t, "app", fmt.Sprintf(`INSERT INTO counters SELECT g, 0 FROM generate_series(1, %d) g`, keys))
	p := startCapture(t, capEnv)
	p.waitLog(t, "capture starting", 1, 40*time.Second)
	stopWriter := startCounterWriter(t, url, keys, 1<<30)
	// progress waits until the writer has committed n more increments: the
	// reshards happen while it writes.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	sum := func() (n int) {
		if err := conn.QueryRow(context.Background(), `SELECT sum(n) FROM counters`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	progress := func(n int) {
		t.Helper()
		start, deadline := sum(), time.Now().Add(time.Minute)
		for now := start; now < start+n; now = sum() {
			if time.Now().After(deadline) {
				t.Fatalf("the writer committed %d increments in a minute, want %d", now-start, n)
			}
			time.Sleep(5 * time.Millisecond) // a poll interval, not a synchronisation
		}
	}

	ctx := context.Background()
	open := func() []shardmap.Shard {
		m, err := shardmap.List(ctx, kc, "changes")
		if err != nil {
			t.Fatal(err)
		}
		return m.Open()
	}
	reshards := []func(){
		func() { split(t, kc, open()[0]) },
		func() { split(t, kc, open()[1]) },
		func() {
			o := open()
			if _, err := kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String("changes"), ShardToMerge: aws.String(o[0].ID), AdjacentShardToMerge: aws.String(o[1].ID)}); err != nil {
				t.Fatal(err)
			}
			kinesistest.WaitActive(t, kc, "changes")
		},
	}
	for _, reshard := range reshards {
		progress(3000)
		reshard()
	}
	progress(3000)
	committed, total := stopWriter()
	waitConfirmed(t, url, currentLSN(t, url), 2*time.Minute)
	p.stop(t)
	rerouted := sumLogField(t, p.logs.String(), "resharded: changes re-sent", "changes")

	// fanout reads every shard, children after their parents, to the end.
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(buildFanout(t), "poll", "-stream", "changes", "-stdout", "-idle-exit", "-poll-interval", "20ms")
	cmd.Env = append(os.Environ(), append(awsEnv(k.URL), "AWS_LAMBDA_RUNTIME_API=")...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("fanout poll: %v\n%s", err, stderr.String())
	}
	elsewhere := sumLogField(t, stderr.String(), "batch published", "elsewhere")

	byRow := map[int][]int{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Detail struct {
				NewValues struct {
					ID struct {
						Value json.Number `json:"value"`
					} `json:"id"`
					N struct {
						Value json.Number `json:"value"`
					} `json:"n"`
				} `json:"newValues"`
			} `json:"detail"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event %s: %v", sc.Bytes(), err)
		}
		id, _ := strconv.Atoi(ev.Detail.NewValues.ID.Value.String())
		n, _ := strconv.Atoi(ev.Detail.NewValues.N.Value.String())
		byRow[id] = append(byRow[id], n)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading fanout's events: %v", err)
	}
	published := 0
	for id := 1; id <= keys; id++ {
		ns := byRow[id]
		published += len(ns)
		for i, n := range ns {
			if i > 0 && n != i { // the first is the insert (n=0), published if it reached the stream
				t.Fatalf("row %d: event %d has n=%d, want %d (lost, repeated or out of order): %v", id, i, n, i, ns)
			}
		}
		if len(ns) != committed[id]+1 {
			// Which rows and shards went missing tells a record capture
			// never wrote from a shard fanout did not read.
			events := 0
			for _, ns := range byRow {
				events += len(ns)
			}
			t.Logf("fanout read %d events of %d rows; its logs:\n%s", events, len(byRow), stderr.String())
			t.Fatalf("row %d: %d events, %d changes committed", id, len(ns), committed[id]+1)
		}
	}
	shards := open()
	t.Logf("committed %d changes (%d inserts, %d updates over %d rows); published %d; %d open shards at the end; capture re-sent %d changes after reshards, fanout skipped %d as another shard's",
		keys+total, keys, total, keys, published, len(shards), rerouted, elsewhere)
	if rerouted == 0 {
		t.Error("no change was re-sent: the reshards did not catch a record in flight with a stale map")
	}
	if rerouted != elsewhere {
		t.Errorf("capture re-sent %d changes, fanout skipped %d: each change must be published from exactly one landing", rerouted, elsewhere)
	}
}

// split splits a shard at the middle of its range and waits for the stream.
func split(t *testing.T, kc *kinesis.Client, s shardmap.Shard) {
	t.Helper()
	mid := s.Range.Start
	mid.Hi += (s.Range.End.Hi - s.Range.Start.Hi) / 2
	if _, err := kc.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String("changes"), ShardToSplit: aws.String(s.ID), NewStartingHashKey: aws.String(mid.String())}); err != nil {
		t.Fatal(err)
	}
	kinesistest.WaitActive(t, kc, "changes")
}

// sumLogField adds up an integer field of the JSON log lines with msg.
func sumLogField(t *testing.T, logs, msg, field string) int {
	t.Helper()
	sum := 0
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, `"msg":"`+msg) {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			continue // not a log line of ours
		}
		if v, ok := fields[field].(float64); ok {
			sum += int(v)
		}
	}
	return sum
}
