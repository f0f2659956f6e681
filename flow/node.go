package flow

// Ordering says what parallel workers of one stage keep in order.
type Ordering string

// Orderings for Parallelism.
const (
	// OrderPartition keeps records of one source partition in order.
	OrderPartition Ordering = "partition"
	// OrderKey keeps records with the same key in order.
	OrderKey Ordering = "key"
	// OrderNone spreads whole batches round-robin; fastest, no order.
	OrderNone Ordering = "none"
)

// node is one source, stage or sink of a Pipeline, as added: its
// component and its options with defaults applied.
type node struct {
	id     string
	kind   Kind
	typ    string
	source Source
	stage  Stage
	sink   Sink
	// proc is the Processor of a stage added as a ProcessorStage: the
	// engine runs it through the node's middleware itself.
	proc        Processor
	inputs      []string
	buffer      int
	parallelism int
	ordering    Ordering
	policy      *ErrorPolicy
	mws         []Middleware
	sinkBatch   int
	stats       *NodeStats
}

// NodeOption configures one node.
type NodeOption func(*node)

// Inputs names the nodes (sources or stages) feeding this stage or sink.
func Inputs(ids ...string) NodeOption {
	return func(n *node) { n.inputs = append(n.inputs, ids...) }
}

// Buffer sets the capacity, in records, of this node's input edge.
func Buffer(records int) NodeOption { return func(n *node) { n.buffer = records } }

// Parallelism runs up to n workers of the node (at most MaxParallelism);
// each starts with the first batch given to it. With OrderPartition or
// OrderKey, records of one partition or key always go to the same worker.
func Parallelism(n int, o Ordering) NodeOption {
	return func(nd *node) { nd.parallelism, nd.ordering = n, o }
}

// OnError sets the node's error policy.
func OnError(pol ErrorPolicy) NodeOption {
	return func(n *node) { p := pol; n.policy = &p }
}

// Use adds middleware around the node's processor or sink writes, inside
// the engine's own recover, timeout and retry.
func Use(mws ...Middleware) NodeOption { return func(n *node) { n.mws = append(n.mws, mws...) } }

// Type labels the node with its component type for graphs and metrics.
func Type(t string) NodeOption { return func(n *node) { n.typ = t } }

// SinkBatch caps how many queued records a sink gets in one Write.
func SinkBatch(records int) NodeOption { return func(n *node) { n.sinkBatch = records } }

// NodeSettings are the engine settings in effect for one node: its
// options once defaults are applied and whatever would have no effect on
// it is dropped. Two nodes with equal NodeSettings (and equal components)
// run the same way.
type NodeSettings struct {
	Kind Kind
	// Buffer is the capacity of the node's input edge (0 for a source).
	Buffer int
	// Parallelism is the number of workers (1 for a source).
	Parallelism int
	// Ordering is what parallel workers keep in order; "" with one
	// worker, which keeps every order.
	Ordering Ordering
	// Policy is the part of the node's ErrorPolicy that acts on it.
	Policy ErrorPolicy
	// Middleware counts the node's own middleware (Use); it wraps only
	// processors and sinks.
	Middleware int
}

// Settings returns the settings in effect for the node id.
func (p *Pipeline) Settings(id string) (NodeSettings, bool) {
	n, ok := p.byID[id]
	if !ok {
		return NodeSettings{}, false
	}
	s := NodeSettings{Kind: n.kind, Parallelism: 1}
	if n.kind == KindSource {
		return s, true
	}
	s.Buffer = n.buffer
	if s.Buffer <= 0 {
		s.Buffer = p.buffer
	}
	s.Parallelism = n.parallelism
	if s.Parallelism > 1 {
		s.Ordering = n.ordering
	}
	use := p.policyUse(n)
	s.Policy = use.Effective(p.policyOf(n))
	if use.Calls {
		s.Middleware = len(n.mws)
	}
	return s, true
}
