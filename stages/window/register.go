package window

import (
	"errors"
	"fmt"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func init() {
	registry.Register(registry.Spec{
		Kind:    flow.KindStage,
		Type:    "window",
		Summary: "aggregate records per key over tumbling, sliding or session windows",
		Fields: []registry.Field{
			{Name: "kind", Type: registry.String, Enum: []string{"tumbling", "sliding", "session"}, Default: "tumbling",
				Doc: "tumbling: fixed adjacent windows of size; sliding: windows of size starting every slide; session: per key, open while records come within gap"},
			{Name: "size", Type: registry.Duration, MinDuration: MinSpan, MaxDuration: MaxSpan, Example: "1m",
				Doc: "window length (tumbling, sliding); windows are aligned to the Unix epoch"},
			{Name: "slide", Type: registry.Duration, MinDuration: MinSpan, MaxDuration: MaxSpan, Example: "10s",
				Doc: fmt.Sprintf("sliding: interval between window starts, at most size and at least size/%d (each record counts in size/slide windows)", MaxWindowsPerRecord)},
			{Name: "gap", Type: registry.Duration, MinDuration: MinSpan, MaxDuration: MaxSpan, Doc: "session: inactivity that ends a session", Example: "30s"},
			{Name: "time", Type: registry.String, Enum: []string{"processing", "event"}, Default: "processing",
				Doc: "processing: windows follow the clock and close on a timer; event: windows follow record time and close when the watermark (latest event time minus allowed_lateness) passes their end"},
			{Name: "timestamp", Type: registry.Expr, Doc: "event time of a record (a time, an RFC 3339 string or Unix milliseconds); default the record timestamp", Example: "value.ts"},
			{Name: "allowed_lateness", Type: registry.Duration, MaxDuration: MaxSpan, Doc: "event time: how far behind the latest event time a record may be and still count; later ones are dropped and counted (default 0)", Example: "5s"},
			{Name: "key", Type: registry.Expr, Doc: "groups records into separate windows; output records carry it as their key. Without it all records share one window", Example: "value.user"},
			{Name: "aggregate", Type: registry.Object, Doc: "what each window computes; its output value is {\"key\", \"start\", \"end\", \"count\", \"value\"}",
				Example: map[string]any{"op": "sum", "expr": "value.amount"},
				Fields: []registry.Field{
					{Name: "op", Type: registry.String, Enum: []string{"count", "sum", "min", "max", "avg", "collect"}, Default: "count",
						Doc: "count records, sum/min/max/avg a number, or collect the values into a list (held in memory until the window closes)"},
					{Name: "expr", Type: registry.Expr, Doc: "the value aggregated; required except for count", Example: "value.amount"},
				}},
		},
		Build: build,
	})
}

func build(c *registry.Conf) (any, error) {
	cfg := Config{
		Kind:            Kind(c.String("kind")),
		Size:            c.Duration("size"),
		Slide:           c.Duration("slide"),
		Gap:             c.Duration("gap"),
		AllowedLateness: c.Duration("allowed_lateness"),
	}
	if cfg.Kind == "" {
		cfg.Kind = Tumbling
	}
	switch c.String("time") {
	case "", "processing":
	case "event":
		cfg.EventTime = true
	default:
		return nil, registry.FieldErr("time", errors.New(`want "processing" or "event"`))
	}
	var err error
	compile := func(field, src string, opts ...expr.Option) *expr.Program {
		if err != nil || src == "" {
			return nil
		}
		var p *expr.Program
		if p, err = expr.Compile(src, opts...); err != nil {
			err = registry.FieldErr(field, err)
		}
		return p
	}
	cfg.Timestamp = compile("timestamp", c.String("timestamp"), expr.Expect(expr.Time))
	cfg.Key = compile("key", c.String("key"))
	agg := c.Object("aggregate")
	cfg.Op = Op(agg.String("op"))
	exprOpt := expr.Expect(expr.Number)
	if cfg.Op == Collect {
		exprOpt = expr.Expect(expr.Any)
	}
	cfg.Expr = compile("aggregate.expr", agg.String("expr"), exprOpt)
	if err != nil {
		return nil, err
	}
	st, err := New(cfg, c.Logger())
	var ce *ConfigError
	if errors.As(err, &ce) {
		return nil, registry.FieldErr(ce.Field, ce.Err)
	}
	return st, err
}
