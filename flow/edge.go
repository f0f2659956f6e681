package flow

import (
	"context"
	"sync"
	"sync/atomic"
)

// edge is the bounded input of one stage or sink. Its capacity is counted
// in records, not batches, so memory is bounded by configuration whatever
// the batch sizes are. Several upstream nodes may write to it (fan-in); it
// closes when the last of them is done.
type edge struct {
	to       string
	ch       chan *Batch
	capacity int64
	used     atomic.Int64
	freed    chan struct{} // wakes one blocked sender after a receive

	mu      sync.Mutex
	writers int
}

func newEdge(to string, capacity int) *edge {
	if capacity < 1 {
		capacity = 1
	}
	return &edge{
		to:       to,
		ch:       make(chan *Batch, capacity), // never fills: used <= capacity and every batch counts >= 1
		capacity: int64(capacity),
		freed:    make(chan struct{}, 1),
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
	e.ch <- b
	return nil
}

// received must be called for every batch taken from ch.
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
	e.mu.Unlock()
	if last {
		close(e.ch)
	}
}

// fill is the share of capacity in use, 0..1, for metrics and progress.
func (e *edge) fill() float64 {
	return float64(e.used.Load()) / float64(e.capacity)
}
