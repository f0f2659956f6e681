// Package host runs plugin stages (`type: plugin`): each is one or more
// separate processes built with plugins/sdk (or anything speaking
// plugins/proto), started through hashicorp/go-plugin and supervised here.
//
// Lifecycle: New (and so the registry's Build) starts one process and runs
// Info and Configure, so `sluice validate` reports config errors at
// file:line; Run adopts that process and starts the other instances;
// Close drains and stops them all. Whoever calls New must call Close.
//
// Delivery: a crashed or stuck process is killed and replaced; its
// unanswered batches are sent again, never lost. A batch that keeps
// killing processes is bisected until the record responsible is alone;
// only that record fails (to the node's on_error). Outputs leave in input
// order whatever was retried.
package host

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// Stage is a running plugin stage: a flow.Stage and a flow.Closer.
type Stage struct {
	cfg    Config
	launch *launcher

	work chan *chunk // chunks waiting for a process with a free credit

	// ctx ends every supervisor at once: Close's deadline passed.
	ctx    context.Context
	cancel context.CancelFunc

	startOnce sync.Once
	mu        sync.Mutex  // guards warm and instances for Pids
	warm      *process    // started by New, adopted by the first instance
	instances []*instance // set once by start
	wg        sync.WaitGroup

	closeOnce sync.Once
	closing   chan struct{}   // closed by Close: finish in-flight work, shut down
	closeCtx  context.Context // Close's context, set before closing is closed
	closeErrs []error
	closeMu   sync.Mutex

	failOnce sync.Once
	failed   chan struct{}
	failErr  error

	restarts, poisoned, hangs atomic.Int64
	restartTimes              []time.Time // the last few, guarded by mu
}

var (
	_ flow.Stage  = (*Stage)(nil)
	_ flow.Closer = (*Stage)(nil)
)

// New checks cfg, starts one plugin process and hands it its config. The
// process stays up for Run; Close stops it. A config the plugin refuses
// comes back as a *ConfigError, a wrong checksum as a *ChecksumError.
func New(ctx context.Context, cfg Config) (*Stage, error) {
	cfg = cfg.withDefaults()
	l, err := newLauncher(&cfg)
	if err != nil {
		return nil, err
	}
	s := &Stage{
		cfg:     cfg,
		launch:  l,
		work:    make(chan *chunk),
		closing: make(chan struct{}),
		failed:  make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	p, err := l.start(ctx)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.warm = p
	return s, nil
}

// Stats are a plugin stage's counters, for metrics.
type Stats struct {
	// Restarts counts processes replaced after a crash, a hang or a broken
	// stream.
	Restarts int64
	// Hangs counts processes killed for making no progress within timeout.
	Hangs int64
	// Poisoned counts records failed because they crashed or hung the
	// plugin on their own.
	Poisoned int64
}

// Stats returns the stage's counters.
func (s *Stage) Stats() Stats {
	return Stats{Restarts: s.restarts.Load(), Hangs: s.hangs.Load(), Poisoned: s.poisoned.Load()}
}

// Pids lists the current plugin process ids (0 for an instance between
// processes).
func (s *Stage) Pids() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.instances) == 0 {
		if s.warm != nil {
			return []int{s.warm.pid()}
		}
		return nil
	}
	pids := make([]int, len(s.instances))
	for i, in := range s.instances {
		pids[i] = int(in.pid.Load())
	}
	return pids
}

func (s *Stage) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
	})
}

// start launches the supervisors once, the first instance adopting the
// process New started.
func (s *Stage) start() {
	s.startOnce.Do(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.instances = make([]*instance, s.cfg.Instances)
		for i := range s.instances {
			in := &instance{s: s, id: i}
			if i == 0 {
				in.warm, s.warm = s.warm, nil
			}
			s.instances[i] = in
		}
		s.wg.Add(len(s.instances))
		for _, in := range s.instances {
			go in.run()
		}
	})
}

