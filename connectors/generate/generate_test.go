package generate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a log destination safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newSource builds a generate source the way the config loader would:
// declared defaults first, then vals.
func newSource(t testing.TB, log *slog.Logger, vals map[string]any) *Source {
	t.Helper()
	spec, ok := registry.Lookup(flow.KindSource, "generate")
	if !ok {
		t.Fatal("generate is not registered")
	}
	v := map[string]any{}
	for _, f := range spec.Fields {
		if f.Default != nil {
			v[f.Name] = f.Default
		}
	}
	for k, x := range vals {
		v[k] = x
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	src, err := spec.Build(&registry.Conf{ID: "gen", Kind: "source", Type: "generate", Values: v, Env: &registry.Env{Logger: log}})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return src.(*Source)
}

// recorder is a sink keeping every value and key in arrival order.
type recorder struct {
	mu      sync.Mutex
	values  []string
	keys    []string
	origins []flow.Origin
}

func (r *recorder) Write(ctx context.Context, recs []flow.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		r.values = append(r.values, string(rec.Value))
		r.keys = append(r.keys, string(rec.Key))
		r.origins = append(r.origins, rec.Origin)
	}
	return nil
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.values)
}

// batchSizes is a pass-through stage noting the size of every batch it
// sees: the source's batches, before a sink coalesces them.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) Process(ctx context.Context, in []flow.Record, out *flow.Output) error {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(in))
	b.mu.Unlock()
	out.Records = in
	return nil
}

func run(t *testing.T, src *Source, stage flow.Processor, sink flow.Sink) {
	t.Helper()
	p := flow.New("t").Source("gen", src).
		Stage("watch", flow.ProcessorStage(stage), flow.Inputs("gen")).
		Sink("out", sink, flow.Inputs("watch"))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCountAndBatchAreExact(t *testing.T) {
	src := newSource(t, nil, map[string]any{"count": 1000, "batch": 7})
	sizes, sink := &batchSizes{}, &recorder{}
	run(t, src, sizes, sink)

	if len(sink.values) != 1000 {
		t.Fatalf("got %d records, want 1000", len(sink.values))
	}
	for i, v := range sink.values {
		if want := `{"seq":` + strconv.Itoa(i) + `}`; v != want {
			t.Fatalf("record %d = %s, want %s", i, v, want)
		}
		if o := sink.origins[i]; o.Source != "gen" || o.Offset != int64(i) {
			t.Fatalf("record %d origin %+v, want source gen offset %d", i, o, i)
		}
		if sink.keys[i] != "" {
			t.Fatalf("record %d has key %q without a key template", i, sink.keys[i])
		}
	}
	for i, n := range sizes.sizes {
		want := 7
		if i == len(sizes.sizes)-1 {
			want = 1000 % 7
		}
		if n != want {
			t.Fatalf("batch %d has %d records, want %d", i, n, want)
		}
	}
	if src.Acked() != 1000 || src.Failed() != 0 {
		t.Fatalf("acked %d failed %d, want 1000 and 0", src.Acked(), src.Failed())
	}
}

func TestTemplateAndKey(t *testing.T) {
	src := newSource(t, nil, map[string]any{
		"count":    3,
		"key":      "k-{seq}-{seq}!",
		"template": map[string]any{"b": "x", "a": 1, "n": map[string]any{"z": true}},
	})
	sink := &recorder{}
	run(t, src, &batchSizes{}, sink)
	for i, v := range sink.values {
		want := fmt.Sprintf(`{"seq":%d,"a":1,"b":"x","n":{"z":true}}`, i)
		if v != want {
			t.Fatalf("value %d = %s, want %s", i, v, want)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatalf("value %d is not JSON: %v", i, err)
		}
		if k := fmt.Sprintf("k-%d-%d!", i, i); sink.keys[i] != k {
			t.Fatalf("key %d = %q, want %q", i, sink.keys[i], k)
		}
	}
}

func TestBadConfigNamesTheField(t *testing.T) {
	spec, _ := registry.Lookup(flow.KindSource, "generate")
	cases := []struct {
		vals  map[string]any
		field string
		msg   string
	}{
		{map[string]any{"template": map[string]any{"seq": 1}}, "template", `"seq" is reserved`},
		{map[string]any{"template": map[string]any{"f": func() {}}}, "template", "cannot encode as JSON"},
		{map[string]any{"count": -1}, "count", "must be >= 0"},
		{map[string]any{"rate": -2.5}, "rate", "must be >= 0"},
	}
	for _, c := range cases {
		_, err := spec.Build(&registry.Conf{ID: "gen", Values: c.vals})
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: err = %v, want a %s field error containing %q", c.vals, err, c.field, c.msg)
		}
	}
}

