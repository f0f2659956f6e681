package ops

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// After a pipeline wrote records its source stamped 40 s earlier, /metrics
// has the sink's record age histogram with every record in the bucket up
// to a minute, and none for the source or the stage.
func TestMetricsExportTheRecordAgeOfEverySink(t *testing.T) {
	const records = 600
	p := flow.New("age-test", flow.WithLogger(quietLog())).
		Source("numbers", &numbers{n: records, size: 100, stamped: true, age: 40 * time.Second}, flow.Type("test_numbers")).
		Stage("copy", flow.ProcessorStage(passthrough), flow.Inputs("numbers"), flow.Type("test_copy")).
		Sink("out", &counting{}, flow.Inputs("copy"), flow.Type("test_count")).
		Source("unstamped", &numbers{n: 50, size: 10}).
		Sink("quiet", &counting{}, flow.Inputs("unstamped"))
	base := serve(t, p, Config{}, nil)
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, base, "")
	h := value(t, fams, "sluice_record_age_seconds",
		map[string]string{"pipeline": "age-test", "node": "out", "kind": "sink", "type": "test_count"}).GetHistogram()
	if h.GetSampleCount() != records {
		t.Errorf("out: %d ages counted, want %d", h.GetSampleCount(), records)
	}
	if s := h.GetSampleSum(); s < 40*records || s > 60*records {
		t.Errorf("out: sum of ages %v s, want about 40 s a record", s)
	}
	les := map[float64]uint64{}
	for _, b := range h.GetBucket() {
		les[b.GetUpperBound()] = b.GetCumulativeCount()
	}
	for _, want := range []struct {
		le    float64
		count uint64
	}{{0.0001, 0}, {0.001, 0}, {1, 0}, {30, 0}, {60, records}, {600, records}} {
		if got, ok := les[want.le]; !ok || got != want.count {
			t.Errorf("out: bucket le=%v holds %d (present %v), want %d", want.le, got, ok, want.count)
		}
	}
	if got, ok := les[math.Inf(1)]; len(les) != len(flow.AgeBounds())+1 || got != records || !ok {
		t.Errorf("%d buckets (+Inf: %d), want one per flow.AgeBounds (%d) and +Inf with every record", len(les), got, len(flow.AgeBounds()))
	}
	if q := value(t, fams, "sluice_record_age_seconds", map[string]string{"node": "quiet"}).GetHistogram(); q.GetSampleCount() != 0 {
		t.Errorf("quiet wrote records without timestamps, yet counted %d ages", q.GetSampleCount())
	}
	for _, m := range fams["sluice_record_age_seconds"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "kind" && l.GetValue() != "sink" {
				t.Errorf("a record age histogram for a %s", l.GetValue())
			}
		}
	}
}

// /graph.json gives a sink's p50 and p99 age over the last window, and
// the page draws them on the sink's box.
func TestGraphShowsTheAgeOfWhatASinkWrote(t *testing.T) {
	src := &numbers{n: -1, size: 20, pace: 5 * time.Millisecond, stamped: true, age: 40 * time.Second}
	p := newChain("age-graph", src, &counting{})
	base := serve(t, p, Config{}, nil)
	runInBackground(t, p)

	var out nodeState
	eventually(t, 15*time.Second, "an age on the sink", func() bool {
		out = fetchGraph(t, base).Nodes[2]
		return out.Age != nil
	})
	if out.ID != "out" || out.Age.Records <= 0 || out.Age.P50 == nil || out.Age.P99 == nil {
		t.Fatalf("sink %s age %+v, want records and both quantiles", out.ID, out.Age)
	}
	if p50, p99 := *out.Age.P50, *out.Age.P99; p50 <= 30 || p50 > 60 || p99 < p50 || p99 > 60 {
		t.Errorf("p50 %v s, p99 %v s: want both in (30, 60]", p50, p99)
	}
	for _, n := range fetchGraph(t, base).Nodes[:2] {
		if n.Age != nil {
			t.Errorf("%s (%s) has an age: %+v", n.ID, n.Kind, n.Age)
		}
	}
	_, _, page := get(t, base+"/graph", "")
	if box := between(page, `data-node="out"`, "</g>"); !strings.Contains(box, `<text class="age" x="10" y="90">age p50 `) {
		t.Errorf("the sink's box shows no age:\n%s", box)
	}
	if !strings.Contains(page, `data-age-limit="600"`) {
		t.Errorf("the page does not hand its script the age limit")
	}
}

