package ops

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluicedev/sluice/flow"
)

// exportingSink is a sink with metrics of its own, as a Kafka sink might.
type exportingSink struct {
	counting
	writes prometheus.Counter
}

func newExportingSink() *exportingSink {
	return &exportingSink{writes: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "test_sink_writes_total", Help: "Write calls.",
	})}
}

func (s *exportingSink) Write(ctx context.Context, recs []flow.Record) error {
	s.writes.Inc()
	return s.counting.Write(ctx, recs)
}

func (s *exportingSink) Describe(ch chan<- *prometheus.Desc) { s.writes.Describe(ch) }
func (s *exportingSink) Collect(ch chan<- prometheus.Metric) { s.writes.Collect(ch) }

// scrape fetches /metrics and parses it.
func scrape(t *testing.T, base, auth string) map[string]*dto.MetricFamily {
	t.Helper()
	code, _, body := get(t, base+"/metrics", auth)
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v\n%s", err, body)
	}
	return fams
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, m := range fam.Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s sample with labels %v", name, want)
	return nil
}

func TestMetricsAfterARun(t *testing.T) {
	const records = 1000
	// As cmd/sluice does: bind, build with the server's observer, serve.
	srv, base := listen(t, Config{}, nil)
	src, sink := &numbers{n: records, size: 100}, newExportingSink()
	p := newChain("metrics-test", src, sink, flow.WithObserver(srv.Observer()))
	srv.Serve(p)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.written.Load(); got != records {
		t.Fatalf("sink wrote %d records, want %d", got, records)
	}
	fams := scrape(t, base, "")

	counters := []struct {
		name, node string
		want       float64
	}{
		{"sluice_node_records_in_total", "numbers", records},
		{"sluice_node_records_out_total", "numbers", records},
		{"sluice_node_records_in_total", "copy", records},
		{"sluice_node_records_out_total", "copy", records},
		{"sluice_node_records_in_total", "out", records},
		{"sluice_node_records_out_total", "out", records},
		{"sluice_node_errors_total", "copy", 0},
		{"sluice_node_retries_total", "out", 0},
		{"sluice_node_dead_lettered_total", "copy", 0},
		{"sluice_node_skipped_total", "copy", 0},
		{"sluice_node_batches_total", "numbers", records / 100},
	}
	for _, c := range counters {
		m := value(t, fams, c.name, map[string]string{"pipeline": "metrics-test", "node": c.node})
		if got := m.GetCounter().GetValue(); got != c.want {
			t.Errorf("%s{node=%q} = %v, want %v", c.name, c.node, got, c.want)
		}
	}
	m := value(t, fams, "sluice_node_records_in_total", map[string]string{"node": "copy"})
	labels := map[string]string{}
	for _, l := range m.Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["kind"] != "stage" || labels["type"] != "test_copy" {
		t.Errorf("copy's labels = %v, want kind stage, type test_copy", labels)
	}

	for _, node := range []string{"copy", "out"} {
		h := value(t, fams, "sluice_batch_duration_seconds", map[string]string{"node": node}).GetHistogram()
		if h.GetSampleCount() == 0 {
			t.Errorf("sluice_batch_duration_seconds{node=%q} has no samples", node)
		}
	}
	for _, name := range []string{"sluice_edge_buffer_fill_ratio", "sluice_edge_buffered_records"} {
		value(t, fams, name, map[string]string{"node": "out"})
		for _, m := range fams[name].Metric {
			for _, l := range m.Label {
				if l.GetName() == "node" && l.GetValue() == "numbers" {
					t.Errorf("%s has a sample for the source, which has no input edge", name)
				}
			}
		}
	}
	if got := value(t, fams, "test_sink_writes_total", nil).GetCounter().GetValue(); got < 1 {
		t.Errorf("component metric test_sink_writes_total = %v, want >= 1", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("no %s: runtime/process collectors missing", name)
		}
	}
}

func TestClashingComponentMetricsAreSkippedWithAWarning(t *testing.T) {
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	clash := newExportingSink()
	clash.writes = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_node_records_in_total", Help: "clashes"})
	p := flow.New("clash", flow.WithLogger(quietLog())).
		Source("numbers", &numbers{n: 10, size: 10}).
		Sink("bad", clash, flow.Inputs("numbers"))
	base := serve(t, p, Config{}, log)
	fams := scrape(t, base, "")
	value(t, fams, "sluice_node_records_in_total", map[string]string{"node": "bad"})
	if !strings.Contains(logs.String(), "component metrics not exported") || !strings.Contains(logs.String(), "node=bad") {
		t.Errorf("no warning naming the node; log:\n%s", logs.String())
	}
}
