package flow

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// run is one execution of a Pipeline.
type run struct {
	p *Pipeline

	// stopSources ends sources' contexts: the start of a drain.
	srcCtx      context.Context
	stopSources context.CancelFunc
	// hardCtx ends everything: drain deadline passed or a node broke.
	hardCtx context.Context
	kill    context.CancelFunc

	edges   map[string]*edge // input edge by node id
	outlets map[string]*outlet

	failOnce sync.Once
	failErr  error
	failed   chan struct{}

	wg sync.WaitGroup
}

// Run runs the pipeline until every source is exhausted and everything was
// drained, or until ctx ends: then sources stop, in-flight records flow to
// the sinks, and Run returns nil once drained. Past the drain timeout it
// returns an error wrapping ErrDrainTimeout naming the nodes still holding
// records. A record failing under ActionFail makes Run drain and return a
// *RecordFailure. Run may be called once.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.ran {
		return errors.New("pipeline already ran")
	}
	p.ran = true
	if err := p.Validate(); err != nil {
		return err
	}
	r := &run{p: p, edges: map[string]*edge{}, outlets: map[string]*outlet{}, failed: make(chan struct{})}
	r.srcCtx, r.stopSources = context.WithCancel(context.WithoutCancel(ctx))
	r.hardCtx, r.kill = context.WithCancel(context.WithoutCancel(ctx))
	defer r.kill()
	defer r.stopSources()
	return r.run(ctx)
}

func (r *run) fail(err error) {
	r.failOnce.Do(func() {
		r.failErr = err
		close(r.failed)
	})
}

func (r *run) wire() {
	p := r.p
	for _, n := range p.nodes {
		if n.kind == KindSource {
			continue
		}
		buf := n.buffer
		if buf <= 0 {
			buf = p.buffer
		}
		e := newEdge(n.id, buf)
		r.edges[n.id] = e
		n.stats.edge.Store(e)
	}
	for _, n := range p.nodes {
		o := &outlet{id: n.id, run: r, stats: n.stats, policy: p.policyOf(n)}
		r.outlets[n.id] = o
	}
	for _, n := range p.nodes {
		for _, in := range n.inputs {
			e := r.edges[n.id]
			r.outlets[in].outs = append(r.outlets[in].outs, e)
			e.addWriter()
		}
	}
	for _, n := range p.nodes {
		o := r.outlets[n.id]
		if o.policy.Action == ActionDeadLetter {
			o.dlq = r.edges[o.policy.DeadLetter]
			o.dlq.addWriter()
		}
	}
}

func (r *run) run(ctx context.Context) error {
	p := r.p
	r.wire()
	done := make(chan struct{})
	for _, n := range p.nodes {
		switch n.kind {
		case KindSource:
			r.startSource(n)
		default:
			r.startWorkers(n)
		}
	}
	go func() {
		r.wg.Wait()
		close(done)
	}()

	var err error
	select {
	case <-done:
	case <-ctx.Done():
		p.log.Info("draining: sources stopped, flushing in-flight records", "pipeline", p.name, "timeout", p.drainTimeout)
	case <-r.failed:
		p.log.Error("pipeline failed, draining", "pipeline", p.name, "err", r.failErr)
	}
	r.stopSources()
	// One deadline covers the whole shutdown, Close calls included, so a
	// supervisor's grace period (Kubernetes, systemd) sized to
	// drain_timeout is never overrun. The drain may use three quarters of
	// it; Close calls (final commits, plugin stops) get whatever is left,
	// at least that last quarter.
	deadline := time.Now().Add(p.drainTimeout)
	drainFor := p.drainTimeout - p.drainTimeout/4
	timer := time.NewTimer(drainFor)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		holders := r.holders()
		err = fmt.Errorf("%w after %s (of drain_timeout %s; the rest is kept for closing): records still held by %s; unacknowledged input will be re-read on restart (duplicates may follow)",
			ErrDrainTimeout, drainFor, p.drainTimeout, strings.Join(holders, ", "))
		r.kill()
		// Nodes that honour ctx return now; one that does not cannot be
		// stopped from here, so do not wait for it past half of what is
		// left: the closes need the rest.
		wait := time.NewTimer(time.Until(deadline) / 2)
		select {
		case <-done:
		case <-wait.C:
			p.log.Error("nodes did not stop after the drain timeout", "nodes", strings.Join(r.holders(), ", "))
		}
		wait.Stop()
	}
	if cerr := r.closeAll(deadline); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil && r.failErr != nil {
		return r.failErr
	}
	return err
}

// closeGrace is how long closeAll waits, past the deadline, for Close
// calls to return the errors they make of their ended context (those
// errors say what each was waiting for).
const closeGrace = 250 * time.Millisecond

