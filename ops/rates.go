package ops

import (
	"sync"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// minRateWindow is the shortest interval rates are computed over: shorter
// windows make the numbers jump with every batch.
const minRateWindow = 500 * time.Millisecond

// counts is one node's counters at one instant.
type counts struct {
	in, out int64
	ages    flow.AgeCounts
}

// rateTracker turns counters into records per second, and a sink's record
// age histogram into the ages of the records it wrote, over the interval
// between two readings at least minRateWindow apart. Server's sampler
// reads every second; every /graph.json request reads too, so a Handler
// mounted without a sampler still has rates.
type rateTracker struct {
	mu      sync.Mutex
	at      time.Time // when prev was read
	prev    []counts
	inRate  []float64
	outRate []float64
	ages    []flow.AgeCounts // counted between the last two readings
}

// reading is what rateTracker.read returns: per node, in the order of the
// stats read; the slices are copies.
type reading struct {
	in, out []float64
	ages    []flow.AgeCounts
}

func newRateTracker(nodes int) *rateTracker {
	return &rateTracker{inRate: make([]float64, nodes), outRate: make([]float64, nodes), ages: make([]flow.AgeCounts, nodes)}
}

// update reads stats at now and returns the current per-node rates.
func (t *rateTracker) update(stats []*flow.NodeStats, now time.Time) (in, out []float64) {
	r := t.read(stats, now)
	return r.in, r.out
}

// read reads stats at now and returns the current per-node rates and
// record ages.
func (t *rateTracker) read(stats []*flow.NodeStats, now time.Time) reading {
	t.mu.Lock()
	defer t.mu.Unlock()
	dt := now.Sub(t.at)
	if t.prev == nil || dt >= minRateWindow {
		cur := make([]counts, len(stats))
		for i, s := range stats {
			cur[i] = counts{in: s.In.Load(), out: s.Out.Load()}
			if s.Kind == flow.KindSink {
				cur[i].ages = s.Ages()
			}
		}
		if t.prev != nil {
			for i := range cur {
				t.inRate[i] = float64(cur[i].in-t.prev[i].in) / dt.Seconds()
				t.outRate[i] = float64(cur[i].out-t.prev[i].out) / dt.Seconds()
				t.ages[i] = cur[i].ages.Sub(t.prev[i].ages)
			}
		}
		t.prev, t.at = cur, now
	}
	return reading{
		in:   append([]float64(nil), t.inRate...),
		out:  append([]float64(nil), t.outRate...),
		ages: append([]flow.AgeCounts(nil), t.ages...),
	}
}
