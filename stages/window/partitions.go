package window

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/sluicedev/sluice/flow"
	statelog "github.com/sluicedev/sluice/state"
)

// durable is what a stage with state: changelog shares across its workers:
// the state writer, the changelogs and the partitions held, for metrics.
type durable struct {
	mu    sync.Mutex
	w     *statelog.Writer
	logs  map[logKey]statelog.Changelog
	parts map[*part]struct{}
}

type logKey struct {
	owner any
	topic string
}

func (s *Stage) writer() *statelog.Writer {
	s.dur.mu.Lock()
	defer s.dur.mu.Unlock()
	if s.dur.w == nil {
		s.dur.w = statelog.NewWriter(maxPendingRecords)
	}
	return s.dur.w
}

// changelog opens (once per stage and source topic) the changelog of the
// source that made lease.
func (s *Stage) changelog(ctx context.Context, lease *flow.Lease, topic string) (statelog.Changelog, error) {
	prov, ok := statelog.ProviderOf(lease.Owner)
	if !ok {
		return nil, statelog.ErrNoProvider
	}
	s.dur.mu.Lock()
	defer s.dur.mu.Unlock()
	k := logKey{lease.Owner, topic}
	if cl := s.dur.logs[k]; cl != nil {
		return cl, nil
	}
	cl, err := prov.Changelog(ctx, statelog.Spec{Stage: s.cfg.ID, Topic: topic, Prefix: s.cfg.ChangelogPrefix})
	if err != nil {
		return nil, err
	}
	if s.dur.logs == nil {
		s.dur.logs = map[logKey]statelog.Changelog{}
	}
	s.dur.logs[k] = cl
	return cl, nil
}

// Close implements flow.Closer: with durable state it writes what is
// queued and closes the changelogs.
func (s *Stage) Close(ctx context.Context) error {
	s.dur.mu.Lock()
	w, logs := s.dur.w, s.dur.logs
	s.dur.w, s.dur.logs = nil, nil
	s.dur.mu.Unlock()
	if w != nil {
		// Records whose changes were not written were failed back to the
		// source (read again after a restart): nothing is lost, so the
		// shutdown itself does not fail. What may be left out is a mark
		// of windows closed, which makes the next owner emit them again.
		if werr := w.Close(ctx); werr != nil {
			s.log.Warn("window: state writes not finished at close; the records behind them are read again after the restart", "err", werr)
		}
	}
	for _, cl := range logs {
		_ = cl.Close(ctx)
	}
	return nil
}

// runDurable is Run with state: changelog.
func (s *Stage) runDurable(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	f := s.writer()
	parts := map[partKey]*part{}
	revoked := make(chan *part)
	stop := make(chan struct{})
	var watchers sync.WaitGroup
	drop := func(p *part) {
		delete(parts, p.key)
		s.dur.mu.Lock()
		delete(s.dur.parts, p)
		s.dur.mu.Unlock()
		f.Retire(p.sp)
	}
	defer func() {
		close(stop)
		watchers.Wait()
		for _, p := range parts {
			drop(p)
		}
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var tick <-chan time.Time
	arm := func() {
		timer.Stop()
		tick = nil
		if s.cfg.EventTime {
			return
		}
		next := int64(math.MaxInt64)
		for _, p := range parts {
			if len(p.st.heap) > 0 {
				next = min(next, p.st.heap[0].end)
			}
		}
		if next == math.MaxInt64 {
			return
		}
		timer.Reset(max(time.Duration(next-s.now().UnixNano()), 0))
		tick = timer.C
	}
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return nil // open windows stay in the changelog for the next run
			}
			if err := f.Err(); err != nil {
				b.Settle(err)
				return err
			}
			for _, pb := range statelog.SplitByPartition(b) {
				if err := s.addDurable(ctx, out, f, parts, pb, func(p *part) {
					watchers.Go(func() {
						select {
						case <-p.sp.Lease.Done():
							select {
							case revoked <- p:
							case <-stop:
							}
						case <-stop:
						}
					})
				}); err != nil {
					return err
				}
			}
			arm()
		case p := <-revoked:
			if parts[p.key] == p {
				s.log.Info("window: partition revoked; its state is written and dropped here", "partition", p.key.String(),
					"open_windows", len(p.st.heap))
				drop(p)
			}
			arm()
		case <-tick:
			now := s.now().UnixNano()
			for _, p := range parts {
				p.st.watermark = max(p.st.watermark, now)
				if err := s.emitDurable(ctx, out, f, p, p.st.closeUpTo(now)); err != nil {
					return nil // the pipeline is failing: ctx ended
				}
			}
			arm()
		}
	}
}

