package flow_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// writeSizes is a sink that remembers how many records each Write got;
// with a gate, each Write first says it began (on began) and waits for a
// token.
type writeSizes struct {
	mu    sync.Mutex
	sizes []int
	began chan struct{}
	gate  chan struct{}
}

func (s *writeSizes) Write(ctx context.Context, recs []flow.Record) error {
	if s.gate != nil {
		s.began <- struct{}{}
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sizes = append(s.sizes, len(recs))
	return nil
}

func (s *writeSizes) writes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

// twoSteps emits one batch of 10, waits for first, then emits ten more.
type twoSteps struct {
	first chan struct{}
	acked atomic.Int64
}

func (s *twoSteps) Run(ctx context.Context, out flow.Emitter) error {
	for i := range 11 {
		if i == 1 {
			<-s.first
		}
		recs := make([]flow.Record, 10)
		ack := flow.NewAck(func(err error) {
			if err == nil {
				s.acked.Add(10)
			}
		})
		if err := out.Emit(ctx, flow.NewBatch(recs, ack)); err != nil {
			return nil
		}
	}
	return nil
}

// While a sink writes, what queues on its input is merged into its next
// Write, up to its SinkBatch.
func TestSinkWriteTakesWhatQueuedWhileBusy(t *testing.T) {
	for _, c := range []struct {
		name      string
		sinkBatch int
		want      []int // sizes of the Writes after the first
	}{
		{"all at once", 1000, []int{100}},
		{"in SinkBatch pieces", 30, []int{30, 30, 30, 10}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := &twoSteps{first: make(chan struct{})}
			sink := &writeSizes{began: make(chan struct{}), gate: make(chan struct{})}
			p := flow.New("t", flow.WithBuffer(1000)).
				Source("gen", src).
				Sink("out", sink, flow.Inputs("gen"), flow.SinkBatch(c.sinkBatch))
			done := make(chan error, 1)
			go func() { done <- p.Run(context.Background()) }()
			// The first Write (the first batch) waits at the gate while
			// the other ten batches queue.
			<-sink.began
			close(src.first)
			deadline := time.Now().Add(10 * time.Second)
			for p.Stats()[1].Buffered() < 100 {
				if time.Now().After(deadline) {
					t.Fatalf("the sink's input never filled: %d records queued", p.Stats()[1].Buffered())
				}
				time.Sleep(time.Millisecond)
			}
			go func() {
				for range sink.began {
				}
			}()
			close(sink.gate)
			err := <-done
			close(sink.began)
			if err != nil {
				t.Fatal(err)
			}
			got := sink.writes()
			if len(got) != 1+len(c.want) || got[0] != 10 {
				t.Fatalf("writes of %v records, want 10 then %v", got, c.want)
			}
			for i, n := range c.want {
				if got[i+1] != n {
					t.Fatalf("writes of %v records, want 10 then %v", got, c.want)
				}
			}
			if src.acked.Load() != 110 {
				t.Fatalf("acked %d of 110", src.acked.Load())
			}
		})
	}
}

// observed records the Observer's calls per node.
type observed struct {
	mu      sync.Mutex
	records map[string]int
}

func (o *observed) ObserveBatch(node string, _ flow.Kind, records int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.records[node] += records
}

// The node's middleware (Use), the policy's retries and the Observer wrap
// every processor call and every sink write, whatever the parallelism.
func TestMiddlewareReachesProcessorsAndSinks(t *testing.T) {
	for _, par := range []int{1, 3} {
		var seen sync.Map // node id -> *atomic.Int64 of records
		count := func(id string) flow.Middleware {
			n, _ := seen.LoadOrStore(id, new(atomic.Int64))
			return func(next flow.ProcessFunc) flow.ProcessFunc {
				return func(ctx context.Context, in []flow.Record, out *flow.Output) error {
					n.(*atomic.Int64).Add(int64(len(in)))
					return next(ctx, in, out)
				}
			}
		}
		// Fails every record once: the retry makes it through.
		var tries sync.Map
		flaky := flow.ProcessFunc(func(ctx context.Context, in []flow.Record, out *flow.Output) error {
			for _, r := range in {
				if _, again := tries.LoadOrStore(string(r.Value), true); again {
					out.Records = append(out.Records, r)
					continue
				}
				out.Errors = append(out.Errors, flow.RecordError{Record: r, Err: errors.New("once")})
			}
			return nil
		})
		retry := flow.ErrorPolicy{Action: flow.ActionFail, Retries: 1, Backoff: flow.Backoff{Initial: time.Microsecond, Max: time.Microsecond}}
		obs := &observed{records: map[string]int{}}
		src := &counter{n: 1000, size: 10}
		sink := &collect{}
		p := flow.New("t", flow.WithObserver(obs)).
			Source("gen", src).
			Stage("flaky", flow.ProcessorStage(flaky), flow.Inputs("gen"), flow.OnError(retry), flow.Use(count("flaky")),
				flow.Parallelism(par, flow.OrderPartition)).
			Sink("out", sink, flow.Inputs("flaky"), flow.Use(count("out")), flow.Parallelism(par, flow.OrderPartition))
		if err := p.Run(context.Background()); err != nil {
			t.Fatalf("parallelism %d: %v", par, err)
		}
		if len(sink.values()) != 1000 || src.acked.Load() != 1000 {
			t.Fatalf("parallelism %d: %d written, %d acked, want 1000", par, len(sink.values()), src.acked.Load())
		}
		for id, want := range map[string]int64{"flaky": 2000, "out": 1000} {
			n, _ := seen.Load(id)
			if got := n.(*atomic.Int64).Load(); got != want {
				t.Errorf("parallelism %d: %s's middleware saw %d records, want %d", par, id, got, want)
			}
		}
		if got := p.Stats()[1].Retries.Load(); got != 1000 {
			t.Errorf("parallelism %d: %d retries counted, want 1000", par, got)
		}
		obs.mu.Lock()
		if obs.records["flaky"] != 1000 || obs.records["out"] != 1000 {
			t.Errorf("parallelism %d: observer saw %v, want 1000 records each for flaky and out", par, obs.records)
		}
		obs.mu.Unlock()
	}
}

// A ProcessorStage run by hand, outside a Pipeline, still turns a panic
// into failed records.
func TestProcessorStageRunsAlone(t *testing.T) {
	boom := flow.ProcessFunc(func(context.Context, []flow.Record, *flow.Output) error { panic("boom") })
	in := make(chan *flow.Batch, 1)
	var failed error
	ack := flow.NewAck(func(err error) { failed = err })
	in <- flow.NewBatch([]flow.Record{{Value: []byte("x")}}, ack)
	close(in)
	out := &rejects{}
	if err := flow.ProcessorStage(boom).Run(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	var pe *flow.PanicError
	if len(out.errs) != 1 || !errors.As(out.errs[0].Err, &pe) {
		t.Fatalf("rejected %v, want the record failed by the panic", out.errs)
	}
	if failed != nil {
		t.Fatalf("ack failed with %v; Reject kept the batch, which settles as handled", failed)
	}
}

// rejects is an Emitter that keeps what it is given.
type rejects struct{ errs []flow.RecordError }

func (r *rejects) Emit(_ context.Context, b *flow.Batch) error { b.Settle(nil); return nil }

func (r *rejects) Reject(_ context.Context, _ *flow.Batch, failed []flow.RecordError) error {
	r.errs = append(r.errs, failed...)
	return nil
}
