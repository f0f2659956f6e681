package flow_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sluicedev/sluice/flow"
)

// graphErrors returns Validate's problems as "node: message" lines.
func graphErrors(t *testing.T, p *flow.Pipeline) []string {
	t.Helper()
	err := p.Validate()
	if err == nil {
		return nil
	}
	var out []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ge *flow.GraphError
		if !errors.As(e, &ge) {
			t.Fatalf("%T is not a *GraphError: %v", e, e)
		}
		out = append(out, e.Error())
	}
	return out
}

const dropHint = ": its records would be acknowledged without being written; route it to a sink, or to `discard` to drop on purpose"

func TestValidateRefusesDeadEnds(t *testing.T) {
	p := flow.New("t").
		Source("gen", &counter{n: 1, size: 1}).
		Source("idle", &counter{n: 1, size: 1}).
		Stage("f", flow.ProcessorStage(pass), flow.Inputs("gen")).
		Stage("g", flow.ProcessorStage(pass), flow.Inputs("gen")).
		Stage("h", flow.ProcessorStage(pass), flow.Inputs("g")).
		Stage("d", flow.ProcessorStage(pass), flow.Inputs("gen"),
			flow.OnError(flow.ErrorPolicy{Action: flow.ActionDeadLetter, DeadLetter: "dlq"})).
		Sink("out", &collect{}, flow.Inputs("f")).
		Sink("dlq", &collect{})
	want := []string{
		"source idle feeds no sink" + strings.Replace(dropHint, "written", "written (a Kafka source would commit their offsets)", 1),
		"stage g feeds no sink (its output goes only to h, which feeds no sink either)" + dropHint,
		"stage h feeds no sink" + dropHint,
		"stage d feeds no sink (only the records it fails reach dlq)" + dropHint,
	}
	if got := graphErrors(t, p); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Run refuses it too: nothing is acknowledged unwritten.
	src := &counter{n: 5, size: 1}
	q := flow.New("t").Source("gen", src).
		Stage("f", flow.ProcessorStage(pass), flow.Inputs("gen")).
		Stage("g", flow.ProcessorStage(pass), flow.Inputs("gen")).
		Sink("out", &collect{}, flow.Inputs("f"))
	if err := q.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "stage g feeds no sink") {
		t.Errorf("Run: %v", err)
	}
	if src.emitted.Load() != 0 {
		t.Errorf("%d records emitted by a pipeline that does not validate", src.emitted.Load())
	}
}

func TestValidateNeedsASink(t *testing.T) {
	p := flow.New("t").
		Source("gen", &counter{n: 1, size: 1}).
		Stage("f", flow.ProcessorStage(pass), flow.Inputs("gen"))
	want := []string{"pipeline has no sink: every record would be acknowledged without being written; add one (type discard drops records on purpose)"}
	if got := graphErrors(t, p); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q (and no dead end per node)", got, want)
	}
}

func TestValidateAcceptsEveryPathToASink(t *testing.T) {
	p := flow.New("t").
		Source("a", &counter{n: 1, size: 1}).
		Source("b", &counter{n: 1, size: 1}).
		Stage("x", flow.ProcessorStage(pass), flow.Inputs("a", "b")).
		Stage("y", flow.ProcessorStage(pass), flow.Inputs("x")).
		Sink("out", &collect{}, flow.Inputs("y", "a")).
		Sink("copy", &collect{}, flow.Inputs("x"))
	if got := graphErrors(t, p); got != nil {
		t.Errorf("a pipeline whose every path ends at a sink: %q", got)
	}
}

// window stands for a stage of its own that may reject records (window,
// dedupe, plugin): the engine's retry and timeout never wrap it.
type window struct{}

func (window) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	for b := range in {
		if out.Emit(ctx, b) != nil {
			return nil
		}
	}
	return nil
}

// batcher never rejects a record: no policy acts on it.
type batcher struct{ window }

func (batcher) RejectsRecords() bool { return false }