// addDurable counts b (records of one partition) into its partition's
// windows, restoring them first when the partition is new here.
func (s *Stage) addDurable(ctx context.Context, out flow.Emitter, f *statelog.Writer, parts map[partKey]*part, b *flow.Batch, watch func(*part)) error {
	if b.Len() == 0 {
		b.Settle(nil)
		return nil
	}
	o := b.Records[0].Origin
	if o.Lease == nil {
		err := fmt.Errorf("window %s: %w", s.cfg.ID, statelog.ErrNoProvider)
		b.Settle(err)
		return err
	}
	key := partKey{o.Lease.Owner, o.Topic, o.Partition}
	p := parts[key]
	if p != nil && p.sp.Lease != o.Lease {
		// Assigned again after a rebalance: what another member wrote
		// since is in the changelog, not here.
		delete(parts, key)
		s.dur.mu.Lock()
		delete(s.dur.parts, p)
		s.dur.mu.Unlock()
		f.Retire(p.sp)
		p = nil
	}
	if p == nil {
		if !o.Lease.Hold() {
			b.Settle(errRevoked)
			return nil
		}
		cl, err := s.changelog(ctx, o.Lease, o.Topic)
		if err != nil {
			o.Lease.Release()
			err = fmt.Errorf("window %s: changelog for topic %s: %w", s.cfg.ID, o.Topic, err)
			b.Settle(err)
			return err
		}
		p = &part{key: key, sp: &statelog.Part{Log: cl, Partition: key.partition, Lease: o.Lease}, applied: -1, closed: math.MinInt64}
		p.st = newState(s)
		p.st.part = p
		due, err := s.restore(ctx, p)
		if err != nil {
			o.Lease.Release()
			b.Settle(err)
			return err
		}
		parts[key] = p
		s.dur.mu.Lock()
		if s.dur.parts == nil {
			s.dur.parts = map[*part]struct{}{}
		}
		s.dur.parts[p] = struct{}{}
		s.dur.mu.Unlock()
		watch(p)
		if err := s.emitDurable(ctx, out, f, p, due); err != nil {
			b.Settle(err)
			return nil
		}
	}
	st := p.st
	if err := st.add(ctx, out, b); err != nil {
		return nil // b settled: the pipeline is failing
	}
	for i := range b.Records {
		p.applied = max(p.applied, b.Records[i].Origin.Offset)
	}
	fp := s.cfg.fingerprint()
	if err := f.Batch(ctx, p.sp, b, func(put statelog.Put) {
		for _, pn := range st.touched {
			pn = pn.live()
			put(paneKey(pn.key, pn.start), st.encodePane(pn))
		}
		put([]byte{keyProgress}, st.encodeProgress(fp))
	}); err != nil {
		return err
	}
	closed := append(st.out, st.closeUpTo(st.watermark)...)
	st.out = nil
	p.panes.Store(int64(len(st.heap)))
	if err := s.emitDurable(ctx, out, f, p, closed); err != nil {
		return nil
	}
	return nil
}

// emitDurable emits closed windows in a batch with an ack of its own: the
// inputs were acknowledged when their changes were written.
func (s *Stage) emitDurable(ctx context.Context, out flow.Emitter, f *statelog.Writer, p *part, closed []*pane) error {
	if len(closed) == 0 {
		return nil
	}
	recs := make([]flow.Record, len(closed))
	ids := make([]paneID, len(closed))
	end := int64(math.MinInt64)
	for i, pn := range closed {
		recs[i] = p.st.record(pn)
		ids[i] = paneID{pn.key, pn.start}
		end = max(end, pn.end)
	}
	p.panes.Store(int64(len(p.st.heap)))
	return out.Emit(ctx, flow.NewBatch(recs, flow.NewAck(s.emitted(f, p, end, ids))))
}
