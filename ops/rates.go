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
type counts struct{ in, out int64 }

// rateTracker turns counters into records per second over the interval
// between two readings at least minRateWindow apart. Server's sampler
// reads every second; every /graph.json request reads too, so a Handler
// mounted without a sampler still has rates.
type rateTracker struct {
	mu      sync.Mutex
	at      time.Time // when prev was read
	prev    []counts
	inRate  []float64
	outRate []float64
}

func newRateTracker(nodes int) *rateTracker {
	return &rateTracker{inRate: make([]float64, nodes), outRate: make([]float64, nodes)}
}

// update reads stats at now and returns the current per-node rates (in
// the order of stats); the slices are copies.
func (t *rateTracker) update(stats []*flow.NodeStats, now time.Time) (in, out []float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	dt := now.Sub(t.at)
	if t.prev == nil || dt >= minRateWindow {
		cur := make([]counts, len(stats))
		for i, s := range stats {
			cur[i] = counts{in: s.In.Load(), out: s.Out.Load()}
		}
		if t.prev != nil {
			for i := range cur {
				t.inRate[i] = float64(cur[i].in-t.prev[i].in) / dt.Seconds()
				t.outRate[i] = float64(cur[i].out-t.prev[i].out) / dt.Seconds()
			}
		}
		t.prev, t.at = cur, now
	}
	return append([]float64(nil), t.inRate...), append([]float64(nil), t.outRate...)
}
