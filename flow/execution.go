package flow

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// ErrDrainTimeout is wrapped by the error Run returns when the drain
// deadline passed with records still in flight.
var ErrDrainTimeout = errors.New("drain timeout")

// execution is one run of a Pipeline: the graph wired into edges, the
// contexts that stop it, and the first failure.
type execution struct {
	p *Pipeline

	// stopSources ends sources' contexts: the start of a drain.
	srcCtx      context.Context
	stopSources context.CancelFunc
	// hardCtx ends everything: drain deadline passed or a node broke.
	hardCtx context.Context
	kill    context.CancelFunc

	running map[string]*nodeRun // by node id

	failOnce sync.Once
	failErr  error
	failed   chan struct{}

	wg sync.WaitGroup
}

// nodeRun is one node while the pipeline runs: the input edge its workers
// take batches from (none for a source), the Emitter they hand results
// to, and, through chain, the middleware their calls go through.
type nodeRun struct {
	*node
	x   *execution
	in  *edge
	out *outlet
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
	x := &execution{p: p, running: map[string]*nodeRun{}, failed: make(chan struct{})}
	x.srcCtx, x.stopSources = context.WithCancel(context.WithoutCancel(ctx))
	x.hardCtx, x.kill = context.WithCancel(context.WithoutCancel(ctx))
	defer x.kill()
	defer x.stopSources()
	x.wire()
	x.start()
	return x.finish(ctx)
}

func (x *execution) fail(err error) {
	x.failOnce.Do(func() {
		x.failErr = err
		close(x.failed)
	})
}

// wire gives every stage and sink its input edge and every node its
// outlet, connected to the edges of the nodes it feeds.
func (x *execution) wire() {
	p := x.p
	for _, n := range p.nodes {
		r := &nodeRun{node: n, x: x}
		if n.kind != KindSource {
			buf := n.buffer
			if buf <= 0 {
				buf = p.buffer
			}
			r.in = newEdge(n.id, buf)
			n.stats.edge.Store(r.in)
		}
		r.out = &outlet{id: n.id, stats: n.stats, policy: p.policyOf(n), log: p.log, fail: x.fail}
		x.running[n.id] = r
	}
	for _, n := range p.nodes {
		e := x.running[n.id].in
		for _, in := range n.inputs {
			up := x.running[in].out
			up.outs = append(up.outs, e)
			e.addWriter()
		}
	}
	for _, n := range p.nodes {
		o := x.running[n.id].out
		if o.policy.Action == ActionDeadLetter {
			o.dlq = x.running[o.policy.DeadLetter].in
			o.dlq.addWriter()
		}
	}
}

// start starts every node's goroutines.
func (x *execution) start() {
	for _, n := range x.p.nodes {
		r := x.running[n.id]
		switch {
		case n.kind == KindSource:
			x.startSource(r)
		case n.kind == KindSink && n.parallelism == 1:
			x.startWriter(r)
		case n.proc != nil && n.parallelism == 1:
			x.startProcessor(r)
		default:
			x.startWorkers(r)
		}
	}
}

// finish waits for the run to end: every node done, or ctx ended or a
// node failed, and then the drain, within the drain timeout. Then it
// closes every node.
func (x *execution) finish(ctx context.Context) error {
	p := x.p
	done := make(chan struct{})
	go func() {
		x.wg.Wait()
		close(done)
	}()

	var err error
	select {
	case <-done:
		// Every node may have ended in the same instant a node failed:
		// the failure is still said, as it would be had it come first.
		select {
		case <-x.failed:
			p.log.Error("pipeline failed, draining", "pipeline", p.name, "err", x.failErr)
		default:
		}
	case <-ctx.Done():
		p.log.Info("draining: sources stopped, flushing in-flight records", "pipeline", p.name, "timeout", p.drainTimeout)
	case <-x.failed:
		p.log.Error("pipeline failed, draining", "pipeline", p.name, "err", x.failErr)
	}
	x.stopSources()
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
		holders := x.holders()
		err = fmt.Errorf("%w after %s (of drain_timeout %s; the rest is kept for closing): records still held by %s; unacknowledged input will be re-read on restart (duplicates may follow)",
			ErrDrainTimeout, drainFor, p.drainTimeout, strings.Join(holders, ", "))
		x.kill()
		// Nodes that honour ctx return now; one that does not cannot be
		// stopped from here, so do not wait for it past half of what is
		// left: the closes need the rest.
		wait := time.NewTimer(time.Until(deadline) / 2)
		select {
		case <-done:
		case <-wait.C:
			p.log.Error("nodes did not stop after the drain timeout", "nodes", strings.Join(x.holders(), ", "))
		}
		wait.Stop()
	}
	if cerr := x.closeAll(deadline); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil && x.failErr != nil {
		return x.failErr
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
func (x *execution) closeAll(deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	type closing struct {
		id   string
		err  error
		done chan struct{}
	}
	var cs []*closing
	for _, n := range x.p.nodes {
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
		cg := &closing{id: n.id, done: make(chan struct{})}
		cs = append(cs, cg)
		// Owned by closeAll, which waits for it below; one that ignores
		// its context past the grace is left to end with the process.
		go func() {
			defer close(cg.done)
			cg.err = protect(func() error { return cl.Close(ctx) })
		}()
	}
	graceCtx, stop := context.WithDeadline(context.Background(), deadline.Add(closeGrace))
	defer stop()
	var errs []error
	for _, cg := range cs {
		select {
		case <-cg.done:
		case <-graceCtx.Done():
		}
		select {
		case <-cg.done:
			if cg.err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", cg.id, cg.err))
			}
		default:
			errs = append(errs, fmt.Errorf("close %s: still running at the end of drain_timeout %s (it ignores its deadline)", cg.id, x.p.drainTimeout))
		}
	}
	return errors.Join(errs...)
}

// holders names running nodes not blocked on a full downstream edge: those
// are the ones holding the drain up.
func (x *execution) holders() []string {
	var hs, running []string
	for _, n := range x.p.nodes {
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

// goNode runs fn as one of n's goroutines: n is running while any is.
func (x *execution) goNode(n *node, fn func()) {
	x.wg.Add(1)
	n.stats.running.Add(1)
	go func() {
		defer x.wg.Done()
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

func (x *execution) startSource(r *nodeRun) {
	x.goNode(r.node, func() {
		defer r.out.closeOutputs()
		err := protect(func() error { return r.source.Run(x.srcCtx, r.out) })
		if err != nil && x.srcCtx.Err() == nil {
			x.fail(fmt.Errorf("source %s: %w", r.id, err))
		}
	})
}
