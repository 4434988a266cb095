package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/walbridge/walbridge/fanout/orderedbus/orderedbustest"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/kinesistest"
)

// pollEnv points the SDK at the emulators for one test.
func pollEnv(t *testing.T, kinesisURL, eventBridgeURL string) {
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_KINESIS": kinesisURL, "AWS_ENDPOINT_URL_EVENTBRIDGE": eventBridgeURL, "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_LAMBDA_RUNTIME_API": "",
		"WALBRIDGE_LOG_LEVEL": "warn", "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
	} {
		t.Setenv(k, v)
	}
}

// TestPollAgainstKinesis runs "fanout poll" against the real Kinesis
// emulator (kinesistest.StartEmulator) and the fake EventBridge: two shards, rows
// updated several times, one record EventBridge refuses and one that is not
// a change record. Every other event arrives in order per row, the two bad
// records land in the on-failure file, and a second run resumes after the
// checkpoint without publishing anything again.
func TestPollAgainstKinesis(t *testing.T) {
	k := kinesistest.StartEmulator(t)
	kc := kinesistest.Client(t, k.URL)
	kinesistest.CreateStream(t, kc, "changes", 2)
	f := eventbridgetest.Start(t, eventbridgetest.Options{Reject: func(ev eventbridgetest.Event) (string, string) {
		if strings.Contains(ev.Detail, "poison") {
			return "InvalidArgument", "refused"
		}
		return "", ""
	}})
	pollEnv(t, k.URL, f.URL)

	ctx := context.Background()
	put := func(key string, data []byte) {
		if _, err := kc.PutRecord(ctx, &kinesis.PutRecordInput{StreamName: aws.String("changes"), PartitionKey: aws.String(key), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	want := 0
	for round := 0; round < 4; round++ {
		for row := 1; row <= 6; row++ {
			c := userChange(row, uint32(round))
			c.CommitLSN = change.LSN(0x10000 + round*0x100 + row)
			if round == 2 && row == 3 {
				c.New[1].Text = "poison"
			} else {
				want++
			}
			put(change.PartitionKey(&c), change.Encode(nil, &change.Record{Changes: []change.Change{c}}))
		}
	}
	put("public.users/1", []byte("not a change record"))

	dir := t.TempDir()
	args := []string{"poll", "-stream", "changes", "-checkpoint", filepath.Join(dir, "cp.json"), "-batch-size", "5", "-idle-exit",
		"-max-retries", "1", "-on-failure", filepath.Join(dir, "failures.jsonl"), "-poll-interval", "20ms", "-timeout", "10s"}
	var stderr bytes.Buffer
	if code := command(ctx, args, os.Getenv, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("poll exited %d: %s", code, stderr.String())
	}
	evs := f.Events()
	lastLSN := map[string]string{}
	seen := map[string]bool{}
	for _, ev := range evs {
		var d struct {
			LSN       string `json:"lsn"`
			NewValues struct {
				ID struct {
					Value int `json:"value"`
				} `json:"id"`
			} `json:"newValues"`
		}
		json.Unmarshal([]byte(ev.Detail), &d)
		row := fmt.Sprint(d.NewValues.ID.Value)
		seen[d.LSN] = true
		if d.LSN < lastLSN[row] { // same-length hex: string order is LSN order
			t.Errorf("row %s: %s after %s", row, d.LSN, lastLSN[row])
		}
		lastLSN[row] = d.LSN
	}
	if len(seen) != want {
		t.Errorf("%d distinct events published, want %d", len(seen), want)
	}
	var failures []map[string]any
	lines, _ := os.ReadFile(filepath.Join(dir, "failures.jsonl"))
	for _, line := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var f map[string]any
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("on-failure line %q: %v", line, err)
		}
		failures = append(failures, f)
	}
	if len(failures) != 2 {
		t.Errorf("on-failure file has %d records, want 2: %v", len(failures), failures)
	}
	// Each says why, in words that name the cause and quote no record.
	reasons := map[string]bool{}
	for _, f := range failures {
		r, _ := f["reason"].(string)
		switch {
		case strings.Contains(r, "decode change record: invalid character in literal null"):
			reasons["decode"] = true
		case strings.Contains(r, "public.users") && strings.Contains(r, "InvalidArgument"):
			reasons["refused"] = true
		}
		if strings.Contains(r, "poison") || strings.Contains(r, "not a change") {
			t.Errorf("on-failure reason quotes the record: %q", r)
		}
	}
	if !reasons["decode"] || !reasons["refused"] {
		t.Errorf("on-failure reasons %v: want the decode error and EventBridge's refusal", failures)
	}
	var cp struct{ Shards map[string]json.RawMessage }
	b, _ := os.ReadFile(filepath.Join(dir, "cp.json"))
	if err := json.Unmarshal(b, &cp); err != nil || len(cp.Shards) != 2 {
		t.Errorf("checkpoint %s (%v)", b, err)
	}

	// A second run starts after the checkpoint: nothing is published again.
	before := len(f.Events())
	if code := command(ctx, args, os.Getenv, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("second poll exited %d: %s", code, stderr.String())
	}
	if after := len(f.Events()); after != before {
		t.Errorf("second run published %d events again", after-before)
	}
}

// TestPollStdout prints events the way EventBridge delivers them.
func TestPollStdout(t *testing.T) {
	k := kinesistest.StartEmulator(t)
	kc := kinesistest.Client(t, k.URL)
	kinesistest.CreateStream(t, kc, "changes", 1)
	pollEnv(t, k.URL, "http://127.0.0.1:1") // never called
	t.Setenv("AWS_ACCOUNT_ID", "123456789012")
	c := userChange(1, 0)
	if _, err := kc.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String("changes"), PartitionKey: aws.String("k"),
		Data: change.Encode(nil, &change.Record{Changes: []change.Change{c}})}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := command(context.Background(), []string{"poll", "-stream", "changes", "-stdout", "-idle-exit", "-poll-interval", "20ms", "-on-failure", filepath.Join(t.TempDir(), "f")},
		os.Getenv, &stdout, &stderr); code != 0 {
		t.Fatalf("poll exited %d: %s", code, stderr.String())
	}
	var ev map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &ev); err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	detail, _ := ev["detail"].(map[string]any)
	if ev["version"] != "0" || ev["account"] != "123456789012" || ev["region"] != "us-east-1" || ev["time"] != "2026-11-26T05:00:00Z" ||
		ev["detail-type"] != "DatabaseEvent" || ev["source"] != "walbridge.database" || len(ev["id"].(string)) != 36 ||
		detail["operation"] != "insert" || fmt.Sprint(ev["resources"]) != "[app]" {
		t.Errorf("delivered event %s", stdout.String())
	}
}

