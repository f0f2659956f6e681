package kafka

import (
	"context"
	"sync"
)

// offsetTracker turns out-of-order acknowledgements of one partition into
// a safe commit position.
//
// The fetch loop records each emitted batch as a span [from, end) of
// offsets; spans tile the partition with no holes (a span's from is the
// previous span's end, so offsets skipped by compaction or transaction
// markers belong to some span). Acks arrive in any order from sink
// goroutines. The commit position is the end of the longest prefix of
// acknowledged spans: Kafka's "next offset to read". A failed span stops
// that prefix for good, so nothing at or after a failed record is ever
// committed by this assignment.
type offsetTracker struct {
	mu      sync.Mutex
	started bool
	pos     int64  // commit position: every offset below was acknowledged
	end     int64  // end of the newest span, where the next one starts
	spans   []span // unsettled prefix, oldest first; spans[0] is seq base
	base    uint64 // seq of spans[0]
	next    uint64 // seq of the next span
	failed  bool   // the head span failed: pos never moves again
	failAt  int64  // from of the failed span
	open    int    // spans neither acked nor failed
	idle    chan struct{}
}

type span struct {
	end     int64
	settled bool
	err     error
}

func newOffsetTracker() *offsetTracker { return &offsetTracker{} }

// start sets the first offset of the assignment. It is called once, before
// any span is added, when the fetch loop has resolved where to read from.
func (t *offsetTracker) start(offset int64) {
	t.mu.Lock()
	t.started, t.pos, t.end = true, offset, offset
	t.mu.Unlock()
}

// add records a new span ending (exclusively) at end and returns its
// sequence number for done.
func (t *offsetTracker) add(end int64) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.next
	t.next++
	t.spans = append(t.spans, span{end: end})
	t.end = end
	if t.open == 0 {
		t.idle = make(chan struct{})
	}
	t.open++
	return seq
}

// skip advances over offsets that produced no records (all compacted away
// or control records): an already-acknowledged span.
func (t *offsetTracker) skip(end int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if end <= t.end {
		return
	}
	t.end = end
	if len(t.spans) == 0 && !t.failed {
		t.pos = end
		return
	}
	t.next++
	t.spans = append(t.spans, span{end: end, settled: true})
}

// done settles span seq. A nil err acknowledges it; any other error marks
// it failed. Safe from any goroutine; each span is settled once.
func (t *offsetTracker) done(seq uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := seq - t.base
	if seq < t.base || i >= uint64(len(t.spans)) || t.spans[i].settled {
		return
	}
	t.spans[i].settled, t.spans[i].err = true, err
	t.open--
	if t.open == 0 {
		close(t.idle)
	}
	if t.failed {
		return
	}
	n := 0
	for n < len(t.spans) && t.spans[n].settled {
		if t.spans[n].err != nil {
			t.failed, t.failAt = true, t.pos
			break
		}
		// max: a reset to an earlier offset (log truncated) must never
		// move the commit position back.
		t.pos = max(t.pos, t.spans[n].end)
		n++
	}
	if n > 0 {
		// Drop the settled prefix; clear it so records' memory is not kept.
		clear(t.spans[:n])
		t.spans = t.spans[n:]
		t.base += uint64(n)
	}
}

// position returns the commit position and whether the tracker started.
func (t *offsetTracker) position() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos, t.started
}

// blocked reports whether a failed span pins the position, and where.
func (t *offsetTracker) blocked() (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failAt, t.failed
}

// inFlight is the number of spans not yet settled.
func (t *offsetTracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open
}

// waitIdle blocks until every added span is settled or ctx ends.
func (t *offsetTracker) waitIdle(ctx context.Context) error {
	t.mu.Lock()
	if t.open == 0 {
		t.mu.Unlock()
		return nil
	}
	ch := t.idle
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
