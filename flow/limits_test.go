package flow_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicedev/sluice/flow"
)

// starts counts the workers of a node: calls of its Run.
type starts struct{ n atomic.Int32 }

func (s *starts) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	s.n.Add(1)
	for b := range in {
		if out.Emit(ctx, b) != nil {
			return nil
		}
	}
	return nil
}

// Parallelism is a bound: a worker starts with the first batch sharded to
// it, so 64 workers for records of 4 partitions (or of one key) are at
// most 5 goroutines (worker 0 always runs). Issue 9: parallelism
// 1000000000 started that many and ran out of memory.
func TestWorkersStartWithUse(t *testing.T) {
	for _, c := range []struct {
		ordering flow.Ordering
		most     int32
	}{
		{flow.OrderPartition, 1 + 4}, // the counter's records come from 4 partitions
		{flow.OrderKey, 1 + 1},       // and have no key
	} {
		t.Run(string(c.ordering), func(t *testing.T) {
			src := &counter{n: 5000, size: 10}
			st, sink := &starts{}, &collect{}
			p := flow.New("t").Source("gen", src).
				Stage("s", st, flow.Inputs("gen"), flow.Parallelism(64, c.ordering)).
				Sink("out", sink, flow.Inputs("s"), flow.Parallelism(64, c.ordering))
			if err := p.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := len(sink.values()); got != 5000 {
				t.Fatalf("got %d records, want 5000", got)
			}
			if got := st.n.Load(); got < 1 || got > c.most {
				t.Errorf("%d workers started for parallelism 64, want 1 to %d", got, c.most)
			}
		})
	}
}

// Unordered batches go to an idle worker first; all records arrive.
func TestUnorderedWorkersDeliverEverything(t *testing.T) {
	src := &counter{n: 20000, size: 7}
	st, sink := &starts{}, &collect{}
	p := flow.New("t").Source("gen", src).
		Stage("s", st, flow.Inputs("gen"), flow.Parallelism(8, flow.OrderNone)).
		Sink("out", sink, flow.Inputs("s"))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(sink.values()); got != 20000 || src.acked.Load() != 20000 {
		t.Fatalf("got %d records, %d acknowledged; want 20000", got, src.acked.Load())
	}
	if got := st.n.Load(); got < 1 || got > 8 {
		t.Errorf("%d workers started for parallelism 8", got)
	}
}

func TestValidateRefusesParallelismAboveTheMaximum(t *testing.T) {
	p := flow.New("t").Source("gen", &counter{n: 1, size: 1}).
		Stage("s", flow.ProcessorStage(pass), flow.Inputs("gen"), flow.Parallelism(1_000_000_000, flow.OrderNone)).
		Sink("out", &collect{}, flow.Inputs("s"), flow.Parallelism(flow.MaxParallelism, flow.OrderNone))
	got := graphErrors(t, p)
	want := fmt.Sprintf("s: parallelism 1000000000 is above the maximum %d", flow.MaxParallelism)
	if len(got) != 1 || got[0] != want {
		t.Fatalf("got %q, want [%q]", got, want)
	}
}

// "Did you mean" compares an unknown id with every id: for every unknown
// id of a large file that took time quadratic in its size (issue 9: 80 s
// for 10,000 stages). Only the first few get a hint.
func TestValidateHintsOnlyTheFirstMisspellings(t *testing.T) {
	const n = 2000
	p := flow.New("t").Source("gen", &counter{n: 1, size: 1})
	for i := range n {
		p.Stage(fmt.Sprintf("stage%d", i), flow.ProcessorStage(pass), flow.Inputs(fmt.Sprintf("stge%d", i)))
	}
	p.Sink("out", &collect{}, flow.Inputs("gen"))
	var missing, hinted int
	for _, line := range graphErrors(t, p) {
		if strings.Contains(line, "does not exist") {
			missing++
		}
		if strings.Contains(line, "did you mean") {
			hinted++
			if !strings.Contains(line, `(did you mean "stage`) {
				t.Errorf("odd hint: %s", line)
			}
		}
	}
	if missing != n {
		t.Errorf("%d missing inputs reported, want %d", missing, n)
	}
	if hinted == 0 || hinted > 10 {
		t.Errorf("%d hints, want 1 to 10", hinted)
	}
}
