package flow

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// A stage or sink runs as workers: parallelism of them, fed by a
// dispatcher that takes batches off the node's input edge (freeing
// capacity) and shards them so the node's ordering holds. A sink or a
// processor stage of one worker has no dispatcher: its one goroutine takes
// batches off the edge itself (startWriter, startProcessor), which saves a
// goroutine handoff per batch. Processor stages and sinks are run here,
// through the node's middleware (chain); a Stage of its own gets the input
// and the Emitter and runs as it likes.

// startWorkers runs a stage, or a sink of several workers. Worker 0 starts
// at once; the others with the first batch given to them, so parallelism
// is a bound on goroutines and not a number started whatever the traffic.
func (x *execution) startWorkers(r *nodeRun) {
	// Only the dispatcher goroutine starts workers, and it waits for them
	// (live.Wait) after its last start.
	var live sync.WaitGroup
	workers := make([]chan *Batch, r.parallelism)
	start := func(i int) chan *Batch {
		if workers[i] != nil {
			return workers[i]
		}
		w := make(chan *Batch)
		workers[i] = w
		live.Add(1)
		x.goNode(r.node, func() {
			defer live.Done()
			err := protect(func() error { return r.work(x.hardCtx, w) })
			if err != nil && x.hardCtx.Err() == nil {
				x.fail(fmt.Errorf("%s %s: %w", r.kind, r.id, err))
			}
			// A worker that quit early must still take its input, or
			// upstream blocks forever; the batches fail.
			for b := range w {
				b.Settle(r.stopped())
			}
		})
		return w
	}
	start(0)
	x.goNode(r.node, func() {
		defer func() {
			for _, w := range workers {
				if w != nil {
					close(w)
				}
			}
			live.Wait()
			r.out.closeOutputs()
		}()
		d := dispatcher{n: r.node, workers: workers, start: start, started: 1, seed: maphash.MakeSeed()}
		for {
			b, ok := r.in.recv(x.hardCtx)
			if !ok {
				return
			}
			r.in.received(b)
			r.stats.In.Add(int64(len(b.Records)))
			r.stats.Batches.Add(1)
			if !d.dispatch(x.hardCtx, b) {
				return
			}
		}
	})
}

// work is one worker of a stage or sink, taking its batches from in.
func (r *nodeRun) work(ctx context.Context, in <-chan *Batch) error {
	switch {
	case r.kind == KindSink:
		return r.writeAll(ctx, chanFeed(in))
	case r.proc != nil:
		return process(ctx, in, r.out, r.chain(r.proc.Process))
	}
	return r.stage.Run(ctx, in, r.out)
}

// stopped is what fails the batches a worker that quit left behind.
func (r *nodeRun) stopped() error { return fmt.Errorf("%s %s stopped", r.kind, r.id) }

// startProcessor runs a processor stage of one worker, which takes its
// batches straight off its input edge.
func (x *execution) startProcessor(r *nodeRun) {
	x.goNode(r.node, func() {
		defer r.out.closeOutputs()
		in := edgeFeed{e: r.in, stats: r.stats}
		fn := r.chain(r.proc.Process)
		var res Output
		err := protect(func() error {
			for b := in.next(x.hardCtx); b != nil; b = in.next(x.hardCtx) {
				if !processBatch(x.hardCtx, b, r.out, fn, &res) {
					return nil
				}
			}
			return nil
		})
		if err != nil && x.hardCtx.Err() == nil {
			x.fail(fmt.Errorf("%s %s: %w", r.kind, r.id, err))
		}
		// Like a worker that quit early: the rest of the input fails.
		for b := in.next(x.hardCtx); b != nil; b = in.next(x.hardCtx) {
			b.Settle(r.stopped())
		}
	})
}

// startWriter runs a sink of one worker, which takes its batches straight
// off its input edge.
func (x *execution) startWriter(r *nodeRun) {
	x.goNode(r.node, func() {
		defer r.out.closeOutputs()
		in := edgeFeed{e: r.in, stats: r.stats}
		err := protect(func() error { return r.writeAll(x.hardCtx, in) })
		if err != nil && x.hardCtx.Err() == nil {
			x.fail(fmt.Errorf("%s %s: %w", r.kind, r.id, err))
		}
		// Like a worker that quit early: the rest of the input fails.
		for b := in.next(x.hardCtx); b != nil; b = in.next(x.hardCtx) {
			b.Settle(r.stopped())
		}
	})
}