func TestPollFlags(t *testing.T) {
	getenv := func(k string) string {
		if k == "WALBRIDGE_STREAM" {
			return "from-env"
		}
		return ""
	}
	o, err := parsePollFlags(nil, getenv, &bytes.Buffer{})
	if err != nil || o.Stream != "from-env" || o.From != "trim-horizon" || o.BatchSize != 100 {
		t.Errorf("defaults %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-from", "yesterday"}, {"-batch-size", "0"}, {"-batch-size", "10001"}, {"extra"}} {
		if _, err := parsePollFlags(bad, getenv, &bytes.Buffer{}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := parsePollFlags([]string{"-from", "2026-11-26T05:00:00Z"}, getenv, &bytes.Buffer{}); err != nil {
		t.Errorf("RFC 3339 -from: %v", err)
	}
	if code := command(context.Background(), []string{"frobnicate"}, getenv, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Errorf("unknown subcommand exited %d, want 2", code)
	}
}

// TestPollOrderedBus runs "fanout poll" against the Kinesis emulator and the
// in-test ordered bus with 30% of entries failing and requests throttled.
// Every change is in the stream twice (what capture writes again after a
// crash); each reaches the bus's FIFO subscriber once, in order per row, and
// a replay of the whole stream from its start (a new checkpoint) delivers
// nothing again: the bus answers every entry DEDUPLICATED.
func TestPollOrderedBus(t *testing.T) {
	const bus = "arn:aws:events:us-east-1:123456789012:event-busv2/cdc/abcdefghijklmnopqrstuvwxy"
	k := kinesistest.StartEmulator(t)
	kc := kinesistest.Client(t, k.URL)
	kinesistest.CreateStream(t, kc, "changes", 2)
	f := orderedbustest.Start(t, orderedbustest.Options{Bus: bus, FailRate: 0.3, ThrottleEvery: 5, Seed: 9})
	pollEnv(t, k.URL, "http://127.0.0.1:1") // the classic endpoint must not be used
	t.Setenv("AWS_ENDPOINT_URL_EVENTBRIDGEV2", f.URL)
	t.Setenv("WALBRIDGE_EVENT_BUS", bus)

	ctx := context.Background()
	var entries []types.PutRecordsRequestEntry
	const rows, rounds = 8, 5
	for round := 0; round < rounds; round++ {
		for row := 1; row <= rows; row++ {
			c := userChange(row, uint32(round))
			c.CommitLSN = change.LSN(0x10000 + round*0x100 + row)
			data := change.Encode(nil, &change.Record{Changes: []change.Change{c}})
			for range 2 {
				entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(change.PartitionKey(&c)), Data: data})
			}
		}
	}
	// One PutRecords call keeps each key's records in order on its shard.
	if out, err := kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("changes"), Records: entries}); err != nil || aws.ToInt32(out.FailedRecordCount) != 0 {
		t.Fatalf("PutRecords: %v", err)
	}
	run := func(checkpoint string) {
		t.Helper()
		var stderr bytes.Buffer
		args := []string{"poll", "-stream", "changes", "-checkpoint", checkpoint, "-batch-size", "7", "-idle-exit",
			"-poll-interval", "20ms", "-timeout", "20s"}
		if code := command(ctx, args, os.Getenv, &bytes.Buffer{}, &stderr); code != 0 {
			t.Fatalf("poll exited %d: %s", code, stderr.String())
		}
	}
	check := func() {
		t.Helper()
		all := f.All()
		if len(all) != rows*rounds {
			t.Fatalf("the subscriber received %d events for %d changes (fake %+v)", len(all), rows*rounds, f.Stats())
		}
		last := map[string]string{}
		for _, d := range all {
			var det struct {
				LSN string `json:"lsn"`
				Seq int    `json:"seq"`
			}
			if err := json.Unmarshal([]byte(d.Detail), &det); err != nil {
				t.Fatal(err)
			}
			if d.DeduplicationID != fmt.Sprintf("%s:%d", det.LSN, det.Seq) || !strings.HasPrefix(d.Group, "public.users/") {
				t.Fatalf("group %q, deduplication id %q for lsn %s", d.Group, d.DeduplicationID, det.LSN)
			}
			if det.LSN <= last[d.Group] { // same-length hex: string order is LSN order
				t.Fatalf("group %s: %s after %s", d.Group, det.LSN, last[d.Group])
			}
			last[d.Group] = det.LSN
		}
	}
	dir := t.TempDir()
	run(filepath.Join(dir, "cp.json"))
	check()
	first := f.Stats()
	if first.Failed == 0 || first.Throttled == 0 || first.Deduplicated < rows*rounds {
		t.Fatalf("fake %+v: failures or the stream's repeats not exercised", first)
	}
	run(filepath.Join(dir, "replay.json"))
	check()
	t.Logf("first run: %+v; after the replay: %+v", first, f.Stats())
}
