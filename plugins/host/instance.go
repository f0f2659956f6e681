package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

const (
	// maxStartFailures in a row (handshake, Info or Configure failing)
	// fail the stage: the plugin cannot run at all.
	maxStartFailures = 5
	// maxIdleDeaths in a row of processes that died with nothing in flight
	// and never answered a batch fail the stage too: no record is to blame.
	maxIdleDeaths = 5
	// poisonAfter: a lone record is failed once it killed the process this
	// many times on its own (once could be a coincidence, e.g. an OOM).
	poisonAfter = 2
)

// restartBackoff spaces restarts that taught nothing; restarts that
// narrowed a poison batch down go at once.
var restartBackoff = flow.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}

// instance supervises one plugin process slot: it restarts the process on
// a crash, a hang or a broken stream, resends what was in flight and
// bisects batches that keep killing it. All its state is owned by its one
// goroutine (run).
type instance struct {
	s    *Stage
	id   int
	warm *process
	pid  atomic.Int64
	log  *slog.Logger

	// suspects were in flight when a process died. They are sent one at a
	// time, before any new work, until each was answered or split.
	suspects []*chunk
}

type outcomeKind int

const (
	outcomeFailed    outcomeKind = iota // the process died or hung: restart
	outcomeClosed                       // drained and shut down for Close
	outcomeCancelled                    // the stage's context ended
)

type outcome struct {
	kind     outcomeKind
	learned  bool // the failure narrowed a suspect down
	progress bool // the process answered at least one batch
	idle     bool // nothing was in flight when it died
}

func (in *instance) run() {
	s := in.s
	defer s.wg.Done()
	in.log = s.cfg.Logger.With("plugin", s.cfg.Name, "instance", in.id)
	startFails, strikes, idleDeaths := 0, 0, 0
	for {
		p := in.warm
		in.warm = nil
		if p == nil {
			if in.closingWithNothingLeft() || s.ctx.Err() != nil {
				return
			}
			var err error
			p, err = s.launch.start(s.ctx)
			if err != nil {
				if s.ctx.Err() != nil {
					return
				}
				startFails++
				in.log.Error("plugin failed to start", "attempt", startFails, "err", err)
				if startFails >= maxStartFailures {
					s.fail(fmt.Errorf("plugin %s failed to start %d times in a row: %w", s.cfg.Name, startFails, err))
					return
				}
				if !in.pause(restartBackoff.Delay(startFails)) {
					return
				}
				continue
			}
		}
		startFails = 0
		in.pid.Store(int64(p.pid()))
		out := in.serve(p)
		in.pid.Store(0)
		switch out.kind {
		case outcomeClosed:
			return
		case outcomeCancelled:
			p.kill()
			return
		}
		p.kill()
		s.noteRestart()
		if out.progress {
			strikes, idleDeaths = 0, 0
		}
		if out.idle && !out.progress {
			idleDeaths++
			if idleDeaths >= maxIdleDeaths {
				s.fail(fmt.Errorf("plugin %s died %d times in a row without answering a batch", s.cfg.Name, idleDeaths))
				return
			}
		}
		delay := time.Duration(0)
		if !out.learned {
			strikes++
			delay = restartBackoff.Delay(strikes)
		}
		if !in.pause(delay) {
			return
		}
	}
}

func (in *instance) closingWithNothingLeft() bool {
	select {
	case <-in.s.closing:
		return len(in.suspects) == 0
	default:
		return false
	}
}

// pause waits d unless the stage is cancelled first. Close cuts it short:
// a restart backoff (up to restartBackoff.Max) must not eat the drain's
// deadline when there is nothing left to do, and anything left should go
// now.
func (in *instance) pause(d time.Duration) bool {
	if d <= 0 {
		return in.s.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.s.closing:
	case <-in.s.ctx.Done():
	}
	return in.s.ctx.Err() == nil
}

