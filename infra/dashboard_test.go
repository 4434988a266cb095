package infra

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/walbridge/walbridge/capture/cwmetrics"
	"github.com/walbridge/walbridge/fanout/report"
)

// dashboardMetric is one row of a dashboard widget's "metrics": namespace,
// metric name, dimension name/value pairs, and optional rendering options.
type dashboardMetric struct {
	namespace, name string
	dims            map[string]string
}

// TestDashboard: the dashboard's body is valid JSON; it shows every panel
// an operator needs; each walbridge metric it names is one capture or fanout
// really emits, with the dimension they use; and every alarm links to it.
func TestDashboard(t *testing.T) {
	tpl := loadTemplate(t, templatePath)
	r := newRenderer(t, tpl, nil)
	props, ok := r.resource(t, "Dashboard")
	if !ok {
		t.Fatal("no Dashboard")
	}
	body, ok := props["DashboardBody"].(string)
	if !ok {
		t.Fatalf("DashboardBody is %T, want the rendered JSON text", props["DashboardBody"])
	}
	var doc struct {
		Widgets []struct {
			Type       string
			Properties struct {
				Title   string
				Region  string
				Metrics [][]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("DashboardBody is not JSON: %v\n%s", err, body)
	}
	var metrics []dashboardMetric
	for _, w := range doc.Widgets {
		if w.Type != "metric" || w.Properties.Title == "" || w.Properties.Region != pseudo["AWS::Region"] || len(w.Properties.Metrics) == 0 {
			t.Errorf("widget %+v: want a titled metric widget in the stack's region", w)
		}
		for _, row := range w.Properties.Metrics {
			if len(row) < 2 {
				t.Fatalf("widget %q: metric row %v", w.Properties.Title, row)
			}
			m := dashboardMetric{namespace: scalarString(row[0]), name: scalarString(row[1]), dims: map[string]string{}}
			rest := row[2:]
			if len(rest) > 0 {
				if _, opts := rest[len(rest)-1].(map[string]any); opts {
					rest = rest[:len(rest)-1]
				}
			}
			if len(rest)%2 != 0 {
				t.Fatalf("widget %q: dimensions %v are not name/value pairs", w.Properties.Title, rest)
			}
			for i := 0; i < len(rest); i += 2 {
				m.dims[scalarString(rest[i])] = scalarString(rest[i+1])
			}
			metrics = append(metrics, m)
		}
	}
	fanoutFn := refPlaceholder("FanoutFunction")
	for _, m := range metrics {
		if m.namespace != "walbridge" {
			continue
		}
		switch {
		case slices.Contains(cwmetrics.Names, m.name):
			if len(m.dims) != 1 || m.dims[cwmetrics.Dimension] != "walbridge" {
				t.Errorf("capture metric %s with dimensions %v, want %s = the slot", m.name, m.dims, cwmetrics.Dimension)
			}
		case slices.Contains(report.Names, m.name):
			if len(m.dims) != 1 || m.dims[report.Dimension] != fanoutFn {
				t.Errorf("fanout metric %s with dimensions %v, want %s = the function", m.name, m.dims, report.Dimension)
			}
		default:
			t.Errorf("the dashboard shows walbridge metric %s, which neither capture nor fanout emits", m.name)
		}
	}
	has := func(namespace, name string) bool {
		return slices.ContainsFunc(metrics, func(m dashboardMetric) bool { return m.namespace == namespace && m.name == name })
	}
	for _, want := range [][2]string{
		{"walbridge", cwmetrics.WALRetainedBytes}, {"walbridge", cwmetrics.ConfirmedLSNAdvanced}, {"walbridge", cwmetrics.CommitToAckLatencyMs},
		{"AWS/Kinesis", "IncomingRecords"}, {"AWS/Kinesis", "IncomingBytes"}, {"AWS/Kinesis", "WriteProvisionedThroughputExceeded"},
		{"AWS/Lambda", "IteratorAge"}, {"walbridge", report.EndToEndLagP99}, {"AWS/Lambda", "Errors"}, {"walbridge", report.EventsFailed},
		{"AWS/SQS", "ApproximateNumberOfMessagesVisible"},
	} {
		if !has(want[0], want[1]) {
			t.Errorf("the dashboard has no %s %s", want[0], want[1])
		}
	}
	for _, name := range resourcesOfType(tpl, "AWS::CloudWatch::Alarm") {
		a, ok := r.resource(t, name)
		if ok && !strings.Contains(scalarString(a["AlarmDescription"]), "#dashboards/dashboard/"+refPlaceholder("Dashboard")) {
			t.Errorf("alarm %s does not link to the dashboard: %v", name, a["AlarmDescription"])
		}
	}
}
