package window

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
)

// keyed is a tumbling event-time count window of 10s per value.k.
func keyed(maxOpen int, policy Policy) Config {
	return Config{Kind: Tumbling, Size: 10 * time.Second, EventTime: true,
		Key: expr.MustCompile(`value.k`), MaxOpenWindows: maxOpen, OnLimit: policy}
}

// collectCfg is a window collecting value.v per value.k.
func collectCfg(kind Kind, maxCollect int, policy Policy) Config {
	c := Config{Kind: kind, EventTime: true, AllowedLateness: time.Minute,
		Key: expr.MustCompile(`value.k`), Op: Collect, Expr: expr.MustCompile(`value.v`),
		MaxCollect: maxCollect, OnLimit: policy}
	if kind == Session {
		c.Gap = 5 * time.Second
	} else {
		c.Size = 10 * time.Second
	}
	return c
}

// rejections are the rejected records' values and errors, as "value: error".
func rejections(em *stagetest.Emitter) []string {
	var out []string
	for _, r := range em.Rejected() {
		out = append(out, string(r.Record.Value)+": "+r.Err.Error())
	}
	return out
}

// With on_limit: fail, a record that would open a window past
// max_open_windows fails, naming the limit, and changes no window; a
// later record finds room once the watermark closed windows.
func TestMaxOpenWindowsFail(t *testing.T) {
	s := mustNew(t, keyed(2, FailOnLimit))
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), s, &em)
	in <- tr.Batch(ev(1, "a", 0), ev(2, "b", 0), ev(3, "c", 0), ev(4, "a", 0))
	in <- tr.Batch(ev(5, "d", 0)) // fails alone: its batch is settled at once
	stagetest.Eventually(t, "the all-failed batch settled", func() bool { return tr.Fired() == 1 })
	want := []string{
		`{"k":"c","v":0}: max_open_windows (2) reached: 2 windows are open on this worker and key "c" needs 1 more; raise max_open_windows or set on_limit: emit_early`,
		`{"k":"d","v":0}: max_open_windows (2) reached: 2 windows are open on this worker and key "d" needs 1 more; raise max_open_windows or set on_limit: emit_early`,
	}
	check(t, "rejected", rejections(&em), want)
	var le *LimitError
	if !errors.As(em.Rejected()[0].Err, &le) || le.Limit != "max_open_windows" || le.Max != 2 {
		t.Fatalf("error %v is not a LimitError for max_open_windows 2", em.Rejected()[0].Err)
	}
	// Watermark 12: a[0,10) and b[0,10) are due, which makes room for c.
	in <- tr.Batch(ev(12, "c", 0))
	stagetest.Eventually(t, "the due windows", func() bool { return em.Len() == 1 })
	check(t, "closed", results(t, em.Records()), []string{"a[0,10) 2 2", "b[0,10) 1 1"})
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	check(t, "all", results(t, em.Records()), []string{"a[0,10) 2 2", "b[0,10) 1 1", "c[10,20) 1 1"})
	check(t, "rejected at the end", rejections(&em), want)
	if s.LimitFailed() != 2 || s.EarlyEmitted() != 0 {
		t.Errorf("limit failed %d, early %d; want 2 and 0", s.LimitFailed(), s.EarlyEmitted())
	}
	em.Settle()
	tr.Check(t)
}

// limitPipeline runs src -> window (with pol) -> out, and dlq as the
// dead-letter sink.
func limitPipeline(s *Stage, src *stagetest.Source, pol flow.ErrorPolicy) (out, dlq *stagetest.Sink, err error) {
	out, dlq = &stagetest.Sink{}, &stagetest.Sink{}
	p := flow.New("test", flow.WithDrainTimeout(10*time.Second)).
		Source("src", src).
		Stage("w", s, flow.Inputs("src"), flow.OnError(pol)).
		Sink("out", out, flow.Inputs("w"))
	if pol.DeadLetter != "" {
		p.Sink(pol.DeadLetter, dlq) // only dead letters reach it
	}
	return out, dlq, p.Run(context.Background())
}

