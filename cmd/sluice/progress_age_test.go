package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// ageBucket is the index of flow's age bucket whose bound is le.
func ageBucket(t *testing.T, le time.Duration) int {
	t.Helper()
	for i, b := range flow.AgeBounds() {
		if b == le {
			return i
		}
	}
	t.Fatalf("no age bucket up to %v", le)
	return -1
}

// A sink's line shows the p50 and p99 age of the records it wrote since
// the last frame, not since the start; "-" when it wrote none since.
func TestFormatFrameShowsTheAgeOfWhatSinksWrote(t *testing.T) {
	var old, now flow.AgeCounts
	old.Buckets[ageBucket(t, time.Minute)] = 1000 // written before: 40 s old
	now = old
	now.Buckets[ageBucket(t, 10*time.Millisecond)] += 50
	now.Buckets[ageBucket(t, 25*time.Millisecond)] += 50
	prev := []nodeSample{
		{id: "gen", kind: "source", typ: "generate", running: true},
		{id: "out", kind: "sink", typ: "kafka", hasInput: true, running: true, ages: old},
		{id: "idle", kind: "sink", typ: "kafka", hasInput: true, running: true, ages: old},
		{id: "nots", kind: "sink", typ: "kafka", hasInput: true, running: true},
	}
	cur := []nodeSample{
		{id: "gen", kind: "source", typ: "generate", running: true},
		{id: "out", kind: "sink", typ: "kafka", out: 100, hasInput: true, running: true, ages: now},
		{id: "idle", kind: "sink", typ: "kafka", hasInput: true, running: true, ages: old},
		{id: "nots", kind: "sink", typ: "kafka", out: 100, hasInput: true, running: true},
	}
	got := formatFrame(prev, cur, time.Second)
	for i, want := range []string{
		"gen source generate in 0/s out 0/s total 0 buf -",
		// 50 records up to 10 ms, 50 in (10 ms, 25 ms]: the median is
		// the last of the first, the 99th is 49/50 into the second.
		"out sink kafka in 0/s out 100/s total 100 buf 0% age p50 10ms p99 25ms",
		"idle sink kafka in 0/s out 0/s total 0 buf 0% age -",
		"nots sink kafka in 0/s out 100/s total 100 buf 0%",
	} {
		if words(got[i]) != want {
			t.Errorf("line %q, want (spacing aside) %q", got[i], want)
		}
	}
}

func TestShortAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		420 * time.Microsecond:  "420µs",
		3100 * time.Microsecond: "3.1ms",
		12 * time.Millisecond:   "12ms",
		2200 * time.Millisecond: "2.2s",
		42 * time.Second:        "42s",
		90 * time.Second:        "1.5min",
		flow.AgeOverflow:        ">10min",
	} {
		if got := shortAge(d); got != want {
			t.Errorf("shortAge(%v) = %q, want %q", d, got, want)
		}
	}
}

// stampedSource emits n records its source stamped age ago.
type stampedSource struct {
	n   int
	age time.Duration
}

func (s stampedSource) Run(ctx context.Context, out flow.Emitter) error {
	recs := make([]flow.Record, s.n)
	for i := range recs {
		recs[i].Timestamp = time.Now().Add(-s.age)
	}
	return out.Emit(ctx, flow.NewBatch(recs, flow.NewAck(func(error) {})))
}

type nopSink struct{}

func (nopSink) Write(context.Context, []flow.Record) error { return nil }

// The progress block of a pipeline whose sink wrote records stamped 40 s
// before shows their age; the frame left on screen at the end shows the
// whole run's.
func TestProgressShowsTheAgeOfARunsRecords(t *testing.T) {
	p := flow.New("ages", flow.WithLogger(slog.New(slog.DiscardHandler))).
		Source("gen", stampedSource{n: 500, age: 40 * time.Second}, flow.Type("test")).
		Sink("out", nopSink{}, flow.Inputs("gen"), flow.Type("test"))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	var b lockedBuffer
	startProgress(newLiveTerm(&b, 0), p.Stats, time.Hour)()
	out := b.String()
	last := out[strings.LastIndex(out, "\x1b[J")+len("\x1b[J"):]
	if !strings.Contains(words(last), "out sink test in 0/s out 0/s total 500 buf 0% age p50 45s p99 60s done") {
		t.Fatalf("final frame %q should show the ages of the 500 records, all in (30s, 1m]", last)
	}
}
