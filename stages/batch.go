package stages

import (
	"context"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// batchConfig is the batch stage's config.
type batchConfig struct {
	Size   int
	Bytes  registry.ByteSize
	Linger time.Duration
}

func init() {
	registry.Declare(registry.Component[batchConfig]{
		Kind:    flow.KindStage,
		Type:    "batch",
		Summary: "group records into batches by count, bytes and time",
		Fields: func(c *batchConfig) []registry.Field {
			return []registry.Field{
				registry.Bind(&c.Size, "size", "records per batch",
					registry.Default(1000), registry.Range(1, MaxBatchSize), registry.Example(500)),
				registry.Bind(&c.Bytes, "bytes", "cap on a batch's payload bytes (keys, values, headers); a larger record goes alone; no cap when unset",
					registry.Range(registry.ByteSize(1), registry.ByteSize(MaxBatchBytes)), registry.Example("1MiB")),
				registry.Bind(&c.Linger, "linger", "longest a record waits for its batch to fill, counted from the batch's first record; 0 waits for size or bytes (or the drain)",
					registry.Default(100*time.Millisecond), registry.Range(time.Duration(0), MaxLinger), registry.Example("50ms")),
			}
		},
		Build: func(c *batchConfig, _ *registry.Conf) (any, error) {
			return NewBatcher(c.Size, int(c.Bytes), c.Linger), nil
		},
	})
}

// Batcher is the batch stage: it re-cuts the stream into batches of up to
// size records and maxBytes bytes, emitting a partial one after linger.
// An emitted batch holds the acks of every input batch it took records
// from; a split input batch is held by each output it went into.
type Batcher struct {
	size     int
	maxBytes int
	linger   time.Duration
}

// NewBatcher returns a batch stage; maxBytes 0 means no byte cap, linger 0
// no time limit.
func NewBatcher(size, maxBytes int, linger time.Duration) *Batcher {
	return &Batcher{size: max(size, 1), maxBytes: maxBytes, linger: linger}
}

// RejectsRecords implements flow.Rejecter: a batch never fails a record,
// so on_error has nothing to act on.
func (*Batcher) RejectsRecords() bool { return false }

// Run implements flow.Stage.
func (s *Batcher) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	acc := accumulator{Batcher: s, hold: flow.NewBatch(nil)}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var lingering <-chan time.Time
	flush := func() bool {
		timer.Stop()
		lingering = nil
		b := acc.take()
		if b == nil {
			return true
		}
		return out.Emit(ctx, b) == nil
	}
	for {
		select {
		case b, ok := <-in:
			if !ok {
				flush()
				return nil
			}
			if len(b.Records) == 0 {
				b.Settle(nil)
				continue
			}
			if len(acc.recs) == 0 && len(b.Records) == s.size && s.maxBytes == 0 {
				// Already the right shape: pass it on untouched.
				if out.Emit(ctx, b) != nil {
					return nil
				}
				continue
			}
			for recs := b.Records; len(recs) > 0; {
				var full bool
				recs, full = acc.add(b, recs)
				if full && !flush() {
					acc.hold.Settle(ctx.Err())
					if len(recs) > 0 {
						b.Settle(ctx.Err())
					}
					return nil
				}
			}
			if len(acc.recs) > 0 && lingering == nil && s.linger > 0 {
				timer.Reset(s.linger)
				lingering = timer.C
			}
		case <-lingering:
			lingering = nil
			if !flush() {
				return nil
			}
		}
	}
}

// accumulator is the batch being filled.
type accumulator struct {
	*Batcher
	recs  []flow.Record
	bytes int
	hold  *flow.Batch // the acks of the inputs in recs
}

// add takes what fits of recs (the unconsumed part of b) and returns the
// rest and whether the batch is full. It takes b's ack references, or a
// derived copy when part of b is left for the next batch.
func (a *accumulator) add(b *flow.Batch, recs []flow.Record) (rest []flow.Record, full bool) {
	n := 0
	for n < len(recs) && len(a.recs)+n < a.size {
		if a.maxBytes > 0 {
			sz := recs[n].Size()
			if a.bytes+sz > a.maxBytes && len(a.recs)+n > 0 {
				full = true
				break
			}
			a.bytes += sz
		}
		n++
	}
	if n > 0 {
		if a.recs == nil {
			a.recs = make([]flow.Record, 0, min(a.size, 4096))
		}
		a.recs = append(a.recs, recs[:n]...)
		if n < len(recs) {
			a.hold.Absorb(b.Derive(nil))
		} else {
			a.hold.Absorb(b)
		}
	}
	return recs[n:], full || len(a.recs) >= a.size
}

// take returns the filled batch and starts a new one; nil when empty.
func (a *accumulator) take() *flow.Batch {
	if len(a.recs) == 0 {
		return nil
	}
	b := a.hold
	b.Records = a.recs
	a.hold, a.recs, a.bytes = flow.NewBatch(nil), nil, 0
	return b
}
