package stages

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/stages/expr"
)

// genSource emits n records {"seq":i} in batches of size, one ack each.
type genSource struct {
	n, size int
	acked   atomic.Int64
}

func (g *genSource) Run(ctx context.Context, out flow.Emitter) error {
	for i := 0; i < g.n && ctx.Err() == nil; {
		k := min(g.size, g.n-i)
		recs := make([]flow.Record, k)
		arena := make([]byte, 0, k*16)
		for j := range recs {
			start := len(arena)
			arena = append(arena, `{"seq":`...)
			arena = strconv.AppendInt(arena, int64(i+j), 10)
			arena = append(arena, '}')
			recs[j] = flow.Record{Value: arena[start:len(arena):len(arena)], Origin: flow.Origin{Source: "gen", Offset: int64(i + j)}}
		}
		cnt := int64(k)
		ack := flow.NewAck(func(error) { g.acked.Add(cnt) })
		if out.Emit(ctx, flow.NewBatch(recs, ack)) != nil {
			return nil
		}
		i += k
	}
	return nil
}

type discard struct{ n atomic.Int64 }

func (d *discard) Write(_ context.Context, recs []flow.Record) error {
	d.n.Add(int64(len(recs)))
	return nil
}

// BenchmarkPipelineMapFilter measures generate -> map -> filter -> discard
// through the engine; it reports records per second.
func BenchmarkPipelineMapFilter(b *testing.B) {
	m, _ := NewMap(expr.MustCompile(`{"seq": value.seq, "double": value.seq * 2}`), nil)
	f := NewFilter(expr.MustCompile(`value.seq % 2 == 0`, expr.Expect(expr.Bool)))
	n := max(b.N, 1)
	src := &genSource{n: n, size: 1024}
	sink := &discard{}
	p := flow.New("bench", flow.WithBuffer(8192)).
		Source("gen", src).
		Stage("map", flow.ProcessorStage(m), flow.Inputs("gen")).
		Stage("filter", flow.ProcessorStage(f), flow.Inputs("map")).
		Sink("out", sink, flow.Inputs("filter"))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "records/s")
	if src.acked.Load() != int64(n) || sink.n.Load() != int64((n+1)/2) {
		b.Fatalf("acked %d of %d, wrote %d", src.acked.Load(), n, sink.n.Load())
	}
}
