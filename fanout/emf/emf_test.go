package emf

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMarshal(t *testing.T) {
	l := Line{Namespace: "ns", Dimensions: map[string]string{"Function": "f"}, Time: time.UnixMilli(1700000000123),
		Metrics: []Metric{{Name: "A", Unit: Count, Values: []float64{3}}, {Name: "B", Unit: Milliseconds, Values: []float64{1, 2}}}}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(b, &got)
	want := `{"A":3,"B":[1,2],"Function":"f","_aws":{"CloudWatchMetrics":[{"Dimensions":[["Function"]],"Metrics":[{"Name":"A","Unit":"Count"},{"Name":"B","Unit":"Milliseconds"}],"Namespace":"ns"}],"Timestamp":1700000000123}}`
	if string(b) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", b, want)
	}
	bad := []Line{
		{Metrics: []Metric{{Name: "A", Unit: Count, Values: []float64{1}}}},
		{Namespace: "ns", Metrics: []Metric{{Name: "A", Unit: Count}}},
		{Namespace: "ns", Metrics: []Metric{{Name: "A", Unit: Count, Values: make([]float64, 101)}}},
		{Namespace: "ns", Metrics: []Metric{{Name: "A", Unit: "Furlongs", Values: []float64{1}}}},
		{Namespace: "ns", Dimensions: map[string]string{"A": "x"}, Metrics: []Metric{{Name: "A", Unit: Count, Values: []float64{1}}}},
		{Namespace: "ns", Metrics: []Metric{{Name: "A", Unit: Count, Values: []float64{1}}, {Name: "A", Unit: Count, Values: []float64{2}}}},
	}
	for i, l := range bad {
		if _, err := l.Marshal(); err == nil || !strings.HasPrefix(err.Error(), "emf: ") {
			t.Errorf("bad line %d: %v", i, err)
		}
	}
}

func TestQuantileAndSample(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	for _, tc := range []struct{ q, want float64 }{{0.5, 3}, {0.99, 5}, {1, 5}, {0, 1}, {0.2, 1}, {0.21, 2}} {
		if got := Quantile(v, tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if Quantile(nil, 0.5) != 0 || !slices.Equal(v, []float64{5, 1, 4, 2, 3}) {
		t.Error("Quantile changed its input or failed on none")
	}
	many := make([]float64, 1000)
	for i := range many {
		many[i] = float64(999 - i)
	}
	s := Sample(many)
	if len(s) != MaxValues || s[0] != 0 || s[MaxValues-1] != 999 || !slices.IsSorted(s) {
		t.Errorf("Sample of 1,000: %d values from %v to %v", len(s), s[0], s[len(s)-1])
	}
	if got := Sample(v); !slices.Equal(got, v) {
		t.Errorf("Sample of 5 = %v", got)
	}
}
