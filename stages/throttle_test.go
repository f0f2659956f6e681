package stages

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
)

// fakeClock is a clock whose sleeps advance it instantly.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	slept time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	c.slept += d
	return nil
}

func TestThrottleHoldsRateAndSplits(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	th := NewThrottle(100, 10) // 100 rec/s, bursts of 10
	th.now, th.sleep = clock.now, clock.sleep
	var tr stagetest.Tracker
	var em stagetest.Emitter
	if err := stagetest.Feed(th, &em, tr.Batch(vals(0, 35)...), tr.Batch(vals(35, 5)...)); err != nil {
		t.Fatal(err)
	}
	if got := sizes(em.Batches()); !equalInts(got, []int{10, 10, 10, 5, 5}) {
		t.Fatalf("batch sizes %v", got)
	}
	// 40 records, 10 free: 30 more need 0.3 s at 100/s.
	if d := clock.slept; d < 299*time.Millisecond || d > 301*time.Millisecond {
		t.Errorf("waited %v, want 300ms", d)
	}
	if tr.Fired() != 0 {
		t.Fatal("split input acked before its parts were written")
	}
	em.Settle()
	tr.Check(t)
}

func TestThrottleHonoursContext(t *testing.T) {
	th := NewThrottle(0.001, 1) // one record per 1000 s
	var tr stagetest.Tracker
	var em stagetest.Emitter
	ctx, cancel := context.WithCancel(context.Background())
	in, wait := stagetest.Start(ctx, th, &em)
	in <- tr.Batch(vals(0, 1)...)
	in <- tr.Batch(vals(1, 1)...) // must wait ~1000 s
	stagetest.Eventually(t, "first record through", func() bool { return em.Len() == 1 })
	cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	em.Settle()
	if tr.Fired() != 2 || tr.Failed() != 1 {
		t.Fatalf("fired %d failed %d: the waiting batch must fail when the context ends", tr.Fired(), tr.Failed())
	}
}

func TestThrottleInPipeline(t *testing.T) {
	var in [][]flow.Record
	for b := 0; b < 10; b++ {
		in = append(in, vals(b*20, 20))
	}
	p := stagetest.New(stagetest.NewSource(in...), NewThrottle(1e6, 0))
	p.Run(t)
	p.Source.CheckAcks(t)
	if p.Sink.Len() != 200 {
		t.Fatalf("sink got %d", p.Sink.Len())
	}
}

// Parallel workers run the one Throttle: they share its bucket, so the
// node keeps its rate whatever its parallelism.
func TestThrottleWorkersShareTheRate(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	th := NewThrottle(100, 10)
	th.now, th.sleep = clock.now, clock.sleep
	var tr stagetest.Tracker
	var em stagetest.Emitter
	// Two workers, one after the other at the same instant: the second
	// finds the bucket the first emptied.
	for range 2 {
		if err := stagetest.Feed(th, &em, tr.Batch(vals(0, 10)...)); err != nil {
			t.Fatal(err)
		}
	}
	if d := clock.slept; d < 99*time.Millisecond || d > 101*time.Millisecond {
		t.Errorf("waited %v, want 100ms: 20 records at 100/s with bursts of 10", d)
	}
	em.Settle()
	tr.Check(t)
}