// Close stops every process: each answers what it holds, gets Drain and
// Close, then is killed with its process group. Past ctx's deadline the
// processes are killed at once.
func (s *Stage) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.startOnce.Do(func() {}) // no supervisors from now on
		s.closeCtx = ctx
		close(s.closing)
		s.mu.Lock()
		started, warm := s.instances != nil, s.warm
		s.warm = nil
		s.mu.Unlock()
		if !started {
			if warm != nil {
				s.addCloseErr(warm.shutdown(ctx))
			}
			s.cancel()
			return
		}
		done := make(chan struct{})
		go func() {
			s.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.cancel()
			<-done
		}
		s.cancel()
	})
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if len(s.closeErrs) > 0 {
		return fmt.Errorf("plugin %s: %w", s.cfg.Name, errors.Join(s.closeErrs...))
	}
	return nil
}

func (s *Stage) addCloseErr(err error) {
	if err == nil {
		return
	}
	s.closeMu.Lock()
	s.closeErrs = append(s.closeErrs, err)
	s.closeMu.Unlock()
}

// Run implements flow.Stage. Several Runs (node parallelism) share the
// stage's processes; each keeps its own input order.
func (s *Stage) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	s.start()
	select {
	case <-s.closing:
		return fmt.Errorf("plugin %s: Run after Close", s.cfg.Name)
	default:
	}
	limit := s.cfg.Instances*(s.cfg.Window+1) + 1
	r := &flowRun{s: s, in: in, out: out, limit: limit, wake: make(chan struct{}, 1)}
	return r.loop(ctx)
}

// flowRun is one call of Run: it cuts input batches into chunks, hands
// them to the processes and emits results in input order.
type flowRun struct {
	s     *Stage
	in    <-chan *flow.Batch
	out   flow.Emitter
	limit int // chunks out at once, bounding memory

	// Answered chunks: a queue rather than a channel so an instance never
	// waits on a Run that is blocked emitting downstream.
	mu       sync.Mutex
	answered []*chunk
	wake     chan struct{}

	jobs     []*job // FIFO
	building *chunk
	ready    []*chunk
	pending  int // chunks created and not yet answered
}

func (r *flowRun) loop(ctx context.Context) error {
	cfg := &r.s.cfg
	var linger *time.Timer
	var lingerC <-chan time.Time
	stopLinger := func() {
		if linger != nil {
			linger.Stop()
			lingerC = nil
		}
	}
	defer stopLinger()
	inClosed := false
	for {
		if inClosed {
			r.seal()
			if len(r.jobs) == 0 {
				return nil
			}
		}
		var inCh <-chan *flow.Batch
		if !inClosed && r.pending < r.limit {
			inCh = r.in
		}
		var workCh chan<- *chunk
		var next *chunk
		if len(r.ready) > 0 {
			workCh, next = r.s.work, r.ready[0]
		}
		select {
		case b, ok := <-inCh:
			if !ok {
				inClosed = true
				continue
			}
			r.add(b)
			// Take what is already waiting before sending a partial chunk.
		more:
			for r.building != nil && r.pending < r.limit {
				select {
				case b, ok := <-r.in:
					if !ok {
						inClosed = true
						break more
					}
					r.add(b)
				default:
					break more
				}
			}
			if err := r.emitReady(ctx); err != nil { // batches with no records
				r.settleAll(err)
				return nil
			}
			switch {
			case r.building == nil:
				stopLinger()
			case cfg.Linger <= 0 || inClosed:
				r.seal()
				stopLinger()
			case lingerC == nil:
				if linger == nil {
					linger = time.NewTimer(cfg.Linger)
				} else {
					linger.Reset(cfg.Linger)
				}
				lingerC = linger.C
			}
		case workCh <- next:
			r.ready = r.ready[1:]
		case <-r.wake:
			r.mu.Lock()
			cs := r.answered
			r.answered = nil
			r.mu.Unlock()
			for _, c := range cs {
				r.pending--
				for _, j := range c.jobs {
					j.open--
				}
			}
			if err := r.emitReady(ctx); err != nil {
				r.settleAll(err)
				return nil
			}
		case <-lingerC:
			lingerC = nil
			r.seal()
		case <-r.s.failed:
			r.settleAll(r.s.failErr)
			return r.s.failErr
		case <-ctx.Done():
			r.settleAll(ctx.Err())
			return nil
		}
	}
}

