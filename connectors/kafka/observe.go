package kafka

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/flow"
)

var (
	_ flow.Readier         = (*Source)(nil)
	_ prometheus.Collector = (*Source)(nil)

	lagDesc = prometheus.NewDesc("sluice_kafka_consumer_lag",
		"Records between a partition's high watermark and the position below which every record was acknowledged (what a commit would store).",
		[]string{"node", "topic", "partition"}, nil)
	positionDesc = prometheus.NewDesc("sluice_kafka_acknowledged_offset",
		"Next offset to commit: every record below it was written, filtered or dead-lettered.",
		[]string{"node", "topic", "partition"}, nil)
)

// Ready implements flow.Readier: ready once the member joined its group
// and every subscribed topic exists. Until then (brokers unreachable, a
// rebalance, a topic missing) /readyz says why. A missing topic does not
// stop the others from being consumed.
func (s *Source) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.current == nil:
		return fmt.Errorf("not yet a member of group %s at %s", s.cfg.Group, strings.Join(s.cfg.Brokers, ","))
	case !s.checked:
		return fmt.Errorf("group %s: checking that topics %s exist", s.cfg.Group, strings.Join(s.cfg.Topics, ","))
	case len(s.missing) == len(s.cfg.Topics):
		return fmt.Errorf("no subscribed topic exists: %s (group %s; checked every %s)",
			strings.Join(s.missing, ", "), s.cfg.Group, s.cfg.PartitionWatchInterval)
	case len(s.missing) == 1:
		return fmt.Errorf("topic %s does not exist (group %s consumes the other topics; checked every %s)",
			s.missing[0], s.cfg.Group, s.cfg.PartitionWatchInterval)
	case len(s.missing) > 1:
		return fmt.Errorf("topics %s do not exist (group %s consumes the other topics; checked every %s)",
			strings.Join(s.missing, ", "), s.cfg.Group, s.cfg.PartitionWatchInterval)
	}
	return nil
}

// Describe implements prometheus.Collector.
func (s *Source) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagDesc
	ch <- positionDesc
}

// Collect implements prometheus.Collector: per assigned partition of the
// current generation, read at scrape time.
func (s *Source) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	g := s.current
	s.mu.Unlock()
	if g == nil {
		return
	}
	for _, p := range g.parts {
		pos, started := p.track.position()
		if !started {
			continue
		}
		labels := []string{s.cfg.ID, p.topic, strconv.Itoa(p.partition)}
		ch <- prometheus.MustNewConstMetric(positionDesc, prometheus.GaugeValue, float64(pos), labels...)
		if hwm := p.highWater.Load(); hwm > 0 {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(max(hwm-pos, 0)), labels...)
		}
	}
}
