package host

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/flow"
)

// A plugin restarting this often is in a crash loop: /readyz says so, so an
// orchestrator stops routing to (or restarts) this sluice instead of
// watching it spin.
const (
	crashLoopRestarts = 3
	crashLoopWindow   = 30 * time.Second
)

var (
	_ flow.Readier         = (*Stage)(nil)
	_ prometheus.Collector = (*Stage)(nil)
)

// noteRestart counts a replaced process and remembers when, for Ready.
func (s *Stage) noteRestart() {
	s.restarts.Add(1)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restartTimes = append(s.restartTimes, now)
	if len(s.restartTimes) > crashLoopRestarts {
		s.restartTimes = s.restartTimes[len(s.restartTimes)-crashLoopRestarts:]
	}
}

// Ready implements flow.Readier: not ready while the plugin has restarted
// crashLoopRestarts times within crashLoopWindow.
func (s *Stage) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.restartTimes) < crashLoopRestarts {
		return nil
	}
	if since := time.Since(s.restartTimes[0]); since < crashLoopWindow {
		return fmt.Errorf("plugin %s is in a crash loop: %d restarts in %s", s.cfg.Name, crashLoopRestarts, since.Round(time.Second))
	}
	return nil
}

var (
	restartsDesc = prometheus.NewDesc("sluice_plugin_restarts_total",
		"Plugin processes replaced after a crash, a hang or a broken stream.", []string{"node", "plugin"}, nil)
	hangsDesc = prometheus.NewDesc("sluice_plugin_hangs_total",
		"Plugin processes killed for making no progress within timeout.", []string{"node", "plugin"}, nil)
	poisonedDesc = prometheus.NewDesc("sluice_plugin_poisoned_records_total",
		"Records failed because they crashed or hung the plugin on their own.", []string{"node", "plugin"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Stage) Describe(ch chan<- *prometheus.Desc) {
	ch <- restartsDesc
	ch <- hangsDesc
	ch <- poisonedDesc
}

// Collect implements prometheus.Collector.
func (s *Stage) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	labels := []string{s.cfg.Name, s.cfg.Path}
	ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(st.Restarts), labels...)
	ch <- prometheus.MustNewConstMetric(hangsDesc, prometheus.CounterValue, float64(st.Hangs), labels...)
	ch <- prometheus.MustNewConstMetric(poisonedDesc, prometheus.CounterValue, float64(st.Poisoned), labels...)
}
