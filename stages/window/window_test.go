package window

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ev is a record with event time t0+sec, key k and value v.
func ev(sec int, k string, v int) flow.Record {
	return flow.Record{
		Value:     []byte(fmt.Sprintf(`{"k":%q,"v":%d}`, k, v)),
		Timestamp: t0.Add(time.Duration(sec) * time.Second),
		Origin:    flow.Origin{Source: "src", Offset: int64(sec)},
	}
}

type result struct {
	Key   *string   `json:"key"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Count int       `json:"count"`
	Value any       `json:"value"`
	Early bool      `json:"early"`
}

// String is "key[start,end) count value" with times as seconds after t0,
// and " early" after a window emitted early.
func (r result) String() string {
	k := "-"
	if r.Key != nil {
		k = *r.Key
	}
	s := fmt.Sprintf("%s[%d,%d) %d %v", k, int(r.Start.Sub(t0).Seconds()), int(r.End.Sub(t0).Seconds()), r.Count, r.Value)
	if r.Early {
		s += " early"
	}
	return s
}

func results(t *testing.T, recs []flow.Record) []string {
	t.Helper()
	out := make([]string, len(recs))
	for i, r := range recs {
		var res result
		if err := json.Unmarshal(r.Value, &res); err != nil {
			t.Fatalf("output %s: %v", r.Value, err)
		}
		if res.Key != nil && string(r.Key) != *res.Key {
			t.Errorf("record key %q differs from value key %q", r.Key, *res.Key)
		}
		if !r.Timestamp.Equal(res.End) {
			t.Errorf("record timestamp %v, want the window end %v", r.Timestamp, res.End)
		}
		out[i] = res.String()
	}
	return out
}

func mustNew(t *testing.T, cfg Config) *Stage {
	t.Helper()
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got  %q\n want %q", what, got, want)
	}
}

func TestTumblingEventTime(t *testing.T) {
	s := mustNew(t, Config{Kind: Tumbling, Size: 10 * time.Second, EventTime: true,
		Key: expr.MustCompile(`value.k`), Op: Sum, Expr: expr.MustCompile(`value.v`)})
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), s, &em)
	in <- tr.Batch(ev(1, "a", 1), ev(2, "b", 10), ev(9, "a", 2))
	in <- tr.Batch(ev(11, "a", 4)) // watermark 11: [0,10) closes
	stagetest.Eventually(t, "first windows", func() bool { return em.Len() == 1 })
	check(t, "closed by the watermark", results(t, em.Records()), []string{"a[0,10) 2 3", "b[0,10) 1 10"})
	if tr.Fired() != 0 {
		t.Fatal("acks fired before the windows were written")
	}
	em.Settle()
	if tr.Fired() != 1 {
		t.Fatalf("%d acks fired, want the first batch's only", tr.Fired())
	}
	in <- tr.Batch(ev(25, "b", 1), ev(21, "b", 2))
	close(in) // drain: [10,20) and [20,30) are emitted
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	check(t, "all", results(t, em.Records()), []string{"a[0,10) 2 3", "b[0,10) 1 10", "a[10,20) 1 4", "b[20,30) 2 3"})
	em.Settle()
	tr.Check(t)
}

func TestAllowedLatenessDropsAndAcksLate(t *testing.T) {
	s := mustNew(t, Config{Kind: Tumbling, Size: 10 * time.Second, EventTime: true, AllowedLateness: 5 * time.Second})
	var tr stagetest.Tracker
	var em stagetest.Emitter
	err := stagetest.Feed(s, &em,
		tr.Batch(ev(1, "", 0), ev(12, "", 0)), // watermark 7: [0,10) stays open
		tr.Batch(ev(8, "", 0)),                // in time
		tr.Batch(ev(16, "", 0)),               // watermark 11: [0,10) closes
		tr.Batch(ev(3, "", 0), ev(9, "", 0)),  // late: dropped, counted
		tr.Batch(ev(14, "", 0)),
	)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "windows", results(t, em.Records()), []string{"-[0,10) 2 2", "-[10,20) 3 3"})
	if s.Late() != 2 {
		t.Errorf("late = %d, want 2", s.Late())
	}
	if tr.Fired() != 1 { // only the all-late batch: dropped on purpose
		t.Errorf("%d acks fired before the outputs were written, want 1", tr.Fired())
	}
	em.Settle()
	tr.Check(t)
}

func TestSlidingEventTime(t *testing.T) {
	s := mustNew(t, Config{Kind: Sliding, Size: 10 * time.Second, Slide: 5 * time.Second, EventTime: true,
		Op: Collect, Expr: expr.MustCompile(`value.v`)})
	var tr stagetest.Tracker
	var em stagetest.Emitter
	if err := stagetest.Feed(s, &em, tr.Batch(ev(3, "", 1), ev(7, "", 2)), tr.Batch(ev(12, "", 3))); err != nil {
		t.Fatal(err)
	}
	check(t, "windows", results(t, em.Records()), []string{
		"-[-5,5) 1 [1]", "-[0,10) 2 [1 2]", "-[5,15) 2 [2 3]", "-[10,20) 1 [3]",
	})
	// The first batch feeds three windows: it is acked only when all are.
	// [-5,5) closed at watermark 7, [0,10) at 12, the rest at the drain.
	if n := em.Len(); n != 3 {
		t.Fatalf("%d output batches, want 3", n)
	}
	em.SettleBatch(0)
	em.SettleBatch(1)
	if tr.Fired() != 0 {
		t.Fatal("an input feeding an unwritten window was acked")
	}
	em.Settle()
	tr.Check(t)
}

func TestSessionEventTimeMerges(t *testing.T) {
	s := mustNew(t, Config{Kind: Session, Gap: 5 * time.Second, EventTime: true, AllowedLateness: 30 * time.Second,
		Key: expr.MustCompile(`value.k`), Op: Max, Expr: expr.MustCompile(`value.v`)})
	var tr stagetest.Tracker
	var em stagetest.Emitter
	err := stagetest.Feed(s, &em,
		tr.Batch(ev(0, "a", 1), ev(3, "a", 5), ev(1, "b", 7)), // a:[0,8) b:[1,6)
		tr.Batch(ev(11, "a", 2)),                              // a:[11,16)
		tr.Batch(ev(8, "a", 9)),                               // a:[8,13): 8-3 is not within the gap, a new session overlapping [11,16)
		tr.Batch(ev(7, "a", 3)),                               // a:[7,12) bridges [0,8) and [8,16)
		tr.Batch(ev(30, "a", 4)),                              // a:[30,35)
	)
	if err != nil {
		t.Fatal(err)
	}
	check(t, "sessions", results(t, em.Records()), []string{"b[1,6) 1 7", "a[0,16) 5 9", "a[30,35) 1 4"})
	em.Settle()
	tr.Check(t)
}

func TestSessionClosesByWatermark(t *testing.T) {
	s := mustNew(t, Config{Kind: Session, Gap: 5 * time.Second, EventTime: true})
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), s, &em)
	in <- tr.Batch(ev(0, "", 0), ev(2, "", 0))
	in <- tr.Batch(ev(20, "", 0))
	stagetest.Eventually(t, "the first session", func() bool { return em.Len() == 1 })
	check(t, "first", results(t, em.Records()), []string{"-[0,7) 2 2"})
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	em.Settle()
	tr.Check(t)
}

func TestAggregates(t *testing.T) {
	for op, want := range map[Op]string{Count: "3", Sum: "6", Min: "-1", Max: "5", Avg: "2", Collect: "[2 5 -1]"} {
		var e *expr.Program
		if op != Count {
			e = expr.MustCompile(`value.v`)
		}
		s := mustNew(t, Config{Kind: Tumbling, Size: time.Minute, EventTime: true, Op: op, Expr: e})
		var em stagetest.Emitter
		var tr stagetest.Tracker
		if err := stagetest.Feed(s, &em, tr.Batch(ev(1, "", 2), ev(2, "", 5), ev(3, "", -1))); err != nil {
			t.Fatal(err)
		}
		check(t, string(op), results(t, em.Records()), []string{"-[0,60) 3 " + want})
		em.Settle()
		tr.Check(t)
	}
}

func TestRecordErrors(t *testing.T) {
	s := mustNew(t, Config{Kind: Tumbling, Size: time.Minute, EventTime: true,
		Key: expr.MustCompile(`value.k`), Op: Sum, Expr: expr.MustCompile(`value.v`)})
	var em stagetest.Emitter
	var tr stagetest.Tracker
	noTime := ev(1, "a", 1)
	noTime.Timestamp = time.Time{}
	bad := ev(2, "a", 1)
	bad.Value = []byte(`{"k": "a", "v": "x"}`)
	notJSON := ev(3, "a", 1)
	notJSON.Value = []byte(`{`)
	if err := stagetest.Feed(s, &em, tr.Batch(ev(0, "a", 1), noTime, bad, notJSON)); err != nil {
		t.Fatal(err)
	}
	check(t, "windows", results(t, em.Records()), []string{"a[0,60) 1 1"})
	rej := em.Rejected()
	if len(rej) != 3 {
		t.Fatalf("%d rejected, want 3", len(rej))
	}
	for i, want := range []string{"no timestamp", "must return a number", "not valid JSON"} {
		if !strings.Contains(rej[i].Err.Error(), want) {
			t.Errorf("rejection %d: %v, want %q", i, rej[i].Err, want)
		}
	}
	em.Settle()
	tr.Check(t)
}

// Processing time: a window closes on its timer while the input is still
// open; the drain emits the rest.
func TestProcessingTimeClosesOnTimer(t *testing.T) {
	s := mustNew(t, Config{Kind: Tumbling, Size: 30 * time.Millisecond, Key: expr.MustCompile(`value.k`)})
	src := stagetest.NewSource([]flow.Record{ev(0, "a", 1), ev(0, "b", 1)}, []flow.Record{ev(0, "a", 1)})
	src.Pace = make(chan struct{}, 2)
	src.Hold = make(chan struct{})
	p := stagetest.New(src, s)
	wait := p.Start(context.Background())
	src.Pace <- struct{}{}
	// The input is still open: only the timer can have closed the window.
	stagetest.Eventually(t, "a timer-closed window acked", func() bool { return src.Fired() == 1 })
	if p.Sink.Len() == 0 {
		t.Fatal("an ack fired before its window was written")
	}
	src.Pace <- struct{}{}
	close(src.Hold)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	src.CheckAcks(t)
	total := 0
	for _, r := range results(t, p.Sink.Records()) {
		var n int
		fmt.Sscanf(r[strings.Index(r, ") ")+2:], "%d", &n)
		total += n
	}
	if total != 3 {
		t.Fatalf("windows count %d records, want 3", total)
	}
}

// With parallel workers keyed by record key, each worker keeps its own
// windows and all acks fire once.
func TestParallelWindows(t *testing.T) {
	s := mustNew(t, Config{Kind: Tumbling, Size: 10 * time.Second, EventTime: true, Key: expr.MustCompile(`key`)})
	var batches [][]flow.Record
	for b := 0; b < 20; b++ {
		var recs []flow.Record
		for i := 0; i < 10; i++ {
			r := ev(b*5+i, "", 0)
			r.Key = []byte(fmt.Sprint("k", i%3))
			recs = append(recs, r)
		}
		batches = append(batches, recs)
	}
	p := stagetest.New(stagetest.NewSource(batches...), s, flow.Parallelism(2, flow.OrderKey))
	p.Run(t)
	p.Source.CheckAcks(t)
	total := 0
	for _, r := range p.Sink.Records() {
		var res result
		_ = json.Unmarshal(r.Value, &res)
		total += res.Count
	}
	if total+int(s.Late()) != 200 {
		t.Fatalf("windows counted %d and dropped %d late, want 200 in all", total, s.Late())
	}
}

// A record counts in size/slide sliding windows, each held in memory:
// issue 9 had size 1h, slide 1ns run out of memory in seconds. At most
// MaxWindowsPerRecord are allowed, and the message says what slide would
// do.
func TestSlidingWindowsPerRecordAreBounded(t *testing.T) {
	for _, c := range []struct {
		size, slide time.Duration
		err         string
	}{
		{time.Hour, time.Nanosecond, "slide: each record would count in 3600000000000 windows (size 1h / slide 1ns), more than 1000: make slide at least 3.6s"},
		{time.Hour, time.Second, "slide: each record would count in 3600 windows (size 1h / slide 1s), more than 1000: make slide at least 3.6s"},
		{time.Second + time.Nanosecond, time.Millisecond, "slide: each record would count in 1001 windows (size 1.000000001s / slide 1ms), more than 1000: make slide at least 1.000001ms"},
		{time.Hour, 3600 * time.Millisecond, ""},
		{time.Second, time.Millisecond, ""},
		{time.Second + time.Nanosecond, 1000001 * time.Nanosecond, ""}, // the slide the message suggests
	} {
		_, err := New(Config{Kind: Sliding, Size: c.size, Slide: c.slide}, nil)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != c.err {
			t.Errorf("size %s slide %s: error %q, want %q", c.size, c.slide, got, c.err)
		}
	}
	if got := windowsPerRecord(time.Hour, time.Second); got != 3600 {
		t.Errorf("windowsPerRecord(1h, 1s) = %d", got)
	}
	if got := windowsPerRecord(time.Second+1, time.Millisecond); got != 1001 {
		t.Errorf("windowsPerRecord(1.000000001s, 1ms) = %d", got)
	}
}

// The slowest sliding window allowed still assigns a record to every
// window it falls in: MaxWindowsPerRecord panes.
func TestSlidingAtTheBoundAssignsEveryWindow(t *testing.T) {
	s := mustNew(t, Config{Kind: Sliding, Size: time.Second, Slide: time.Millisecond, EventTime: true})
	st := newState(s)
	n := 0
	st.assign("", t0.Add(500*time.Microsecond).UnixNano(), func(*pane) { n++ })
	if n != MaxWindowsPerRecord {
		t.Errorf("a record fell in %d windows, want %d", n, MaxWindowsPerRecord)
	}
}
