package stagetest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sluicedev/sluice/flow"
)

// Tracker makes input batches whose acks it counts, for driving a stage
// directly (without a pipeline).
type Tracker struct {
	mu    sync.Mutex
	n     int
	fired map[int]int
	errs  map[int]error
}

// Batch returns a batch of recs holding a new ack.
func (t *Tracker) Batch(recs ...flow.Record) *flow.Batch {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fired == nil {
		t.fired, t.errs = map[int]int{}, map[int]error{}
	}
	i := t.n
	t.n++
	return flow.NewBatch(recs, flow.NewAck(func(err error) {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.fired[i]++
		if err != nil {
			t.errs[i] = err
		}
	}))
}

// Fired is the number of acks that fired.
func (t *Tracker) Fired() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.fired)
}

// Failed is the number of acks that fired with an error.
func (t *Tracker) Failed() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.errs)
}

// Check fails tb unless every ack fired exactly once without error.
func (t *Tracker) Check(tb testing.TB) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := 0; i < t.n; i++ {
		if t.fired[i] != 1 {
			tb.Errorf("ack %d fired %d times, want once", i, t.fired[i])
		}
		if t.errs[i] != nil {
			tb.Errorf("ack %d failed: %v", i, t.errs[i])
		}
	}
}

// Emitter records what a stage emits and rejects. Emitted batches stay
// unsettled until Settle, like batches a sink has not written yet.
type Emitter struct {
	mu       sync.Mutex
	batches  []*flow.Batch
	settled  []bool
	rejected []flow.RecordError
}

// Emit implements flow.Emitter.
func (e *Emitter) Emit(ctx context.Context, b *flow.Batch) error {
	if err := ctx.Err(); err != nil {
		b.Settle(err)
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.batches = append(e.batches, b)
	e.settled = append(e.settled, false)
	return nil
}

// Reject implements flow.Emitter with the skip policy: failures are
// recorded and count as handled.
func (e *Emitter) Reject(_ context.Context, _ *flow.Batch, failed []flow.RecordError) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rejected = append(e.rejected, failed...)
	return nil
}

// Batches returns the records of every emitted batch.
func (e *Emitter) Batches() [][]flow.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([][]flow.Record, len(e.batches))
	for i, b := range e.batches {
		out[i] = b.Records
	}
	return out
}

// Records returns every emitted record in order.
func (e *Emitter) Records() []flow.Record {
	var out []flow.Record
	for _, b := range e.Batches() {
		out = append(out, b...)
	}
	return out
}

// Values returns every emitted value as a string.
func (e *Emitter) Values() []string {
	var out []string
	for _, r := range e.Records() {
		out = append(out, string(r.Value))
	}
	return out
}

// Len is the number of emitted batches.
func (e *Emitter) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.batches)
}

// Rejected returns the failures reported so far.
func (e *Emitter) Rejected() []flow.RecordError {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]flow.RecordError(nil), e.rejected...)
}

// Settle settles the emitted batches not settled yet, as a sink does once
// it wrote them.
func (e *Emitter) Settle() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.batches {
		e.settleLocked(i)
	}
}

// SettleBatch settles emitted batch i only.
func (e *Emitter) SettleBatch(i int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.settleLocked(i)
}

func (e *Emitter) settleLocked(i int) {
	if !e.settled[i] {
		e.settled[i] = true
		e.batches[i].Settle(nil)
	}
}

// Start runs stage with em as its output; send batches on in, close it to
// drain, then call wait for Run's result.
func Start(ctx context.Context, stage flow.Stage, em *Emitter) (in chan<- *flow.Batch, wait func() error) {
	ch := make(chan *flow.Batch)
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("stage panicked: %v", v)
			}
		}()
		done <- stage.Run(ctx, ch, em)
	}()
	return ch, func() error { return <-done }
}

// Feed runs stage over batches (closing its input after the last) and
// returns Run's error.
func Feed(stage flow.Stage, em *Emitter, batches ...*flow.Batch) error {
	in, wait := Start(context.Background(), stage, em)
	for _, b := range batches {
		in <- b
	}
	close(in)
	return wait()
}
