package flow_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// counter emits n records in batches of size and counts settled acks.
type counter struct {
	n, size int
	acked   atomic.Int64
	failed  atomic.Int64
	emitted atomic.Int64
	endless bool
}

func (c *counter) Run(ctx context.Context, out flow.Emitter) error {
	for i := 0; c.endless || i < c.n; {
		if ctx.Err() != nil {
			return nil
		}
		recs := make([]flow.Record, 0, c.size)
		first := i
		for ; len(recs) < c.size && (c.endless || i < c.n); i++ {
			recs = append(recs, flow.Record{Value: strconv.AppendInt(nil, int64(i), 10), Origin: flow.Origin{Source: "c", Partition: int32(i % 4), Offset: int64(i)}})
		}
		cnt := int64(len(recs))
		_ = first
		ack := flow.NewAck(func(err error) {
			if err != nil {
				c.failed.Add(cnt)
				return
			}
			c.acked.Add(cnt)
		})
		if err := out.Emit(ctx, flow.NewBatch(recs, ack)); err != nil {
			return nil
		}
		c.emitted.Add(cnt)
	}
	return nil
}

type collect struct {
	mu   sync.Mutex
	got  []string
	gate chan struct{} // when non-nil, each Write waits for a token
	fail func(flow.Record) bool
}

func (s *collect) Write(ctx context.Context, recs []flow.Record) error {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var we flow.WriteErrors
	for i, r := range recs {
		if s.fail != nil && s.fail(r) {
			if we.Failed == nil {
				we.Failed = map[int]error{}
			}
			we.Failed[i] = errors.New("refused")
			continue
		}
		s.got = append(s.got, string(r.Value))
	}
	if we.Failed != nil {
		return &we
	}
	return nil
}

func (s *collect) values() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

var pass = flow.ProcessFunc(func(ctx context.Context, in []flow.Record, out *flow.Output) error {
	out.Records = in
	return nil
})

var even = flow.ProcessFunc(func(ctx context.Context, in []flow.Record, out *flow.Output) error {
	out.Records = in[:0]
	for _, r := range in {
		n, _ := strconv.Atoi(string(r.Value))
		if n%2 == 0 {
			out.Records = append(out.Records, r)
		}
	}
	return nil
})

func TestFilterDeliversAndAcks(t *testing.T) {
	src := &counter{n: 10000, size: 64}
	sink := &collect{}
	p := flow.New("t", flow.WithBuffer(128)).
		Source("gen", src).
		Stage("even", flow.ProcessorStage(even), flow.Inputs("gen")).
		Sink("out", sink, flow.Inputs("even"))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.values()
	if len(got) != 5000 {
		t.Fatalf("got %d records, want 5000", len(got))
	}
	for i, v := range got {
		if v != strconv.Itoa(2*i) {
			t.Fatalf("record %d = %s, want %d (order lost)", i, v, 2*i)
		}
	}
	if src.acked.Load() != 10000 || src.failed.Load() != 0 {
		t.Fatalf("acked %d failed %d, want 10000 acked", src.acked.Load(), src.failed.Load())
	}
}

func TestFanOutFanIn(t *testing.T) {
	a, b := &counter{n: 3000, size: 100}, &counter{n: 2000, size: 7}
	s1, s2 := &collect{}, &collect{}
	p := flow.New("t").
		Source("a", a).Source("b", b).
		Stage("pass", flow.ProcessorStage(flow.ProcessFunc(func(ctx context.Context, in []flow.Record, out *flow.Output) error {
			out.Records = in
			return nil
		})), flow.Inputs("a", "b")).
		Sink("s1", s1, flow.Inputs("pass")).
		Sink("s2", s2, flow.Inputs("pass"))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s1.values()) != 5000 || len(s2.values()) != 5000 {
		t.Fatalf("s1 %d s2 %d, want 5000 each", len(s1.values()), len(s2.values()))
	}
	if a.acked.Load() != 3000 || b.acked.Load() != 2000 {
		t.Fatalf("acks a=%d b=%d", a.acked.Load(), b.acked.Load())
	}
}

