// Package gostreams connects sluice to github.com/reugn/go-streams (v0.13).
//
// Stage runs a go-streams Flow as a flow.Stage: records enter one by one as
// *Envelope values that carry a reference on their input batch's acks;
// whatever leaves the flow is re-batched (by size and linger) into batches
// holding the acks of the inputs they came from. FromSource, FromChan and
// ToSink go the other way, making a flow.Source or a channel a
// streams.Source and a flow.Sink a streams.Sink.
//
// go-streams runs user functions in its own goroutines, where a panic
// kills the process, and it has no notion of acks. Build flows from this
// package's Map, Filter, FlatMap and Merge: they recover panics (turning
// them into record errors), report errors to the stage's error policy, and
// release the acks of records they drop. Operators without user functions
// (Batch, windows, Throttler, PassThrough, FanOut/Merge of flows) may be
// used directly with element type *Envelope (windows and Batch emit
// []*Envelope; Stage accepts both). An arbitrary operator cannot be made
// safe from outside: a panic in a function given to it straight is fatal,
// and an envelope it drops keeps its acks until the stage drains.
//
// Keep go-streams off hot paths: its channels are unbuffered `chan any`,
// one element per send (~0.4M records/s through five stages, where sluice
// batches move millions).
package gostreams

import (
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/sluicedev/sluice/flow"
)

// Envelope is one record travelling through a go-streams flow.
type Envelope struct {
	Record flow.Record

	orig  flow.Record // the record as it entered, for error reports
	owner owner       // the Stage run it belongs to; nil outside a Stage
	ref   *tracker    // the input batch it came from
	more  []*tracker  // further inputs, for envelopes merged from several
}

// owner receives failures of envelopes inside a Stage run.
type owner interface {
	fail(e *Envelope, err error)
}

// Done ends an envelope that leaves the flow without reaching its end (a
// custom sink or filter): err nil counts it as handled, non-nil fails its
// input. Call it at most once per envelope; Stage and ToSink do it for the
// envelopes they receive.
func (e *Envelope) Done(err error) {
	e.each(func(t *tracker) { t.release(err) })
	e.ref, e.more = nil, nil
}

func (e *Envelope) each(fn func(*tracker)) {
	if e.ref != nil {
		fn(e.ref)
	}
	for _, t := range e.more {
		fn(t)
	}
}

// clone returns a new envelope for rec holding its own references on e's
// inputs.
func (e *Envelope) clone(rec flow.Record) *Envelope {
	c := &Envelope{Record: rec, orig: e.orig, owner: e.owner, ref: e.ref}
	if len(e.more) > 0 {
		c.more = append([]*tracker(nil), e.more...)
	}
	c.each(func(t *tracker) { t.live.Add(1) })
	return c
}

// fail hands a failed envelope to its Stage run's error policy, or fails
// its inputs outside a Stage.
func (e *Envelope) fail(err error) {
	if e.owner != nil {
		e.owner.fail(e, err)
		return
	}
	e.Done(err)
}

// tracker is one input batch inside a flow: it settles the batch once no
// envelope refers to it any more.
type tracker struct {
	batch *flow.Batch
	live  atomic.Int64
	err   atomic.Pointer[error]
	done  func(*tracker) // called once, after the batch settled
}

func newTracker(b *flow.Batch, done func(*tracker)) *tracker {
	t := &tracker{batch: b, done: done}
	t.live.Store(int64(len(b.Records)))
	return t
}

func (t *tracker) release(err error) {
	if err != nil {
		t.err.CompareAndSwap(nil, &err)
	}
	if t.live.Add(-1) == 0 {
		var e error
		if p := t.err.Load(); p != nil {
			e = *p
		}
		t.batch.Settle(e)
		if t.done != nil {
			t.done(t)
		}
	}
}

// trackers is the set of a run's inputs still inside the flow.
type trackers struct {
	mu  sync.Mutex
	set map[*tracker]struct{}
}

func (ts *trackers) add(b *flow.Batch) *tracker {
	t := newTracker(b, ts.remove)
	ts.mu.Lock()
	if ts.set == nil {
		ts.set = map[*tracker]struct{}{}
	}
	ts.set[t] = struct{}{}
	ts.mu.Unlock()
	return t
}

func (ts *trackers) remove(t *tracker) {
	ts.mu.Lock()
	delete(ts.set, t)
	ts.mu.Unlock()
}

// abandon settles the inputs whose envelopes vanished inside the flow and
// returns how many there were.
func (ts *trackers) abandon(err error) int {
	ts.mu.Lock()
	left := make([]*tracker, 0, len(ts.set))
	for t := range ts.set {
		left = append(left, t)
	}
	ts.set = nil
	ts.mu.Unlock()
	for _, t := range left {
		t.batch.Settle(err)
	}
	return len(left)
}

// safe calls fn, turning a panic into a *flow.PanicError.
func safe[T any](fn func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &flow.PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return fn()
}