// chain wraps fn, a processor's Process or a sink's write, in the node's
// middleware: the observer's timing (when the pipeline has an Observer)
// outermost, then recover, the policy's retry and timeout, then the
// node's own (Use).
func (r *nodeRun) chain(fn ProcessFunc) ProcessFunc {
	pol := r.out.policy
	mws := []Middleware{
		Recover(),
		Retry(pol.Retries, pol.Backoff, func(n int) { r.stats.Retries.Add(int64(n)) }),
		Timeout(pol.Timeout),
	}
	mws = append(mws, r.mws...)
	if obs := r.x.p.observer; obs != nil {
		id, kind := r.id, r.kind
		mws = append([]Middleware{func(next ProcessFunc) ProcessFunc {
			return func(ctx context.Context, in []Record, out *Output) error {
				start := time.Now()
				err := next(ctx, in, out)
				obs.ObserveBatch(id, kind, len(in), time.Since(start))
				return err
			}
		}}, mws...)
	}
	return Chain(fn, mws...)
}

// process runs a processor over the batches of in: each batch through fn
// (the processor in its middleware), failures to the error policy
// (Reject), results downstream in the input batch, which already holds
// the right acks.
func process(ctx context.Context, in <-chan *Batch, out Emitter, fn ProcessFunc) error {
	var res Output
	for b := range in {
		if !processBatch(ctx, b, out, fn, &res) {
			return nil
		}
	}
	return nil
}

// processBatch runs one batch through fn and passes on what came out;
// res is scratch reused from batch to batch. It is false when the run was
// killed: the caller stops.
func processBatch(ctx context.Context, b *Batch, out Emitter, fn ProcessFunc, res *Output) bool {
	res.Records, res.Errors = nil, res.Errors[:0]
	if err := fn(ctx, b.Records, res); err != nil {
		res.Records = nil
		res.Errors = res.Errors[:0]
		for _, r := range b.Records {
			res.Errors = append(res.Errors, RecordError{Record: r, Err: err, Attempts: 1})
		}
	}
	if err := out.Reject(ctx, b, res.Errors); err != nil {
		b.Settle(err)
		return true
	}
	if len(res.Records) == 0 {
		b.Settle(nil)
		return true
	}
	b.Records = res.Records
	return out.Emit(ctx, b) == nil || ctx.Err() == nil
}

// writeAll is a sink worker. Each Write gets everything waiting on the
// worker's input, up to the node's SinkBatch (coalesce), then settles it:
// written, or failed to the error policy.
func (r *nodeRun) writeAll(ctx context.Context, in feed) error {
	fn := r.chain(r.write)
	var res Output
	var m merger
	for {
		first := in.next(ctx)
		if first == nil {
			if ctx.Err() != nil {
				// Killed: what would have been the next Write fails
				// with the kill's error.
				if b := in.ready(); b != nil {
					m.coalesce(b, in, r.sinkBatch).Settle(ctx.Err())
				}
			}
			return nil
		}
		b := m.coalesce(first, in, r.sinkBatch)
		res.Records, res.Errors = nil, res.Errors[:0]
		if err := fn(ctx, b.Records, &res); err != nil {
			for _, rec := range b.Records {
				res.Errors = append(res.Errors, RecordError{Record: rec, Err: err, Attempts: 1})
			}
		}
		r.stats.Out.Add(int64(len(b.Records) - len(res.Errors)))
		if len(res.Errors) < len(b.Records) { // wrote some: their age now
			r.stats.ages.observe(b.Records)
		}
		if err := r.out.Reject(ctx, b, res.Errors); err != nil {
			b.Settle(err)
			continue
		}
		b.Settle(nil)
	}
}

// write is the sink's Write as a ProcessFunc, so it runs in the same
// middleware as a processor: records a *WriteErrors names become
// per-record failures (the ones Retry retries), any other error fails
// them all.
func (r *nodeRun) write(ctx context.Context, recs []Record, out *Output) error {
	err := r.sink.Write(ctx, recs)
	var we *WriteErrors
	if errors.As(err, &we) {
		for i, e := range we.Failed {
			if i >= 0 && i < len(recs) {
				out.Errors = append(out.Errors, RecordError{Record: recs[i], Err: e})
			}
		}
		return nil
	}
	return err
}

// merger is a sink worker's coalescing state, reused from Write to Write.
type merger struct {
	waiting []*Batch // the batches being merged
	// recs is the array merged records are copied into. A Sink does not
	// keep the records it is given past its Write (as an io.Writer does
	// not keep p), and the batch is settled before the next merge, so the
	// array serves every Write: a sink's writes allocate nothing.
	recs []Record
	used int // how much of recs the last merge filled
}

