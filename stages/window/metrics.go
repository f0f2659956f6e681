package window

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// descs are a stage's metric descriptions. The node id is a constant
// label, so two window stages in one pipeline export side by side.
type descs struct {
	late, replayed, pending, open, restore, restored *prometheus.Desc
}

func newDescs(node string) *descs {
	node1 := prometheus.Labels{"node": node}
	part := []string{"topic", "partition"}
	return &descs{
		late: prometheus.NewDesc("sluice_window_late_records_total",
			"Records a window stage dropped as late (their windows were closed).", nil, node1),
		replayed: prometheus.NewDesc("sluice_state_replayed_records_total",
			"Records read again after a crash or rebalance and skipped: their changes were already in the restored state.", nil, node1),
		pending: prometheus.NewDesc("sluice_state_changelog_pending_entries",
			"State changes not yet acknowledged by the changelog (changelog lag); the records behind them wait to be acknowledged.", nil, node1),
		open: prometheus.NewDesc("sluice_state_open_windows",
			"Open windows held for a source partition (state size).", part, node1),
		restore: prometheus.NewDesc("sluice_state_restore_seconds",
			"How long the last restore of a partition's state from its changelog took.", part, node1),
		restored: prometheus.NewDesc("sluice_state_restored_entries",
			"Changelog entries read by the last restore of a partition's state.", part, node1),
	}
}

// Describe implements prometheus.Collector.
func (s *Stage) Describe(ch chan<- *prometheus.Desc) {
	d := s.descs
	for _, x := range []*prometheus.Desc{d.late, d.replayed, d.pending, d.open, d.restore, d.restored} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (s *Stage) Collect(ch chan<- prometheus.Metric) {
	d := s.descs
	ch <- prometheus.MustNewConstMetric(d.late, prometheus.CounterValue, float64(s.late.Load()))
	if !s.cfg.Durable {
		return
	}
	ch <- prometheus.MustNewConstMetric(d.replayed, prometheus.CounterValue, float64(s.replayed.Load()))
	s.dur.mu.Lock()
	defer s.dur.mu.Unlock()
	var pending int64
	if s.dur.w != nil {
		pending = s.dur.w.Pending()
	}
	ch <- prometheus.MustNewConstMetric(d.pending, prometheus.GaugeValue, float64(pending))
	for p := range s.dur.parts {
		labels := []string{p.key.topic, strconv.Itoa(int(p.key.partition))}
		ch <- prometheus.MustNewConstMetric(d.open, prometheus.GaugeValue, float64(p.panes.Load()), labels...)
		ch <- prometheus.MustNewConstMetric(d.restore, prometheus.GaugeValue, time.Duration(p.restoreNs.Load()).Seconds(), labels...)
		ch <- prometheus.MustNewConstMetric(d.restored, prometheus.GaugeValue, float64(p.restored.Load()), labels...)
	}
}

// Stateful reports whether the stage keeps durable state (the /graph page
// marks such stages).
func (s *Stage) Stateful() string {
	if s.cfg.Durable {
		return "changelog"
	}
	return "memory"
}