// Through the engine: on_error fail stops the pipeline with an error that
// names the limit, and every ack still fires (the failed batch's with the
// error); dead_letter keeps the record, and every ack fires cleanly once
// its windows are written.
func TestMaxOpenWindowsOnError(t *testing.T) {
	batches := func() *stagetest.Source {
		return stagetest.NewSource(
			[]flow.Record{ev(1, "a", 0), ev(2, "b", 0)},
			[]flow.Record{ev(3, "c", 0), ev(4, "a", 0)},
			[]flow.Record{ev(5, "b", 0)},
		)
	}
	t.Run("fail", func(t *testing.T) {
		src := batches()
		_, _, err := limitPipeline(mustNew(t, keyed(2, FailOnLimit)), src, flow.ErrorPolicy{Action: flow.ActionFail})
		var rf *flow.RecordFailure
		if !errors.As(err, &rf) || rf.Node != "w" || !strings.Contains(err.Error(), "max_open_windows (2) reached") {
			t.Fatalf("err = %v, want a record failure in w naming max_open_windows", err)
		}
		if src.Fired() != 3 {
			t.Fatalf("%d of 3 acks fired: an ack was held", src.Fired())
		}
		if src.Failed() == 0 {
			t.Fatal("the source was not told its record failed")
		}
	})
	t.Run("dead_letter", func(t *testing.T) {
		src := batches()
		s := mustNew(t, keyed(2, FailOnLimit))
		out, dlq, err := limitPipeline(s, src, flow.ErrorPolicy{Action: flow.ActionDeadLetter, DeadLetter: "dlq"})
		if err != nil {
			t.Fatal(err)
		}
		src.CheckAcks(t)
		check(t, "windows", results(t, out.Records()), []string{"a[0,10) 2 2", "b[0,10) 2 2"})
		dead := dlq.Records()
		if len(dead) != 1 || string(dead[0].Value) != `{"k":"c","v":0}` {
			t.Fatalf("dead letters %v, want c's record", dlq.Values())
		}
		if msg, _ := dead[0].Header(flow.HeaderError); !bytes.Contains(msg, []byte("max_open_windows (2) reached")) {
			t.Fatalf("dead letter error %q does not name the limit", msg)
		}
	})
}

// With on_limit: emit_early, the window ending first is emitted when a
// new one would pass max_open_windows; the parts of a window add up.
func TestMaxOpenWindowsEmitEarly(t *testing.T) {
	s := mustNew(t, keyed(2, EmitEarly))
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), s, &em)
	// c pushes a out (ends first, then by key), a pushes b out.
	in <- tr.Batch(ev(1, "a", 0), ev(2, "b", 0), ev(3, "c", 0), ev(4, "a", 0))
	stagetest.Eventually(t, "the early windows", func() bool { return em.Len() == 1 })
	check(t, "early", results(t, em.Records()), []string{"a[0,10) 1 1 early", "b[0,10) 1 1 early"})
	em.Settle()
	if tr.Fired() != 0 {
		t.Fatal("the batch was acked while windows it fed are open")
	}
	in <- tr.Batch(ev(5, "a", 0), ev(6, "c", 0))
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	check(t, "all", results(t, em.Records()), []string{
		"a[0,10) 1 1 early", "b[0,10) 1 1 early", "a[0,10) 2 2", "c[0,10) 2 2"})
	if len(em.Rejected()) != 0 {
		t.Fatalf("rejected %v", rejections(&em))
	}
	if s.EarlyEmitted() != 2 || s.LimitFailed() != 0 {
		t.Errorf("early %d, limit failed %d; want 2 and 0", s.EarlyEmitted(), s.LimitFailed())
	}
	em.Settle()
	tr.Check(t)
}

// A window due by the watermark that makes room is emitted as usual, not
// early.
func TestMaxOpenWindowsDueIsNotEarly(t *testing.T) {
	s := mustNew(t, keyed(1, EmitEarly))
	var tr stagetest.Tracker
	var em stagetest.Emitter
	if err := stagetest.Feed(s, &em, tr.Batch(ev(1, "a", 0), ev(15, "b", 0))); err != nil {
		t.Fatal(err)
	}
	check(t, "windows", results(t, em.Records()), []string{"a[0,10) 1 1", "b[10,20) 1 1"})
	if s.EarlyEmitted() != 0 {
		t.Errorf("early %d, want 0", s.EarlyEmitted())
	}
	em.Settle()
	tr.Check(t)
}