// phases emits size records stamped ages[0] ago, then, each time next
// lets it, size more stamped with the next age; then waits to be stopped.
type phases struct {
	size int
	ages []time.Duration
	next chan struct{}
}

func (s *phases) Run(ctx context.Context, out flow.Emitter) error {
	for i, age := range s.ages {
		if i > 0 {
			select {
			case <-s.next:
			case <-ctx.Done():
				return nil
			}
		}
		recs := make([]flow.Record, s.size)
		for j := range recs {
			recs[j].Timestamp = time.Now().Add(-age)
		}
		if err := out.Emit(ctx, flow.NewBatch(recs, flow.NewAck(func(error) {}))); err != nil {
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// The graph's ages are those of the records written between the last two
// readings, not since the start: after records 40 s old, records 3 s old
// make both quantiles 3 s or so, and a window without writes has none.
func TestGraphAgesAreThoseOfTheLastWindow(t *testing.T) {
	src := &phases{size: 100, ages: []time.Duration{40 * time.Second, 3 * time.Second}, next: make(chan struct{})}
	p := flow.New("window", flow.WithLogger(quietLog())).
		Source("src", src).
		Sink("out", &counting{}, flow.Inputs("src"))
	g := newGraphSource(p)
	runInBackground(t, p)
	sink := p.Stats()[1]
	t0 := time.Unix(1000, 0)
	g.rates.read(g.stats, t0)
	wrote := func(n int64) {
		eventually(t, 15*time.Second, "the ages of the sink's writes", func() bool { return sink.Ages().Count() == n })
	}
	quantiles := func(at time.Time) (p50, p99 float64) {
		t.Helper()
		a := g.state(at).Nodes[1].Age
		if a == nil || a.P50 == nil || a.P99 == nil {
			t.Fatalf("no age at %v: %+v", at.Sub(t0), a)
		}
		return *a.P50, *a.P99
	}

	wrote(100)
	if p50, p99 := quantiles(t0.Add(time.Second)); p50 <= 30 || p99 > 60 {
		t.Errorf("first window: p50 %v s p99 %v s, want (30, 60]", p50, p99)
	}
	src.next <- struct{}{}
	wrote(200)
	if p50, p99 := quantiles(t0.Add(2 * time.Second)); p50 <= 2.5 || p99 > 5 {
		t.Errorf("second window: p50 %v s p99 %v s, want (2.5, 5]: the records of the first counted again", p50, p99)
	}
	if a := g.state(t0.Add(2*time.Second + minRateWindow/2)).Nodes[1].Age; a == nil || a.Records != 100 {
		t.Errorf("a reading inside the window changed the ages to %+v", a)
	}
	if a := g.state(t0.Add(3 * time.Second)).Nodes[1].Age; a != nil {
		t.Errorf("a window without writes has ages %+v", a)
	}
}

func TestAgeLine(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		age  *ageState
		want string
	}{
		{nil, ""},
		{&ageState{Records: 10, P50: f(0.00042), P99: f(0.0031)}, "age p50 420µs  p99 3.1ms"},
		{&ageState{Records: 10, P50: f(0.012), P99: f(0.75)}, "age p50 12ms  p99 750ms"},
		{&ageState{Records: 10, P50: f(2.24), P99: f(42)}, "age p50 2.2s  p99 42s"},
		{&ageState{Records: 10, P50: f(90), P99: nil}, "age p50 1.5min  p99 >10min"},
	} {
		if got := ageLine(nodeState{Kind: "sink", Age: c.age}); got != c.want {
			t.Errorf("ageLine(%+v) = %q, want %q", c.age, got, c.want)
		}
	}
	if math.Abs(ageLimit.Seconds()-600) > 0 {
		t.Errorf("ageLimit %v: the page's legend and this test assume 10 min", ageLimit)
	}
}