// add appends an input batch to the chunks being built.
func (r *flowRun) add(b *flow.Batch) {
	cfg := &r.s.cfg
	j := &job{b: b}
	r.jobs = append(r.jobs, j)
	recs := b.Records
	for i := 0; i < len(recs); {
		if r.building == nil {
			r.building = newChunk(r)
			r.pending++
		}
		c := r.building
		start, n, bytes := i, len(c.recs), c.bytes
		for i < len(recs) && n < cfg.BatchSize {
			sz := recs[i].Size()
			if n > 0 && bytes+sz > cfg.BatchBytes {
				break
			}
			bytes += sz
			n++
			i++
		}
		if i > start {
			if len(c.recs) == 0 {
				// Share the input's array (records in flight are read-only);
				// the capacity limit makes a later append copy.
				c.recs = recs[start:i:i]
			} else {
				c.recs = append(c.recs, recs[start:i]...)
			}
			c.bytes = bytes
			j.segs = append(j.segs, seg{c: c, from: len(c.recs) - (i - start), n: i - start})
			if len(c.jobs) == 0 || c.jobs[len(c.jobs)-1] != j {
				c.jobs = append(c.jobs, j)
				j.open++
			}
		}
		if i < len(recs) || len(c.recs) >= cfg.BatchSize || c.bytes >= cfg.BatchBytes {
			r.seal()
		}
	}
}

// deliver hands an answered chunk back; called by instances.
func (r *flowRun) deliver(c *chunk) {
	r.mu.Lock()
	r.answered = append(r.answered, c)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// seal moves the chunk being built to the ready queue.
func (r *flowRun) seal() {
	c := r.building
	if c == nil {
		return
	}
	r.building = nil
	r.ready = append(r.ready, c)
}

// emitReady emits the finished jobs at the head of the queue, in order.
func (r *flowRun) emitReady(ctx context.Context) error {
	for len(r.jobs) > 0 && r.jobs[0].open == 0 {
		j := r.jobs[0]
		r.jobs[0] = nil
		r.jobs = r.jobs[1:]
		if err := r.emit(ctx, j); err != nil {
			return err
		}
	}
	return nil
}

func (r *flowRun) emit(ctx context.Context, j *job) error {
	var outs []flow.Record
	var fails []flow.RecordError
	if len(j.segs) == 1 {
		sg := j.segs[0]
		if c := sg.c; c.outs != nil && sg.from == 0 && sg.n == len(c.recs) {
			outs = c.outs // the common case: one input batch, one chunk
		}
	}
	collect := outs == nil
	for _, sg := range j.segs {
		if !collect && sg.c.res == nil {
			continue // no failures to look for
		}
		for k := sg.from; k < sg.from+sg.n; k++ {
			o, err := sg.c.result(k)
			if err != nil {
				fails = append(fails, flow.RecordError{Record: sg.c.recs[k], Err: err, Attempts: 1})
			} else if collect {
				outs = append(outs, o...)
			}
		}
	}
	if err := r.out.Reject(ctx, j.b, fails); err != nil {
		j.b.Settle(err)
		return nil
	}
	if len(outs) == 0 {
		j.b.Settle(nil)
		return nil
	}
	j.b.Records = outs
	if err := r.out.Emit(ctx, j.b); err != nil && ctx.Err() != nil {
		return err
	}
	return nil
}

// settleAll fails every batch the Run still holds.
func (r *flowRun) settleAll(err error) {
	for _, j := range r.jobs {
		if j != nil {
			j.b.Settle(err)
		}
	}
	r.jobs = nil
}