// Batches at a low rate shrink to a tenth of a second of records.
func TestRateLimitsBatchSize(t *testing.T) {
	src := newSource(t, nil, map[string]any{"count": 50, "rate": 200.0, "batch": 256})
	sizes, sink := &batchSizes{}, &recorder{}
	run(t, src, sizes, sink)
	if want := []int{20, 20, 10}; fmt.Sprint(sizes.sizes) != fmt.Sprint(want) {
		t.Fatalf("batch sizes %v, want %v", sizes.sizes, want)
	}
	if sink.len() != 50 || src.Acked() != 50 {
		t.Fatalf("delivered %d acked %d, want 50", sink.len(), src.Acked())
	}
}

// An endless generator stops on cancel; everything it acknowledged is in
// the sink, and Close says how far that reaches.
func TestEndlessDrainsOnCancel(t *testing.T) {
	var logs syncBuffer
	src := newSource(t, slog.New(slog.NewTextHandler(&logs, nil)), map[string]any{"batch": 100})
	sink := &recorder{}
	p := flow.New("t", flow.WithBuffer(1000)).Source("gen", src).
		Stage("watch", flow.ProcessorStage(&batchSizes{}), flow.Inputs("gen"), flow.Parallelism(3, flow.OrderNone)).
		Sink("out", sink, flow.Inputs("watch"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); sink.len() < 20000; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("generator produced fewer than 20000 records in 10s")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}
	acked := src.Acked()
	seen := map[string]bool{}
	for _, v := range sink.values {
		seen[v] = true
	}
	if acked < 20000 || int64(len(seen)) < acked {
		t.Fatalf("acked %d, sink holds %d distinct records", acked, len(seen))
	}
	for i := range acked {
		if !seen[`{"seq":`+strconv.FormatInt(i, 10)+`}`] {
			t.Fatalf("seq %d acknowledged but not in the sink", i)
		}
	}
	want := fmt.Sprintf("generate: acknowledged %d records (seq 0..%d contiguous)", acked, acked-1)
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("logs lack %q:\n%s", want, logs.String())
	}
}

// failing fails every batch holding seq 500 so the watermark must stop
// below it however many later records succeed.
type failing struct{}

func (failing) Process(ctx context.Context, in []flow.Record, out *flow.Output) error {
	for _, r := range in {
		if r.Origin.Offset == 500 {
			out.Errors = append(out.Errors, flow.RecordError{Record: r, Err: errors.New("boom")})
			continue
		}
		out.Records = append(out.Records, r)
	}
	return nil
}

func TestAckedStopsAtAFailure(t *testing.T) {
	src := newSource(t, nil, map[string]any{"count": 2000, "batch": 100})
	p := flow.New("t").Source("gen", src).
		Stage("f", flow.ProcessorStage(failing{}), flow.Inputs("gen"), flow.OnError(flow.ErrorPolicy{Action: flow.ActionFail})).
		Sink("out", &recorder{}, flow.Inputs("f"))
	err := p.Run(context.Background())
	var rf *flow.RecordFailure
	if !errors.As(err, &rf) || rf.Origin.Offset != 500 {
		t.Fatalf("run err = %v, want a record failure at offset 500", err)
	}
	if src.Acked() != 500 {
		t.Fatalf("acked %d, want 500: nothing at or past the failed batch is contiguous", src.Acked())
	}
	// The failed batch, plus any batch cut off by the drain that follows.
	if src.Failed() < 100 {
		t.Fatalf("failed %d, want at least the 100 records of the failed batch", src.Failed())
	}
}

