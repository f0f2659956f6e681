package kafka

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func pos(t *testing.T, tr *offsetTracker) int64 {
	t.Helper()
	p, ok := tr.position()
	if !ok {
		t.Fatal("tracker not started")
	}
	return p
}

func TestTrackerOutOfOrderAcks(t *testing.T) {
	tr := newOffsetTracker()
	if _, ok := tr.position(); ok {
		t.Fatal("position before start must not be committable")
	}
	tr.start(100)
	a := tr.add(110) // [100,110)
	b := tr.add(120) // [110,120)
	c := tr.add(135) // [120,135): offsets may have gaps inside
	if got := pos(t, tr); got != 100 {
		t.Fatalf("nothing acked: position %d, want 100", got)
	}
	tr.done(c, nil)
	tr.done(b, nil)
	if got := pos(t, tr); got != 100 {
		t.Fatalf("head not acked: position %d, want 100 (later acks must not commit past it)", got)
	}
	tr.done(a, nil)
	if got := pos(t, tr); got != 135 {
		t.Fatalf("all acked: position %d, want 135", got)
	}
	if n := tr.inFlight(); n != 0 {
		t.Fatalf("in flight %d, want 0", n)
	}
}

func TestTrackerFailedAckBlocksForGood(t *testing.T) {
	tr := newOffsetTracker()
	tr.start(0)
	a := tr.add(10)
	b := tr.add(20)
	c := tr.add(30)
	tr.done(a, nil)
	tr.done(b, errors.New("sink refused"))
	tr.done(c, nil)
	if got := pos(t, tr); got != 10 {
		t.Fatalf("position %d, want 10: never commit at or past a failed record", got)
	}
	if at, blocked := tr.blocked(); !blocked || at != 10 {
		t.Fatalf("blocked() = %d, %v; want 10, true", at, blocked)
	}
	d := tr.add(40)
	tr.done(d, nil)
	tr.skip(50)
	if got := pos(t, tr); got != 10 {
		t.Fatalf("after more acks: position %d, want still 10", got)
	}
}

func TestTrackerFailedHeadBlocksLaterAcks(t *testing.T) {
	tr := newOffsetTracker()
	tr.start(0)
	a := tr.add(10)
	b := tr.add(20)
	tr.done(b, nil)
	tr.done(a, context.Canceled) // e.g. Emit failed at drain
	if got := pos(t, tr); got != 0 {
		t.Fatalf("position %d, want 0", got)
	}
}

func TestTrackerSkipAdvancesOnlyWhenContiguous(t *testing.T) {
	tr := newOffsetTracker()
	tr.start(0)
	tr.skip(5) // fetch returned only compacted/control offsets
	if got := pos(t, tr); got != 5 {
		t.Fatalf("skip with nothing in flight: position %d, want 5", got)
	}
	a := tr.add(10)
	tr.skip(15)
	if got := pos(t, tr); got != 5 {
		t.Fatalf("skip behind an unacked span: position %d, want 5", got)
	}
	tr.done(a, nil)
	if got := pos(t, tr); got != 15 {
		t.Fatalf("after the span before the skip is acked: position %d, want 15", got)
	}
}

func TestTrackerNeverMovesBack(t *testing.T) {
	tr := newOffsetTracker()
	tr.start(50)
	a := tr.add(60)
	tr.done(a, nil)
	b := tr.add(55) // re-read after a reset to an earlier offset
	tr.done(b, nil)
	if got := pos(t, tr); got != 60 {
		t.Fatalf("position %d, want 60: it must never decrease", got)
	}
}

func TestTrackerDoubleAckIgnored(t *testing.T) {
	tr := newOffsetTracker()
	tr.start(0)
	a := tr.add(10)
	b := tr.add(20)
	tr.done(a, nil)
	tr.done(a, errors.New("late duplicate"))
	if _, blocked := tr.blocked(); blocked {
		t.Fatal("a second settle of a popped span must be ignored")
	}
	if n := tr.inFlight(); n != 1 {
		t.Fatalf("in flight %d, want 1", n)
	}
	tr.done(b, nil)
	if got := pos(t, tr); got != 20 {
		t.Fatalf("position %d, want 20", got)
	}
}

func TestTrackerWaitIdle(t *testing.T) {
	tr := newOffsetTracker()
	tr.start(0)
	if err := tr.waitIdle(context.Background()); err != nil {
		t.Fatalf("idle tracker: %v", err)
	}
	a := tr.add(10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := tr.waitIdle(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitIdle with a span in flight = %v, want deadline exceeded", err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.waitIdle(context.Background()) }()
	tr.done(a, nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waitIdle did not return after the last ack")
	}
}

// TestTrackerConcurrentShuffledAcks acks thousands of spans from several
// goroutines in random order while reading the position: it must only
// grow, never pass an unacked span, and end at the last span's end.
func TestTrackerConcurrentShuffledAcks(t *testing.T) {
	tr := newOffsetTracker()
	tr.start(0)
	const spans = 5000
	seqs := make([]uint64, spans)
	for i := range seqs {
		seqs[i] = tr.add(int64(i+1) * 10)
	}
	acked := make([]bool, spans)
	var mu sync.Mutex
	rand.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
	var wg sync.WaitGroup
	const workers = 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < spans; i += workers {
				s := seqs[i]
				mu.Lock()
				acked[s] = true
				mu.Unlock()
				tr.done(s, nil)
			}
		})
	}
	stop := make(chan struct{})
	checked := make(chan error, 1)
	go func() {
		last := int64(0)
		for {
			p, _ := tr.position()
			mu.Lock()
			for k := last / 10; k < p/10; k++ {
				if !acked[k] {
					mu.Unlock()
					checked <- errors.New("position passed an unacked span")
					return
				}
			}
			mu.Unlock()
			if p < last {
				checked <- errors.New("position moved back")
				return
			}
			last = p
			select {
			case <-stop:
				checked <- nil
				return
			default:
			}
		}
	}()
	wg.Wait()
	close(stop)
	if err := <-checked; err != nil {
		t.Fatal(err)
	}
	if got := pos(t, tr); got != spans*10 {
		t.Fatalf("final position %d, want %d", got, spans*10)
	}
}
