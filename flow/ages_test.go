package flow_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// stamped emits batches of records its source stamped age ago, then a
// batch without timestamps.
type stamped struct {
	batches, size int
	age           time.Duration
}

func (s *stamped) Run(ctx context.Context, out flow.Emitter) error {
	for i := 0; i <= s.batches; i++ {
		recs := make([]flow.Record, s.size)
		if i < s.batches {
			for j := range recs {
				recs[j].Timestamp = time.Now().Add(-s.age)
			}
		}
		if err := out.Emit(ctx, flow.NewBatch(recs, flow.NewAck(func(error) {}))); err != nil {
			return nil
		}
	}
	return nil
}

// refuse is a sink whose every Write fails.
type refuse struct{}

func (refuse) Write(context.Context, []flow.Record) error { return errors.New("refused") }

// Every sink, of one worker or several, counts the age of each record it
// wrote in the age histogram; records without a timestamp, records a sink
// failed to write and nodes other than sinks count nothing.
func TestSinksCountTheAgeOfWhatTheyWrote(t *testing.T) {
	// 40 s is well inside (30s, 1m], however slow the machine.
	src := &stamped{batches: 5, size: 64, age: 40 * time.Second}
	p := flow.New("ages", flow.WithLogger(slog.New(slog.DiscardHandler))).
		Source("gen", src).
		Stage("copy", flow.ProcessorStage(pass), flow.Inputs("gen")).
		Sink("one", &collect{}, flow.Inputs("copy")).
		Sink("many", &collect{}, flow.Inputs("copy"), flow.Parallelism(3, flow.OrderNone), flow.SinkBatch(16)).
		Sink("refused", refuse{}, flow.Inputs("copy"), flow.OnError(flow.ErrorPolicy{Action: flow.ActionSkip}))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	minute := -1
	for i, b := range flow.AgeBounds() {
		if b == time.Minute {
			minute = i
		}
	}
	for _, s := range p.Stats() {
		ages := s.Ages()
		want := int64(0)
		if s.ID == "one" || s.ID == "many" {
			want = 5 * 64
		}
		if ages.Count() != want || want > 0 && ages.Buckets[minute] != want {
			t.Errorf("%s counted ages %v, want %d records in the bucket up to 1m", s.ID, ages.Buckets, want)
		}
		if want > 0 && (ages.Sum < float64(want)*40 || ages.Sum > float64(want)*60) {
			t.Errorf("%s: sum of ages %v s for %d records of about 40 s", s.ID, ages.Sum, want)
		}
		if want > 0 {
			if p50, ok := ages.Quantile(0.5); !ok || p50 <= 30*time.Second || p50 > time.Minute {
				t.Errorf("%s: p50 %v, want in (30s, 1m]", s.ID, p50)
			}
		}
	}
}
