package gostreams

import (
	"context"
	"errors"
	"fmt"
	"time"

	streams "github.com/reugn/go-streams"

	"github.com/sluicedev/sluice/flow"
)

// Stage runs a go-streams flow as a flow.Stage.
type Stage struct {
	build  func() streams.Flow
	size   int
	linger time.Duration
}

// Option configures how a Stage or ToSink batches what leaves the flow.
type Option func(*batching)

type batching struct {
	size   int
	linger time.Duration
}

// BatchSize caps the records per output batch (default 256).
func BatchSize(n int) Option { return func(b *batching) { b.size = max(n, 1) } }

// Linger bounds how long a record waits for its output batch to fill
// (default 10ms).
func Linger(d time.Duration) Option { return func(b *batching) { b.linger = max(d, 0) } }

func batchingOf(opts []Option) batching {
	b := batching{size: 256, linger: 10 * time.Millisecond}
	for _, o := range opts {
		o(&b)
	}
	return b
}

// NewStage returns a Stage running the flow build returns. build is called
// once per Run (each parallel worker, each pipeline run): go-streams
// operators start goroutines when created and cannot be reused. Its flow
// receives *Envelope elements and must emit *Envelope or []*Envelope.
func NewStage(build func() streams.Flow, opts ...Option) *Stage {
	b := batchingOf(opts)
	return &Stage{build: build, size: b.size, linger: b.linger}
}

// failure is a record a wrapped function failed on.
type failure struct {
	e   *Envelope
	err error
}

// run is one Run of a Stage.
type run struct {
	failures chan failure
	live     trackers
}

func (r *run) fail(e *Envelope, err error) { r.failures <- failure{e, err} }

// Run implements flow.Stage. It returns once the flow has emitted its last
// element after the input closed, so no goroutine of the flow outlives it
// (given a flow that closes its output when its input closes, as every
// go-streams operator does).
func (s *Stage) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	f, err := safe(func() (streams.Flow, error) { return s.build(), nil })
	if err != nil {
		return fmt.Errorf("building the go-streams flow: %w", err)
	}
	if f == nil {
		return errors.New("building the go-streams flow: got nil")
	}
	r := &run{failures: make(chan failure, 64)}
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		r.feed(ctx, in, f.In())
	}()
	o := outbox{ctx: ctx, out: out, size: s.size, hold: flow.NewBatch(nil), seen: map[*tracker]bool{}}
	runErr := r.collect(f.Out(), &o, s.linger)
	<-fed
	// The feeder is done and the flow closed: no failure can be sent now.
	for len(r.failures) > 0 {
		o.reject(<-r.failures)
	}
	o.flush()
	// Inputs still open had envelopes dropped by operators that do not
	// release them (see the package doc): count them as filtered.
	r.live.abandon(o.err)
	return runErr
}

// feed sends every record of in into the flow, one envelope each, and
// closes the flow's input when in closes or ctx ends.
func (r *run) feed(ctx context.Context, in <-chan *flow.Batch, into chan<- any) {
	defer close(into)
	for {
		var b *flow.Batch
		var ok bool
		select {
		case b, ok = <-in:
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
		if len(b.Records) == 0 {
			b.Settle(nil)
			continue
		}
		t := r.live.add(b)
		for i := range b.Records {
			e := &Envelope{Record: b.Records[i], orig: b.Records[i], owner: r, ref: t}
			select {
			case into <- e:
			case <-ctx.Done():
				for range b.Records[i:] {
					t.release(ctx.Err())
				}
				return
			}
		}
	}
}

// collect reads the flow's output until it closes, batching it into o and
// rejecting failures as they come.
func (r *run) collect(from <-chan any, o *outbox, linger time.Duration) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var lingering <-chan time.Time
	var bad error
	for {
		select {
		case x, ok := <-from:
			if !ok {
				return bad
			}
			switch v := x.(type) {
			case *Envelope:
				o.add(v)
			case []*Envelope:
				for _, e := range v {
					o.add(e)
				}
			default:
				if bad == nil {
					bad = fmt.Errorf("the go-streams flow emitted a %T; it must emit *gostreams.Envelope or []*gostreams.Envelope", x)
				}
			}
			if len(o.recs) >= o.size {
				o.flush()
			}
			if len(o.recs) > 0 && lingering == nil && linger > 0 {
				timer.Reset(linger)
				lingering = timer.C
			}
			if len(o.recs) == 0 && lingering != nil {
				timer.Stop()
				lingering = nil
			}
		case f := <-r.failures:
			o.reject(f)
		case <-lingering:
			lingering = nil
			o.flush()
		}
	}
}

// outbox batches envelopes leaving the flow.
type outbox struct {
	ctx  context.Context
	out  flow.Emitter
	size int
	recs []flow.Record
	hold *flow.Batch       // acks of the inputs of recs
	seen map[*tracker]bool // inputs already in hold
	err  error             // set once emitting failed: the run is ending
}

// add puts e's record into the batch being filled; the batch takes its
// own reference on e's inputs and e's references are released.
func (o *outbox) add(e *Envelope) {
	if e == nil {
		return
	}
	if o.err != nil {
		e.Done(o.err)
		return
	}
	o.recs = append(o.recs, e.Record)
	e.each(func(t *tracker) {
		if !o.seen[t] {
			o.seen[t] = true
			o.hold.Absorb(t.batch.Derive(nil))
		}
	})
	e.Done(nil)
}

func (o *outbox) flush() {
	if len(o.recs) == 0 {
		return
	}
	b := o.hold
	b.Records = o.recs
	o.recs, o.hold = nil, flow.NewBatch(nil)
	clear(o.seen)
	if err := o.out.Emit(o.ctx, b); err != nil && o.err == nil {
		o.err = err
	}
}

// reject hands a failed record to the node's error policy, on a batch
// holding the acks of its inputs.
func (o *outbox) reject(f failure) {
	from := flow.NewBatch(nil)
	f.e.each(func(t *tracker) { from.Absorb(t.batch.Derive(nil)) })
	err := o.out.Reject(o.ctx, from, []flow.RecordError{{Record: f.e.orig, Err: f.err}})
	from.Settle(err)
	f.e.Done(nil)
}
