package flow

import (
	"testing"
	"time"
)

// aged returns a record its source stamped age before now.
func aged(now time.Time, age time.Duration) Record { return Record{Timestamp: now.Add(-age)} }

func TestAgesFallInTheirBuckets(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	recs := []Record{
		aged(now, 0),                         // (0, 100µs]
		aged(now, 100*time.Microsecond),      // a bound is in its own bucket
		aged(now, 100*time.Microsecond+1),    // (100µs, 250µs]
		aged(now, 3*time.Millisecond),        // (2.5ms, 5ms]
		aged(now, 3*time.Millisecond),        // same bucket, found without a search
		aged(now, 7*time.Millisecond),        // (5ms, 10ms]
		aged(now, 40*time.Second),            // (30s, 1m]
		aged(now, 11*time.Minute),            // past the last bound
		{},                                   // no timestamp: not counted
		aged(now, -time.Second),              // stamped ahead of our clock: age 0
		{Timestamp: now.Add(-2 * time.Hour)}, // past the last bound
	}
	var h ageHistogram
	h.observeAt(recs, now)
	got := h.read()

	want := map[time.Duration]int64{ // bucket bound -> records
		100 * time.Microsecond: 3,
		250 * time.Microsecond: 1,
		5 * time.Millisecond:   2,
		10 * time.Millisecond:  1,
		time.Minute:            1,
		AgeOverflow:            2,
	}
	bounds := AgeBounds()
	for i, n := range got.Buckets {
		bound := AgeOverflow
		if i < len(bounds) {
			bound = bounds[i]
		}
		if n != want[bound] {
			t.Errorf("bucket le=%v holds %d records, want %d", bound, n, want[bound])
		}
	}
	if got.Count() != 10 {
		t.Errorf("counted %d records, want the 10 with a timestamp", got.Count())
	}
	wantSum := (100*time.Microsecond + 100*time.Microsecond + 1 + 6*time.Millisecond + 7*time.Millisecond +
		40*time.Second + 11*time.Minute + 2*time.Hour).Seconds()
	if d := got.Sum - wantSum; d > 1e-9 || d < -1e-9 {
		t.Errorf("sum %v s, want %v s", got.Sum, wantSum)
	}

	// A second batch adds to the first; Sub takes the first away again.
	h.observeAt([]Record{aged(now, 20*time.Millisecond)}, now)
	window := h.read().Sub(got)
	if window.Count() != 1 || window.Buckets[ageBucket(20*time.Millisecond)] != 1 || ageBounds[ageBucket(20*time.Millisecond)] != 25*time.Millisecond {
		t.Errorf("window after one more record: %+v", window)
	}
}

func TestAgesOfRecordsWithoutTimestampsAreNotCounted(t *testing.T) {
	var h ageHistogram
	h.observe(make([]Record, 100))
	h.observe(nil)
	if c := h.read(); c.Count() != 0 || c.Sum != 0 {
		t.Fatalf("records without timestamps were counted: %+v", c)
	}
}

func TestAgeBucketMatchesALinearSearch(t *testing.T) {
	for _, age := range []time.Duration{0, 1, 99 * time.Microsecond, time.Millisecond, time.Millisecond + 1,
		time.Second, 9 * time.Minute, 10 * time.Minute, 10*time.Minute + 1, time.Duration(1 << 62)} {
		want := len(ageBounds)
		for i, b := range ageBounds {
			if age <= b {
				want = i
				break
			}
		}
		if got := ageBucket(age); got != want {
			t.Errorf("ageBucket(%v) = %d, want %d", age, got, want)
		}
	}
}

func TestAgeQuantiles(t *testing.T) {
	var c AgeCounts
	if _, ok := c.Quantile(0.5); ok {
		t.Fatal("an empty histogram has a quantile")
	}
	// 100 records: 50 in (5ms, 10ms], 49 in (10ms, 25ms], 1 past the last bound.
	c.Buckets[ageBucket(7*time.Millisecond)] = 50
	c.Buckets[ageBucket(20*time.Millisecond)] = 49
	c.Buckets[AgeBuckets-1] = 1
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 10 * time.Millisecond},    // the 50th record is the last of (5ms, 10ms]
		{0.25, 7500 * time.Microsecond}, // half way into (5ms, 10ms]
		{0.99, 25 * time.Millisecond},   // the 99th is the last of (10ms, 25ms]
		{1, AgeOverflow},
	} {
		got, ok := c.Quantile(tc.q)
		if !ok || got != tc.want {
			t.Errorf("q%v = %v (%v), want %v", tc.q, got, ok, tc.want)
		}
	}
}

// BenchmarkObserveAges is the per-record cost of the sink's age
// histogram: for a batch stamped at one time (as generate stamps it) and
// for one whose ages spread over several buckets (a fetch of several
// milliseconds' worth of records).
func BenchmarkObserveAges(b *testing.B) {
	for _, c := range []struct {
		name   string
		spread time.Duration
	}{{"one timestamp", 0}, {"spread", 20 * time.Microsecond}} {
		b.Run(c.name, func(b *testing.B) {
			now := time.Now()
			recs := make([]Record, 512)
			for i := range recs {
				recs[i].Timestamp = now.Add(-time.Duration(i) * c.spread)
			}
			var h ageHistogram
			b.ReportAllocs()
			for b.Loop() {
				h.observe(recs)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
		})
	}
}