// A stalled sink must hold an endless source within the edges' capacity.
func TestBackpressureBoundsInFlight(t *testing.T) {
	src := &counter{endless: true, size: 10}
	sink := &collect{gate: make(chan struct{})}
	p := flow.New("t", flow.WithBuffer(100), flow.WithDrainTimeout(5*time.Second)).
		Source("gen", src).
		Stage("pass", flow.ProcessorStage(pass), flow.Inputs("gen")).
		Sink("out", sink, flow.Inputs("pass"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// Wait until the source is blocked: emitted stops growing.
	deadline := time.Now().Add(10 * time.Second)
	var last int64 = -1
	for stable := 0; stable < 20; {
		if time.Now().After(deadline) {
			t.Fatal("source never blocked")
		}
		cur := src.emitted.Load()
		if cur == last && cur > 0 {
			stable++
		} else {
			stable = 0
		}
		last = cur
		time.Sleep(10 * time.Millisecond)
	}
	// Two edges of 100; the sink's Write holds up to one edge's worth more
	// (it gets everything that queued while it was busy); a batch of 10 in
	// the hands of the stage worker and the blocked source.
	if e := src.emitted.Load(); e > 330 {
		t.Fatalf("source emitted %d records with a stalled sink; bound is 330", e)
	}
	close(sink.gate) // release: drain must complete
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if src.acked.Load() != src.emitted.Load() {
		t.Fatalf("acked %d of %d emitted", src.acked.Load(), src.emitted.Load())
	}
}

func TestDrainTimeoutNamesHolder(t *testing.T) {
	src := &counter{endless: true, size: 10}
	sink := &collect{gate: make(chan struct{})}
	p := flow.New("t", flow.WithBuffer(50), flow.WithDrainTimeout(200*time.Millisecond)).
		Source("gen", src).
		Sink("slow", sink, flow.Inputs("gen"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for src.emitted.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-done
	if !errors.Is(err, flow.ErrDrainTimeout) {
		t.Fatalf("err = %v, want drain timeout", err)
	}
	if got := err.Error(); !strings.Contains(got, "slow") {
		t.Fatalf("error %q does not name the sink", got)
	}
}

func TestDeadLetterAcks(t *testing.T) {
	src := &counter{n: 1000, size: 10}
	good, dlq := &collect{}, &collect{}
	good.fail = func(r flow.Record) bool { n, _ := strconv.Atoi(string(r.Value)); return n%100 == 7 }
	p := flow.New("t").
		Source("gen", src).
		Sink("good", good, flow.Inputs("gen"), flow.OnError(flow.ErrorPolicy{Action: flow.ActionDeadLetter, DeadLetter: "dlq", Retries: 1, Backoff: flow.Backoff{Initial: time.Millisecond, Max: time.Millisecond}})).
		Sink("dlq", dlq) // only dead letters reach it
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(good.values()) != 990 || len(dlq.values()) != 10 {
		t.Fatalf("good %d dlq %d, want 990 and 10", len(good.values()), len(dlq.values()))
	}
	if src.acked.Load() != 1000 {
		t.Fatalf("acked %d, want 1000 (a dead-letter write acknowledges)", src.acked.Load())
	}
	st := p.Stats()[1]
	if st.Retries.Load() != 10 || st.DeadLettered.Load() != 10 {
		t.Fatalf("retries %d dead-lettered %d, want 10 and 10", st.Retries.Load(), st.DeadLettered.Load())
	}
}

func TestFailPolicyDrainsAndNamesOrigin(t *testing.T) {
	src := &counter{n: 1000, size: 10}
	sink := &collect{fail: func(r flow.Record) bool { return string(r.Value) == "500" }}
	p := flow.New("t").Source("gen", src).Sink("out", sink, flow.Inputs("gen"))
	err := p.Run(context.Background())
	var rf *flow.RecordFailure
	if !errors.As(err, &rf) || rf.Origin.Offset != 500 || rf.Node != "out" {
		t.Fatalf("err = %v, want a RecordFailure at offset 500 in out", err)
	}
	if src.failed.Load() == 0 {
		t.Fatal("the source was never told its record failed")
	}
	if src.acked.Load()+src.failed.Load() != src.emitted.Load() {
		t.Fatalf("acked %d + failed %d != emitted %d: some acks never fired", src.acked.Load(), src.failed.Load(), src.emitted.Load())
	}
}

func TestPanicInProcessorIsARecordError(t *testing.T) {
	src := &counter{n: 100, size: 10}
	sink := &collect{}
	boom := flow.ProcessFunc(func(ctx context.Context, in []flow.Record, out *flow.Output) error {
		for _, r := range in {
			if string(r.Value) == "42" {
				panic("bad record")
			}
		}
		out.Records = in
		return nil
	})
	p := flow.New("t").Source("gen", src).
		Stage("boom", flow.ProcessorStage(boom), flow.Inputs("gen"), flow.OnError(flow.ErrorPolicy{Action: flow.ActionSkip})).
		Sink("out", sink, flow.Inputs("boom"))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// the whole batch of 10 holding 42 is skipped; the process survives
	if got := len(sink.values()); got != 90 {
		t.Fatalf("got %d records, want 90", got)
	}
}

func TestParallelKeepsPartitionOrder(t *testing.T) {
	src := &counter{n: 20000, size: 50}
	sink := &collect{}
	p := flow.New("t").Source("gen", src).
		Stage("pass", flow.ProcessorStage(pass), flow.Inputs("gen"), flow.Parallelism(4, flow.OrderPartition)).
		Sink("out", sink, flow.Inputs("pass"))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.values()
	if len(got) != 20000 {
		t.Fatalf("got %d", len(got))
	}
	last := map[int]int{}
	for _, v := range got {
		n, _ := strconv.Atoi(v)
		part := n % 4
		if prev, ok := last[part]; ok && n < prev {
			t.Fatalf("partition %d: %d after %d", part, n, prev)
		}
		last[part] = n
	}
}

func TestValidateReportsAll(t *testing.T) {
	p := flow.New("t").
		Source("a", &counter{n: 1, size: 1}).
		Stage("x", flow.ProcessorStage(even), flow.Inputs("y")).
		Stage("y", flow.ProcessorStage(even), flow.Inputs("x")).
		Sink("s", &collect{}, flow.Inputs("nope", "a")).
		Sink("s", &collect{}, flow.Inputs("a"))
	err := p.Validate()
	for _, want := range []string{"cycle: ", `input "nope" does not exist`, `duplicate id "s"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate error %v lacks %q", err, want)
		}
	}
}

type readyProc struct{ flow.ProcessFunc }

func (readyProc) Ready() error { return errors.New("warming up") }

// Capabilities of a processor stay visible through ProcessorStage.
func TestComponentSeesThroughProcessorStage(t *testing.T) {
	p := flow.New("t").Source("gen", &counter{n: 1, size: 1}).
		Stage("r", flow.ProcessorStage(readyProc{pass}), flow.Inputs("gen")).
		Sink("out", &collect{}, flow.Inputs("r"))
	r, ok := p.Component("r").(flow.Readier)
	if !ok || r.Ready() == nil {
		t.Fatalf("Component(r) = %T, want the processor with its Readier", p.Component("r"))
	}
}
