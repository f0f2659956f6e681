package gostreams

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	streams "github.com/reugn/go-streams"
	gsflow "github.com/reugn/go-streams/flow"
	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func numbers(batches, per int) [][]flow.Record {
	var out [][]flow.Record
	for b := 0; b < batches; b++ {
		v := make([]string, per)
		for i := range v {
			v[i] = strconv.Itoa(b*per + i)
		}
		out = append(out, stagetest.Records(b*per, v...))
	}
	return out
}

func num(r flow.Record) int { n, _ := strconv.Atoi(string(r.Value)); return n }

func double(r flow.Record) (flow.Record, error) {
	r.Value = []byte(strconv.Itoa(2 * num(r)))
	return r, nil
}

func TestStageMapFilterAcks(t *testing.T) {
	st := NewStage(func() streams.Flow {
		m := Map(double, 1)
		return chain(m, m.Via(Filter(func(r flow.Record) (bool, error) { return num(r)%4 == 0, nil }, 1)))
	})
	p := stagetest.New(stagetest.NewSource(numbers(20, 10)...), st)
	p.Run(t)
	p.Source.CheckAcks(t)
	got := p.Sink.Values()
	if len(got) != 100 {
		t.Fatalf("%d records, want 100", len(got))
	}
	for i, v := range got {
		if v != strconv.Itoa(4*i) {
			t.Fatalf("record %d = %s (order lost?)", i, v)
		}
	}
}

// chain is a two-operator flow: in at first, out at last.
func chain(first, last streams.Flow) streams.Flow { return &chained{first, last} }

type chained struct{ first, last streams.Flow }

func (c *chained) In() chan<- any                  { return c.first.In() }
func (c *chained) Out() <-chan any                 { return c.last.Out() }
func (c *chained) Via(f streams.Flow) streams.Flow { return c.last.Via(f) }
func (c *chained) To(s streams.Sink)               { c.last.To(s) }

// A panicking user function fails its record, not the process.
func TestStagePanicBecomesRecordError(t *testing.T) {
	st := NewStage(func() streams.Flow {
		return Map(func(r flow.Record) (flow.Record, error) {
			switch num(r) % 10 {
			case 3:
				panic("boom")
			case 7:
				return r, errors.New("seven")
			}
			return r, nil
		}, 2)
	})
	p := stagetest.New(stagetest.NewSource(numbers(5, 10)...), st, flow.OnError(flow.ErrorPolicy{Action: flow.ActionSkip}))
	p.Run(t)
	p.Source.CheckAcks(t)
	if n := p.Sink.Len(); n != 40 {
		t.Fatalf("sink got %d, want 40", n)
	}
	// Under the fail policy the run fails naming the record.
	p = stagetest.New(stagetest.NewSource(numbers(1, 10)...), NewStage(func() streams.Flow {
		return Map(func(r flow.Record) (flow.Record, error) {
			if num(r) == 3 {
				panic("boom")
			}
			return r, nil
		}, 1)
	}))
	err := p.P.Run(context.Background())
	var rf *flow.RecordFailure
	if !errors.As(err, &rf) || rf.Origin.Offset != 3 || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want a RecordFailure at offset 3 mentioning the panic", err)
	}
}

// FlatMap outputs hold their input's ack until all were emitted and
// written; an empty result acks at once.
func TestStageFlatMapAcks(t *testing.T) {
	st := NewStage(func() streams.Flow {
		return FlatMap(func(r flow.Record) ([]flow.Record, error) {
			out := make([]flow.Record, num(r)%3)
			for i := range out {
				out[i] = r
			}
			return out, nil
		}, 1)
	}, BatchSize(4))
	var tr stagetest.Tracker
	var em stagetest.Emitter
	var in []*flow.Batch
	for _, recs := range numbers(6, 5) {
		in = append(in, tr.Batch(recs...))
	}
	if err := stagetest.Feed(st, &em, in...); err != nil {
		t.Fatal(err)
	}
	if n := len(em.Records()); n != 30 { // 0+1+2 per three numbers
		t.Fatalf("%d records, want 30", n)
	}
	if tr.Fired() != 0 {
		t.Fatal("acks fired before the outputs were written")
	}
	em.Settle()
	tr.Check(t)
}

// go-streams' own windows work on envelopes; Merge turns each window into
// one record holding the acks of all its inputs.
func TestStageWindowMerge(t *testing.T) {
	st := NewStage(func() streams.Flow {
		b := gsflow.NewBatch[*Envelope](5, time.Hour)
		return chain(b, b.Via(Merge(func(rs []flow.Record) (flow.Record, error) {
			sum := 0
			for _, r := range rs {
				sum += num(r)
			}
			return flow.Record{Value: []byte(strconv.Itoa(sum))}, nil
		})))
	})
	var tr stagetest.Tracker
	var em stagetest.Emitter
	var in []*flow.Batch
	for _, recs := range numbers(4, 3) {
		in = append(in, tr.Batch(recs...))
	}
	if err := stagetest.Feed(st, &em, in...); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(em.Values()); got != "[10 35 21]" {
		t.Fatalf("sums %s, want [10 35 21]", got)
	}
	em.Settle()
	tr.Check(t)
}

