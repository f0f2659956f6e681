package flow

import (
	"context"
	"fmt"
	"strings"
)

// Kind is a node's role in the graph: what its component is.
type Kind int

// The three node kinds.
const (
	KindSource Kind = iota
	KindStage
	KindSink
)

func (k Kind) String() string {
	switch k {
	case KindSource:
		return "source"
	case KindStage:
		return "stage"
	default:
		return "sink"
	}
}

// Source produces batches. Run emits until ctx is cancelled (the pipeline is
// draining: stop taking input and return promptly) or the input is
// exhausted (return nil: a finite source ends the run once drained).
// Every emitted batch must carry Acks (NewAck + NewBatch): that is how the
// source learns its records are safe.
type Source interface {
	Run(ctx context.Context, out Emitter) error
}

// Stage consumes batches from in until it is closed and emits results. When
// in is closed the stage must emit or settle everything it still holds and
// return: that is the drain. ctx is cancelled only when the drain deadline
// passed or the pipeline failed.
//
// With parallelism N the engine calls Run up to N times concurrently, each
// with its own shard of the input: keep per-key state in Run's locals. The
// first call starts with the pipeline; each other with the first batch
// sharded to it, so a shard that never gets a batch never runs.
// Most stages are a Processor wrapped by ProcessorStage.
type Stage interface {
	Run(ctx context.Context, in <-chan *Batch, out Emitter) error
}

// Sink writes records. Write returns once the records are durable (flushed,
// fsynced, acknowledged by the broker): only then does the engine settle
// their batches. To fail only some records return a *WriteErrors.
//
// Like io.Writer, a Sink keeps nothing of records after Write returns: the
// engine reuses the slice for its next merge, and a source may reuse the
// array of a batch once it was settled (the record bytes are never reused,
// so a Sink may keep a record's Key or Value slices).
type Sink interface {
	Write(ctx context.Context, records []Record) error
}

// Closer is an optional capability of any node. The engine calls Close once,
// after the whole graph drained (sources: to commit; stages: to stop
// plugins; sinks: to flush and close), within the drain deadline.
type Closer interface {
	Close(ctx context.Context) error
}

// Readier is an optional capability: a node that can be not ready (a
// source not yet connected, a plugin in a crash loop) says why. /readyz
// reports the pipeline ready when every Readier returns nil.
type Readier interface {
	Ready() error
}

// Emitter passes batches downstream.
type Emitter interface {
	// Emit takes ownership of b and blocks while downstream edges are full
	// (backpressure). On error (ctx done, pipeline failed) b was settled.
	Emit(ctx context.Context, b *Batch) error
	// Reject hands failed records, derived from the batch from, to the
	// node's error policy (skip, dead-letter or fail). from stays owned by
	// the caller.
	Reject(ctx context.Context, from *Batch, failed []RecordError) error
}

// Processor is the per-batch function most stages are: map, filter, plugin
// calls. It must be safe for concurrent use (parallelism runs it from
// several goroutines).
//
// Process appends results to out.Records and per-record failures to
// out.Errors; one bad record never fails its batch. Returning an error fails
// every record of in. Process may reuse in's backing array for out.Records
// (writing at positions it has already read): in is not read again.
type Processor interface {
	Process(ctx context.Context, in []Record, out *Output) error
}

// ProcessFunc adapts a function to Processor.
type ProcessFunc func(ctx context.Context, in []Record, out *Output) error

// Process calls f.
func (f ProcessFunc) Process(ctx context.Context, in []Record, out *Output) error {
	return f(ctx, in, out)
}

// Output collects what a Processor produced from one batch.
type Output struct {
	Records []Record
	Errors  []RecordError
}

// Reset empties o, keeping its capacity.
func (o *Output) Reset() {
	o.Records = o.Records[:0]
	o.Errors = o.Errors[:0]
}

// RecordError is one record that failed, as it was before processing.
type RecordError struct {
	Record   Record
	Err      error
	Attempts int
}

// WriteErrors is returned by a Sink that wrote some records but not others.
// Index refers to the slice passed to Write.
type WriteErrors struct {
	Failed map[int]error
}

func (e *WriteErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d records failed", len(e.Failed))
	for _, err := range e.Failed {
		fmt.Fprintf(&b, ", e.g. %v", err)
		break
	}
	return b.String()
}

// ProcessorStage turns a Processor into a Stage: each batch goes through
// the node's middleware, failures to its error policy, results downstream.
// If p is a Closer, so is the stage.
func ProcessorStage(p Processor) Stage {
	if _, ok := p.(Closer); ok {
		return closingProcessorStage{processorStage{p}}
	}
	return processorStage{p}
}

// processorOf is what ProcessorStage returns: a pipeline runs the
// Processor inside it itself, through the node's middleware.
type processorOf interface {
	processor() Processor
}

type processorStage struct{ p Processor }

func (s processorStage) processor() Processor { return s.p }

// Run runs the processor outside a Pipeline, with Recover as its only
// middleware: a Pipeline does not call it.
func (s processorStage) Run(ctx context.Context, in <-chan *Batch, out Emitter) error {
	return process(ctx, in, out, Recover()(s.p.Process))
}

type closingProcessorStage struct{ processorStage }

func (s closingProcessorStage) Close(ctx context.Context) error { return s.p.(Closer).Close(ctx) }