// With on_limit: fail, a collect list stops at max_collect: the record
// past it fails, naming the limit and the window.
func TestMaxCollectFail(t *testing.T) {
	s := mustNew(t, collectCfg(Tumbling, 2, FailOnLimit))
	var tr stagetest.Tracker
	var em stagetest.Emitter
	err := stagetest.Feed(s, &em,
		tr.Batch(ev(1, "a", 1), ev(2, "a", 2), ev(3, "a", 3), ev(4, "b", 4)),
		tr.Batch(ev(5, "a", 5)),
	)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "windows", results(t, em.Records()), []string{"a[0,10) 2 [1 2]", "b[0,10) 1 [4]"})
	const msg = `max_collect (2) reached: the window [2024-01-01T00:00:00Z, 2024-01-01T00:00:10Z) of key "a" holds 2 items; raise max_collect or set on_limit: emit_early`
	check(t, "rejected", rejections(&em), []string{`{"k":"a","v":3}: ` + msg, `{"k":"a","v":5}: ` + msg})
	if s.LimitFailed() != 2 {
		t.Errorf("limit failed %d, want 2", s.LimitFailed())
	}
	em.Settle()
	tr.Check(t)
}

// With on_limit: emit_early, a full list is emitted as it is and the
// window starts again; sliding windows each keep their own list.
func TestMaxCollectEmitEarly(t *testing.T) {
	s := mustNew(t, collectCfg(Tumbling, 2, EmitEarly))
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), s, &em)
	in <- tr.Batch(ev(1, "a", 1), ev(2, "a", 2), ev(3, "a", 3))
	stagetest.Eventually(t, "the full list", func() bool { return em.Len() == 1 })
	check(t, "early", results(t, em.Records()), []string{"a[0,10) 2 [1 2] early"})
	em.Settle()
	if tr.Fired() != 0 {
		t.Fatal("the batch was acked while a window it fed is open")
	}
	in <- tr.Batch(ev(4, "a", 4), ev(5, "a", 5))
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	check(t, "all", results(t, em.Records()), []string{"a[0,10) 2 [1 2] early", "a[0,10) 2 [3 4] early", "a[0,10) 1 [5]"})
	if s.EarlyEmitted() != 2 {
		t.Errorf("early %d, want 2", s.EarlyEmitted())
	}
	em.Settle()
	tr.Check(t)

	sliding := collectCfg(Sliding, 2, EmitEarly)
	sliding.Slide = 5 * time.Second
	s = mustNew(t, sliding)
	em = stagetest.Emitter{}
	tr = stagetest.Tracker{}
	if err := stagetest.Feed(s, &em, tr.Batch(ev(6, "a", 1), ev(7, "a", 2), ev(8, "a", 3))); err != nil {
		t.Fatal(err)
	}
	check(t, "sliding", results(t, em.Records()), []string{
		"a[5,15) 2 [1 2] early", "a[0,10) 2 [1 2] early", "a[0,10) 1 [3]", "a[5,15) 1 [3]"})
	em.Settle()
	tr.Check(t)
}

// Sessions: the limit counts the list a merge would make. fail refuses
// the bridging record; emit_early emits the sessions as they are and the
// record starts the session again over their span.
func TestSessionMaxCollect(t *testing.T) {
	feed := func(s *Stage) (*stagetest.Emitter, *stagetest.Tracker) {
		var tr stagetest.Tracker
		var em stagetest.Emitter
		err := stagetest.Feed(s, &em,
			tr.Batch(ev(0, "a", 1), ev(1, "a", 2)), // a:[0,6)
			tr.Batch(ev(8, "a", 3), ev(9, "a", 4)), // a:[8,14)
			tr.Batch(ev(4, "a", 5)),                // [4,9) bridges them: 5 items
		)
		if err != nil {
			t.Fatal(err)
		}
		return &em, &tr
	}
	s := mustNew(t, collectCfg(Session, 4, FailOnLimit))
	em, tr := feed(s)
	check(t, "fail", results(t, em.Records()), []string{"a[0,6) 2 [1 2]", "a[8,14) 2 [3 4]"})
	check(t, "rejected", rejections(em), []string{`{"k":"a","v":5}: max_collect (4) reached: the window [2024-01-01T00:00:00Z, 2024-01-01T00:00:14Z) of key "a" holds 4 items; raise max_collect or set on_limit: emit_early`})
	em.Settle()
	tr.Check(t)

	s = mustNew(t, collectCfg(Session, 4, EmitEarly))
	em, tr = feed(s)
	check(t, "emit_early", results(t, em.Records()), []string{"a[0,6) 2 [1 2] early", "a[8,14) 2 [3 4] early", "a[0,14) 1 [5]"})
	if s.EarlyEmitted() != 2 {
		t.Errorf("early %d, want 2", s.EarlyEmitted())
	}
	em.Settle()
	tr.Check(t)

	// Below the limit, the merge is as before.
	s = mustNew(t, collectCfg(Session, 5, FailOnLimit))
	em, tr = feed(s)
	check(t, "room", results(t, em.Records()), []string{"a[0,14) 5 [1 2 3 4 5]"})
	em.Settle()
	tr.Check(t)
}

