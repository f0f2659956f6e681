package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/sluicedev/sluice/flow"
)

// Writer writes the state changes of one stage's partitions to their
// changelogs, one write in flight at a time: while it is, changes queue
// and coalesce (a key changed by ten batches is written once, at the
// place of its last change), and the next write takes them all. An idle
// stage's change is written at once; a busy one's in growing batches.
//
// Order is what makes a restore exact: within a partition, an entry is
// written after every entry queued before it, and a write that dies
// half-way keeps a prefix of that order. Coalescing only moves an entry
// later, which keeps the property.
type Writer struct {
	ctx     context.Context // ends when Close gives up: writes in flight stop
	cancel  context.CancelFunc
	maxHeld int

	mu      sync.Mutex
	todo    map[*Part]*changes
	held    int     // records of batches waiting in todo or in the write in flight
	release []*Part // retired: released once what was queued before is written
	err     error   // the first failed write: the stage stops
	closed  bool
	wake    chan struct{}
	written chan struct{} // closed and replaced after every write
	done    chan struct{}
	pending atomic.Int64 // entries not yet acknowledged
}

// Part is one source partition's state on this member: the changelog
// partition its changes go to and the lease the stage holds on it.
type Part struct {
	Log       Changelog
	Partition int32
	Lease     *flow.Lease // released once the part is retired and written
	dead      bool        // retired: no more changes are queued (Writer.mu)
}

// changes are one partition's entries waiting to be written, in order,
// coalesced by key: a key changed again moves to the end.
type changes struct {
	entries []Entry
	at      map[string]int
	batches []*flow.Batch
	records int
	later   [][]byte // keys to delete in the write after the next one
}

func (c *changes) put(p int32, k, v []byte) {
	if i, ok := c.at[string(k)]; ok {
		c.entries[i].Key = nil // superseded
	}
	c.at[string(k)] = len(c.entries)
	c.entries = append(c.entries, Entry{Partition: p, Key: k, Value: v})
}

// NewWriter starts a writer; Close stops it. maxHeld bounds the records
// whose changes wait to be written: a slow changelog slows the stage
// instead of filling memory.
func NewWriter(maxHeld int) *Writer {
	w := &Writer{maxHeld: max(maxHeld, 1), todo: map[*Part]*changes{}, wake: make(chan struct{}, 1),
		written: make(chan struct{}), done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.run()
	return w
}

// Put is how a stage hands its changes over: put(key, value) queues one,
// value nil deleting key.
type Put func(key, value []byte)

func (w *Writer) kick() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *Writer) changesOf(p *Part) *changes {
	c := w.todo[p]
	if c == nil {
		c = &changes{at: map[string]int{}}
		w.todo[p] = c
	}
	return c
}

// Batch queues the changes fill puts for p and settles b once they are
// written, with the write's error. It waits while too many records wait
// for writes. It fails (settling b) once a write failed, after Close, or
// when ctx ends.
func (w *Writer) Batch(ctx context.Context, p *Part, b *flow.Batch, fill func(Put)) error {
	w.mu.Lock()
	for w.held >= w.maxHeld && w.err == nil {
		ch := w.written
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			b.Settle(ctx.Err())
			return ctx.Err()
		}
		w.mu.Lock()
	}
	if w.err != nil || w.closed {
		err := w.err
		w.mu.Unlock()
		if err == nil {
			err = errors.New("state writer closed")
		}
		b.Settle(err)
		return err
	}
	c := w.changesOf(p)
	n := len(c.entries)
	fill(func(k, v []byte) { c.put(p.Partition, k, v) })
	c.batches = append(c.batches, b)
	c.records += b.Len()
	w.held += b.Len()
	w.pending.Add(int64(len(c.entries) - n))
	w.mu.Unlock()
	w.kick()
	return nil
}

// Put queues changes of p that no input record waits for (a window marked
// closed), and the deletion of later keys in the write after the one
// carrying them: a restore never sees those keys gone without what
// fill put. It does nothing once p was retired (the next owner works from
// what was written) and reports whether it queued.
func (w *Writer) Put(p *Part, fill func(Put), later [][]byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p.dead || w.closed {
		return false
	}
	c := w.changesOf(p)
	n := len(c.entries)
	fill(func(k, v []byte) { c.put(p.Partition, k, v) })
	c.later = append(c.later, later...)
	w.pending.Add(int64(len(c.entries) - n))
	w.kick()
	return true
}

