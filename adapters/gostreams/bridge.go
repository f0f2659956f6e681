package gostreams

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	streams "github.com/reugn/go-streams"

	"github.com/sluicedev/sluice/flow"
)

// Source makes a flow.Source (or a channel of records) a streams.Source
// emitting *Envelope elements. Every envelope must end in ToSink, in a
// Filter/FlatMap/Merge of this package, or with Envelope.Done, for the
// source's acks to fire.
type Source struct {
	out  chan any
	done chan struct{}
	err  error
}

var _ streams.Source = (*Source)(nil)

// FromSource runs src until it is exhausted or ctx ends. Its output closes
// then; Err reports src's error.
func FromSource(ctx context.Context, src flow.Source) *Source {
	s := &Source{out: make(chan any), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.out)
		s.err = safeRun(func() error { return src.Run(ctx, &emitter{out: s.out}) })
	}()
	return s
}

// FromChan emits the records received on ch until it closes or ctx ends.
// Such records carry no acks.
func FromChan(ctx context.Context, ch <-chan flow.Record) *Source {
	return FromSource(ctx, chanSource(ch))
}

type chanSource <-chan flow.Record

func (c chanSource) Run(ctx context.Context, out flow.Emitter) error {
	for {
		select {
		case r, ok := <-c:
			if !ok {
				return nil
			}
			if err := out.Emit(ctx, flow.NewBatch([]flow.Record{r})); err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func safeRun(fn func() error) error {
	_, err := safe(func() (struct{}, error) { return struct{}{}, fn() })
	return err
}

// Out implements streams.Outlet.
func (s *Source) Out() <-chan any { return s.out }

// Via implements streams.Source.
func (s *Source) Via(f streams.Flow) streams.Flow {
	go func() {
		for e := range s.out {
			f.In() <- e
		}
		close(f.In())
	}()
	return f
}

// Err waits for the source to end and returns its error.
func (s *Source) Err() error {
	<-s.done
	return s.err
}

// emitter turns a source's batches into envelopes.
type emitter struct {
	out chan<- any
}

func (em *emitter) Emit(ctx context.Context, b *flow.Batch) error {
	if len(b.Records) == 0 {
		b.Settle(nil)
		return nil
	}
	t := newTracker(b, nil)
	for i := range b.Records {
		e := &Envelope{Record: b.Records[i], orig: b.Records[i], ref: t}
		select {
		case em.out <- e:
		case <-ctx.Done():
			for range b.Records[i:] {
				t.release(ctx.Err())
			}
			return ctx.Err()
		}
	}
	return nil
}

func (em *emitter) Reject(_ context.Context, from *flow.Batch, failed []flow.RecordError) error {
	if len(failed) > 0 {
		from.Derive(nil).Settle(failed[0].Err)
	}
	return nil
}

// Sink makes a flow.Sink a streams.Sink. It accepts *Envelope and
// []*Envelope (whose inputs' acks it settles once written) and plain
// flow.Record and []flow.Record; it writes in batches (BatchSize, Linger).
// It does not close the flow.Sink.
type Sink struct {
	in   chan any
	done chan struct{}

	mu  sync.Mutex
	err error
}

var _ streams.Sink = (*Sink)(nil)

// ToSink starts writing what arrives on the Sink's input to sink. After ctx
// ends, writes fail (and so do the acks of what they held) but the input
// is still consumed until it closes, so upstream go-streams goroutines can
// finish.
func ToSink(ctx context.Context, sink flow.Sink, opts ...Option) *Sink {
	b := batchingOf(opts)
	s := &Sink{in: make(chan any), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.consume(ctx, sink, b)
	}()
	return s
}

// In implements streams.Inlet.
func (s *Sink) In() chan<- any { return s.in }

// AwaitCompletion implements streams.Sink: it returns once the input
// closed and everything was written.
func (s *Sink) AwaitCompletion() { <-s.done }

// Err returns the first write error (after AwaitCompletion, the final one).
func (s *Sink) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Sink) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *Sink) consume(ctx context.Context, sink flow.Sink, b batching) {
	var recs []flow.Record
	var envs []*Envelope // parallel to recs; nil for plain records
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var lingering <-chan time.Time
	write := func() {
		timer.Stop()
		lingering = nil
		if len(recs) == 0 {
			return
		}
		err := safeRun(func() error { return sink.Write(ctx, recs) })
		var we *flow.WriteErrors
		if errors.As(err, &we) {
			for _, e := range we.Failed {
				s.setErr(e)
				break
			}
		} else if err != nil {
			s.setErr(err)
		}
		for i, e := range envs {
			if e == nil {
				continue
			}
			switch {
			case we != nil && we.Failed[i] != nil:
				e.Done(we.Failed[i])
			case we != nil:
				e.Done(nil)
			default:
				e.Done(err)
			}
		}
		recs, envs = nil, nil
	}
	add := func(r flow.Record, e *Envelope) {
		recs = append(recs, r)
		envs = append(envs, e)
	}
	for {
		select {
		case x, ok := <-s.in:
			if !ok {
				write()
				return
			}
			switch v := x.(type) {
			case *Envelope:
				if v != nil {
					add(v.Record, v)
				}
			case []*Envelope:
				for _, e := range v {
					if e != nil {
						add(e.Record, e)
					}
				}
			case flow.Record:
				add(v, nil)
			case []flow.Record:
				for _, r := range v {
					add(r, nil)
				}
			default:
				s.setErr(fmt.Errorf("gostreams sink: cannot write a %T", x))
			}
			if len(recs) >= b.size {
				write()
			} else if len(recs) > 0 && lingering == nil && b.linger > 0 {
				timer.Reset(b.linger)
				lingering = timer.C
			}
		case <-lingering:
			lingering = nil
			write()
		}
	}
}
