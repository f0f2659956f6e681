package ops

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluicedev/sluice/flow"
)

var nodeLabels = []string{"pipeline", "node", "kind", "type"}

// nodeCounter is one per-node counter and how to read it from NodeStats.
type nodeCounter struct {
	desc *prometheus.Desc
	read func(*flow.NodeStats) int64
}

func newNodeCounter(name, help string, read func(*flow.NodeStats) int64) nodeCounter {
	return nodeCounter{desc: prometheus.NewDesc(name, help, nodeLabels, nil), read: read}
}

// nodeCollector exports the engine's NodeStats at scrape time: the
// counters and the sinks' record age histograms the engine keeps anyway
// are read, not counted a second time.
type nodeCollector struct {
	pipeline string
	stats    []*flow.NodeStats
	counters []nodeCounter
	fill     *prometheus.Desc
	buffered *prometheus.Desc
	age      *prometheus.Desc
	ageLe    []float64 // the age buckets' bounds, in seconds
}

func newNodeCollector(p *flow.Pipeline) *nodeCollector {
	return &nodeCollector{
		pipeline: p.Name(),
		stats:    p.Stats(),
		counters: []nodeCounter{
			newNodeCounter("sluice_node_records_in_total",
				"Records a node took in (a source: records it emitted).",
				func(s *flow.NodeStats) int64 { return s.In.Load() }),
			newNodeCounter("sluice_node_records_out_total",
				"Records a node emitted downstream (a sink: records it wrote).",
				func(s *flow.NodeStats) int64 { return s.Out.Load() }),
			newNodeCounter("sluice_node_errors_total",
				"Records that failed at a node after their retries.",
				func(s *flow.NodeStats) int64 { return s.Errors.Load() }),
			newNodeCounter("sluice_node_retries_total",
				"Record retries at a node.",
				func(s *flow.NodeStats) int64 { return s.Retries.Load() }),
			newNodeCounter("sluice_node_dead_lettered_total",
				"Failed records a node sent to its dead-letter sink.",
				func(s *flow.NodeStats) int64 { return s.DeadLettered.Load() }),
			newNodeCounter("sluice_node_skipped_total",
				"Failed records a node dropped under on_error: skip.",
				func(s *flow.NodeStats) int64 { return s.Skipped.Load() }),
			newNodeCounter("sluice_node_batches_total",
				"Batches a node took in (a source: batches it emitted).",
				func(s *flow.NodeStats) int64 { return s.Batches.Load() }),
		},
		fill: prometheus.NewDesc("sluice_edge_buffer_fill_ratio",
			"How full a stage's or sink's input edge is, 0 to 1; a full edge sits in front of the bottleneck.",
			nodeLabels, nil),
		buffered: prometheus.NewDesc("sluice_edge_buffered_records",
			"Records waiting on a stage's or sink's input edge.",
			nodeLabels, nil),
		age: prometheus.NewDesc("sluice_record_age_seconds",
			"Age of the records a sink wrote when their write returned: now minus the record's source timestamp "+
				"(end-to-end latency); records without a timestamp are not counted.",
			nodeLabels, nil),
		ageLe: ageBoundsSeconds(),
	}
}

// ageBoundsSeconds are flow's record age buckets, in seconds.
func ageBoundsSeconds() []float64 {
	bounds := flow.AgeBounds()
	le := make([]float64, len(bounds))
	for i, b := range bounds {
		le[i] = b.Seconds()
	}
	return le
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, nc := range c.counters {
		ch <- nc.desc
	}
	ch <- c.fill
	ch <- c.buffered
	ch <- c.age
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats {
		labels := []string{c.pipeline, s.ID, s.Kind.String(), s.Type}
		for _, nc := range c.counters {
			ch <- prometheus.MustNewConstMetric(nc.desc, prometheus.CounterValue, float64(nc.read(s)), labels...)
		}
		if s.Kind == flow.KindSource {
			continue // sources have no input edge
		}
		ch <- prometheus.MustNewConstMetric(c.fill, prometheus.GaugeValue, s.Fill(), labels...)
		ch <- prometheus.MustNewConstMetric(c.buffered, prometheus.GaugeValue, float64(s.Buffered()), labels...)
		if s.Kind == flow.KindSink {
			ch <- c.ageHistogram(s.Ages(), labels)
		}
	}
}

// ageHistogram exports a sink's record ages since the run started.
func (c *nodeCollector) ageHistogram(ages flow.AgeCounts, labels []string) prometheus.Metric {
	cumulative := make(map[float64]uint64, len(c.ageLe))
	var n int64
	for i, le := range c.ageLe {
		n += ages.Buckets[i]
		cumulative[le] = uint64(n)
	}
	n += ages.Buckets[len(c.ageLe)] // past the last bound: only in the count
	return prometheus.MustNewConstHistogram(c.age, uint64(n), ages.Sum, cumulative, labels...)
}

// newRegistry gathers everything /metrics serves for p: the node
// counters, batch latency, the Go runtime and process, and every component
// that exports metrics of its own (Kafka lag, plugin restarts), registered
// as the component built them.
func newRegistry(p *flow.Pipeline, latency *Latency, log *slog.Logger) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newNodeCollector(p),
	)
	if latency != nil {
		reg.MustRegister(latency)
	}
	for _, n := range p.Nodes() {
		c, ok := p.Component(n.ID).(prometheus.Collector)
		if !ok {
			continue
		}
		// A component's metrics clashing with another's is a bug in the
		// component, not a reason to stop moving data: say so and go on.
		if err := reg.Register(c); err != nil {
			log.Warn("component metrics not exported", "node", n.ID, "type", n.Type, "err", err)
		}
	}
	return reg
}
