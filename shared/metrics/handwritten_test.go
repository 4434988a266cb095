// The hand-written registry this package was before it moved onto
// client_golang, kept only so that BenchmarkHotPath can compare the two in
// one run.
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

// handRegistry holds metric families and renders them.
type handRegistry struct {
	mu       sync.Mutex
	families []*handFamily
}

// New returns an empty registry.
func newHand() *handRegistry { return &handRegistry{} }

type handFamily struct {
	name, help, kind string
	labels           []string
	buckets          []float64
	mu               sync.Mutex
	children         map[string]*handChild
}

type handChild struct {
	labelValues []string
	bits        atomic.Uint64 // float64 value (counter/gauge) or sum (histogram)
	counts      []atomic.Uint64
	count       atomic.Uint64
}

func (r *handRegistry) add(name, help, kind string, labels []string, buckets []float64) *handFamily {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range r.families {
		if f.name == name {
			return f
		}
	}
	f := &handFamily{name: name, help: help, kind: kind, labels: labels, buckets: buckets, children: map[string]*handChild{}}
	r.families = append(r.families, f)
	return f
}

func (f *handFamily) with(values []string) *handChild {
	if len(values) != len(f.labels) {
		panic(fmt.Sprintf("metric %s: %d label values for %d labels", f.name, len(values), len(f.labels)))
	}
	key := strings.Join(values, "\xff")
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.children[key]
	if !ok {
		c = &handChild{labelValues: append([]string(nil), values...), counts: make([]atomic.Uint64, len(f.buckets))}
		f.children[key] = c
	}
	return c
}

func (c *handChild) add(v float64) {
	for {
		old := c.bits.Load()
		if c.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// handCounterVec is a handFamily of counters.
type handCounterVec struct{ f *handFamily }

// handCounter is one monotonically increasing series.
type handCounter struct{ c *handChild }

// handCounter registers (or returns the existing) counter handFamily.
func (r *handRegistry) Counter(name, help string, labels ...string) *handCounterVec {
	return &handCounterVec{r.add(name, help, "counter", labels, nil)}
}

// With returns the series for the label values, in the order registered.
func (v *handCounterVec) With(values ...string) handCounter { return handCounter{v.f.with(values)} }

// Add adds n (n must not be negative).
func (c handCounter) Add(n float64) { c.c.add(n) }

// Inc adds one.
func (c handCounter) Inc() { c.c.add(1) }

// Value reads the counter (for tests and status output).
func (c handCounter) Value() float64 { return math.Float64frombits(c.c.bits.Load()) }

// handGaugeVec is a handFamily of gauges.
type handGaugeVec struct{ f *handFamily }

// handGauge is one series that goes up and down.
type handGauge struct{ c *handChild }

// handGauge registers (or returns the existing) gauge handFamily.
func (r *handRegistry) Gauge(name, help string, labels ...string) *handGaugeVec {
	return &handGaugeVec{r.add(name, help, "gauge", labels, nil)}
}

// With returns the series for the label values.
func (v *handGaugeVec) With(values ...string) handGauge { return handGauge{v.f.with(values)} }

// Set sets the value.
func (g handGauge) Set(v float64) { g.c.bits.Store(math.Float64bits(v)) }

// Value reads the gauge.
func (g handGauge) Value() float64 { return math.Float64frombits(g.c.bits.Load()) }

// handHistogram counts observations into fixed buckets.
type handHistogram struct {
	f *handFamily
	c *handChild
}

// handHistogram registers a histogram without labels; buckets are upper bounds in
// increasing order.
func (r *handRegistry) Histogram(name, help string, buckets []float64) *handHistogram {
	f := r.add(name, help, "histogram", nil, buckets)
	return &handHistogram{f: f, c: f.with(nil)}
}

// Observe records one value.
func (h *handHistogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.f.buckets, v)
	if i < len(h.c.counts) {
		h.c.counts[i].Add(1)
	}
	h.c.count.Add(1)
	h.c.add(v)
}

// Snapshot returns the bucket upper bounds and the count in each bucket (not
// cumulative; the last entry counts observations above every bound).
func (h *handHistogram) Snapshot() (bounds []float64, counts []uint64) {
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
func (h *handHistogram) Quantile(q float64) float64 {
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

// WriteText renders every handFamily in the Prometheus text exposition format.
func (r *handRegistry) WriteText(w io.Writer) error {
	r.mu.Lock()
	fams := append([]*handFamily(nil), r.families...)
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
				fmt.Fprintf(&b, "%s%s %s\n", f.name, handLabelText(f.labels, c.labelValues, "", ""), handFormatFloat(math.Float64frombits(c.bits.Load())))
				continue
			}
			var cum uint64
			for i, ub := range f.buckets {
				cum += c.counts[i].Load()
				fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, handLabelText(f.labels, c.labelValues, "le", handFormatFloat(ub)), cum)
			}
			n := c.count.Load()
			fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, handLabelText(f.labels, c.labelValues, "le", "+Inf"), n)
			fmt.Fprintf(&b, "%s_sum%s %s\n", f.name, handLabelText(f.labels, c.labelValues, "", ""), handFormatFloat(math.Float64frombits(c.bits.Load())))
			fmt.Fprintf(&b, "%s_count%s %d\n", f.name, handLabelText(f.labels, c.labelValues, "", ""), n)
		}
		f.mu.Unlock()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Handler serves WriteText.
func (r *handRegistry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.WriteText(w)
	})
}

func handLabelText(names, values []string, extraName, extraValue string) string {
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
		b.WriteString(handEscapeLabel(values[i]))
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

func handEscapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func handFormatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
