package flow

import (
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Defaults used when neither pipeline nor node says otherwise.
const (
	// DefaultBuffer is large enough for a sink to get a few thousand
	// records per write (it coalesces what queued on its edge), which is
	// what Kafka throughput needs; ~1 MB per edge at 100-byte records.
	DefaultBuffer       = 4096
	DefaultDrainTimeout = 30 * time.Second
	DefaultSinkBatch    = 4096
)

// Limits of what a pipeline may ask for.
const (
	// MaxParallelism bounds a node's workers: past a few hundred, more
	// goroutines on one node only add scheduling and sharding overhead
	// (a machine runs GOMAXPROCS of them at a time). Validate refuses more.
	MaxParallelism = 256
	// MaxBuffer is the largest edge capacity the config loader accepts, in
	// records. An edge takes memory as records queue on it, never its
	// capacity up front, so this bounds what a full edge may hold.
	MaxBuffer = 1 << 20
)

// Pipeline is the builder of a DAG of sources, stages and sinks. The YAML
// loader builds one too; build it from Go to embed sluice.
type Pipeline struct {
	name         string
	buffer       int
	drainTimeout time.Duration
	log          *slog.Logger
	defaultPol   ErrorPolicy
	observer     Observer

	nodes []*node
	byID  map[string]*node
	errs  []error
	ran   bool
}

// Option configures a Pipeline.
type Option func(*Pipeline)

// WithBuffer sets the default edge capacity, in records.
func WithBuffer(records int) Option { return func(p *Pipeline) { p.buffer = records } }

// WithDrainTimeout bounds the graceful drain after Run's context ends.
func WithDrainTimeout(d time.Duration) Option { return func(p *Pipeline) { p.drainTimeout = d } }

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(p *Pipeline) { p.log = l } }

// WithErrorPolicy sets the policy of nodes that have none of their own.
func WithErrorPolicy(pol ErrorPolicy) Option { return func(p *Pipeline) { p.defaultPol = pol } }

// Observer receives one call per batch a stage processed or a sink wrote,
// with how long it took: the source of latency histograms.
type Observer interface {
	ObserveBatch(node string, kind Kind, records int, took time.Duration)
}

// WithObserver sets the pipeline's Observer.
func WithObserver(o Observer) Option { return func(p *Pipeline) { p.observer = o } }

// New returns an empty pipeline.
func New(name string, opts ...Option) *Pipeline {
	p := &Pipeline{
		name:         name,
		buffer:       DefaultBuffer,
		drainTimeout: DefaultDrainTimeout,
		log:          slog.Default(),
		defaultPol:   ErrorPolicy{Action: ActionFail},
		byID:         map[string]*node{},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Name is the pipeline's name.
func (p *Pipeline) Name() string { return p.name }

// DrainTimeout is how long Run's drain may take (WithDrainTimeout).
func (p *Pipeline) DrainTimeout() time.Duration { return p.drainTimeout }

// Source adds a source node.
func (p *Pipeline) Source(id string, s Source, opts ...NodeOption) *Pipeline {
	return p.add(&node{id: id, kind: KindSource, source: s}, opts)
}

// Stage adds a stage node. Use ProcessorStage for a Processor.
func (p *Pipeline) Stage(id string, s Stage, opts ...NodeOption) *Pipeline {
	n := &node{id: id, kind: KindStage, stage: s}
	if ps, ok := s.(processorOf); ok {
		n.proc = ps.processor()
	}
	return p.add(n, opts)
}

// Sink adds a sink node.
func (p *Pipeline) Sink(id string, s Sink, opts ...NodeOption) *Pipeline {
	return p.add(&node{id: id, kind: KindSink, sink: s}, opts)
}

func (p *Pipeline) add(n *node, opts []NodeOption) *Pipeline {
	for _, o := range opts {
		o(n)
	}
	if n.parallelism < 1 {
		n.parallelism = 1
	}
	if n.ordering == "" {
		n.ordering = OrderPartition
	}
	if n.sinkBatch < 1 {
		n.sinkBatch = DefaultSinkBatch
	}
	n.stats = &NodeStats{ID: n.id, Kind: n.kind, Type: n.typ}
	if n.id == "" {
		p.errs = append(p.errs, &GraphError{Msg: fmt.Sprintf("a %s has an empty id", n.kind)})
		return p
	}
	if old, dup := p.byID[n.id]; dup {
		p.errs = append(p.errs, &GraphError{Node: n.id, Msg: fmt.Sprintf("duplicate id %q (already a %s)", n.id, old.kind)})
		return p
	}
	if n.kind != KindSource && n.stage == nil && n.sink == nil || n.kind == KindSource && n.source == nil {
		p.errs = append(p.errs, &GraphError{Node: n.id, Msg: "nil " + n.kind.String()})
		return p
	}
	p.byID[n.id] = n
	p.nodes = append(p.nodes, n)
	return p
}

// NodeInfo describes a node for graphs and docs.
type NodeInfo struct {
	ID     string
	Kind   Kind
	Type   string
	Inputs []string
}

// Component returns the Source, Stage or Sink added under id (nil if none),
// so the host process can look for optional capabilities such as Readier
// or a metrics collector. For a ProcessorStage it returns the Processor.
func (p *Pipeline) Component(id string) any {
	n, ok := p.byID[id]
	if !ok {
		return nil
	}
	switch n.kind {
	case KindSource:
		return n.source
	case KindStage:
		if n.proc != nil {
			return n.proc
		}
		return n.stage
	}
	return n.sink
}

// Nodes lists the nodes in the order they were added.
func (p *Pipeline) Nodes() []NodeInfo {
	out := make([]NodeInfo, len(p.nodes))
	for i, n := range p.nodes {
		out[i] = NodeInfo{ID: n.id, Kind: n.kind, Type: n.typ, Inputs: slices.Clone(n.inputs)}
	}
	return out
}

func (p *Pipeline) policyOf(n *node) ErrorPolicy {
	if n.policy != nil {
		return *n.policy
	}
	return p.defaultPol
}
