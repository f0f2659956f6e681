package flow

import (
	"math"
	"sync/atomic"
	"time"
)

// NodeStats are a node's live counters. The engine updates them; metrics,
// the progress line and the graph page read them.
type NodeStats struct {
	ID   string
	Kind Kind
	Type string

	In           atomic.Int64 // records taken from the input edge (sources: emitted)
	Out          atomic.Int64 // records emitted downstream
	Errors       atomic.Int64 // records that failed after retries
	Retries      atomic.Int64 // records retried
	Skipped      atomic.Int64
	DeadLettered atomic.Int64
	Batches      atomic.Int64

	// edge is set when Run wires the graph, while metrics may already be
	// reading: hence atomic.
	edge     atomic.Pointer[edge]
	running  atomic.Int32
	emitting atomic.Int32

	ages ageHistogram // a sink's: see Ages
}

// Fill is the input edge's fill ratio (0..1); sources have none.
func (s *NodeStats) Fill() float64 {
	e := s.edge.Load()
	if e == nil {
		return 0
	}
	return e.fill()
}

// Buffered is the number of records waiting on the input edge.
func (s *NodeStats) Buffered() int64 {
	e := s.edge.Load()
	if e == nil {
		return 0
	}
	return e.used.Load()
}

// Capacity is the input edge capacity in records.
func (s *NodeStats) Capacity() int64 {
	e := s.edge.Load()
	if e == nil {
		return 0
	}
	return e.capacity
}

// Running reports whether the node still has live workers.
func (s *NodeStats) Running() bool { return s.running.Load() > 0 }

// Stats returns the live counters of every node, in the order added.
func (p *Pipeline) Stats() []*NodeStats {
	out := make([]*NodeStats, len(p.nodes))
	for i, n := range p.nodes {
		out[i] = n.stats
	}
	return out
}

// The age of a record is how long ago its source stamped it
// (Record.Timestamp) when a sink finished writing it: the end-to-end
// latency a user sees. Every sink keeps a histogram of it; metrics export
// it, the graph page and the progress lines show its quantiles.

// ageBounds are the upper bounds of the age histogram's buckets, from a
// tenth of a millisecond (a record written as soon as it came) to ten
// minutes (a consumer working off a backlog); older records fall in one
// last bucket without a bound.
var ageBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute,
	2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
}

// AgeBuckets is the number of buckets of a record age histogram: one per
// bound of AgeBounds, and one for the ages past the last.
const AgeBuckets = len(ageBounds) + 1

// AgeBounds returns the upper bounds of a record age histogram's buckets
// (inclusive, as Prometheus's "le"), in increasing order.
func AgeBounds() []time.Duration { return append([]time.Duration(nil), ageBounds[:]...) }

// AgeCounts is a sink's record age histogram at one instant, or the
// difference of two (Sub): how many records fell in each bucket (not
// cumulative; Buckets[i] counts ages in (AgeBounds()[i-1], AgeBounds()[i]],
// the last bucket those past every bound) and the sum of their ages.
type AgeCounts struct {
	Buckets [AgeBuckets]int64
	Sum     float64 // seconds
}

// Count is the number of records counted.
func (c AgeCounts) Count() int64 {
	var n int64
	for _, b := range c.Buckets {
		n += b
	}
	return n
}

// Sub is what was counted since prev, an earlier reading of the same
// histogram: the ages of a window.
func (c AgeCounts) Sub(prev AgeCounts) AgeCounts {
	for i := range c.Buckets {
		c.Buckets[i] -= prev.Buckets[i]
	}
	c.Sum -= prev.Sum
	return c
}

// AgeOverflow is the Quantile of ages past the last bound of AgeBounds:
// the histogram only says they are older than that.
const AgeOverflow = time.Duration(math.MaxInt64)

// Quantile estimates the q-quantile (0 < q <= 1) of the ages counted,
// interpolating linearly inside the bucket it falls in, as Prometheus's
// histogram_quantile does; it is AgeOverflow when that bucket is the last,
// unbounded one. ok is false when nothing was counted.
func (c AgeCounts) Quantile(q float64) (age time.Duration, ok bool) {
	total := c.Count()
	if total <= 0 {
		return 0, false
	}
	rank := min(max(q, 0), 1) * float64(total)
	var below int64
	for i, n := range c.Buckets {
		if n <= 0 || float64(below+n) < rank {
			below += max(n, 0)
			continue
		}
		if i == len(ageBounds) {
			return AgeOverflow, true
		}
		var lo time.Duration
		if i > 0 {
			lo = ageBounds[i-1]
		}
		f := (rank - float64(below)) / float64(n)
		return lo + time.Duration(f*float64(ageBounds[i]-lo)), true
	}
	return AgeOverflow, true // rounding left rank past the total
}

// ageHistogram is a sink's record age histogram, shared by its workers:
// each counts a written batch in its own (stack) counters and adds them
// here once per batch, so the per-record cost is a subtraction, a few
// comparisons and an increment, with no lock and no allocation.
type ageHistogram struct {
	buckets [AgeBuckets]atomic.Int64
	sum     atomic.Uint64 // float64 bits, seconds
}

// observe counts the ages of recs, written just now; records without a
// timestamp are not counted. It reads the clock once, and not at all when
// no record has a timestamp.
func (h *ageHistogram) observe(recs []Record) {
	for i := range recs {
		if !recs[i].Timestamp.IsZero() {
			h.observeAt(recs[i:], time.Now())
			return
		}
	}
}

// observeAt counts the ages of recs at now.
func (h *ageHistogram) observeAt(recs []Record, now time.Time) {
	var counts [AgeBuckets]int64
	var sum float64
	at := now.UnixNano()
	// Records of one batch mostly share a bucket: the last one found is
	// tried first, and searched for only when the age is outside it; the
	// records in a row in one bucket are counted in run.
	b, lo, hi := 0, time.Duration(0), time.Duration(-1) // (lo, hi]: empty
	var run int64
	for i := range recs {
		ts := &recs[i].Timestamp
		if ts.IsZero() {
			continue
		}
		age := max(time.Duration(at-ts.UnixNano()), 0) // a clock ahead of ours: age 0
		if age <= lo || age > hi {
			counts[b] += run
			run = 0
			b = ageBucket(age)
			lo, hi = -1, time.Duration(math.MaxInt64)
			if b > 0 {
				lo = ageBounds[b-1]
			}
			if b < len(ageBounds) {
				hi = ageBounds[b]
			}
		}
		run++
		sum += float64(age)
	}
	counts[b] += run
	for i, n := range counts {
		if n != 0 {
			h.buckets[i].Add(n)
		}
	}
	if sum == 0 {
		return
	}
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+sum/1e9)) {
			return
		}
	}
}

// ageBucket is the index of the first bound at or above age, or
// len(ageBounds) past the last.
func ageBucket(age time.Duration) int {
	lo, hi := 0, len(ageBounds)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if age <= ageBounds[m] {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// read returns the histogram's counts now.
func (h *ageHistogram) read() AgeCounts {
	var c AgeCounts
	for i := range h.buckets {
		c.Buckets[i] = h.buckets[i].Load()
	}
	c.Sum = math.Float64frombits(h.sum.Load())
	return c
}

// Ages is the histogram of the age of the records a sink wrote since the
// run started: now minus Record.Timestamp when the Write returned, for the
// records of every Write that wrote at least one of them (those a partly
// failed Write could not write count too: it is their age at the attempt).
// Records without a timestamp are not counted; other nodes count none.
func (s *NodeStats) Ages() AgeCounts { return s.ages.read() }
