package config

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Fake component types for the tests; the test_ prefix keeps them apart
// from real ones registered in the same binary.

var (
	opened atomic.Int64 // components built
	closed atomic.Int64 // components closed
	// lastConf records the Conf each fake was built with, by node id.
	confMu   sync.Mutex
	lastConf = map[string]*registry.Conf{}
)

func remember(c *registry.Conf) {
	confMu.Lock()
	defer confMu.Unlock()
	lastConf[c.ID] = c
}

func builtConf(id string) *registry.Conf {
	confMu.Lock()
	defer confMu.Unlock()
	return lastConf[id]
}

func resetFakes() {
	opened.Store(0)
	closed.Store(0)
	confMu.Lock()
	lastConf = map[string]*registry.Conf{}
	confMu.Unlock()
}

type closer struct{ once sync.Once }

func (c *closer) Close(context.Context) error {
	c.once.Do(func() { closed.Add(1) })
	return nil
}

// gen emits count records "r0".."rN" in one batch.
type gen struct {
	closer
	id    string
	count int
}

func (g *gen) Run(ctx context.Context, out flow.Emitter) error {
	recs := make([]flow.Record, g.count)
	for i := range recs {
		recs[i] = flow.Record{Value: []byte("r" + string(rune('a'+i%26))), Origin: flow.Origin{Source: g.id, Offset: int64(i)}}
	}
	return out.Emit(ctx, flow.NewBatch(recs, flow.NewAck(func(error) {})))
}

// upper is a Processor (not a Stage) upper-casing values.
type upper struct{ closer }

func (*upper) Process(_ context.Context, in []flow.Record, out *flow.Output) error {
	for _, r := range in {
		r.Value = bytes.ToUpper(r.Value)
		out.Records = append(out.Records, r)
	}
	return nil
}

// memSink collects written values.
type memSink struct {
	closer
	mu  sync.Mutex
	got []string
}

func (s *memSink) Write(_ context.Context, recs []flow.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.got = append(s.got, string(r.Value))
	}
	return nil
}

var sinks sync.Map // node id → *memSink

// rawStage is a flow.Stage passing batches on.
type rawStage struct{ closer }

func (*rawStage) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	for b := range in {
		if out.Emit(ctx, b) != nil {
			return nil
		}
	}
	return nil
}

// neverFails is a stage that says it never rejects a record.
type neverFails struct{ rawStage }

func (*neverFails) RejectsRecords() bool { return false }

func init() {
	registry.Register(registry.Spec{
		Kind: flow.KindSource, Type: "test_gen",
		Fields: []registry.Field{
			{Name: "count", Type: registry.Int, Default: 3, Min: ptr(0), Max: ptr(1000)}, // gen makes them in one batch
			{Name: "rate", Type: registry.Float},
			{Name: "tags", Type: registry.List, Elem: registry.String},
			{Name: "labels", Type: registry.Map, Elem: registry.String},
			{Name: "tls", Type: registry.Object, Fields: []registry.Field{
				{Name: "ca", Type: registry.String, Required: true},
				{Name: "verify", Type: registry.Bool, Default: true},
			}},
			{Name: "extra", Type: registry.Any},
		},
		Build: func(c *registry.Conf) (any, error) {
			remember(c)
			opened.Add(1)
			return &gen{id: c.ID, count: c.Int("count")}, nil
		},
	})
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_upper",
		Fields: []registry.Field{{Name: "expr", Type: registry.Expr, Required: true}},
		Build: func(c *registry.Conf) (any, error) {
			remember(c)
			if strings.Contains(c.String("expr"), "!!") {
				return nil, registry.FieldErr("expr", errors.New(`"!!" is not an operator`))
			}
			opened.Add(1)
			return &upper{}, nil
		},
	})
	registry.Register(registry.Spec{
		Kind: flow.KindSink, Type: "test_sink",
		Fields: []registry.Field{
			{Name: "path", Type: registry.String, Required: true},
			{Name: "flush", Type: registry.Duration, Default: "1s"},
			{Name: "max", Type: registry.Size, Default: "1MiB"},
		},
		Build: func(c *registry.Conf) (any, error) {
			remember(c)
			if c.String("path") == "/fail" {
				return nil, errors.New("cannot open /fail")
			}
			opened.Add(1)
			s := &memSink{}
			sinks.Store(c.ID, s)
			return s, nil
		},
	})
	// Stages of their own (not processors): the engine's retries and
	// timeouts never reach them.
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_window",
		Fields: []registry.Field{{Name: "timeout", Type: registry.Duration}},
		Build: func(c *registry.Conf) (any, error) {
			remember(c)
			opened.Add(1)
			return &rawStage{}, nil
		},
	})
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_batch",
		Build: func(c *registry.Conf) (any, error) {
			remember(c)
			opened.Add(1)
			return &neverFails{}, nil
		},
	})
	// Misbehaving types, to show Build's problems are reported, not fatal.
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_panic",
		Build: func(*registry.Conf) (any, error) { panic("boom") },
	})
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_typednil",
		Build: func(*registry.Conf) (any, error) {
			var u *upper // `return NewX(...)` of a constructor that failed
			return u, errors.New("no upper today")
		},
	})
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_wrongkind",
		Build: func(*registry.Conf) (any, error) { opened.Add(1); return &memSink{}, nil },
	})
}

func ptr(f float64) *float64 { return &f }
