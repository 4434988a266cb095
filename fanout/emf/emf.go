// Package emf writes CloudWatch Embedded Metric Format lines: JSON log
// lines that CloudWatch Logs turns into metrics as they arrive, so fanout
// reports its figures from Lambda without a PutMetricData call (no extra
// latency, permission or cost per invocation).
//
// A line is one JSON object: the "_aws" member says which members are
// metrics (name, unit), under which namespace and dimensions, and at what
// time; the metrics' values and the dimensions' values are members of the
// object itself.
package emf

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Units CloudWatch accepts for a metric.
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
	None         = "None"
)

// MaxValues is how many values one metric may carry in one line.
const MaxValues = 100

// Metric is one metric of a line: a single value, or up to MaxValues values
// (CloudWatch keeps each as a sample, so percentiles across lines are
// right).
type Metric struct {
	Name   string
	Unit   string
	Values []float64
}

// Line is one EMF line's content.
type Line struct {
	Namespace string
	// Dimensions are the dimension names and values; every metric of the
	// line is reported under all of them together.
	Dimensions map[string]string
	Time       time.Time
	Metrics    []Metric
}

// Marshal returns the line as JSON, without a newline. It refuses what
// CloudWatch would drop silently: no namespace, a metric without values or
// with more than MaxValues, a name used twice, a dimension named like a
// metric, an unknown unit.
func (l Line) Marshal() ([]byte, error) {
	if l.Namespace == "" {
		return nil, fmt.Errorf("emf: no namespace")
	}
	root := map[string]any{}
	dims := make([]string, 0, len(l.Dimensions))
	for k, v := range l.Dimensions {
		dims = append(dims, k)
		root[k] = v
	}
	slices.Sort(dims)
	defs := make([]map[string]string, 0, len(l.Metrics))
	for _, m := range l.Metrics {
		switch {
		case m.Name == "" || root[m.Name] != nil:
			return nil, fmt.Errorf("emf: metric name %q is empty or used twice", m.Name)
		case len(m.Values) == 0 || len(m.Values) > MaxValues:
			return nil, fmt.Errorf("emf: metric %s has %d values, want 1 to %d", m.Name, len(m.Values), MaxValues)
		case m.Unit != Count && m.Unit != Milliseconds && m.Unit != None:
			return nil, fmt.Errorf("emf: metric %s: unit %q", m.Name, m.Unit)
		}
		if len(m.Values) == 1 {
			root[m.Name] = m.Values[0]
		} else {
			root[m.Name] = m.Values
		}
		defs = append(defs, map[string]string{"Name": m.Name, "Unit": m.Unit})
	}
	root["_aws"] = map[string]any{
		"Timestamp": l.Time.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  l.Namespace,
			"Dimensions": [][]string{dims},
			"Metrics":    defs,
		}},
	}
	return json.Marshal(root)
}

// Sample returns at most MaxValues values that keep the distribution of
// values: all of them when they fit, else evenly spaced order statistics
// (the smallest and largest included).
func Sample(values []float64) []float64 {
	if len(values) <= MaxValues {
		return values
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	out := make([]float64, MaxValues)
	for i := range out {
		out[i] = sorted[i*(len(sorted)-1)/(MaxValues-1)]
	}
	return out
}

// Quantile is the q-quantile (0 to 1) of values by the nearest-rank
// method; 0 for no values.
func Quantile(values []float64, q float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
