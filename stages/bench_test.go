package stages

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
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
	for _, c := range []struct{ batch, buffer int }{{1024, 8192}, {256, 1024}, {128, 512}} {
		b.Run(fmt.Sprintf("batch%d", c.batch), func(b *testing.B) { benchPipeline(b, c.batch, c.buffer) })
	}
}

func benchPipeline(b *testing.B, batch, buffer int) {
	m, _ := NewMap(expr.MustCompile(`{"seq": value.seq, "double": value.seq * 2}`), nil)
	f := NewFilter(expr.MustCompile(`value.seq % 2 == 0`, expr.Expect(expr.Bool)))
	n := max(b.N, 1)
	src := &genSource{n: n, size: batch}
	sink := &discard{}
	p := flow.New("bench", flow.WithBuffer(buffer)).
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

// BenchmarkProcessBatch runs map and filter over a fresh 1024-record batch
// per iteration (cold records, as in a pipeline), per record.
func BenchmarkProcessBatch(b *testing.B) {
	m, _ := NewMap(expr.MustCompile(`{"seq": value.seq, "double": value.seq * 2}`), nil)
	f := NewFilter(expr.MustCompile(`value.seq % 2 == 0`, expr.Expect(expr.Bool)))
	const size = 1024
	batches := make([][]flow.Record, 64) // 64 batches: more than the caches hold
	for k := range batches {
		g := &genSource{n: size, size: size}
		var em captureEmitter
		_ = g.Run(context.Background(), &em)
		batches[k] = em.recs
	}
	for _, c := range []struct {
		name string
		p    flow.Processor
	}{{"map", m}, {"filter", f}} {
		b.Run(c.name, func(b *testing.B) {
			work := make([][]flow.Record, len(batches))
			var out flow.Output
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % len(batches)
				b.StopTimer()
				work[k] = append(work[k][:0], batches[k]...) // both work in place
				b.StartTimer()
				out.Reset()
				_ = c.p.Process(context.Background(), work[k], &out)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/record")
		})
	}
}

type captureEmitter struct{ recs []flow.Record }

func (c *captureEmitter) Emit(_ context.Context, b *flow.Batch) error {
	c.recs = append(c.recs, b.Records...)
	b.Settle(nil)
	return nil
}

func (c *captureEmitter) Reject(context.Context, *flow.Batch, []flow.RecordError) error { return nil }
