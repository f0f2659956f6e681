package ops

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/flow"
)

// latencyBuckets span a 100 µs map over a small batch to a 10 s sink
// write that retried.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Latency is the flow.Observer behind sluice_batch_duration_seconds: give
// it to the pipeline (flow.WithObserver) and to the Server, which exports
// it.
type Latency struct {
	vec *prometheus.HistogramVec
	// byNode caches each node's histogram: ObserveBatch runs once per
	// batch on the hot path, and a label lookup hashes every time.
	byNode sync.Map // node id -> prometheus.Observer
}

// NewLatency returns an empty batch latency histogram.
func NewLatency() *Latency {
	return &Latency{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sluice_batch_duration_seconds",
		Help:    "Time a stage took to process one batch, or a sink to write one, including retries.",
		Buckets: latencyBuckets,
	}, []string{"node", "kind"})}
}

// ObserveBatch implements flow.Observer.
func (l *Latency) ObserveBatch(node string, kind flow.Kind, _ int, took time.Duration) {
	o, ok := l.byNode.Load(node)
	if !ok {
		o, _ = l.byNode.LoadOrStore(node, l.vec.WithLabelValues(node, kind.String()))
	}
	o.(prometheus.Observer).Observe(took.Seconds())
}

// Describe implements prometheus.Collector.
func (l *Latency) Describe(ch chan<- *prometheus.Desc) { l.vec.Describe(ch) }

// Collect implements prometheus.Collector.
func (l *Latency) Collect(ch chan<- prometheus.Metric) { l.vec.Collect(ch) }

var _ flow.Observer = (*Latency)(nil)
