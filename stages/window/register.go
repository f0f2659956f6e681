package window

import (
	"errors"
	"fmt"
	"time"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// nodeConfig is a window node's config as a pipeline file writes it, its
// expressions not yet compiled; build turns it into a Config.
type nodeConfig struct {
	Kind            string
	Size            time.Duration
	Slide           time.Duration
	Gap             time.Duration
	Time            string
	Timestamp       string
	AllowedLateness time.Duration
	Key             string
	Aggregate       struct{ Op, Expr string }
	MaxOpenWindows  int
	MaxCollect      int
	OnLimit         string
	State           string
	ChangelogPrefix string
}

func fields(c *nodeConfig) []registry.Field {
	aggregate := registry.Section("aggregate", "what each window computes; its output value is {\"key\", \"start\", \"end\", \"count\", \"value\"}",
		registry.Bind(&c.Aggregate.Op, "op", "count records, sum/min/max/avg a number, or collect the values into a list (held in memory until the window closes, at most max_collect items)",
			registry.OneOf(string(Count), string(Sum), string(Min), string(Max), string(Avg), string(Collect)), registry.Default(string(Count))),
		registry.Bind(&c.Aggregate.Expr, "expr", "the value aggregated; required except for count",
			registry.AsExpr(), registry.Example("value.amount")),
	)
	aggregate.Example = map[string]any{"op": "sum", "expr": "value.amount"} // Section takes no options
	return []registry.Field{
		registry.Bind(&c.Kind, "kind", "tumbling: fixed adjacent windows of size; sliding: windows of size starting every slide; session: per key, open while records come within gap",
			registry.OneOf(string(Tumbling), string(Sliding), string(Session)), registry.Default(string(Tumbling))),
		registry.Bind(&c.Size, "size", "window length (tumbling, sliding); windows are aligned to the Unix epoch",
			registry.Range(MinSpan, MaxSpan), registry.Example("1m")),
		registry.Bind(&c.Slide, "slide", fmt.Sprintf("sliding: interval between window starts, at most size and at least size/%d (each record counts in size/slide windows)", MaxWindowsPerRecord),
			registry.Range(MinSpan, MaxSpan), registry.Example("10s")),
		registry.Bind(&c.Gap, "gap", "session: inactivity that ends a session",
			registry.Range(MinSpan, MaxSpan), registry.Example("30s")),
		registry.Bind(&c.Time, "time", "processing: windows follow the clock and close on a timer; event: windows follow record time and close when the watermark (latest event time minus allowed_lateness) passes their end",
			registry.OneOf("processing", "event"), registry.Default("processing")),
		registry.Bind(&c.Timestamp, "timestamp", "event time of a record (a time, an RFC 3339 string or Unix milliseconds); default the record timestamp",
			registry.AsExpr(), registry.Example("value.ts")),
		registry.Bind(&c.AllowedLateness, "allowed_lateness", "event time: how far behind the latest event time a record may be and still count; later ones are dropped and counted (default 0)",
			registry.Range(time.Duration(0), MaxSpan), registry.Example("5s")),
		registry.Bind(&c.Key, "key", "groups records into separate windows; output records carry it as their key. Without it all records share one window",
			registry.AsExpr(), registry.Example("value.user")),
		aggregate,
		registry.Bind(&c.MaxOpenWindows, "max_open_windows", "windows held open at most, one per key and window start (or per session); with parallelism each worker holds its own. Reaching it acts as on_limit says",
			registry.Default(DefaultMaxOpenWindows), registry.Range(1, MaxOpenWindowsBound), registry.Example(1000000)),
		registry.Bind(&c.MaxCollect, "max_collect", fmt.Sprintf("collect: items one window's list holds at most (default %d). Reaching it acts as on_limit says", DefaultMaxCollect),
			registry.Range(1, MaxCollectBound), registry.Example(1000)),
		registry.Bind(&c.OnLimit, "on_limit", "when max_open_windows or max_collect is reached. fail: the record that would pass it fails and goes to on_error (fail, skip or dead_letter), with a message naming the limit; no window changes. "+
			"emit_early: the window ending first (or the one whose list is full) is emitted now with what it holds, its value marked \"early\": true, and a later record for it starts it again, so one window may come in several parts whose counts add up. Either way a warning is logged (at most every "+registry.FormatDuration(LimitLogEvery)+")",
			registry.OneOf(string(FailOnLimit), string(EmitEarly)), registry.Default(string(FailOnLimit))),
		registry.Bind(&c.State, "state", "memory: windows live in this process and hold their records' acknowledgements until they close (offsets are committed only past closed windows; a crash replays the open windows' input). "+
			"changelog: windows belong to the Kafka partition their records came from and every change is written to a compacted changelog topic in the same cluster; records are acknowledged once their change is written, so offsets advance while windows stay open, and a partition's windows are restored from the changelog when it is assigned (after a restart or a rebalance). "+
			"Needs a Kafka source, tumbling or sliding windows, on_limit: fail, and ordering: partition with parallelism. Open windows are not emitted at shutdown: they go on after the restart",
			registry.OneOf("memory", "changelog"), registry.Default("memory")),
		registry.Bind(&c.ChangelogPrefix, "changelog_prefix", "state: changelog: the changelog topic is <prefix>-<source topic>-changelog; default prefix <consumer group>-<stage id>. Change it (or the stage id) when the window's definition changes: state of another definition is refused",
			registry.Example("orders-counts-v2")),
	}
}

func init() {
	registry.Declare(registry.Component[nodeConfig]{
		Kind:    flow.KindStage,
		Type:    "window",
		Summary: "aggregate records per key over tumbling, sliding or session windows",
		Fields:  fields,
		Build:   build,
	})
}

// build compiles c's expressions into a Config; New checks the rules that
// tie its keys together.
func build(c *nodeConfig, n *registry.Conf) (any, error) {
	cfg := Config{
		Kind:            Kind(c.Kind),
		Size:            c.Size,
		Slide:           c.Slide,
		Gap:             c.Gap,
		EventTime:       c.Time == "event",
		AllowedLateness: c.AllowedLateness,
		Op:              Op(c.Aggregate.Op),
		MaxOpenWindows:  c.MaxOpenWindows,
		MaxCollect:      c.MaxCollect,
		OnLimit:         Policy(c.OnLimit),
		Durable:         c.State == "changelog",
		ChangelogPrefix: c.ChangelogPrefix,
		ID:              n.ID,
	}
	if cfg.Durable && n.Int("parallelism") > 1 && n.Has("ordering") && n.String("ordering") != "partition" {
		return nil, registry.FieldErr("ordering", fmt.Errorf("state: changelog needs ordering: partition (each partition's records on one worker, in order), not %s", n.String("ordering")))
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
	cfg.Timestamp = compile("timestamp", c.Timestamp, expr.Expect(expr.Time))
	cfg.Key = compile("key", c.Key)
	exprOpt := expr.Expect(expr.Number)
	if cfg.Op == Collect {
		exprOpt = expr.Expect(expr.Any)
	}
	cfg.Expr = compile("aggregate.expr", c.Aggregate.Expr, exprOpt)
	if err != nil {
		return nil, err
	}
	st, err := New(cfg, n.Logger())
	var ce *ConfigError
	if errors.As(err, &ce) {
		return nil, registry.FieldErr(ce.Field, ce.Err)
	}
	return st, err
}
