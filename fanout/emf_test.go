package main

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/walbridge/walbridge/fanout/publish"
	"github.com/walbridge/walbridge/fanout/report"
	"github.com/walbridge/walbridge/shared/backoff"
	"github.com/walbridge/walbridge/shared/eventbridgetest"
	"github.com/walbridge/walbridge/shared/metrics"
)

// emfLine is an Embedded Metric Format line as CloudWatch reads it.
type emfLine struct {
	AWS struct {
		Timestamp         int64
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
}

// checkEMF applies CloudWatch's rules for an EMF line and returns its
// metrics' values: one directive, its dimension sets naming members that
// are strings, each metric a member holding a number or up to 100 numbers,
// with a unit CloudWatch knows.
func checkEMF(t *testing.T, line []byte) (emfLine, map[string][]float64, map[string]any) {
	t.Helper()
	var l emfLine
	var root map[string]any
	if err := json.Unmarshal(line, &l); err != nil {
		t.Fatalf("EMF line %s: %v", line, err)
	}
	json.Unmarshal(line, &root)
	if len(l.AWS.CloudWatchMetrics) != 1 || l.AWS.Timestamp == 0 {
		t.Fatalf("EMF line %s: want one CloudWatchMetrics directive and a Timestamp", line)
	}
	d := l.AWS.CloudWatchMetrics[0]
	if d.Namespace == "" || len(d.Dimensions) == 0 {
		t.Fatalf("directive %+v: no namespace or dimensions", d)
	}
	for _, set := range d.Dimensions {
		if len(set) == 0 || len(set) > 30 {
			t.Errorf("dimension set %v: want 1 to 30 names", set)
		}
		for _, name := range set {
			if _, ok := root[name].(string); !ok {
				t.Errorf("dimension %s is not a string member of the line", name)
			}
		}
	}
	units := []string{"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits",
		"Percent", "Count", "Bytes/Second", "Count/Second", "None"}
	values := map[string][]float64{}
	for _, m := range d.Metrics {
		if !slices.Contains(units, m.Unit) {
			t.Errorf("metric %s: unit %q is not a CloudWatch unit", m.Name, m.Unit)
		}
		switch v := root[m.Name].(type) {
		case float64:
			values[m.Name] = []float64{v}
		case []any:
			if len(v) == 0 || len(v) > 100 {
				t.Errorf("metric %s has %d values", m.Name, len(v))
			}
			for _, x := range v {
				f, ok := x.(float64)
				if !ok {
					t.Errorf("metric %s: value %v is not a number", m.Name, x)
				}
				values[m.Name] = append(values[m.Name], f)
			}
		default:
			t.Errorf("metric %s: member %v is not a number or a list of numbers", m.Name, root[m.Name])
		}
	}
	return l, values, root
}

// TestEMFLine: each batch writes one EMF line that CloudWatch accepts, in
// the walbridge namespace under the function's name, with the batch's
// counts, each request's PutEvents latency, and the end-to-end lag equal to
// the (fixed) clock minus the commit time.
func TestEMFLine(t *testing.T) {
	f := eventbridgetest.Start(t, eventbridgetest.Options{})
	cfg := defaultConfig(t)
	commit := userChange(1, 0).CommitTime
	now := commit.Add(1500 * time.Millisecond)
	clock := func() time.Time { return now }
	api := eventbridgetest.Client(t, f.URL, func(o *eventbridge.Options) { o.RetryMaxAttempts = 1 })
	pub := publish.New(api, publish.Config{Now: clock, Backoff: backoff.Policy{Base: time.Millisecond, Max: 10 * time.Millisecond, Equal: true}})
	var out bytes.Buffer
	core, logs := observer.New(zapcore.InfoLevel)
	h := newHandler(pub, cfg, zap.New(core), metrics.New()).withEMF(&out, "walbridge-fanout")
	h.now = clock

	var recs []events.KinesisEventRecord
	for i := range 25 {
		recs = append(recs, recordOf(i, userChange(i+1, 0)))
	}
	if res := h.Process(context.Background(), events.KinesisEvent{Records: recs}); len(res.BatchItemFailures) != 0 {
		t.Fatalf("batch failures %+v", res.BatchItemFailures)
	}
	lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("%d EMF lines for one batch:\n%s", len(lines), out.String())
	}
	l, values, root := checkEMF(t, lines[0])
	d := l.AWS.CloudWatchMetrics[0]
	if d.Namespace != report.Namespace || !slices.Equal(d.Dimensions[0], []string{report.Dimension}) || root[report.Dimension] != "walbridge-fanout" {
		t.Errorf("namespace %s, dimensions %v, function %v", d.Namespace, d.Dimensions, root[report.Dimension])
	}
	if l.AWS.Timestamp != now.UnixMilli() {
		t.Errorf("Timestamp %d, want %d", l.AWS.Timestamp, now.UnixMilli())
	}
	want := map[string]float64{report.Records: 25, report.Batches: 1, report.EventsPublished: 25, report.EventsFailed: 0, report.EntriesThrottled: 0,
		report.EndToEndLagP50: 1500, report.EndToEndLagP99: 1500, report.EndToEndLagMax: 1500}
	for name, v := range want {
		if got := values[name]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	if lat := values[report.PutEventsLatency]; len(lat) != 3 || slices.Max(lat) != 0 { // 25 events: 3 requests, a fixed clock
		t.Errorf("PutEventsLatency = %v, want three requests of 0 ms", lat)
	}
	for _, name := range report.Names {
		if _, ok := values[name]; !ok {
			t.Errorf("metric %s missing", name)
		}
	}
	// The log line (what fanout poll prints) has the same figures.
	batch := logs.FilterMessage("batch published").All()
	if len(batch) != 1 {
		t.Fatalf("%d batch log lines", len(batch))
	}
	if f := batch[0].ContextMap(); f["lagP50Ms"] != 1500.0 || f["lagMaxMs"] != 1500.0 || f["throttled"] != int64(0) {
		t.Errorf("batch log fields %v", f)
	}
}