// Envelopes dropped by a plain go-streams operator keep their acks until
// the drain, which counts them as filtered.
func TestStageForeignFilterReleasedAtDrain(t *testing.T) {
	st := NewStage(func() streams.Flow {
		return gsflow.NewFilter(func(e *Envelope) bool { return num(e.Record)%2 == 0 }, 1)
	})
	p := stagetest.New(stagetest.NewSource(numbers(3, 4)...), st)
	p.Run(t)
	p.Source.CheckAcks(t)
	if n := p.Sink.Len(); n != 6 {
		t.Fatalf("sink got %d, want 6", n)
	}
}

func TestStageRejectsForeignElements(t *testing.T) {
	st := NewStage(func() streams.Flow {
		return gsflow.NewMap(func(e *Envelope) string { return "x" }, 1)
	})
	p := stagetest.New(stagetest.NewSource(numbers(1, 3)...), st)
	err := p.P.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "emitted a string") {
		t.Fatalf("err = %v, want one naming the element type", err)
	}
	if p.Source.Fired() != 1 {
		t.Fatal("the input's ack never fired")
	}
}

func TestStageParallelRuns(t *testing.T) {
	st := NewStage(func() streams.Flow { return Map(double, 1) })
	p := stagetest.New(stagetest.NewSource(numbers(10, 10)...), st, flow.Parallelism(3, flow.OrderNone))
	p.Run(t)
	p.Source.CheckAcks(t)
	if n := p.Sink.Len(); n != 100 {
		t.Fatalf("sink got %d", n)
	}
}

// Cancelling the context mid-run fails what is inside and leaks nothing.
func TestStageCancel(t *testing.T) {
	release := make(chan struct{})
	st := NewStage(func() streams.Flow {
		return Map(func(r flow.Record) (flow.Record, error) {
			<-release
			return r, nil
		}, 1)
	})
	var tr stagetest.Tracker
	var em stagetest.Emitter
	ctx, cancel := context.WithCancel(context.Background())
	in, wait := stagetest.Start(ctx, st, &em)
	in <- tr.Batch(numbers(1, 3)[0]...)
	cancel()
	close(release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	em.Settle()
	if tr.Fired() != 1 {
		t.Fatalf("ack fired %d times", tr.Fired())
	}
}

// The bridge: a flow.Source through go-streams into a flow.Sink, acks
// firing once written.
func TestSourceToSink(t *testing.T) {
	src := stagetest.NewSource(numbers(10, 7)...)
	sink := &stagetest.Sink{}
	ctx := context.Background()
	s := FromSource(ctx, src)
	out := ToSink(ctx, sink, BatchSize(8))
	s.Via(Map(double, 1)).Via(Filter(func(r flow.Record) (bool, error) { return num(r)%3 != 0, nil }, 1)).To(out)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if err := out.Err(); err != nil {
		t.Fatal(err)
	}
	src.CheckAcks(t)
	if n := sink.Len(); n != 46 { // 70 minus the multiples of 3 in 0..69
		t.Fatalf("sink got %d, want 46", n)
	}
}

func TestFromChan(t *testing.T) {
	ch := make(chan flow.Record)
	sink := &stagetest.Sink{}
	s := FromChan(context.Background(), ch)
	out := ToSink(context.Background(), sink)
	go func() {
		for _, r := range stagetest.Records(0, "a", "b", "c") {
			ch <- r
		}
		close(ch)
	}()
	s.Via(gsflow.NewPassThrough()).To(out)
	if got := fmt.Sprint(sink.Values()); got != "[a b c]" {
		t.Fatalf("got %s", got)
	}
}

// A failing write fails the acks of what it held.
func TestSinkWriteErrorFailsAcks(t *testing.T) {
	src := stagetest.NewSource(numbers(2, 3)...)
	s := FromSource(context.Background(), src)
	out := ToSink(context.Background(), failing{}, BatchSize(100), Linger(time.Millisecond))
	s.Via(gsflow.NewPassThrough()).To(out)
	if out.Err() == nil {
		t.Fatal("want the write error")
	}
	if src.Fired() != 2 || src.Failed() != 2 {
		t.Fatalf("%d acks fired, %d failed; want both failed", src.Fired(), src.Failed())
	}
}

type failing struct{}

func (failing) Write(context.Context, []flow.Record) error { return errors.New("disk full") }
