// Package stagetest runs a stage inside a real flow.Pipeline between a
// scripted source and a collecting sink, and checks ack accounting: every
// source ack fires exactly once, successfully, and only once the records
// derived from it were written.
package stagetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// Source emits Batches in order, one Ack per batch. With Pace set it waits
// for one token per batch; with Hold set it then stays open until Hold is
// closed (so time-driven stages can be observed before the drain).
type Source struct {
	Batches [][]flow.Record
	Pace    chan struct{}
	Hold    chan struct{}

	emitted atomic.Int64 // batches
	fired   []atomic.Int32
	errs    sync.Map // batch index -> error
	// WrittenAtAck, per batch, is how many records the watched sink had
	// written when the batch's ack fired.
	watch        *Sink
	writtenAtAck []atomic.Int64
}

// NewSource returns a source emitting batches.
func NewSource(batches ...[]flow.Record) *Source {
	return &Source{
		Batches:      batches,
		fired:        make([]atomic.Int32, len(batches)),
		writtenAtAck: make([]atomic.Int64, len(batches)),
	}
}

// Run implements flow.Source.
func (s *Source) Run(ctx context.Context, out flow.Emitter) error {
	for i, recs := range s.Batches {
		if s.Pace != nil {
			select {
			case <-s.Pace:
			case <-ctx.Done():
				return nil
			}
		}
		ack := flow.NewAck(func(err error) {
			if s.watch != nil {
				s.writtenAtAck[i].Store(int64(s.watch.Len()))
			}
			if err != nil {
				s.errs.Store(i, err)
			}
			s.fired[i].Add(1)
		})
		if err := out.Emit(ctx, flow.NewBatch(recs, ack)); err != nil {
			return nil
		}
		s.emitted.Add(1)
	}
	if s.Hold != nil {
		select {
		case <-s.Hold:
		case <-ctx.Done():
		}
	}
	return nil
}

// Fired is the number of batches whose ack fired.
func (s *Source) Fired() int {
	n := 0
	for i := range s.fired {
		if s.fired[i].Load() > 0 {
			n++
		}
	}
	return n
}

// Failed is the number of batches whose ack fired with an error.
func (s *Source) Failed() int {
	n := 0
	s.errs.Range(func(any, any) bool { n++; return true })
	return n
}

// CheckAcks fails t unless every emitted batch's ack fired exactly once
// and without error.
func (s *Source) CheckAcks(t testing.TB) {
	t.Helper()
	if got, want := s.emitted.Load(), int64(len(s.Batches)); got != want {
		t.Errorf("source emitted %d of %d batches", got, want)
	}
	for i := range s.fired {
		if n := s.fired[i].Load(); n != 1 {
			t.Errorf("ack of batch %d fired %d times, want once", i, n)
		}
		if err, ok := s.errs.Load(i); ok {
			t.Errorf("ack of batch %d failed: %v", i, err)
		}
	}
}

// WrittenAtAck is how many records the pipeline's sink had written when
// batch i's ack fired.
func (s *Source) WrittenAtAck(i int) int { return int(s.writtenAtAck[i].Load()) }

// Sink collects what it is given. With Gate set, each Write waits for a
// token first.
type Sink struct {
	Gate chan struct{}

	mu      sync.Mutex
	records []flow.Record
	batches [][]flow.Record
	waiting atomic.Int32
}

// Write implements flow.Sink.
func (s *Sink) Write(ctx context.Context, recs []flow.Record) error {
	if s.Gate != nil {
		s.waiting.Add(1)
		select {
		case <-s.Gate:
			s.waiting.Add(-1)
		case <-ctx.Done():
			s.waiting.Add(-1)
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records = append(s.records, recs...)
	s.batches = append(s.batches, append([]flow.Record(nil), recs...))
	return nil
}

// Waiting reports whether a Write is blocked on the gate.
func (s *Sink) Waiting() bool { return s.waiting.Load() > 0 }

// Records returns a copy of everything written.
func (s *Sink) Records() []flow.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]flow.Record(nil), s.records...)
}

// Values returns the written values as strings.
func (s *Sink) Values() []string {
	recs := s.Records()
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// Len is the number of records written.
func (s *Sink) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// Writes returns each Write's records (the batches as the sink saw them,
// possibly coalesced by the engine).
func (s *Sink) Writes() [][]flow.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]flow.Record(nil), s.batches...)
}

// Pipeline is a source -> stage -> sink pipeline under test.
type Pipeline struct {
	Source *Source
	Sink   *Sink
	P      *flow.Pipeline
}

// New wires src -> stage -> sink. Stage may be a flow.Stage or a
// flow.Processor (wrapped like the config layer does).
func New(src *Source, stage any, opts ...flow.NodeOption) *Pipeline {
	var st flow.Stage
	switch s := stage.(type) {
	case flow.Stage:
		st = s
	case flow.Processor:
		st = flow.ProcessorStage(s)
	default:
		panic(fmt.Sprintf("stagetest: %T is neither a Stage nor a Processor", stage))
	}
	sink := &Sink{}
	src.watch = sink
	p := flow.New("test", flow.WithDrainTimeout(10*time.Second)).
		Source("src", src).
		Stage("stage", st, append([]flow.NodeOption{flow.Inputs("src")}, opts...)...).
		Sink("sink", sink, flow.Inputs("stage"), flow.SinkBatch(1<<20))
	return &Pipeline{Source: src, Sink: sink, P: p}
}

// Run runs p to completion and fails t on error.
func (p *Pipeline) Run(t testing.TB) {
	t.Helper()
	if err := p.P.Run(context.Background()); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
}

// Start runs p in the background; the returned func waits for it and
// returns its error.
func (p *Pipeline) Start(ctx context.Context) (wait func() error) {
	done := make(chan error, 1)
	go func() { done <- p.P.Run(ctx) }()
	return func() error { return <-done }
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Records builds records with the given values, one partition, offsets
// from first.
func Records(first int, values ...string) []flow.Record {
	out := make([]flow.Record, len(values))
	for i, v := range values {
		out[i] = flow.Record{Value: []byte(v), Origin: flow.Origin{Source: "src", Offset: int64(first + i)}}
	}
	return out
}
