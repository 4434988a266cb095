// Package metrics is walbridge's view of Prometheus metrics: counters,
// gauges and histograms with labels, registered by name and served in the
// text exposition format. It is a thin layer over client_golang, which
// also gives the process_* and go_* series every operator's dashboards
// expect (AddRuntime); the layer keeps the call sites small (a labelled
// child is looked up once and kept) and gives tests and status output
// Value, Snapshot and Quantile.
//
// BenchmarkHotPath measures the hot-path calls against the hand-written
// registry this package used to be: client_golang costs a few nanoseconds
// more per change, far below what a change costs (see the benchmark's doc).
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Registry holds metric families and renders them.
type Registry struct {
	reg *prometheus.Registry

	mu       sync.Mutex
	families map[string]prometheus.Collector
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{reg: prometheus.NewRegistry(), families: map[string]prometheus.Collector{}}
}

// AddRuntime adds the process collector (CPU, memory, open files, start
// time: process_*) and the Go runtime collector (go_*). A command serving
// /metrics calls it once; tests and benchmarks leave it out.
func (r *Registry) AddRuntime() {
	r.reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
}

// family registers the collector make builds under name, or returns the
// one already registered there (a second registration with another kind
// is a programming error).
func family[C prometheus.Collector](r *Registry, name string, make func() C) C {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.families[name]; ok {
		existing, same := c.(C)
		if !same {
			panic(fmt.Sprintf("metric %s registered as %T, asked for again as another kind", name, c))
		}
		return existing
	}
	c := make()
	r.reg.MustRegister(c)
	r.families[name] = c
	return c
}

// write reads one metric's current state.
func write(m prometheus.Metric) *dto.Metric {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(fmt.Sprintf("metrics: read %v: %v", m.Desc(), err)) // only for bad label values, which With would have refused
	}
	return &out
}

// CounterVec is a family of counters.
type CounterVec struct{ v *prometheus.CounterVec }

// Counter is one monotonically increasing series.
type Counter struct{ c prometheus.Counter }

// Counter registers (or returns the existing) counter family.
func (r *Registry) Counter(name, help string, labels ...string) *CounterVec {
	return &CounterVec{family(r, name, func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	})}
}

// With returns the series for the label values, in the order registered.
func (v *CounterVec) With(values ...string) Counter { return Counter{v.v.WithLabelValues(values...)} }

// Add adds n (n must not be negative).
func (c Counter) Add(n float64) { c.c.Add(n) }

// Inc adds one.
func (c Counter) Inc() { c.c.Inc() }

// Value reads the counter (for tests and status output).
func (c Counter) Value() float64 { return write(c.c).GetCounter().GetValue() }

// GaugeVec is a family of gauges.
type GaugeVec struct{ v *prometheus.GaugeVec }

// Gauge is one series that goes up and down.
type Gauge struct{ g prometheus.Gauge }

// Gauge registers (or returns the existing) gauge family.
func (r *Registry) Gauge(name, help string, labels ...string) *GaugeVec {
	return &GaugeVec{family(r, name, func() *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	})}
}

// With returns the series for the label values.
func (v *GaugeVec) With(values ...string) Gauge { return Gauge{v.v.WithLabelValues(values...)} }

// Set sets the value.
func (g Gauge) Set(v float64) { g.g.Set(v) }

// Value reads the gauge.
func (g Gauge) Value() float64 { return write(g.g).GetGauge().GetValue() }

// Histogram counts observations into fixed buckets.
type Histogram struct {
	h       prometheus.Histogram
	buckets []float64
}

// Histogram registers a histogram without labels; buckets are upper bounds in
// increasing order. Asking again for a registered name returns that
// histogram, whatever buckets are given.
func (r *Registry) Histogram(name, help string, buckets []float64) *Histogram {
	return family(r, name, func() *Histogram {
		if len(buckets) == 0 {
			buckets = prometheus.DefBuckets
		}
		return &Histogram{h: prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}), buckets: buckets}
	})
}

// Describe and Collect make a Histogram a collector of its one series.
func (h *Histogram) Describe(ch chan<- *prometheus.Desc) { h.h.Describe(ch) }
func (h *Histogram) Collect(ch chan<- prometheus.Metric) { h.h.Collect(ch) }

// Observe records one value.
func (h *Histogram) Observe(v float64) { h.h.Observe(v) }

// Snapshot returns the bucket upper bounds and the count in each bucket (not
// cumulative; the last entry counts observations above every bound).
func (h *Histogram) Snapshot() (bounds []float64, counts []uint64) {
	m := write(h.h).GetHistogram()
	counts = make([]uint64, len(h.buckets)+1)
	var below uint64
	for i, b := range m.GetBucket() {
		if i < len(h.buckets) {
			counts[i] = b.GetCumulativeCount() - below
			below = b.GetCumulativeCount()
		}
	}
	counts[len(counts)-1] = m.GetSampleCount() - below
	return h.buckets, counts
}

// Quantile estimates the q-quantile (0..1) from the buckets: the upper bound
// of the bucket holding it. Good enough for status output and benchmarks.
func (h *Histogram) Quantile(q float64) float64 {
	bounds, counts := h.Snapshot()
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, b := range bounds {
		seen += counts[i]
		if seen >= rank {
			return b
		}
	}
	return math.Inf(1)
}

// WriteText renders every family in the Prometheus text exposition format,
// families sorted by name.
func (r *Registry) WriteText(w io.Writer) error {
	fams, err := r.reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	sort.Slice(fams, func(i, j int) bool { return fams[i].GetName() < fams[j].GetName() })
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("write metric %s: %w", f.GetName(), err)
		}
	}
	return nil
}

// Handler serves the registry (client_golang's promhttp: content
// negotiation, gzip, and the errors of a failed collection).
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}
