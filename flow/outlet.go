package flow

import (
	"context"
	"log/slog"
	"time"
)

// outlet is the Emitter the engine gives each node: Emit sends downstream,
// Reject applies the node's error policy.
type outlet struct {
	id     string
	stats  *NodeStats
	policy ErrorPolicy
	outs   []*edge
	dlq    *edge // the dead-letter sink's input, with ActionDeadLetter
	log    *slog.Logger
	fail   func(error) // fails the whole run (ActionFail)
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
	switch o.policy.Action {
	case ActionSkip:
		o.stats.Skipped.Add(int64(len(failed)))
		o.log.Warn("records skipped", "node", o.id, "count", len(failed), "first_error", failed[0].Err, "origin", failed[0].Record.Origin)
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
			o.fail(rf)
		}
		return nil
	}
}
