package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Ready flips once the member joined; the lag and acknowledged-offset
// gauges track what was acknowledged against the high watermark.
func TestSourceReadinessAndLagMetrics(t *testing.T) {
	const topic, n = "lagged", 500
	broker := fakeCluster(t, 1, topic)
	produce(t, broker, topic, 0, n)
	src := fakeSource(t, broker, topic, "lag-group")
	if err := src.Ready(); err == nil || !strings.Contains(err.Error(), "lag-group") {
		t.Fatalf("Ready() = %v before Run, want not ready naming the group", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(src)
	rec := newRecorder()
	stop := runPipeline(t, src, rec)
	waitFor(t, 60*time.Second, "all records", func() bool { return rec.n.Load() >= n })
	if err := src.Ready(); err != nil {
		t.Fatalf("Ready() = %v while consuming", err)
	}
	gauge := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) == 1 {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	waitFor(t, 30*time.Second, "every record acknowledged in the gauges", func() bool {
		return gauge("sluice_kafka_acknowledged_offset") == n && gauge("sluice_kafka_consumer_lag") == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
