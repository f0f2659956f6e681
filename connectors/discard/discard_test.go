package discard

import (
	"context"
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type three struct{ acked int }

func (s *three) Run(ctx context.Context, out flow.Emitter) error {
	recs := []flow.Record{{Value: []byte("a")}, {Value: []byte("b")}, {Value: []byte("c")}}
	return out.Emit(ctx, flow.NewBatch(recs, flow.NewAck(func(err error) {
		if err == nil {
			s.acked += 3
		}
	})))
}

func TestDiscardCountsAndAcks(t *testing.T) {
	spec, ok := registry.Lookup(flow.KindSink, "discard")
	if !ok {
		t.Fatal("discard is not registered")
	}
	c, err := spec.Build(&registry.Conf{ID: "null", Env: &registry.Env{Logger: slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	sink := c.(*Sink)
	src := &three{}
	if err := flow.New("t").Source("in", src).Sink("null", sink, flow.Inputs("in")).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.Count() != 3 || src.acked != 3 {
		t.Fatalf("counted %d acked %d, want 3 and 3", sink.Count(), src.acked)
	}
}
