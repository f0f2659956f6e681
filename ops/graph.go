package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// graphState is what /graph.json serves: the DAG and each node's live
// numbers.
type graphState struct {
	Pipeline string      `json:"pipeline"`
	Time     time.Time   `json:"time"`
	Nodes    []nodeState `json:"nodes"`
}

// nodeState is one node in /graph.json. Rates are records per second over
// the last second or so (between the last two readings of the counters,
// at least minRateWindow apart); Fill, Buffered and Capacity describe the
// node's input edge (zero for sources, which have none).
type nodeState struct {
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`
	Type     string   `json:"type"`
	Inputs   []string `json:"inputs"`
	In       int64    `json:"in"`
	Out      int64    `json:"out"`
	Errors   int64    `json:"errors"`
	InRate   float64  `json:"in_rate"`
	OutRate  float64  `json:"out_rate"`
	Fill     float64  `json:"fill"`
	Buffered int64    `json:"buffered"`
	Capacity int64    `json:"capacity"`
	Running  bool     `json:"running"`
	// State is where a stateful stage keeps its state: "changelog"
	// (durable, in Kafka) or "memory"; absent for stateless nodes.
	State string `json:"state,omitempty"`
	// Age is a sink's record ages over the same window as the rates;
	// absent when it wrote no record with a timestamp then.
	Age *ageState `json:"age,omitempty"`
}

// ageState is how old the records a sink wrote were when it wrote them:
// how many it wrote with a timestamp, and the median and 99th percentile
// of their age in seconds, estimated from the histogram's buckets. A
// quantile past the histogram's last bound (ageLimit) is null: the
// histogram only says it is older.
type ageState struct {
	Records int64    `json:"records"`
	P50     *float64 `json:"p50"`
	P99     *float64 `json:"p99"`
}

// ageLimit is the last bound of the record age histogram.
var ageLimit = flow.AgeBounds()[len(flow.AgeBounds())-1]

func newAgeState(c flow.AgeCounts) *ageState {
	n := c.Count()
	if n <= 0 {
		return nil
	}
	return &ageState{Records: n, P50: quantileSeconds(c, 0.5), P99: quantileSeconds(c, 0.99)}
}

// quantileSeconds is c's q-quantile in seconds; nil past the last bound.
func quantileSeconds(c flow.AgeCounts, q float64) *float64 {
	d, ok := c.Quantile(q)
	if !ok || d > ageLimit {
		return nil
	}
	s := d.Seconds()
	return &s
}

// graphSource reads a pipeline's shape once and its numbers on demand.
type graphSource struct {
	pipeline string
	nodes    []flow.NodeInfo
	stats    []*flow.NodeStats
	states   []string // per node: see nodeState.State
	rates    *rateTracker
}

// Stateful is what a stage keeping state per key says about it (window,
// dedupe): "changelog" or "memory".
type Stateful interface {
	Stateful() string
}

func newGraphSource(p *flow.Pipeline) *graphSource {
	nodes, stats := p.Nodes(), p.Stats()
	states := make([]string, len(nodes))
	for i, n := range nodes {
		if s, ok := p.Component(n.ID).(Stateful); ok {
			states[i] = s.Stateful()
		}
	}
	return &graphSource{pipeline: p.Name(), nodes: nodes, stats: stats, states: states, rates: newRateTracker(len(stats))}
}

// state samples every node now.
func (g *graphSource) state(now time.Time) graphState {
	r := g.rates.read(g.stats, now)
	st := graphState{Pipeline: g.pipeline, Time: now.UTC(), Nodes: make([]nodeState, len(g.nodes))}
	for i, n := range g.nodes {
		s := g.stats[i]
		st.Nodes[i] = nodeState{
			ID: n.ID, Kind: n.Kind.String(), Type: n.Type, Inputs: append([]string{}, n.Inputs...),
			In: s.In.Load(), Out: s.Out.Load(), Errors: s.Errors.Load(),
			InRate: r.in[i], OutRate: r.out[i],
			Fill: s.Fill(), Buffered: s.Buffered(), Capacity: s.Capacity(),
			Running: s.Running(),
			State:   g.states[i],
			Age:     newAgeState(r.ages[i]),
		}
	}
	return st
}

// sample reads the counters every interval until ctx ends, so rates are
// current even before anyone asks.
func (g *graphSource) sample(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	g.rates.update(g.stats, time.Now())
	for {
		select {
		case now := <-t.C:
			g.rates.update(g.stats, now)
		case <-ctx.Done():
			return
		}
	}
}

func (g *graphSource) jsonHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := json.Marshal(g.state(time.Now()))
		if err != nil { // only NaN could do it; fills and rates are finite
			http.Error(w, fmt.Sprintf("encoding graph: %v", err), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(append(body, '\n'))
	})
}