// serve feeds one process until it fails or the stage closes.
func (in *instance) serve(p *process) outcome {
	s := in.s
	cfg := &s.cfg
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	stream, err := p.rpc.Process(ctx)
	if err != nil {
		in.log.Warn("plugin stream failed to open; restarting", "err", err)
		return outcome{kind: outcomeFailed, idle: true}
	}
	sess := startSession(ctx, cancel, stream, cfg.Window)
	defer sess.stop()

	var inflight []*chunk // in seq order
	var seq uint64
	progress := false
	progressAt := time.Now()
	tick := time.NewTicker(min(max(cfg.Timeout/8, 5*time.Millisecond), time.Second))
	defer tick.Stop()
	closing := s.closing
	draining := false
	maxRecord := s.launch.maxMessage - 1<<20

	send := func(c *chunk) {
		seq++
		c.seq = seq
		if len(inflight) == 0 {
			progressAt = time.Now()
		}
		inflight = append(inflight, c)
		sess.sendq <- c // never blocks: at most Window chunks are in flight
	}
	answer := func(r *pb.Result) bool {
		i := slices.IndexFunc(inflight, func(c *chunk) bool { return c.seq == r.GetSeq() })
		if i < 0 {
			return false
		}
		c := inflight[i]
		inflight = slices.Delete(inflight, i, i+1)
		c.apply(r)
		c.answered()
		progress = true
		progressAt = time.Now()
		return true
	}
	failed := func(reason string) outcome {
		return outcome{kind: outcomeFailed, learned: in.blame(inflight, reason), progress: progress, idle: len(inflight) == 0}
	}
	for {
		if len(inflight) == 0 && len(in.suspects) > 0 {
			c := in.suspects[0]
			in.suspects = in.suspects[1:]
			send(c) // alone: if the process dies now, this chunk did it
		}
		if draining && len(inflight) == 0 {
			return in.finish(p, sess)
		}
		var work <-chan *chunk
		if !draining && len(in.suspects) == 0 && len(inflight) < cfg.Window {
			work = s.work
		}
		select {
		case c := <-work:
			if len(c.recs) == 1 && c.bytes > maxRecord {
				c.needRes()
				c.res[0] = result{err: fmt.Errorf("%w (%d bytes, limit %d)", errTooLarge, c.bytes, maxRecord)}
				c.answered()
				continue
			}
			send(c)
		case r := <-sess.replies:
			if !answer(r) {
				in.log.Error("plugin answered a batch it was not sent; restarting it", "seq", r.GetSeq())
				return failed(fmt.Sprintf("answered unknown batch %d", r.GetSeq()))
			}
		case err := <-sess.errc:
			// Answers that arrived before the break still count.
			for drained := false; !drained; {
				select {
				case r := <-sess.replies:
					answer(r)
				default:
					drained = true
				}
			}
			reason := p.exitReason(time.Second, "stream broke: "+err.Error())
			in.log.Warn("plugin process failed; restarting it", "reason", reason, "in_flight", len(inflight))
			return failed(reason)
		case <-tick.C:
			if len(inflight) > 0 && time.Since(progressAt) >= cfg.Timeout {
				s.hangs.Add(1)
				reason := fmt.Sprintf("no reply within timeout %s", cfg.Timeout)
				in.log.Warn("plugin made no progress; killing and restarting it", "timeout", cfg.Timeout, "in_flight", len(inflight))
				return failed(reason)
			}
		case <-closing:
			closing = nil
			draining = true
		case <-ctx.Done():
			return outcome{kind: outcomeCancelled}
		}
	}
}

