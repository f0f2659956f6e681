package builtin_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gsext "github.com/reugn/go-streams/extension"
	gsflow "github.com/reugn/go-streams/flow"

	_ "github.com/sluicedev/sluice/builtin"
	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

const (
	mapExpr    = `{"seq": value.seq, "double": value.seq * 2}`
	filterExpr = `value.seq % 2 == 0`
)

// BenchmarkChain runs generate -> map -> filter -> discard through sluice
// (built from YAML, as `sluice run` does) and the same chain built from
// go-streams flow.Map/flow.Filter with the same compiled expressions, in
// one run. scripts/bench.sh prints the ratio.
func BenchmarkChain(b *testing.B) {
	b.Run("sluice", func(b *testing.B) {
		dir := b.TempDir()
		path := filepath.Join(dir, "chain.yaml")
		yaml := fmt.Sprintf(`
name: bench
settings: {buffer: 4096}
sources:
  gen: {type: generate, count: %d, batch: 512}
stages:
  m: {type: map, inputs: [gen], value: '%s'}
  f: {type: filter, inputs: [m], expr: '%s'}
sinks:
  out: {type: discard, inputs: [f]}
`, b.N, mapExpr, filterExpr)
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			b.Fatal(err)
		}
		c, err := config.Compile(path, config.Options{}, &registry.Env{Context: context.Background(), Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		runChain(b, c.Pipeline)
	})
	b.Run("gostreams", func(b *testing.B) {
		mp, err := expr.Compile(mapExpr)
		if err != nil {
			b.Fatal(err)
		}
		fp, err := expr.Compile(filterExpr, expr.Expect(expr.Bool))
		if err != nil {
			b.Fatal(err)
		}
		// One Env per operator: each go-streams operator runs its function
		// on one goroutine at parallelism 1.
		menv, fenv := expr.NewEnv(mp), expr.NewEnv(fp)
		runGoStreams(b, func(r *flow.Record) {
			menv.Bind(r)
			v, err := menv.AppendJSON(nil, mp)
			if err != nil {
				panic(err)
			}
			r.Value = v
		}, func(r *flow.Record) bool {
			fenv.Bind(r)
			ok, err := fenv.EvalBool(fp)
			if err != nil {
				panic(err)
			}
			return ok
		})
	})
}

// runGoStreams is the go-streams side of a chain benchmark: b.N records
// {"seq":N} from a channel through go-streams' Map and Filter (parallelism
// 1, each function on its own goroutine) into an ignoring sink.
func runGoStreams(b *testing.B, mapFn func(*flow.Record), keep func(*flow.Record) bool) {
	in := make(chan any)
	var got atomic.Int64
	sink := gsext.NewIgnoreSink()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	go func() {
		for i := 0; i < b.N; i++ {
			v := strconv.AppendInt(append(make([]byte, 0, 24), `{"seq":`...), int64(i), 10)
			in <- flow.Record{Value: append(v, '}'), Origin: flow.Origin{Offset: int64(i)}}
		}
		close(in)
	}()
	gsext.NewChanSource(in).
		Via(gsflow.NewMap(func(r flow.Record) flow.Record {
			mapFn(&r)
			return r
		}, 1)).
		Via(gsflow.NewFilter(func(r flow.Record) bool {
			ok := keep(&r)
			if ok {
				got.Add(1)
			}
			return ok
		}, 1)).
		To(sink)
	sink.AwaitCompletion()
	b.StopTimer()
	reportChain(b, cpu, got.Load())
}

// runChain runs a built generate -> map -> filter -> discard pipeline as
// one benchmark iteration of b.N records.
func runChain(b *testing.B, p *flow.Pipeline) {
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	if err := p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	reportChain(b, cpu, p.Stats()[len(p.Stats())-1].In.Load())
}

// reportChain checks that half the records passed the filter and reports
// the rate: rec/s in wall time, and cpu-ns/op, the CPU time of the whole
// process (every goroutine and the garbage collector) per record since
// cpu was read, which stays meaningful on a machine shared with other
// work where wall time includes waiting for a core.
func reportChain(b *testing.B, cpu time.Duration, passed int64) {
	if want := int64((b.N + 1) / 2); passed != want {
		b.Fatalf("the sink got %d records, want %d", passed, want)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rec/s")
	if used := processCPU() - cpu; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkChainFunc is BenchmarkChain with the map and the filter as Go
// functions instead of expressions: the same function values run inside
// sluice (a processor per stage, built in Go) and inside go-streams, so
// what differs is only the engines' own overhead.
func BenchmarkChainFunc(b *testing.B) {
	b.Run("sluice", func(b *testing.B) {
		gen, _ := registry.Lookup(flow.KindSource, "generate")
		src, err := gen.Build(&registry.Conf{ID: "gen", Values: map[string]any{"count": b.N, "batch": 512, "rate": 0.0}, Env: &registry.Env{Logger: quiet()}})
		if err != nil {
			b.Fatal(err)
		}
		discard, _ := registry.Lookup(flow.KindSink, "discard")
		sink, err := discard.Build(&registry.Conf{ID: "out", Values: map[string]any{}, Env: &registry.Env{Logger: quiet()}})
		if err != nil {
			b.Fatal(err)
		}
		p := flow.New("bench", flow.WithBuffer(4096), flow.WithLogger(quiet())).
			Source("gen", src.(flow.Source)).
			Stage("m", flow.ProcessorStage(flow.ProcessFunc(mapFuncBatch)), flow.Inputs("gen")).
			Stage("f", flow.ProcessorStage(flow.ProcessFunc(filterFuncBatch)), flow.Inputs("m")).
			Sink("out", sink.(flow.Sink), flow.Inputs("f"))
		runChain(b, p)
	})
	b.Run("gostreams", func(b *testing.B) {
		runGoStreams(b, func(r *flow.Record) { r.Value = mapFunc(nil, r) }, filterFunc)
	})
}

// seqOf reads N from a value `{"seq":N...`, as the generator writes it.
func seqOf(v []byte) int64 {
	var n int64
	for _, c := range v[len(`{"seq":`):] {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// mapFunc appends the new value of r, {"seq":N,"double":2N}, to dst.
func mapFunc(dst []byte, r *flow.Record) []byte {
	seq := seqOf(r.Value)
	dst = strconv.AppendInt(append(dst, `{"seq":`...), seq, 10)
	dst = strconv.AppendInt(append(dst, `,"double":`...), 2*seq, 10)
	return append(dst, '}')
}

// filterFunc keeps the records of even seq.
func filterFunc(r *flow.Record) bool { return seqOf(r.Value)%2 == 0 }

// mapFuncBatch is mapFunc over a batch, the new values in one allocation
// (as the map stage does).
func mapFuncBatch(_ context.Context, in []flow.Record, out *flow.Output) error {
	arena := make([]byte, 0, 40*len(in))
	for i := range in {
		start := len(arena)
		arena = mapFunc(arena, &in[i])
		in[i].Value = arena[start:len(arena):len(arena)]
	}
	out.Records = in
	return nil
}

// filterFuncBatch is filterFunc over a batch, compacting in place.
func filterFuncBatch(_ context.Context, in []flow.Record, out *flow.Output) error {
	kept := 0
	for i := range in {
		if filterFunc(&in[i]) {
			in[kept] = in[i]
			kept++
		}
	}
	out.Records = in[:kept]
	return nil
}

// slowSink writes at about rate records/s: slower than the generator, so
// backpressure holds the source back for the whole run.
type slowSink struct {
	rate float64
	n    atomic.Int64
}

func (s *slowSink) Write(ctx context.Context, recs []flow.Record) error {
	s.n.Add(int64(len(recs)))
	return flow.Sleep(ctx, time.Duration(float64(len(recs))/s.rate*float64(time.Second)))
}

// BenchmarkBackpressureRSS pushes 10M records from a generator into a sink
// that is 2-3x slower (so the generator is held back all the time) and
// samples the process's resident memory; the baseline is the same pipeline
// into a sink that keeps up. Memory must be bounded by the edges, not by
// the backlog: peak RSS stays flat however many records were attempted.
// Run it with -benchtime=1x: one iteration is 10M records.
func BenchmarkBackpressureRSS(b *testing.B) {
	const records = 10_000_000
	for _, c := range []struct {
		name string
		rate float64
	}{{"stalled", 2e6}, {"baseline", 1e12}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				resetPeakRSS()
				sink := &slowSink{rate: c.rate}
				gen, _ := registry.Lookup(flow.KindSource, "generate")
				src, err := gen.Build(&registry.Conf{ID: "gen", Values: map[string]any{"count": records, "batch": 512, "rate": 0.0}, Env: &registry.Env{Logger: quiet()}})
				if err != nil {
					b.Fatal(err)
				}
				p := flow.New("rss", flow.WithBuffer(4096), flow.WithLogger(quiet())).
					Source("gen", src.(flow.Source)).
					Sink("out", sink, flow.Inputs("gen"))
				ctx, cancel := context.WithCancel(context.Background())
				var samples []int64
				done := make(chan error, 1)
				go func() { done <- p.Run(ctx) }()
				tick := time.NewTicker(50 * time.Millisecond)
			wait:
				for {
					select {
					case err := <-done:
						if err != nil {
							b.Fatal(err)
						}
						break wait
					case <-tick.C:
						samples = append(samples, rssKB("VmRSS"))
					}
				}
				tick.Stop()
				cancel()
				if sink.n.Load() != records {
					b.Fatalf("sink got %d, want %d", sink.n.Load(), records)
				}
				peak := rssKB("VmHWM")
				// Flat: the last quarter's maximum against the first
				// quarter's (after warm-up), near 1.0 when bounded.
				q := max(len(samples)/4, 1)
				b.ReportMetric(float64(peak)/1024, "peakRSS-MB")
				b.ReportMetric(float64(maxOf(samples[len(samples)-q:]))/float64(max(maxOf(samples[:q]), 1)), "late/early-RSS")
			}
		})
	}
}

func maxOf(xs []int64) int64 {
	var m int64
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// resetPeakRSS resets VmHWM (Linux: writing 5 to clear_refs).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func rssKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return n
		}
	}
	return 0
}