// closeAll closes every node at once under one deadline: sources (final
// commits), stages (plugin processes) and sinks. By now every record was
// written or failed, so no Close depends on another; closing them one
// after the other would let one slow Close (a consumer group waiting for
// a rebalance) use up the time of all the others.
func (r *run) closeAll(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	type closing struct {
		id   string
		err  error
		done chan struct{}
	}
	var cs []*closing
	for _, n := range r.p.nodes {
		var c any
		switch n.kind {
		case KindSource:
			c = n.source
		case KindStage:
			c = n.stage
		case KindSink:
			c = n.sink
		}
		cl, ok := c.(Closer)
		if !ok {
			continue
		}
		x := &closing{id: n.id, done: make(chan struct{})}
		cs = append(cs, x)
		// Owned by closeAll, which waits for it below; one that ignores
		// its context past the grace is left to end with the process.
		go func() {
			defer close(x.done)
			x.err = protect(func() error { return cl.Close(ctx) })
		}()
	}
	graceCtx, stop := context.WithDeadline(context.Background(), deadline.Add(closeGrace))
	defer stop()
	var errs []error
	for _, x := range cs {
		select {
		case <-x.done:
		case <-graceCtx.Done():
		}
		select {
		case <-x.done:
			if x.err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", x.id, x.err))
			}
		default:
			errs = append(errs, fmt.Errorf("close %s: still running at the end of drain_timeout %s (it ignores its deadline)", x.id, r.p.drainTimeout))
		}
	}
	return errors.Join(errs...)
}

// holders names running nodes not blocked on a full downstream edge: those
// are the ones holding the drain up.
func (r *run) holders() []string {
	var hs, running []string
	for _, n := range r.p.nodes {
		if !n.stats.Running() {
			continue
		}
		desc := n.id
		if b := n.stats.Buffered(); b > 0 {
			desc = fmt.Sprintf("%s (%d records queued)", n.id, b)
		}
		running = append(running, desc)
		if n.stats.emitting.Load() == 0 {
			hs = append(hs, desc)
		}
	}
	if len(hs) == 0 {
		return running
	}
	return hs
}

func (r *run) goNode(n *node, fn func()) {
	r.wg.Add(1)
	n.stats.running.Add(1)
	go func() {
		defer r.wg.Done()
		defer n.stats.running.Add(-1)
		fn()
	}()
}

// protect runs fn, turning a panic into an error.
func protect(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}

func (r *run) startSource(n *node) {
	o := r.outlets[n.id]
	r.goNode(n, func() {
		defer o.closeOutputs()
		err := protect(func() error { return n.source.Run(r.srcCtx, o) })
		if err != nil && r.srcCtx.Err() == nil {
			r.fail(fmt.Errorf("source %s: %w", n.id, err))
		}
	})
}

// startWorkers runs a stage or sink: a dispatcher takes batches off the
// input edge (freeing capacity) and hands them to up to parallelism
// workers, sharded so the node's ordering holds. Worker 0 starts at once;
// the others with the first batch given to them, so parallelism is a
// bound on goroutines and not a number started whatever the traffic.
func (r *run) startWorkers(n *node) {
	e := r.edges[n.id]
	o := r.outlets[n.id]
	// Only the dispatcher goroutine starts workers, and it waits for them
	// (live.Wait) after its last start.
	var live sync.WaitGroup
	workers := make([]chan *Batch, n.parallelism)
	// A sink of one worker is fed by coalesce, which merges what queued
	// while it wrote; gathering more batches on top of that would hold
	// records beyond the edge's capacity.
	coalesced := n.kind == KindSink && len(workers) == 1
	start := func(i int) chan *Batch {
		if workers[i] != nil {
			return workers[i]
		}
		w := make(chan *Batch)
		workers[i] = w
		st := n.stage
		if n.kind == KindSink {
			gather := n.sinkBatch
			if coalesced {
				gather = 0
			}
			st = &sinkStage{sink: n.sink, max: gather}
		}
		live.Add(1)
		r.goNode(n, func() {
			defer live.Done()
			err := protect(func() error { return st.Run(r.hardCtx, w, o) })
			if err != nil && r.hardCtx.Err() == nil {
				r.fail(fmt.Errorf("%s %s: %w", n.kind, n.id, err))
			}
			// A worker that quit early must still take its input, or
			// upstream blocks forever; the batches fail.
			for b := range w {
				b.Settle(fmt.Errorf("%s %s stopped", n.kind, n.id))
			}
		})
		return w
	}
	first := start(0)
	r.goNode(n, func() {
		defer func() {
			for _, w := range workers {
				if w != nil {
					close(w)
				}
			}
			live.Wait()
			o.closeOutputs()
		}()
		if coalesced {
			r.coalesce(n, e, first)
			return
		}
		d := dispatcher{n: n, workers: workers, start: start, started: 1, seed: maphash.MakeSeed()}
		for {
			b, ok := e.recv(r.hardCtx)
			if !ok {
				return
			}
			e.received(b)
			n.stats.In.Add(int64(len(b.Records)))
			n.stats.Batches.Add(1)
			if !d.dispatch(r.hardCtx, b) {
				return
			}
		}
	})
}

