package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/walbridge/walbridge/fanout/publish"
	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/change"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/metrics"
)

const testShard = "shardId-000000000000"

var userColumns = []change.Column{
	{Name: "id", OID: 23, Type: "int4", Base: "int4", Kind: change.KindBase, Key: true},
	{Name: "email", OID: 1043, Type: "varchar", Base: "varchar", Kind: change.KindBase},
}

// userChange is an insert of users row id with a recognisable email.
func userChange(id int, seq uint32) change.Change {
	return change.Change{Database: "app", Schema: "public", Table: "users", Op: change.Insert, Identity: change.IdentityDefault,
		XID: 700, CommitLSN: change.LSN(0x5000 + id), LSN: change.LSN(0x4000 + id), Seq: seq,
		CommitTime: time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC), Columns: userColumns,
		New: []change.Value{{Text: fmt.Sprint(id)}, {Text: fmt.Sprintf("secret-%d@example.com", id)}}}
}

// kinesisRecord wraps record data as Lambda delivers it.
func kinesisRecord(i int, key string, data []byte) events.KinesisEventRecord {
	seq := fmt.Sprintf("4960%052d", i+1)
	return events.KinesisEventRecord{
		AwsRegion: "us-east-1", EventID: testShard + ":" + seq, EventName: "aws:kinesis:record", EventSource: "aws:kinesis",
		EventSourceArn: "arn:aws:kinesis:us-east-1:000000000000:stream/changes", EventVersion: "1.0",
		Kinesis: events.KinesisRecord{Data: data, PartitionKey: key, SequenceNumber: seq, KinesisSchemaVersion: "1.0"},
	}
}

// recordOf encodes changes as one Kinesis record.
func recordOf(i int, changes ...change.Change) events.KinesisEventRecord {
	return kinesisRecord(i, change.PartitionKey(&changes[0]), change.Encode(nil, &change.Record{Changes: changes}))
}