// Whatever emit_early cuts a window into, its parts add up to the window
// as a run without limits computes it, and every ack fires once.
func TestEmitEarlyPartsAddUp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var recs [][]flow.Record
	for b := 0; b < 50; b++ {
		var rs []flow.Record
		for i := 0; i < 20; i++ {
			rs = append(rs, ev(rng.IntN(100), fmt.Sprint("k", rng.IntN(12)), rng.IntN(1000)))
		}
		recs = append(recs, rs)
	}
	for _, c := range []struct {
		name      string
		cfg       Config
		collect   bool
		byWindows bool // compare per key and window start; sessions per key
	}{
		{"tumbling", Config{Kind: Tumbling, Size: 10 * time.Second, MaxOpenWindows: 5}, false, true},
		{"sliding", Config{Kind: Sliding, Size: 20 * time.Second, Slide: 5 * time.Second, MaxOpenWindows: 7}, false, true},
		{"session", Config{Kind: Session, Gap: 3 * time.Second, MaxOpenWindows: 3}, false, false},
		{"collect", Config{Kind: Sliding, Size: 20 * time.Second, Slide: 10 * time.Second, Op: Collect, Expr: expr.MustCompile(`value.v`), MaxOpenWindows: 6, MaxCollect: 3}, true, true},
		{"session collect", Config{Kind: Session, Gap: 3 * time.Second, Op: Collect, Expr: expr.MustCompile(`value.v`), MaxOpenWindows: 4, MaxCollect: 2}, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// run returns, per key (and window start), the records counted
			// and for collect the sorted items.
			run := func(limited bool) (map[string]int, map[string][]string, *Stage) {
				cfg := c.cfg
				cfg.EventTime, cfg.AllowedLateness, cfg.Key = true, time.Hour, expr.MustCompile(`value.k`)
				if limited {
					cfg.OnLimit = EmitEarly
				} else {
					cfg.MaxOpenWindows, cfg.MaxCollect = 0, 0
				}
				s := mustNew(t, cfg)
				var tr stagetest.Tracker
				var em stagetest.Emitter
				var batches []*flow.Batch
				for _, rs := range recs {
					batches = append(batches, tr.Batch(rs...))
				}
				if err := stagetest.Feed(s, &em, batches...); err != nil {
					t.Fatal(err)
				}
				em.Settle()
				tr.Check(t)
				counts, items := map[string]int{}, map[string][]string{}
				for _, r := range em.Records() {
					var res result
					if err := json.Unmarshal(r.Value, &res); err != nil {
						t.Fatal(err)
					}
					id := *res.Key
					if c.byWindows {
						id += " " + res.Start.Sub(t0).String()
					}
					counts[id] += res.Count
					if !c.collect {
						continue
					}
					list := res.Value.([]any)
					if len(list) != res.Count {
						t.Errorf("count %d of a list of %d", res.Count, len(list))
					}
					if limited && len(list) > cfg.MaxCollect {
						t.Errorf("a list of %d items, above max_collect %d", len(list), cfg.MaxCollect)
					}
					for _, v := range list {
						items[id] = append(items[id], fmt.Sprint(v))
					}
				}
				for _, v := range items {
					slices.Sort(v)
				}
				return counts, items, s
			}
			wantCounts, wantItems, _ := run(false)
			counts, items, s := run(true)
			if s.EarlyEmitted() == 0 {
				t.Fatal("no window was emitted early: the test does not reach the limit")
			}
			if !reflect.DeepEqual(counts, wantCounts) || !reflect.DeepEqual(items, wantItems) {
				t.Fatalf("emitted early, the parts add up to\n %v %v\nwithout limits\n %v %v", counts, items, wantCounts, wantItems)
			}
		})
	}
}