func TestWatermarkOutOfOrder(t *testing.T) {
	var w watermark
	var acks []*flow.Batch
	for _, r := range [][2]int{{0, 10}, {10, 5}, {15, 5}, {20, 5}} {
		acks = append(acks, flow.NewBatch(nil, w.track(int64(r[0]), r[1], nil)))
	}
	acks[2].Settle(nil)
	acks[1].Settle(nil)
	if got := w.contiguous(); got != 0 {
		t.Fatalf("contiguous %d before seq 0 was acked, want 0", got)
	}
	acks[0].Settle(nil)
	if got := w.contiguous(); got != 20 {
		t.Fatalf("contiguous %d, want 20", got)
	}
	acks[3].Settle(errors.New("lost"))
	if got, f := w.contiguous(), w.failed.Load(); got != 20 || f != 5 {
		t.Fatalf("after a failed range: contiguous %d failed %d, want 20 and 5", got, f)
	}
}

// fakeClock advances only when the bucket sleeps.
type fakeClock struct {
	t     time.Time
	slept time.Duration
}

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.t = c.t.Add(d)
	c.slept += d
	return ctx.Err()
}

func TestTokenBucketPaces(t *testing.T) {
	c := &fakeClock{t: time.Unix(0, 0)}
	b := newTokenBucket(100, 20, 10, c.now, c.sleep)
	for range 11 { // the first 10 tokens are there at the start
		if err := b.take(context.Background(), 10); err != nil {
			t.Fatal(err)
		}
	}
	// 100 tokens beyond the burst at 100/s take one second.
	if d := c.slept - time.Second; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("slept %v for 100 tokens at 100/s, want 1s", c.slept)
	}
}

func TestTokenBucketHonoursContext(t *testing.T) {
	b := newTokenBucket(0.001, 2, 1, time.Now, flow.Sleep)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.take(ctx, 1); err != nil {
		t.Fatalf("the first token is there at the start, got %v", err)
	}
	if err := b.take(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("take on a cancelled context = %v, want context.Canceled", err)
	}
}

// countSink counts and drops.
type countSink struct{ n atomic.Int64 }

func (s *countSink) Write(ctx context.Context, recs []flow.Record) error {
	s.n.Add(int64(len(recs)))
	return nil
}

// BenchmarkGenerate measures generate → pass-through stage → counting sink.
func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	src := newSource(b, nil, map[string]any{"count": b.N, "batch": 256})
	sink := &countSink{}
	pass := flow.ProcessFunc(func(ctx context.Context, in []flow.Record, out *flow.Output) error {
		out.Records = in
		return nil
	})
	p := flow.New("bench").Source("gen", src).
		Stage("pass", flow.ProcessorStage(pass), flow.Inputs("gen")).
		Sink("out", sink, flow.Inputs("pass"))
	b.ResetTimer()
	start := time.Now()
	if err := p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rec/s")
	if sink.n.Load() != int64(b.N) {
		b.Fatalf("sink counted %d of %d", sink.n.Load(), b.N)
	}
}

// BenchmarkEncode measures rendering alone, per record.
func BenchmarkEncode(b *testing.B) {
	b.ReportAllocs()
	enc, err := newEncoder("user-{seq}", map[string]any{"source": "bench", "amount": 42})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < b.N; i += 256 {
		_ = enc.batch("gen", int64(i), 256, now)
	}
}

// BenchmarkFill measures rendering into a reused array, as Run does, per
// record: the plain value of BenchmarkChain, and with a key and template.
func BenchmarkFill(b *testing.B) {
	for _, c := range []struct {
		name     string
		key      string
		template map[string]any
	}{
		{"seq", "", nil},
		{"key-template", "user-{seq}", map[string]any{"source": "bench", "amount": 42}},
	} {
		b.Run(c.name, func(b *testing.B) {
			enc, err := newEncoder(c.key, c.template)
			if err != nil {
				b.Fatal(err)
			}
			recs := make([]flow.Record, 512)
			now := time.Now()
			b.ReportAllocs()
			seq := int64(0)
			cpu := processCPU()
			for b.Loop() {
				enc.fill(recs, "gen", seq, now)
				seq += int64(len(recs))
			}
			b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/float64(b.N*len(recs)), "cpu-ns/record")
		})
	}
}

