package generate

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// Source is the generate source. Build it through the registry.
type Source struct {
	id    string
	count int64 // 0 = endless
	rate  float64
	batch int
	enc   *encoder
	log   *slog.Logger

	acks    watermark
	emitted atomic.Int64
}

// Run emits batches until count records were generated or ctx ends.
func (s *Source) Run(ctx context.Context, out flow.Emitter) error {
	size := s.batch
	var bucket *tokenBucket
	if s.rate > 0 {
		size = batchAt(s.rate, s.batch)
		bucket = newTokenBucket(s.rate, burstAt(s.rate, size), size, time.Now, flow.Sleep)
	}
	arrays := make(recycler, recycled)
	for seq := int64(0); s.count == 0 || seq < s.count; {
		n := size
		if s.count > 0 {
			n = int(min(int64(n), s.count-seq))
		}
		if bucket != nil {
			if bucket.take(ctx, n) != nil {
				return nil // draining
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		recs := s.enc.fill(arrays.get(n), s.id, seq, time.Now())
		ack := s.acks.track(seq, n, func() { arrays.put(recs) })
		if out.Emit(ctx, flow.NewBatch(recs, ack)) != nil {
			return nil // draining: Emit failed the batch, its ack says so
		}
		seq += int64(n)
		s.emitted.Store(seq)
	}
	return nil
}

// recycled is how many record arrays a source keeps for reuse: about what
// the edges of a pipeline hold in flight, so that at a steady pace a batch
// finds the array of one already settled.
const recycled = 32

// recycler holds the record arrays of settled batches. When a batch's ack
// fires, every copy of its records was settled (written, filtered, dead
// lettered or failed), and no node reads the records of a batch it
// settled, so the array is free; the bytes its records pointed to are not
// reused (emitted bytes are immutable and may be kept). Reusing the arrays
// spares the allocation, zeroing and garbage collection of every record
// the source emits.
type recycler chan []flow.Record

// get returns an array of n records, reused when one is free.
func (r recycler) get(n int) []flow.Record {
	select {
	case recs := <-r:
		if cap(recs) >= n {
			return recs[:n]
		}
	default:
	}
	return make([]flow.Record, n)
}

// put keeps recs for a later get, or leaves it to the collector when
// enough are kept.
func (r recycler) put(recs []flow.Record) {
	select {
	case r <- recs:
	default:
	}
}

// Acked is the number of records, from seq 0 on, that were all
// acknowledged: every seq below it reached every sink.
func (s *Source) Acked() int64 { return s.acks.contiguous() }

// Failed is the number of records whose acknowledgement reported an error.
func (s *Source) Failed() int64 { return s.acks.failed.Load() }

// Close logs how far acknowledgements reached. The line is what an operator
// (and the end-to-end test) checks against the sinks' output.
func (s *Source) Close(ctx context.Context) error {
	n := s.Acked()
	msg := "generate: acknowledged 0 records"
	if n > 0 {
		msg = fmt.Sprintf("generate: acknowledged %d records (seq 0..%d contiguous)", n, n-1)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, msg,
		slog.Int64("acked", n),
		slog.Int64("acked_total", s.acks.acked.Load()),
		slog.Int64("failed", s.Failed()),
		slog.Int64("emitted", s.emitted.Load()))
	return nil
}