// Retire stops queuing p's changes; once what was queued is written its
// lease is released, so the partition's next owner restores all of it.
func (w *Writer) Retire(p *Part) {
	w.mu.Lock()
	p.dead = true
	w.release = append(w.release, p)
	w.mu.Unlock()
	w.kick()
}

// Err is the error of the first failed write, if one failed: the stage
// must stop, its memory holds changes the changelog does not.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Pending is the number of entries queued or in flight (changelog lag).
func (w *Writer) Pending() int64 { return w.pending.Load() }

func (w *Writer) run() {
	defer close(w.done)
	for {
		<-w.wake
		w.mu.Lock()
		todo, release, closing := w.todo, w.release, w.closed
		w.todo, w.release = map[*Part]*changes{}, nil
		w.mu.Unlock()
		err := w.write(todo)
		w.mu.Lock()
		for p, c := range todo {
			w.held -= c.records
			if len(c.later) > 0 && err == nil && !p.dead {
				next := w.changesOf(p)
				for _, k := range c.later {
					next.put(p.Partition, k, nil)
				}
				w.pending.Add(int64(len(c.later)))
				w.kick()
			}
		}
		if err != nil && w.err == nil {
			w.err = err
		}
		close(w.written)
		w.written = make(chan struct{})
		w.mu.Unlock()
		for _, c := range todo {
			for _, b := range c.batches {
				b.Settle(err)
			}
		}
		for _, p := range release {
			if p.Lease != nil {
				p.Lease.Release()
			}
		}
		if closing {
			w.mu.Lock()
			empty := len(w.todo) == 0 && len(w.release) == 0
			w.mu.Unlock()
			if empty {
				return
			}
			w.kick()
		}
	}
}

// write writes todo, one Write per changelog, all in flight together.
func (w *Writer) write(todo map[*Part]*changes) error {
	byLog := map[Changelog][]Entry{}
	n := 0
	for p, c := range todo {
		for _, e := range c.entries {
			if e.Key != nil {
				byLog[p.Log] = append(byLog[p.Log], e)
				n++
			}
		}
	}
	// Superseded entries were counted when queued.
	defer w.pending.Add(-w.queued(todo))
	if n == 0 {
		return nil
	}
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for cl, entries := range byLog {
		wg.Go(func() {
			if err := cl.Write(w.ctx, entries); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("write state to changelog %s: %w", cl.Name(), err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

func (w *Writer) queued(todo map[*Part]*changes) int64 {
	var n int64
	for _, c := range todo {
		n += int64(len(c.entries))
	}
	return n
}

// Close writes what is queued and stops, within ctx; past it, the write
// in flight is abandoned.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.kick()
	defer w.cancel()
	select {
	case <-w.done:
		return w.Err()
	case <-ctx.Done():
		w.cancel()
		<-w.done
		return fmt.Errorf("state not written before the drain deadline: %w", ctx.Err())
	}
}

// SplitByPartition returns b, or when its records come from several
// partitions or assignments (a stage upstream merged batches) one batch
// per partition, derived from b (which is settled).
func SplitByPartition(b *flow.Batch) []*flow.Batch {
	if b.Len() == 0 {
		return []*flow.Batch{b}
	}
	first := b.Records[0].Origin
	mixed := false
	for i := range b.Records {
		o := &b.Records[i].Origin
		if o.Topic != first.Topic || o.Partition != first.Partition || o.Lease != first.Lease {
			mixed = true
			break
		}
	}
	if !mixed {
		return []*flow.Batch{b}
	}
	type k struct {
		topic string
		part  int32
		lease *flow.Lease
	}
	var order []k
	groups := map[k][]flow.Record{}
	for _, r := range b.Records {
		key := k{r.Origin.Topic, r.Origin.Partition, r.Origin.Lease}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], r)
	}
	out := make([]*flow.Batch, len(order))
	for i, key := range order {
		out[i] = b.Derive(groups[key])
	}
	b.Settle(nil)
	return out
}