// coalesce feeds a sink: while the sink is busy writing, it keeps taking
// batches off the edge and merging them (up to the node's SinkBatch) so the
// next Write gets everything that queued up meanwhile: one flush, fsync or
// produce request for many small batches. Merged records keep counting
// against the edge until the sink takes them, so the edge's capacity still
// bounds what waits.
func (r *run) coalesce(n *node, e *edge, w chan<- *Batch) {
	var pending *Batch
	var held int64 // edge capacity pending still occupies
	owned := false // pending.Records is our own array, safe to append to
	closed := false
	for {
		// Take what is queued, up to a full write, without waiting.
		for !closed && (pending == nil || len(pending.Records) < n.sinkBatch) {
			b, done := e.tryRecv()
			if b == nil {
				closed = done
				break
			}
			held += weight(b)
			n.stats.In.Add(int64(len(b.Records)))
			n.stats.Batches.Add(1)
			if pending == nil {
				pending, owned = b, false
				continue
			}
			if !owned {
				// Sized for the two; append doubles it if more queue up.
				recs := make([]Record, len(pending.Records), len(pending.Records)+len(b.Records))
				copy(recs, pending.Records)
				pending.Records, owned = recs, true
			}
			pending.Records = append(pending.Records, b.Records...)
			pending.Absorb(b)
		}
		var more <-chan struct{}
		if !closed && (pending == nil || len(pending.Records) < n.sinkBatch) {
			more = e.ready
		}
		var send chan<- *Batch
		if pending != nil {
			send = w
		}
		if more == nil && send == nil {
			return
		}
		select {
		case <-more:
		case send <- pending:
			pending = nil
			e.release(held)
			held = 0
		case <-r.hardCtx.Done():
			if pending != nil {
				pending.Settle(r.hardCtx.Err())
			}
			return
		}
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

// outlet is the Emitter the engine gives each node.
type outlet struct {
	id     string
	run    *run
	stats  *NodeStats
	policy ErrorPolicy
	outs   []*edge
	dlq    *edge
}

func (o *outlet) closeOutputs() {
	for _, e := range o.outs {
		e.writerDone()
	}
	if o.dlq != nil {
		o.dlq.writerDone()
	}
}

// Emit implements Emitter.
func (o *outlet) Emit(ctx context.Context, b *Batch) error {
	o.stats.Out.Add(int64(len(b.Records)))
	if o.stats.Kind == KindSource {
		o.stats.In.Add(int64(len(b.Records)))
		o.stats.Batches.Add(1)
	}
	o.stats.emitting.Add(1)
	defer o.stats.emitting.Add(-1)
	switch len(o.outs) {
	case 0:
		b.Settle(nil)
		return nil
	case 1:
		if err := o.outs[0].send(ctx, b); err != nil {
			b.Settle(err)
			return err
		}
		return nil
	}
	forks := b.fork(len(o.outs))
	for i, e := range o.outs {
		if err := e.send(ctx, forks[i]); err != nil {
			for _, f := range forks[i:] {
				f.Settle(err)
			}
			return err
		}
	}
	return nil
}

// Reject implements Emitter: it applies the node's error policy.
func (o *outlet) Reject(ctx context.Context, from *Batch, failed []RecordError) error {
	if len(failed) == 0 {
		return nil
	}
	o.stats.Errors.Add(int64(len(failed)))
	log := o.run.p.log
	switch o.policy.Action {
	case ActionSkip:
		o.stats.Skipped.Add(int64(len(failed)))
		log.Warn("records skipped", "node", o.id, "count", len(failed), "first_error", failed[0].Err, "origin", failed[0].Record.Origin)
		return nil
	case ActionDeadLetter:
		now := time.Now()
		recs := make([]Record, len(failed))
		for i, f := range failed {
			recs[i] = deadLetter(o.id, f, now)
		}
		b := from.Derive(recs)
		o.stats.emitting.Add(1)
		err := o.dlq.send(ctx, b)
		o.stats.emitting.Add(-1)
		if err != nil {
			b.Settle(err)
			return err
		}
		o.stats.DeadLettered.Add(int64(len(failed)))
		return nil
	default:
		f := failed[0]
		rf := &RecordFailure{Node: o.id, Origin: f.Record.Origin, Err: f.Err}
		// The sources must not count these as done.
		from.Derive(nil).Settle(rf)
		if ctx.Err() == nil { // after a kill, failures are the kill's doing
			o.run.fail(rf)
		}
		return nil
	}
}

// chain wraps fn with the node's middleware: recover outermost, then the
// policy's retry and timeout, then the user's.
func (o *outlet) chain(fn ProcessFunc) ProcessFunc {
	pol := o.policy
	mws := []Middleware{
		Recover(),
		Retry(pol.Retries, pol.Backoff, func(n int) { o.stats.Retries.Add(int64(n)) }),
		Timeout(pol.Timeout),
	}
	mws = append(mws, o.run.p.byID[o.id].mws...)
	if obs := o.run.p.observer; obs != nil {
		kind := o.stats.Kind
		mws = append([]Middleware{func(next ProcessFunc) ProcessFunc {
			return func(ctx context.Context, in []Record, out *Output) error {
				start := time.Now()
				err := next(ctx, in, out)
				obs.ObserveBatch(o.id, kind, len(in), time.Since(start))
				return err
			}
		}}, mws...)
	}
	return Chain(fn, mws...)
}

// ProcessorStage turns a Processor into a Stage: each batch goes through
// the node's middleware, failures to its error policy, results downstream.
// If p is a Closer, so is the stage.
func ProcessorStage(p Processor) Stage {
	if _, ok := p.(Closer); ok {
		return closingProcessorStage{processorStage{p}}
	}
	return processorStage{p}
}

type processorStage struct{ p Processor }

func (s processorStage) processor() Processor { return s.p }

type closingProcessorStage struct{ processorStage }

func (s closingProcessorStage) Close(ctx context.Context) error { return s.p.(Closer).Close(ctx) }

func (s processorStage) Run(ctx context.Context, in <-chan *Batch, out Emitter) error {
	fn := ProcessFunc(s.p.Process)
	if o, ok := out.(*outlet); ok {
		fn = o.chain(fn)
	} else {
		fn = Recover()(fn)
	}
	var res Output
	for b := range in {
		res.Records, res.Errors = nil, res.Errors[:0]
		if err := fn(ctx, b.Records, &res); err != nil {
			res.Records = nil
			res.Errors = res.Errors[:0]
			for _, r := range b.Records {
				res.Errors = append(res.Errors, RecordError{Record: r, Err: err, Attempts: 1})
			}
		}
		if err := out.Reject(ctx, b, res.Errors); err != nil {
			b.Settle(err)
			continue
		}
		if len(res.Records) == 0 {
			b.Settle(nil)
			continue
		}
		// Reuse the input batch: it already holds the right acks.
		b.Records = res.Records
		if err := out.Emit(ctx, b); err != nil && ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// sinkStage runs a Sink: it coalesces queued batches into one Write (one
// flush, one fsync, one produce request for many batches), then settles
// them.
type sinkStage struct {
	sink Sink
	max  int // records gathered into one Write; 0: one batch at a time
}

func (s *sinkStage) Run(ctx context.Context, in <-chan *Batch, out Emitter) error {
	write := ProcessFunc(func(ctx context.Context, recs []Record, res *Output) error {
		err := s.sink.Write(ctx, recs)
		var we *WriteErrors
		if errors.As(err, &we) {
			for i, e := range we.Failed {
				if i >= 0 && i < len(recs) {
					res.Errors = append(res.Errors, RecordError{Record: recs[i], Err: e})
				}
			}
			return nil
		}
		return err
	})
	fn := Recover()(write)
	if o, ok := out.(*outlet); ok {
		fn = o.chain(write)
	}
	var pending []*Batch
	var res Output
	for b := range in {
		pending = append(pending[:0], b)
		n := len(b.Records)
	gather:
		for n < s.max {
			select {
			case more, ok := <-in:
				if !ok {
					break gather
				}
				pending = append(pending, more)
				n += len(more.Records)
			default:
				break gather
			}
		}
		recs := b.Records
		all := b
		if len(pending) > 1 {
			recs = make([]Record, 0, n)
			all = NewBatch(nil)
			for _, pb := range pending {
				recs = append(recs, pb.Records...)
				all.Absorb(pb)
			}
		}
		res.Records, res.Errors = nil, res.Errors[:0]
		if err := fn(ctx, recs, &res); err != nil {
			for _, r := range recs {
				res.Errors = append(res.Errors, RecordError{Record: r, Err: err, Attempts: 1})
			}
		}
		if o, ok := out.(*outlet); ok {
			o.stats.Out.Add(int64(len(recs) - len(res.Errors)))
		}
		if err := out.Reject(ctx, all, res.Errors); err != nil {
			all.Settle(err)
			continue
		}
		all.Settle(nil)
	}
	return nil
}
