package flow

import "sync/atomic"

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