func testHandler(t *testing.T, f *eventbridgetest.Server, cfg config) (*Handler, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	api := eventbridgetest.Client(t, f.URL, func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
	pub := publish.New(api, publish.Config{EventBus: cfg.EventBus, MaxRequestBytes: cfg.MaxEventBytes, Logger: zap.New(core),
		Backoff: backoff.Policy{Base: time.Millisecond, Max: 10 * time.Millisecond, Equal: true}})
	return newHandler(pub, cfg, zap.New(core), metrics.New()), logs
}

// lsnSeq is an event's lsn#seq, which identifies its change.
func lsnSeq(t *testing.T, ev eventbridgetest.Event) string {
	t.Helper()
	var d struct {
		LSN string `json:"lsn"`
		Seq int    `json:"seq"`
	}
	if err := json.Unmarshal([]byte(ev.Detail), &d); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s#%d", d.LSN, d.Seq)
}

func defaultConfig(t *testing.T) config {
	cfg, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestHandle(t *testing.T) {
	message := change.Change{Database: "app", Op: change.Message, XID: 700, CommitLSN: 0x9000, Prefix: "app", Content: []byte("hi"), Transactional: true}
	poison := userChange(3, 0)
	poison.New[1].Text = "poison"
	tests := []struct {
		name            string
		records         []events.KinesisEventRecord
		publishMessages bool
		wantFailure     int      // index of the reported record, -1 for none
		wantPublished   []string // lsn#seq of the accepted events, in order
		mayAlso         []string // events of records after the failure that may have gone out with it (Lambda resends them)
		wantLog         string   // a message logged at error level
	}{
		{name: "all published",
			records:     []events.KinesisEventRecord{recordOf(0, userChange(1, 0)), recordOf(1, userChange(2, 0), userChange(2, 1))},
			wantFailure: -1, wantPublished: []string{"0/5001#0", "0/5002#0", "0/5002#1"}},
		{name: "malformed record stops the batch",
			records:     []events.KinesisEventRecord{recordOf(0, userChange(1, 0)), kinesisRecord(1, "k", []byte(`{"v":1,"changes":[{`)), recordOf(2, userChange(2, 0))},
			wantFailure: 1, wantPublished: []string{"0/5001#0"}, wantLog: "record cannot be published"},
		{name: "unknown change record version",
			records:     []events.KinesisEventRecord{kinesisRecord(0, "k", []byte(`{"v":99,"changes":[]}`)), recordOf(1, userChange(1, 0))},
			wantFailure: 0, wantPublished: nil, wantLog: "record cannot be published"},
		{name: "publish failure mid-batch",
			records:     []events.KinesisEventRecord{recordOf(0, userChange(1, 0)), recordOf(1, userChange(2, 0)), recordOf(2, poison), recordOf(3, userChange(4, 0))},
			wantFailure: 2, wantPublished: []string{"0/5001#0", "0/5002#0"}, mayAlso: []string{"0/5004#0"}, wantLog: "event not published"},
		{name: "logical messages skipped",
			records:     []events.KinesisEventRecord{recordOf(0, message), recordOf(1, userChange(1, 0))},
			wantFailure: -1, wantPublished: []string{"0/5001#0"}},
		{name: "logical messages published on request", publishMessages: true,
			records:     []events.KinesisEventRecord{recordOf(0, message), recordOf(1, userChange(1, 0))},
			wantFailure: -1, wantPublished: []string{"0/9000#0", "0/5001#0"}},
		{name: "empty batch", wantFailure: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := eventbridgetest.Start(t, eventbridgetest.Options{Reject: func(ev eventbridgetest.Event) (string, string) {
				if strings.Contains(ev.Detail, "poison") {
					return "InvalidArgument", "refused"
				}
				return "", ""
			}})
			cfg := defaultConfig(t)
			cfg.PublishMessages = tt.publishMessages
			h, logs := testHandler(t, f, cfg)
			resp, err := h.Handle(context.Background(), events.KinesisEvent{Records: tt.records})
			if err != nil {
				t.Fatalf("Handle returned an error (Lambda would retry the whole batch): %v", err)
			}
			switch {
			case tt.wantFailure < 0 && len(resp.BatchItemFailures) != 0:
				t.Errorf("batchItemFailures %+v, want none", resp.BatchItemFailures)
			case tt.wantFailure >= 0 && (len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != tt.records[tt.wantFailure].Kinesis.SequenceNumber):
				t.Errorf("batchItemFailures %+v, want record %d (%s)", resp.BatchItemFailures, tt.wantFailure, tt.records[tt.wantFailure].Kinesis.SequenceNumber)
			}
			var got []string
			for _, ev := range f.Events() {
				got = append(got, lsnSeq(t, ev))
				if ev.EventBusName != "default" || ev.Source != "walbridge.database" || (ev.DetailType != "DatabaseEvent" && ev.DetailType != "DatabaseMessage") {
					t.Errorf("entry %+v", ev)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.wantPublished, " ") && strings.Join(got, " ") != strings.Join(append(tt.wantPublished, tt.mayAlso...), " ") {
				t.Errorf("published %v, want %v", got, tt.wantPublished)
			}
			if tt.wantLog != "" {
				entries := logs.FilterMessage(tt.wantLog).FilterLevelExact(zapcore.ErrorLevel).All()
				if len(entries) == 0 {
					t.Errorf("no error log %q", tt.wantLog)
				} else if tt.wantLog == "record cannot be published" {
					fields := entries[0].ContextMap()
					rec := tt.records[tt.wantFailure]
					if fields["sequenceNumber"] != rec.Kinesis.SequenceNumber || fields["shard"] != testShard || fields["eventSourceARN"] != rec.EventSourceArn {
						t.Errorf("bad record log fields %v", fields)
					}
				}
			}
			// Row values never reach logs below error level.
			for _, e := range logs.All() {
				if e.Level >= zapcore.ErrorLevel {
					continue
				}
				if b, _ := json.Marshal(e.ContextMap()); strings.Contains(string(b), "secret-") || strings.Contains(e.Message, "secret-") {
					t.Errorf("row value in a %s log: %s %s", e.Level, e.Message, b)
				}
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	cfg, err := loadConfig(env())
	if err != nil || cfg.EventBus != "default" || cfg.MaxEventBytes != 1048576 || cfg.PublishMessages || cfg.Concurrency != 4 {
		t.Errorf("defaults: %+v, %v", cfg, err)
	}
	cfg, err = loadConfig(env("WALBRIDGE_EVENT_BUS", "arn:aws:events:us-east-1:123456789012:event-bus/cdc", "WALBRIDGE_SOURCE", "com.example.db",
		"WALBRIDGE_DETAIL_TYPE", "RowChange", "WALBRIDGE_RESOURCE", "orders", "WALBRIDGE_MAX_EVENT_BYTES", "262144", "WALBRIDGE_PUBLISH_MESSAGES", "true"))
	if err != nil || cfg.EventBus != "arn:aws:events:us-east-1:123456789012:event-bus/cdc" || cfg.Event.Source != "com.example.db" ||
		cfg.Event.DetailType != "RowChange" || cfg.Event.Resource != "orders" || cfg.MaxEventBytes != 262144 || !cfg.PublishMessages {
		t.Errorf("overrides: %+v, %v", cfg, err)
	}
	if cfg.Ordered {
		t.Error("a classic bus ARN chose the ordered bus")
	}
	const v2 = "arn:aws:events:us-east-1:123456789012:event-busv2/cdc/abcdefghijklmnopqrstuvwxy"
	for _, tc := range []struct {
		kind    string
		ordered bool
	}{{"", true}, {"ordered", true}, {"classic", false}} {
		if cfg, err := loadConfig(env("WALBRIDGE_EVENT_BUS", v2, "WALBRIDGE_BUS_KIND", tc.kind)); err != nil || cfg.Ordered != tc.ordered {
			t.Errorf("WALBRIDGE_BUS_KIND=%q with an ordered bus ARN: ordered %v, %v", tc.kind, cfg.Ordered, err)
		}
	}
	for _, bad := range [][]string{
		{"WALBRIDGE_BUS_KIND", "ordered"}, {"WALBRIDGE_BUS_KIND", "fifo"},
		{"WALBRIDGE_MAX_EVENT_BYTES", "big"}, {"WALBRIDGE_MAX_EVENT_BYTES", "10"}, {"WALBRIDGE_PUBLISH_MESSAGES", "maybe"}, {"WALBRIDGE_PUBLISH_SCHEMA_CHANGES", "maybe"},
		{"WALBRIDGE_SOURCE", "aws.rds"}, {"WALBRIDGE_DETAIL_TYPE", strings.Repeat("x", 129)}, {"WALBRIDGE_LOG_LEVEL", "loud"},
		{"WALBRIDGE_PUBLISH_CONCURRENCY", "0"},
	} {
		if _, err := loadConfig(env(bad...)); err == nil {
			t.Errorf("%s=%q accepted", bad[0], bad[1])
		}
	}
}

// TestSchemaChangeRecords: a schema-change record becomes one
// DatabaseSchemaChange event, or is skipped with
// WALBRIDGE_PUBLISH_SCHEMA_CHANGES=false.
func TestSchemaChangeRecords(t *testing.T) {
	sc := userChange(1, 0)
	sc.Op, sc.New, sc.OldColumns = change.SchemaChange, nil, userColumns[:1]
	for _, publish := range []bool{true, false} {
		f := eventbridgetest.Start(t, eventbridgetest.Options{})
		cfg := defaultConfig(t)
		cfg.PublishSchemaChanges = publish
		h, _ := testHandler(t, f, cfg)
		res := h.Process(context.Background(), events.KinesisEvent{Records: []events.KinesisEventRecord{recordOf(0, sc), recordOf(1, userChange(2, 0))}})
		if len(res.BatchItemFailures) != 0 {
			t.Fatalf("failures %+v (%s)", res.BatchItemFailures, res.Reason)
		}
		var types []string
		for _, ev := range f.Events() {
			types = append(types, ev.DetailType)
			if ev.DetailType == "DatabaseSchemaChange" && (!strings.Contains(ev.Detail, `"added":["email"]`) || !strings.Contains(ev.Detail, `"operation":"schema"`)) {
				t.Errorf("schema change detail %s", ev.Detail)
			}
		}
		want := "DatabaseEvent"
		if publish {
			want = "DatabaseSchemaChange,DatabaseEvent"
		}
		if strings.Join(types, ",") != want {
			t.Errorf("publish %v: events %v, want %s", publish, types, want)
		}
	}
}
