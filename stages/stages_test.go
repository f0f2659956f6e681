package stages

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
	"github.com/sluicedev/sluice/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build runs a registered stage's Build with values as its config.
func build(t *testing.T, typ string, values map[string]any) (any, error) {
	t.Helper()
	spec, ok := registry.Lookup(flow.KindStage, typ)
	if !ok {
		t.Fatalf("stage %q is not registered", typ)
	}
	return spec.Build(&registry.Conf{ID: typ, Kind: "stage", Type: typ, Values: conform(t, spec.Fields, values)})
}

// conform does what the config layer does before Build: fill defaults and
// turn duration and size strings into values.
func conform(t *testing.T, fields []registry.Field, values map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range values {
		out[k] = v
	}
	for _, f := range fields {
		v, set := out[f.Name]
		if !set && f.Default != nil {
			v, set = f.Default, true
		}
		if !set {
			continue
		}
		switch s, isString := v.(string); {
		case f.Type == registry.Duration && isString:
			d, err := time.ParseDuration(s)
			if err != nil {
				t.Fatal(err)
			}
			v = d
		case f.Type == registry.Size && isString:
			n, err := registry.ParseSize(s)
			if err != nil {
				t.Fatal(err)
			}
			v = n
		case f.Type == registry.Object:
			m, _ := v.(map[string]any)
			v = conform(t, f.Fields, m)
		}
		out[f.Name] = v
	}
	return out
}

func mustBuild(t *testing.T, typ string, values map[string]any) any {
	t.Helper()
	s, err := build(t, typ, values)
	if err != nil {
		t.Fatalf("build %s: %v", typ, err)
	}
	return s
}

func TestSpecsAreComplete(t *testing.T) {
	for _, typ := range []string{"map", "filter", "batch", "throttle", "dedupe", "window"} {
		spec, ok := registry.Lookup(flow.KindStage, typ)
		if !ok {
			t.Errorf("%s not registered", typ)
			continue
		}
		if spec.Summary == "" || spec.Build == nil {
			t.Errorf("%s: missing summary or Build", typ)
		}
		var check func(prefix string, fs []registry.Field)
		check = func(prefix string, fs []registry.Field) {
			for _, f := range fs {
				if f.Doc == "" {
					t.Errorf("%s: field %s%s has no Doc", typ, prefix, f.Name)
				}
				if f.Default == nil && f.Example == nil && f.Type != registry.Object && f.Enum == nil {
					t.Errorf("%s: field %s%s has neither Default nor Example", typ, prefix, f.Name)
				}
				check(prefix+f.Name+".", f.Fields)
			}
		}
		check("", spec.Fields)
	}
}

// Build errors point at the field at fault.
func TestBuildErrorsNameTheField(t *testing.T) {
	cases := []struct {
		typ    string
		values map[string]any
		field  string
		msg    string
	}{
		{"filter", map[string]any{"expr": "vlue.x > 1"}, "expr", "did you mean value?"},
		{"filter", map[string]any{"expr": "1 + 1"}, "expr", "must return a bool"},
		{"map", map[string]any{"value": "{"}, "value", ""},
		{"map", map[string]any{"headers": map[string]any{"h": "nope("}}, "headers.h", ""},
		{"map", map[string]any{"headers": map[string]any{"h": 3}}, "headers.h", "expression string"},
		{"throttle", map[string]any{"rate": 0.0}, "rate", "positive"},
		{"dedupe", map[string]any{"key": "value.id", "window": "0s"}, "window", "positive"},
		{"dedupe", map[string]any{"key": "value..id"}, "key", ""},
		{"window", map[string]any{"kind": "tumbling"}, "size", "positive size"},
		{"window", map[string]any{"kind": "sliding", "size": "1m", "slide": "2m"}, "slide", "slide <= size"},
		{"window", map[string]any{"kind": "sliding", "size": "1h", "slide": "1s"}, "slide", "each record would count in 3600 windows"},
		{"window", map[string]any{"kind": "session", "size": "1m"}, "gap", ""},
		{"window", map[string]any{"size": "1m", "timestamp": "value.ts"}, "timestamp", "time: event"},
		{"window", map[string]any{"size": "1m", "aggregate": map[string]any{"op": "sum"}}, "aggregate.expr", "needs an expression"},
		{"window", map[string]any{"size": "1m", "key": "value.", "aggregate": map[string]any{"op": "count"}}, "key", ""},
		{"window", map[string]any{"size": "1m", "aggregate": map[string]any{"op": "sum", "expr": "key"}}, "aggregate.expr", "must return a number"},
	}
	for _, c := range cases {
		_, err := build(t, c.typ, c.values)
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %v: error %v, want a FieldError on %q containing %q", c.typ, c.values, err, c.field, c.msg)
		}
	}
	if _, err := build(t, "map", map[string]any{}); err == nil || !strings.Contains(err.Error(), "at least one of") {
		t.Errorf("map without fields: error %v", err)
	}
}

func TestStagesAckEverythingExactlyOnce(t *testing.T) {
	const batches, per = 20, 13
	inOrder := func(i int) int { return (i + 1) * per } // 1:1 stages: all of batch i written first
	for typ, c := range map[string]struct {
		values     map[string]any
		minWritten func(batch int) int // records written before batch's ack may fire
	}{
		"map":      {map[string]any{"value": `{"seq": value.seq, "double": value.seq * 2}`}, inOrder},
		"filter":   {map[string]any{"expr": "value.seq % 3 != 0"}, nil},
		"batch":    {map[string]any{"size": 7}, inOrder},
		"throttle": {map[string]any{"rate": 1e6}, inOrder},
		"dedupe":   {map[string]any{"key": "value.seq % 10"}, nil},
		// Every batch feeds all four windows, emitted at the drain.
		"window": {map[string]any{"size": "1h", "key": "value.seq % 4"}, func(int) int { return 4 }},
	} {
		t.Run(typ, func(t *testing.T) {
			var in [][]flow.Record
			for b := 0; b < batches; b++ {
				var vals []string
				for i := 0; i < per; i++ {
					vals = append(vals, `{"seq":`+strconv.Itoa(b*per+i)+`}`)
				}
				in = append(in, stagetest.Records(b*per, vals...))
			}
			p := stagetest.New(stagetest.NewSource(in...), mustBuild(t, typ, c.values))
			p.Run(t)
			p.Source.CheckAcks(t)
			if p.Sink.Len() == 0 {
				t.Error("nothing reached the sink")
			}
			for i := 0; c.minWritten != nil && i < batches; i++ {
				if got, want := p.Source.WrittenAtAck(i), c.minWritten(i); got < want {
					t.Errorf("batch %d acked when the sink had written %d records, want at least %d", i, got, want)
				}
			}
		})
	}
}
