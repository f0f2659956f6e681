package stages

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
)

func vals(from, n int) []flow.Record {
	v := make([]string, n)
	for i := range v {
		v[i] = strconv.Itoa(from + i)
	}
	return stagetest.Records(from, v...)
}

func sizes(bs [][]flow.Record) []int {
	out := make([]int, len(bs))
	for i, b := range bs {
		out[i] = len(b)
	}
	return out
}

func TestBatchBySizeHoldsAcksUntilEmitted(t *testing.T) {
	var tr stagetest.Tracker
	var em stagetest.Emitter
	var in []*flow.Batch
	for b := 0; b < 10; b++ {
		in = append(in, tr.Batch(vals(b*7, 7)...))
	}
	if err := stagetest.Feed(NewBatcher(10, 0, time.Hour), &em, in...); err != nil {
		t.Fatal(err)
	}
	if got := sizes(em.Batches()); !equalInts(got, []int{10, 10, 10, 10, 10, 10, 10}) {
		t.Fatalf("batch sizes %v", got)
	}
	for i, v := range em.Values() {
		if v != strconv.Itoa(i) {
			t.Fatalf("record %d = %s", i, v)
		}
	}
	if n := tr.Fired(); n != 0 {
		t.Fatalf("%d input acks fired before the outputs were written", n)
	}
	em.Settle()
	tr.Check(t)
}

// The drain flushes a partial batch; acks wait for it to be written.
func TestBatchDrainFlushesPartial(t *testing.T) {
	var tr stagetest.Tracker
	var em stagetest.Emitter
	if err := stagetest.Feed(NewBatcher(100, 0, 0), &em, tr.Batch(vals(0, 3)...), tr.Batch(vals(3, 4)...)); err != nil {
		t.Fatal(err)
	}
	if got := sizes(em.Batches()); !equalInts(got, []int{7}) {
		t.Fatalf("batch sizes %v, want [7]", got)
	}
	if tr.Fired() != 0 {
		t.Fatal("acks fired before the flushed batch was written")
	}
	em.Settle()
	tr.Check(t)
}

func TestBatchByBytes(t *testing.T) {
	var tr stagetest.Tracker
	var em stagetest.Emitter
	recs := stagetest.Records(0, "aaaa", "bbbb", "cccc", strings.Repeat("x", 50), "dd", "ee")
	if err := stagetest.Feed(NewBatcher(100, 10, 0), &em, tr.Batch(recs...)); err != nil {
		t.Fatal(err)
	}
	// 4+4 fit in 10, 4 starts the next; the 50-byte record goes alone.
	if got := sizes(em.Batches()); !equalInts(got, []int{2, 1, 1, 2}) {
		t.Fatalf("batch sizes %v, want [2 1 1 2]", got)
	}
	em.Settle()
	tr.Check(t)
}

func TestBatchLinger(t *testing.T) {
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), NewBatcher(100, 0, 20*time.Millisecond), &em)
	in <- tr.Batch(vals(0, 3)...)
	stagetest.Eventually(t, "the lingering batch", func() bool { return em.Len() == 1 })
	in <- tr.Batch(vals(3, 2)...)
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := sizes(em.Batches()); !equalInts(got, []int{3, 2}) {
		t.Fatalf("batch sizes %v, want [3 2]", got)
	}
	em.Settle()
	tr.Check(t)
}

// An input split across two outputs is acked only when both are written.
func TestBatchSplitInputNeedsBothOutputs(t *testing.T) {
	var tr stagetest.Tracker
	var em stagetest.Emitter
	if err := stagetest.Feed(NewBatcher(4, 0, 0), &em, tr.Batch(vals(0, 6)...)); err != nil {
		t.Fatal(err)
	}
	bs := em.Batches()
	if len(bs) != 2 {
		t.Fatalf("%d batches, want 2", len(bs))
	}
	em.SettleBatch(0)
	if tr.Fired() != 0 {
		t.Fatal("ack fired with half of its records unwritten")
	}
	em.Settle()
	tr.Check(t)
}

func TestBatchInPipeline(t *testing.T) {
	var in [][]flow.Record
	for b := 0; b < 30; b++ {
		in = append(in, vals(b*11, 11))
	}
	p := stagetest.New(stagetest.NewSource(in...), NewBatcher(64, 0, 5*time.Millisecond))
	p.Run(t)
	p.Source.CheckAcks(t)
	if p.Sink.Len() != 330 {
		t.Fatalf("sink got %d, want 330", p.Sink.Len())
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
