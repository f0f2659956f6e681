package window

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	lateDesc = prometheus.NewDesc("sluice_window_late_records_total",
		"Records a window stage dropped as late (their windows were closed).", []string{"node"}, nil)
	replayedDesc = prometheus.NewDesc("sluice_state_replayed_records_total",
		"Records read again after a crash or rebalance and skipped: their changes were already in the restored state.",
		[]string{"node"}, nil)
	pendingDesc = prometheus.NewDesc("sluice_state_changelog_pending_entries",
		"State changes not yet acknowledged by the changelog (changelog lag); the records behind them wait to be acknowledged.",
		[]string{"node"}, nil)
	openDesc = prometheus.NewDesc("sluice_state_open_windows",
		"Open windows held for a source partition (state size).", []string{"node", "topic", "partition"}, nil)
	restoreDesc = prometheus.NewDesc("sluice_state_restore_seconds",
		"How long the last restore of a partition's state from its changelog took.", []string{"node", "topic", "partition"}, nil)
	restoredDesc = prometheus.NewDesc("sluice_state_restored_entries",
		"Changelog entries read by the last restore of a partition's state.", []string{"node", "topic", "partition"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Stage) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{lateDesc, replayedDesc, pendingDesc, openDesc, restoreDesc, restoredDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Stage) Collect(ch chan<- prometheus.Metric) {
	id := s.cfg.ID
	ch <- prometheus.MustNewConstMetric(lateDesc, prometheus.CounterValue, float64(s.late.Load()), id)
	if !s.cfg.Durable {
		return
	}
	ch <- prometheus.MustNewConstMetric(replayedDesc, prometheus.CounterValue, float64(s.replayed.Load()), id)
	s.dur.mu.Lock()
	defer s.dur.mu.Unlock()
	var pending int64
	if s.dur.fl != nil {
		pending = s.dur.fl.pending.Load()
	}
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(pending), id)
	for p := range s.dur.parts {
		labels := []string{id, p.key.topic, strconv.Itoa(int(p.key.partition))}
		ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(p.panes.Load()), labels...)
		ch <- prometheus.MustNewConstMetric(restoreDesc, prometheus.GaugeValue, time.Duration(p.restoreNs.Load()).Seconds(), labels...)
		ch <- prometheus.MustNewConstMetric(restoredDesc, prometheus.GaugeValue, float64(p.restored.Load()), labels...)
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
