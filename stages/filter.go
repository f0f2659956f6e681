package stages

import (
	"context"
	"sync"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// filterConfig is the filter stage's config.
type filterConfig struct{ Expr string }

func init() {
	registry.Declare(registry.Component[filterConfig]{
		Kind:    flow.KindStage,
		Type:    "filter",
		Summary: "keep the records for which an expression is true",
		Fields: func(c *filterConfig) []registry.Field {
			return []registry.Field{
				registry.Bind(&c.Expr, "expr", "condition; records for which it is false are dropped (and acknowledged), a non-bool result is a record error",
					registry.Required(), registry.AsExpr(), registry.Example("value.seq % 2 == 0")),
			}
		},
		Build: func(c *filterConfig, _ *registry.Conf) (any, error) {
			p, err := expr.Compile(c.Expr, expr.Expect(expr.Bool))
			if err != nil {
				return nil, registry.FieldErr("expr", err)
			}
			return NewFilter(p), nil
		},
	})
}

// Filter is the filter stage: a flow.Processor keeping records whose
// expression is true.
type Filter struct {
	expr *expr.Program
	envs sync.Pool
}

// NewFilter returns a filter keeping records for which p is true.
func NewFilter(p *expr.Program) *Filter { return &Filter{expr: p} }

// Process implements flow.Processor, compacting kept records in place.
func (f *Filter) Process(_ context.Context, in []flow.Record, out *flow.Output) error {
	env, ok := f.envs.Get().(*expr.Env)
	if !ok {
		env = expr.NewEnv(f.expr)
	}
	defer func() {
		env.Bind(nil)
		f.envs.Put(env)
	}()
	kept := 0
	for i := range in {
		env.Bind(&in[i])
		keep, err := env.EvalBool(f.expr)
		switch {
		case err != nil:
			out.Errors = append(out.Errors, flow.RecordError{Record: in[i], Err: err})
		case keep:
			if kept != i { // records before the first drop stay where they are
				in[kept] = in[i]
			}
			kept++
		}
	}
	out.Records = in[:kept]
	return nil
}