// The arena is sized exactly: rendering never reallocates it, which would
// leave earlier records pointing into a different array than later ones.
func TestArenaSizedExactly(t *testing.T) {
	enc, err := newEncoder("a{seq}b{seq}", map[string]any{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, first := range []int64{0, 5, 95, 999_990, 1<<62 - 3} {
		recs := enc.batch("g", first, 10, time.Time{})
		last := recs[len(recs)-1]
		if cap(last.Value) != len(last.Value) || cap(last.Key) != len(last.Key) {
			t.Fatal("key or value slice not capped at its length")
		}
		used := 0
		for _, r := range recs {
			used += len(r.Key) + len(r.Value)
		}
		if size := 10 * enc.recordSize(decimalDigits(first+9)); used > size {
			t.Fatalf("first %d: records use %d bytes, arena holds %d", first, used, size)
		}
	}
}

// Sleeps overshoot; with a bucket deeper than one take the overshoot is
// banked, so the long-run rate holds.
func TestTokenBucketKeepsRateDespiteOversleeping(t *testing.T) {
	c := &fakeClock{t: time.Unix(0, 0)}
	oversleep := func(ctx context.Context, d time.Duration) error { return c.sleep(ctx, d+700*time.Microsecond) }
	b := newTokenBucket(100000, 512, 256, c.now, oversleep)
	const takes = 1000
	for range takes {
		if err := b.take(context.Background(), 256); err != nil {
			t.Fatal(err)
		}
	}
	rate := float64((takes-1)*256) / c.t.Sub(time.Unix(0, 0)).Seconds()
	if rate < 99000 {
		t.Fatalf("achieved %.0f tokens/s with 0.7ms oversleep, want 100000", rate)
	}
}

// holder is an Emitter keeping the last few batches unsettled, as edges
// and stages downstream do, and writing into their records as a map stage
// may before settling the oldest.
type holder struct {
	t      *testing.T
	keep   int
	held   []*flow.Batch
	arrays map[*flow.Record]bool
}

func (h *holder) Emit(_ context.Context, b *flow.Batch) error {
	first := &b.Records[0]
	for _, o := range h.held {
		if &o.Records[0] == first {
			h.t.Fatalf("batch of seq %d got the array of unsettled seq %d", first.Origin.Offset, o.Records[0].Origin.Offset)
		}
	}
	for i, r := range b.Records {
		if want := `{"seq":` + strconv.FormatInt(r.Origin.Offset, 10) + `}`; string(r.Value) != want || r.Key != nil || r.Headers != nil {
			h.t.Fatalf("record %d of a batch: %+v, want value %s and no key or headers", i, r, want)
		}
	}
	h.arrays[first] = true
	h.held = append(h.held, b)
	if len(h.held) > h.keep {
		old := h.held[0]
		h.held = h.held[1:]
		for i := range old.Records {
			old.Records[i].Key = []byte("k")
			old.Records[i].Headers = []flow.Header{{Key: "h"}}
		}
		old.Settle(nil)
	}
	return nil
}

func (h *holder) Reject(context.Context, *flow.Batch, []flow.RecordError) error { return nil }

// The record arrays of settled batches are reused, and only those: a
// batch still held downstream keeps its array, and a reused array holds
// nothing of the records it held before.
func TestRecordArraysReusedOnceSettled(t *testing.T) {
	src := newSource(t, nil, map[string]any{"count": 100 * 10, "batch": 10})
	h := &holder{t: t, keep: 3, arrays: map[*flow.Record]bool{}}
	if err := src.Run(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if len(h.arrays) > h.keep+2 {
		t.Fatalf("100 batches used %d arrays with %d held at a time: arrays are not reused", len(h.arrays), h.keep)
	}
	for _, b := range h.held {
		b.Settle(nil)
	}
	if src.Acked() != 1000 {
		t.Fatalf("acked %d, want 1000", src.Acked())
	}
}

// The decimal counter reads as strconv formats, across carries.
func TestCounterCountsInDecimal(t *testing.T) {
	for _, from := range []int64{0, 8, 95, 999_995, 1<<62 - 3, 999_999_999_999_999_990} {
		var c counter
		c.set(from)
		for n := from; n < from+12; n++ {
			if got, want := string(c.digits()), strconv.FormatInt(n, 10); got != want {
				t.Fatalf("counting from %d: got %s, want %s", from, got, want)
			}
			c.next()
		}
	}
}