func TestValidateRefusesPolicyThatCannotAct(t *testing.T) {
	retrying := flow.ErrorPolicy{Action: flow.ActionSkip, Retries: 2, Timeout: 1}
	p := flow.New("t").
		Source("gen", &counter{n: 1, size: 1}).
		Stage("w", window{}, flow.Inputs("gen"), flow.OnError(retrying)).
		Stage("b", batcher{}, flow.Inputs("w"), flow.OnError(flow.ErrorPolicy{Action: flow.ActionSkip})).
		Stage("m", window{}, flow.Inputs("b"), flow.Use(flow.Recover())).
		Stage("f", flow.ProcessorStage(pass), flow.Inputs("m"), flow.OnError(retrying), flow.Use(flow.Recover())).
		Sink("out", &collect{}, flow.Inputs("f"), flow.OnError(retrying))
	want := []string{
		"w: on_error.retries has no effect on stage w: retries apply to processor stages (map, filter, ...) and sinks",
		"w: on_error.timeout has no effect on stage w: timeout applies to processor stages (map, filter, ...) and sinks",
		"b: on_error has no effect on stage b: it never fails a record",
		"m: middleware (Use) has no effect on it: middleware wraps processors (ProcessorStage) and sinks",
	}
	if got := graphErrors(t, p); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The pipeline-wide default is not the node's doing: it applies where
	// it can.
	q := flow.New("t", flow.WithErrorPolicy(retrying)).
		Source("gen", &counter{n: 1, size: 1}).
		Stage("w", window{}, flow.Inputs("gen")).
		Stage("b", batcher{}, flow.Inputs("w")).
		Sink("out", &collect{}, flow.Inputs("b"))
	if got := graphErrors(t, q); got != nil {
		t.Errorf("an inherited default was refused: %q", got)
	}
}

// Settings shows what acts on each node, so that two configurations that
// run alike compare equal.
func TestSettingsDropWhatCannotAct(t *testing.T) {
	pol := flow.ErrorPolicy{Action: flow.ActionRetry, Retries: 2, Timeout: 5, DeadLetter: "out"}
	p := flow.New("t", flow.WithBuffer(64), flow.WithErrorPolicy(pol)).
		Source("gen", &counter{n: 1, size: 1}).
		Stage("w", window{}, flow.Inputs("gen"), flow.Parallelism(1, flow.OrderKey)).
		Stage("b", batcher{}, flow.Inputs("w"), flow.Buffer(8)).
		Stage("f", flow.ProcessorStage(pass), flow.Inputs("b"), flow.Parallelism(3, flow.OrderKey)).
		Sink("out", &collect{}, flow.Inputs("f"))
	for id, want := range map[string]flow.NodeSettings{
		"gen": {Kind: flow.KindSource, Parallelism: 1},
		"w":   {Kind: flow.KindStage, Buffer: 64, Parallelism: 1, Policy: flow.ErrorPolicy{Action: flow.ActionFail}},
		"b":   {Kind: flow.KindStage, Buffer: 8, Parallelism: 1},
		"f": {Kind: flow.KindStage, Buffer: 64, Parallelism: 3, Ordering: flow.OrderKey,
			Policy: flow.ErrorPolicy{Action: flow.ActionFail, Retries: 2, Timeout: 5, Backoff: flow.Backoff{Initial: 100e6, Max: 10e9}}},
	} {
		got, ok := p.Settings(id)
		if !ok || got != want {
			t.Errorf("Settings(%s) = %+v, want %+v", id, got, want)
		}
	}
	if _, ok := p.Settings("nope"); ok {
		t.Error("Settings of an unknown node")
	}
}

// A misspelt input leaves its intended source without a reader; the typo
// is the problem to report, not a dead end it causes.
func TestDeadEndsNotEchoedAfterADanglingInput(t *testing.T) {
	p := flow.New("t").
		Source("gen", &counter{n: 1, size: 1}).
		Sink("out", &collect{}, flow.Inputs("gne"))
	want := []string{`out: input "gne" does not exist (did you mean "gen"?)`, "out: not reachable from any source"}
	if got := graphErrors(t, p); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