// coalesce merges into first the batches already waiting on in, until it
// holds max records: one Write (one flush, fsync or produce request) then
// takes what queued while the last one ran. The batches are gathered
// first so the merged records are copied once, into m's array (grown to
// the exact size when too small); the acks move along (Absorb).
func (m *merger) coalesce(first *Batch, in feed, max int) *Batch {
	n := len(first.Records)
	more := m.waiting[:0]
	for n < max {
		b := in.ready()
		if b == nil {
			break
		}
		more = append(more, b)
		n += len(b.Records)
	}
	if len(more) == 0 {
		return first
	}
	if cap(m.recs) < n {
		m.recs, m.used = make([]Record, 0, n), 0
	}
	recs := append(m.recs[:0], first.Records...)
	for i, b := range more {
		recs = append(recs, b.Records...)
		first.Absorb(b)
		more[i] = nil
	}
	// What the last merge left past this one's end would keep its
	// records' bytes alive.
	if m.used > len(recs) {
		clear(m.recs[len(recs):m.used])
	}
	m.used = len(recs)
	first.Records = recs
	m.waiting = more[:0]
	return first
}

// feed is a sink worker's input: the node's edge for a sink of one
// worker, else what the dispatcher hands the worker.
type feed interface {
	// next waits for a batch; nil once the input ended or ctx did.
	next(ctx context.Context) *Batch
	// ready returns a batch already waiting, without waiting; nil if
	// there is none.
	ready() *Batch
}

// edgeFeed takes batches off a sink's input edge, counting them in.
type edgeFeed struct {
	e     *edge
	stats *NodeStats
}

func (f edgeFeed) next(ctx context.Context) *Batch {
	b, ok := f.e.recv(ctx)
	if !ok {
		return nil
	}
	return f.took(b)
}

func (f edgeFeed) ready() *Batch {
	if b, _ := f.e.tryRecv(); b != nil {
		return f.took(b)
	}
	return nil
}

func (f edgeFeed) took(b *Batch) *Batch {
	f.e.received(b)
	f.stats.In.Add(int64(len(b.Records)))
	f.stats.Batches.Add(1)
	return b
}

// chanFeed is a worker's share of a sink's batches, from the dispatcher
// (which counted them in). It ends when the dispatcher closes it.
type chanFeed <-chan *Batch

func (f chanFeed) next(context.Context) *Batch { return <-f }

func (f chanFeed) ready() *Batch {
	select {
	case b := <-f:
		return b
	default:
		return nil
	}
}

// dispatcher hands a node's batches to its workers, starting each with the
// first batch it is given.
type dispatcher struct {
	n       *node
	workers []chan *Batch // nil: not started
	start   func(i int) chan *Batch
	started int // with OrderNone, workers 0..started-1 run
	seed    maphash.Seed
	next    int
}

func (d *dispatcher) send(ctx context.Context, w int, b *Batch) bool {
	select {
	case d.start(w) <- b:
		return true
	case <-ctx.Done():
		b.Settle(ctx.Err())
		return false
	}
}

// sendAny gives an unordered batch to an idle worker, starting another
// only when every started one is busy, and waits its turn once all run.
func (d *dispatcher) sendAny(ctx context.Context, b *Batch) bool {
	for i := range d.started {
		w := (d.next + i) % d.started
		select {
		case d.workers[w] <- b:
			d.next = (w + 1) % d.started
			return true
		default:
		}
	}
	if d.started < len(d.workers) {
		d.started++
		return d.send(ctx, d.started-1, b)
	}
	w := d.next
	d.next = (d.next + 1) % len(d.workers)
	return d.send(ctx, w, b)
}

func (d *dispatcher) shard(rec *Record) int {
	var h maphash.Hash
	h.SetSeed(d.seed)
	if d.n.ordering == OrderKey {
		h.Write(rec.Key)
	} else {
		h.WriteString(rec.Origin.Source)
		h.WriteString(rec.Origin.Topic)
		var p [4]byte
		p[0], p[1], p[2], p[3] = byte(rec.Origin.Partition), byte(rec.Origin.Partition>>8), byte(rec.Origin.Partition>>16), byte(rec.Origin.Partition>>24)
		h.Write(p[:])
	}
	return int(h.Sum64() % uint64(len(d.workers)))
}

func (d *dispatcher) dispatch(ctx context.Context, b *Batch) bool {
	nw := len(d.workers)
	if nw == 1 {
		return d.send(ctx, 0, b)
	}
	if d.n.ordering == OrderNone || len(b.Records) == 0 {
		return d.sendAny(ctx, b)
	}
	// Most batches come from one partition: send whole when they shard to
	// one worker, split only when they do not.
	first := d.shard(&b.Records[0])
	same := true
	shards := make([]int, len(b.Records))
	shards[0] = first
	for i := 1; i < len(b.Records); i++ {
		shards[i] = d.shard(&b.Records[i])
		if shards[i] != first {
			same = false
		}
	}
	if same {
		return d.send(ctx, first, b)
	}
	parts := make([][]Record, nw)
	for i, s := range shards {
		parts[s] = append(parts[s], b.Records[i])
	}
	ok := true
	for w, recs := range parts {
		if len(recs) == 0 {
			continue
		}
		if ok {
			ok = d.send(ctx, w, b.Derive(recs))
		}
	}
	b.Settle(nil)
	return ok
}