// The defaults, and the rules tying the limits to the rest.
func TestLimitConfig(t *testing.T) {
	s := mustNew(t, Config{Kind: Tumbling, Size: time.Second})
	if s.cfg.MaxOpenWindows != DefaultMaxOpenWindows || s.cfg.MaxCollect != 0 || s.cfg.OnLimit != FailOnLimit {
		t.Errorf("defaults %d %d %q", s.cfg.MaxOpenWindows, s.cfg.MaxCollect, s.cfg.OnLimit)
	}
	s = mustNew(t, Config{Kind: Tumbling, Size: time.Second, Op: Collect, Expr: expr.MustCompile(`value`)})
	if s.cfg.MaxCollect != DefaultMaxCollect {
		t.Errorf("collect default %d", s.cfg.MaxCollect)
	}
	for _, c := range []struct {
		cfg Config
		err string
	}{
		{Config{Kind: Tumbling, Size: time.Second, MaxCollect: 5}, "max_collect: only used by aggregate.op collect (the other aggregates keep one number per window)"},
		{Config{Kind: Tumbling, Size: time.Second, Op: Collect, Expr: expr.MustCompile(`value`), MaxCollect: MaxCollectBound + 1}, "max_collect: 1000001 is outside 1-1000000"},
		{Config{Kind: Tumbling, Size: time.Second, MaxOpenWindows: -1}, "max_open_windows: -1 is outside 1-10000000"},
		{Config{Kind: Tumbling, Size: time.Second, OnLimit: "drop"}, `on_limit: unknown policy "drop" (want fail or emit_early)`},
		{Config{Kind: Sliding, Size: time.Minute, Slide: time.Second, MaxOpenWindows: 59}, "max_open_windows: each record counts in 60 windows (size 1m / slide 1s): make it at least 60"},
	} {
		_, err := New(c.cfg, nil)
		if err == nil || err.Error() != c.err {
			t.Errorf("%+v: error %v, want %q", c.cfg, err, c.err)
		}
	}
	if _, err := New(Config{Kind: Sliding, Size: time.Minute, Slide: time.Second, MaxOpenWindows: 60}, nil); err != nil {
		t.Error(err)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.b.String(), s)
}

// A limit that acts on every record warns once per LimitLogEvery, and the
// run's end sums it up.
func TestLimitWarningIsRateLimited(t *testing.T) {
	for _, policy := range []Policy{FailOnLimit, EmitEarly} {
		var logs syncBuffer
		s, err := New(keyed(1, policy), slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		var clock atomic.Int64
		clock.Store(t0.UnixNano())
		s.now = func() time.Time { return time.Unix(0, clock.Load()) }
		var tr stagetest.Tracker
		var em stagetest.Emitter
		in, wait := stagetest.Start(context.Background(), s, &em)
		in <- tr.Batch(ev(1, "a", 0), ev(1, "b", 0), ev(1, "c", 0), ev(1, "d", 0))
		in <- tr.Batch(ev(1, "e", 0))
		stagetest.Eventually(t, "two batches handled", func() bool {
			if policy == EmitEarly {
				return em.Len() == 2 // each batch emitted windows early
			}
			return tr.Fired() == 1 // the second batch failed whole
		})
		clock.Add(int64(LimitLogEvery))
		in <- tr.Batch(ev(1, "f", 0))
		close(in)
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		if n := logs.count("window limit reached"); n != 2 {
			t.Errorf("%s: %d limit warnings for 5 hits over %s, want 2:\n%s", policy, n, LimitLogEvery, logs.b.String())
		}
		summary := `window failed records at a limit" count=5`
		if policy == EmitEarly {
			summary = `window emitted windows early at a limit" count=5`
		}
		if logs.count(summary) != 1 {
			t.Errorf("%s: no summary %q:\n%s", policy, summary, logs.b.String())
		}
		em.Settle()
		tr.Check(t)
	}
}
