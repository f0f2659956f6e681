package flow

import (
	"context"
	"sync"
	"sync/atomic"
)

// edge is the bounded input of one stage or sink. Its capacity is counted
// in records, not batches, so memory is bounded by configuration whatever
// the batch sizes are. Several upstream nodes may write to it (fan-in); it
// closes when the last of them is done. One consumer (the node's
// dispatcher, or the writer of a sink of one worker) takes batches off it.
//
// The queue takes memory as batches arrive, not the capacity up front: an
// edge of capacity a million holding ten batches holds a few slots, and a
// queue grown by a burst is given back once it empties.
type edge struct {
	to       string
	capacity int64
	used     atomic.Int64
	freed    chan struct{} // wakes one blocked sender after a receive

	mu      sync.Mutex
	q       queue
	closed  bool // the last writer is done: nothing more is sent
	writers int
	// ready wakes the consumer when a batch was queued or the edge
	// closed. It holds at most one wake-up; the consumer re-checks the
	// queue after each, so one is never lost and a spare is harmless.
	ready chan struct{}
}

func newEdge(to string, capacity int) *edge {
	if capacity < 1 {
		capacity = 1
	}
	return &edge{
		to:       to,
		capacity: int64(capacity),
		freed:    make(chan struct{}, 1),
		ready:    make(chan struct{}, 1),
	}
}

func weight(b *Batch) int64 { return max(int64(len(b.Records)), 1) }

// send blocks until the edge has room for b. A batch larger than the whole
// capacity is let through when the edge is empty, so it cannot deadlock.
func (e *edge) send(ctx context.Context, b *Batch) error {
	n := weight(b)
	for {
		u := e.used.Load()
		if u == 0 || u+n <= e.capacity {
			if e.used.CompareAndSwap(u, u+n) {
				break
			}
			continue
		}
		select {
		case <-e.freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	e.q.push(b)
	e.mu.Unlock()
	e.wake()
	return nil
}

func (e *edge) wake() {
	select {
	case e.ready <- struct{}{}:
	default:
	}
}

// tryRecv takes the oldest queued batch without waiting. With none queued
// it returns nil, and done once the edge is closed: then nothing more
// will come. received must be called for every batch it returns.
func (e *edge) tryRecv() (b *Batch, done bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b = e.q.pop(); b != nil {
		return b, false
	}
	return nil, e.closed
}

// recv waits for the next batch; ok is false once the edge is closed and
// drained, or when ctx ends first.
func (e *edge) recv(ctx context.Context) (b *Batch, ok bool) {
	for {
		b, done := e.tryRecv()
		switch {
		case b != nil:
			return b, true
		case done:
			return nil, false
		}
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, false
		}
	}
}

// received must be called for every batch taken off the edge.
func (e *edge) received(b *Batch) { e.release(weight(b)) }

// release frees n records of capacity.
func (e *edge) release(n int64) {
	e.used.Add(-n)
	select {
	case e.freed <- struct{}{}:
	default:
	}
}

func (e *edge) addWriter() {
	e.mu.Lock()
	e.writers++
	e.mu.Unlock()
}

func (e *edge) writerDone() {
	e.mu.Lock()
	e.writers--
	last := e.writers == 0
	if last {
		e.closed = true
	}
	e.mu.Unlock()
	if last {
		e.wake()
	}
}

// fill is the share of capacity in use, 0..1, for metrics and progress.
func (e *edge) fill() float64 {
	return float64(e.used.Load()) / float64(e.capacity)
}

// queue is a FIFO of batches in a ring that doubles when full and is
// dropped when it empties after growing past keepSlots, so its memory
// follows what is queued rather than what could be.
type queue struct {
	ring       []*Batch
	head, size int
}

// keepSlots is the ring an idle queue keeps (a few KiB), so steady traffic
// does not reallocate it.
const keepSlots = 256

func (q *queue) push(b *Batch) {
	if q.size == len(q.ring) {
		grown := make([]*Batch, max(16, 2*len(q.ring)))
		n := copy(grown, q.ring[q.head:])
		copy(grown[n:], q.ring[:q.head])
		q.ring, q.head = grown, 0
	}
	q.ring[(q.head+q.size)%len(q.ring)] = b
	q.size++
}

func (q *queue) pop() *Batch {
	if q.size == 0 {
		return nil
	}
	b := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.size--
	if q.size == 0 {
		q.head = 0
		if len(q.ring) > keepSlots {
			q.ring = nil
		}
	}
	return b
}
