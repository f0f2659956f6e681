package flow

import (
	"context"
	"sync"
)

// Lease is a source's hold on one of its input partitions for one
// assignment: a Kafka source makes one per partition each time the group
// hands it the partition, and puts it on every record it reads from it
// (Origin.Lease). When the partition is taken away the source Ends the
// lease and Waits, before giving the partition up, until every stage that
// Held it has Released it: a stage keeping state per partition flushes and
// drops that state then, so the next owner starts from what was flushed.
//
// A stage that keeps no state per partition ignores leases.
type Lease struct {
	// Owner is the source that made the lease; stages look on it for
	// optional capabilities (package state's Provider).
	Owner any

	mu      sync.Mutex
	ended   bool
	holders int
	done    chan struct{} // closed by End
	free    chan struct{} // closed once ended with no holder left
}

// NewLease returns a live lease made by owner.
func NewLease(owner any) *Lease {
	return &Lease{Owner: owner, done: make(chan struct{}), free: make(chan struct{})}
}

// Hold registers a holder; it returns false if the lease already ended
// (the partition is no longer this source's: drop the record's effects).
func (l *Lease) Hold() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return false
	}
	l.holders++
	return true
}

// Release ends one Hold.
func (l *Lease) Release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holders--
	if l.ended && l.holders == 0 {
		close(l.free)
	}
}

// End marks the partition as taken away. Holders see Done closed.
func (l *Lease) End() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.ended = true
	close(l.done)
	if l.holders == 0 {
		close(l.free)
	}
}

// Done is closed once the lease ended.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Ended reports whether End was called.
func (l *Lease) Ended() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// Wait returns once the lease ended and every holder released it, or with
// ctx's error.
func (l *Lease) Wait(ctx context.Context) error {
	select {
	case <-l.free: // first: a released lease is never reported held
		return nil
	default:
	}
	select {
	case <-l.free:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