// blame updates the suspects after a process failed with inflight
// unanswered. Alone in flight, a chunk is split, or, down to one record,
// failed as poison; otherwise every chunk becomes a suspect. It reports
// whether the search advanced.
func (in *instance) blame(inflight []*chunk, reason string) bool {
	if len(inflight) != 1 {
		in.suspects = append(slices.Clone(inflight), in.suspects...)
		return false
	}
	c := inflight[0]
	if len(c.recs) > 1 {
		a, b := c.halve()
		in.suspects = append([]*chunk{a, b}, in.suspects...)
		return true
	}
	c.alone++
	if c.alone < poisonAfter {
		in.suspects = append([]*chunk{c}, in.suspects...)
		return false
	}
	in.s.poisoned.Add(1)
	o := c.recs[0].Origin
	in.log.Warn("record isolated: it fails the plugin on its own", "reason", reason,
		"source", o.Source, "topic", o.Topic, "partition", o.Partition, "offset", o.Offset)
	c.needRes()
	c.res[0] = result{err: &PoisonError{Plugin: in.s.cfg.Name, Reason: reason}}
	c.answered()
	return true
}

// finish is the graceful end of a process: close the stream, wait for the
// plugin to end its side, then Drain, Close and kill.
func (in *instance) finish(p *process, sess *session) outcome {
	ctx := in.s.closeCtx
	close(sess.sendq)
	select {
	case err := <-sess.errc:
		if !errors.Is(err, io.EOF) {
			in.log.Warn("plugin stream ended badly during drain", "err", err)
		}
	case <-ctx.Done():
		in.s.addCloseErr(fmt.Errorf("instance %d (pid %d): the plugin did not end its Process stream before the drain deadline", in.id, p.pid()))
	}
	sess.stop()
	if err := p.shutdown(ctx); err != nil {
		in.s.addCloseErr(fmt.Errorf("instance %d (pid %d): %w", in.id, p.pid(), err))
	}
	return outcome{kind: outcomeClosed}
}

// session is one process's Process stream: a sender and a receiver
// goroutine, so neither a slow plugin nor a blocked Send can stall the
// supervisor (and its watchdog).
type session struct {
	stream  pb.Processor_ProcessClient
	sendq   chan *chunk
	replies chan *pb.Result
	errc    chan error // the first error of either goroutine; io.EOF on a clean end
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// startSession runs the goroutines of stream, whose context is ctx;
// cancel ends it.
func startSession(ctx context.Context, cancel context.CancelFunc, stream pb.Processor_ProcessClient, window int) *session {
	ss := &session{
		stream:  stream,
		sendq:   make(chan *chunk, window),
		replies: make(chan *pb.Result, window),
		errc:    make(chan error, 2),
		cancel:  cancel,
	}
	ss.wg.Add(2)
	go ss.sendLoop(ctx)
	go ss.recvLoop(ctx)
	return ss
}

// stop cancels the stream, which ends both goroutines, and waits for them.
func (ss *session) stop() {
	ss.cancel()
	ss.wg.Wait()
}

func (ss *session) sendLoop(ctx context.Context) {
	defer ss.wg.Done()
	// Reused from batch to batch: Send has marshalled a message by the
	// time it returns.
	var (
		batch pb.Batch
		recs  pb.Records
		enc   wire.Encoder
	)
	for {
		var c *chunk
		var ok bool
		select {
		case c, ok = <-ss.sendq:
		case <-ctx.Done():
			return
		}
		if !ok {
			if err := ss.stream.CloseSend(); err != nil {
				ss.errc <- err
			}
			return
		}
		enc.Reset(&recs, true)
		for i := range c.recs {
			enc.Add(&c.recs[i])
		}
		enc.Finish()
		batch.Seq = c.seq
		batch.Records = &recs
		if err := ss.stream.Send(&batch); err != nil {
			ss.errc <- err
			return
		}
	}
}

func (ss *session) recvLoop(ctx context.Context) {
	defer ss.wg.Done()
	for {
		r, err := ss.stream.Recv()
		if err != nil {
			ss.errc <- err
			return
		}
		select {
		case ss.replies <- r:
		case <-ctx.Done():
			return
		}
	}
}
