// Package metrics is a small Prometheus text-format registry: counters,
// gauges and histograms with labels, safe for concurrent use and cheap on the
// hot path (a labelled child is looked up once and kept). It exists instead of
// client_golang because walbridge needs a dozen series, not a framework.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Registry holds metric families and renders them.
type Registry struct {
	mu       sync.Mutex
	families []*family
}

// New returns an empty registry.
func New() *Registry { return &Registry{} }

type family struct {
	name, help, kind string
	labels           []string
	buckets          []float64
	mu               sync.Mutex
	children         map[string]*child
}

type child struct {
	labelValues []string
	bits        atomic.Uint64 // float64 value (counter/gauge) or sum (histogram)
	counts      []atomic.Uint64
	count       atomic.Uint64
}

func (r *Registry) add(name, help, kind string, labels []string, buckets []float64) *family {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.families {
		if f.name == name {
			return f
		}
	}
	f := &family{name: name, help: help, kind: kind, labels: labels, buckets: buckets, children: map[string]*child{}}
	r.families = append(r.families, f)
	return f
}

func (f *family) with(values []string) *child {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metric %s: %d label values for %d labels", f.name, len(values), len(f.labels)))
	}
	key := strings.Join(values, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.children[key]
	if !ok {
		c = &child{labelValues: append([]string(nil), values...), counts: make([]atomic.Uint64, len(f.buckets))}
		f.children[key] = c
	}
	return c
}

func (c *child) add(v float64) {
	for {
		old := c.bits.Load()
		if c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// CounterVec is a family of counters.
type CounterVec struct{ f *family }

// Counter is one monotonically increasing series.
type Counter struct{ c *child }

// Counter registers (or returns the existing) counter family.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{r.add(name, help, "counter", labels, nil)}
}

// With returns the series for the label values, in the order registered.
func (v *CounterVec) With(values ...string) Counter { return Counter{v.f.with(values)} }

// Add adds n (n must not be negative).
func (c Counter) Add(n float64) { c.c.add(n) }

// Inc adds one.
func (c Counter) Inc() { c.c.add(1) }

// Value reads the counter (for tests and status output).
func (c Counter) Value() float64 { return math.Float64frombits(c.c.bits.Load()) }

// GaugeVec is a family of gauges.
type GaugeVec struct{ f *family }

// Gauge is one series that goes up and down.
type Gauge struct{ c *child }

// Gauge registers (or returns the existing) gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{r.add(name, help, "gauge", labels, nil)}
}

// With returns the series for the label values.
func (v *GaugeVec) With(values ...string) Gauge { return Gauge{v.f.with(values)} }

// Set sets the value.
func (g Gauge) Set(v float64) { g.c.bits.Store(math.Float64bits(v)) }

// Value reads the gauge.
func (g Gauge) Value() float64 { return math.Float64frombits(g.c.bits.Load()) }

// Histogram counts observations into fixed buckets.
type Histogram struct {
	f *family
	c *child
}

// Histogram registers a histogram without labels; buckets are upper bounds in
// increasing order.
func (r *Registry) Histogram(name, help string, buckets []float64) *Histogram {
	f := r.add(name, help, "histogram", nil, buckets)
	return &Histogram{f: f, c: f.with(nil)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.f.buckets, v)
	if i < len(h.c.counts) {
		h.c.counts[i].Add(1)
	}
	h.c.count.Add(1)
	h.c.add(v)
}

// Snapshot returns the bucket upper bounds and the count in each bucket (not
// cumulative; the last entry counts observations above every bound).
func (h *Histogram) Snapshot() (bounds []float64, counts []uint64) {
	counts = make([]uint64, len(h.c.counts)+1)
	var inBuckets uint64
	for i := range h.c.counts {
		counts[i] = h.c.counts[i].Load()
		inBuckets += counts[i]
	}
	counts[len(counts)-1] = h.c.count.Load() - inBuckets
	return h.f.buckets, counts
}

// Quantile estimates the q-quantile (0..1) from the buckets: the upper bound
// of the bucket holding it. Good enough for status output and benchmarks.
func (h *Histogram) Quantile(q float64) float64 {
	total := h.c.count.Load()
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i := range h.c.counts {
		seen += h.c.counts[i].Load()
		if seen >= rank {
			return h.f.buckets[i]
		}
	}
	return math.Inf(1)
}

// WriteText renders every family in the Prometheus text exposition format.
func (r *Registry) WriteText(w io.Writer) error {
	r.mu.Lock()
	fams := append([]*family(nil), r.families...)
	r.mu.Unlock()
	var b strings.Builder
	for _, f := range fams {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.kind)
		f.mu.Lock()
		keys := make([]string, 0, len(f.children))
		for k := range f.children {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			c := f.children[k]
			if f.kind != "histogram" {
				fmt.Fprintf(&b, "%s%s %s\n", f.name, labelText(f.labels, c.labelValues, "", ""), formatFloat(math.Float64frombits(c.bits.Load())))
				continue
			}
			var cum uint64
			for i, ub := range f.buckets {
				cum += c.counts[i].Load()
				fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, labelText(f.labels, c.labelValues, "le", formatFloat(ub)), cum)
			}
			n := c.count.Load()
			fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, labelText(f.labels, c.labelValues, "le", "+Inf"), n)
			fmt.Fprintf(&b, "%s_sum%s %s\n", f.name, labelText(f.labels, c.labelValues, "", ""), formatFloat(math.Float64frombits(c.bits.Load())))
			fmt.Fprintf(&b, "%s_count%s %d\n", f.name, labelText(f.labels, c.labelValues, "", ""), n)
		}
		f.mu.Unlock()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Handler serves WriteText.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteText(w)
	})
}

func labelText(names, values []string, extraName, extraValue string) string {
	if len(names) == 0 && extraName == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escapeLabel(values[i]))
		b.WriteByte('"')
	}
	if extraName != "" {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(extraName + `="` + extraValue + `"`)
	}
	b.WriteByte('}')
	return b.String()
}

func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
