package window

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
	statelog "github.com/sluicedev/sluice/state"
)

func durableConfig() Config {
	return Config{Kind: Tumbling, Size: time.Second, EventTime: true, Key: expr.MustCompile(`value.k`),
		Durable: true, ID: "counts"}
}

// in is one partition's input in offset order.
type input struct {
	recs []flow.Record
}

func durableInput(rng *rand.Rand, parts, perPart, keys int) ([]input, map[string]int) {
	want := map[string]int{}
	ins := make([]input, parts)
	for p := range ins {
		at := t0.Add(time.Duration(p) * 7 * time.Millisecond)
		for i := range perPart {
			at = at.Add(time.Duration(rng.IntN(120)) * time.Millisecond)
			k := fmt.Sprintf("p%dk%d", p, rng.IntN(keys)) // a key lives in one partition, as Kafka partitions by key
			ins[p].recs = append(ins[p].recs, flow.Record{Value: []byte(`{"k":"` + k + `"}`), Timestamp: at,
				Origin: flow.Origin{Source: "src", Topic: "t", Partition: int32(p), Offset: int64(i)}})
			want[fmt.Sprintf("%s@%d", k, at.Truncate(time.Second).Sub(t0)/time.Second)]++
		}
		// A record far later closes every window before it.
		ins[p].recs = append(ins[p].recs, flow.Record{Value: []byte(`{"k":"end"}`), Timestamp: t0.Add(time.Hour),
			Origin: flow.Origin{Source: "src", Topic: "t", Partition: int32(p), Offset: int64(perPart)}})
	}
	return ins, want
}

// committed turns out-of-order acks of one partition into the offset a
// consumer would resume from.
type committed struct {
	mu    sync.Mutex
	next  int64
	acked map[int64]int64 // from -> end of acknowledged spans
}

func (c *committed) ack(from, end int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acked[from] = end
	for {
		e, ok := c.acked[c.next]
		if !ok {
			return
		}
		delete(c.acked, c.next)
		c.next = e
	}
}

func (c *committed) pos() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.next
}

// TestDurableCrashReplayIsExact crashes a durable window stage again and
// again at random points, mid-write included, replays every partition
// from its committed offset on a fresh stage each time, and checks that
// the last result emitted per key and window is the fault-free count.
func TestDurableCrashReplayIsExact(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_WINDOW_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (SLUICE_WINDOW_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	const parts = 3
	ins, want := durableInput(rng, parts, 400, 7)
	logs := &stagetest.Changelogs{}
	commits := make([]*committed, parts)
	for p := range commits {
		commits[p] = &committed{acked: map[int64]int64{}}
	}
	last := map[string]int{}
	emits := 0
	for round := 0; ; round++ {
		final := round == crashRounds
		s := mustNewDurable(t, durableConfig())
		var em stagetest.Emitter
		in, wait := stagetest.Start(context.Background(), s, &em)
		leases := make([]*flow.Lease, parts)
		for p := range leases {
			leases[p] = flow.NewLease(logs)
		}
		pos := make([]int64, parts)
		for p := range pos {
			pos[p] = commits[p].pos()
		}
		stopAt := rng.IntN(60)
		for sent := 0; ; sent++ {
			p := rng.IntN(parts)
			if pos[p] >= int64(len(ins[p].recs)) {
				if done := func() bool {
					for q := range pos {
						if pos[q] < int64(len(ins[q].recs)) {
							return false
						}
					}
					return true
				}(); done {
					break
				}
				continue
			}
			if !final && sent == stopAt {
				break
			}
			n := min(int64(1+rng.IntN(25)), int64(len(ins[p].recs))-pos[p])
			recs := append([]flow.Record(nil), ins[p].recs[pos[p]:pos[p]+n]...)
			for i := range recs {
				recs[i].Origin.Lease = leases[p]
			}
			from, end, c := pos[p], pos[p]+n, commits[p]
			in <- flow.NewBatch(recs, flow.NewAck(func(err error) {
				if err == nil {
					c.ack(from, end)
				}
			}))
			pos[p] = end
			if rng.IntN(3) == 0 {
				em.Settle() // the sinks wrote what was emitted so far
			}
		}
		if !final {
			logs.Crash(func() int { return rng.IntN(40) })
		}
		close(in)
		if err := wait(); err != nil && final {
			t.Fatal(err)
		}
		// The sinks wrote what was emitted (some of it after the crash
		// point, as real sinks do), in order.
		for _, r := range em.Records() {
			var res result
			if err := json.Unmarshal(r.Value, &res); err != nil {
				t.Fatal(err)
			}
			last[fmt.Sprintf("%s@%d", *res.Key, res.Start.Sub(t0)/time.Second)] = res.Count
			emits++
		}
		em.Settle()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.Close(ctx)
		cancel()
		if final && err != nil {
			t.Fatal(err)
		}
		for _, l := range leases {
			l.End()
			waitCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := l.Wait(waitCtx); err != nil {
				t.Fatalf("round %d: the stage did not release a lease: %v", round, err)
			}
			cancel()
		}
		logs.Revive()
		if final {
			break
		}
	}
	for k, n := range want {
		if last[k] != n {
			t.Errorf("window %s: last emitted count %d, want %d", k, last[k], n)
		}
	}
	for k := range last {
		if _, ok := want[k]; !ok {
			t.Errorf("window %s emitted, but no record belongs to it", k)
		}
	}
	t.Logf("%d windows, %d emits (%d repeated after crashes)", len(want), emits, emits-len(want))
}

func mustNewDurable(t *testing.T, cfg Config) *Stage {
	t.Helper()
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestDurableAcksBeforeWindowsClose: with durable state a record is
// acknowledged once its change is written, while its window is open.
func TestDurableAcksBeforeWindowsClose(t *testing.T) {
	logs := &stagetest.Changelogs{}
	s := mustNewDurable(t, durableConfig())
	defer s.Close(context.Background())
	lease := flow.NewLease(logs)
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), s, &em)
	r := ev(1, "a", 1)
	r.Origin.Topic, r.Origin.Lease = "t", lease
	in <- tr.Batch(r)
	stagetest.Eventually(t, "ack after the changelog write", func() bool { return tr.Fired() == 1 })
	if em.Len() != 0 {
		t.Fatal("a window was emitted before it closed")
	}
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if em.Len() != 0 {
		t.Fatal("durable windows must not be emitted at shutdown: they go on after the restart")
	}
	tr.Check(t)
	lease.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := lease.Wait(ctx); err != nil {
		t.Fatal("lease not released after the stage stopped")
	}
}

// TestDurableRevokeReleasesAndRestores: a revoked partition's state is
// written and dropped, the lease released; the partition assigned again
// (a new lease) is restored from the changelog.
func TestDurableRevokeReleasesAndRestores(t *testing.T) {
	logs := &stagetest.Changelogs{}
	s := mustNewDurable(t, durableConfig())
	defer s.Close(context.Background())
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), s, &em)
	rec := func(sec, off int, lease *flow.Lease) flow.Record {
		r := ev(sec, "a", 1)
		r.Origin.Topic, r.Origin.Offset, r.Origin.Lease = "t", int64(off), lease
		return r
	}
	l1 := flow.NewLease(logs)
	in <- tr.Batch(rec(1, 0, l1), rec(2, 1, l1)) // the watermark at 2s closes [1,2)
	stagetest.Eventually(t, "acks", func() bool { return tr.Fired() == 1 })
	stagetest.Eventually(t, "[1,2) emitted", func() bool { return em.Len() == 1 })
	em.Settle() // written by the sinks: the changelog marks it closed
	log := logs.Log("g-counts-t-changelog")
	stagetest.Eventually(t, "closed mark written", func() bool {
		for _, e := range log.Entries(0) {
			if e.Key[0] == keyClosed {
				return true
			}
		}
		return false
	})
	l1.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l1.Wait(ctx); err != nil {
		t.Fatal("the stage did not release a revoked partition")
	}
	l2 := flow.NewLease(logs)
	// Offset 1 again (re-read from the last commit) is skipped, 2 counts,
	// 3 at 30s closes [2,3) (restored) and [3,4); [1,2) is not emitted
	// again: it was marked closed.
	in <- tr.Batch(rec(2, 1, l2), rec(3, 2, l2), rec(30, 3, l2))
	stagetest.Eventually(t, "windows closed", func() bool { return len(em.Records()) >= 3 })
	check(t, "restored and continued", results(t, em.Records()), []string{"a[1,2) 1 1", "a[2,3) 1 1", "a[3,4) 1 1"})
	// Metrics: the replayed record, and the restore of the second lease.
	reg := prometheus.NewRegistry()
	reg.MustRegister(s, mustNewDurable(t, Config{Kind: Tumbling, Size: time.Second, Durable: true, ID: "other"}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + ","
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()+"{"+labels+"}"] = v
		}
	}
	for k, want := range map[string]float64{
		"sluice_state_replayed_records_total{node=counts,}":               1,
		"sluice_state_replayed_records_total{node=other,}":                0,
		"sluice_state_restored_entries{node=counts,partition=0,topic=t,}": -1, // > 0
	} {
		v, ok := got[k]
		if !ok || want >= 0 && v != want || want < 0 && v <= 0 {
			t.Errorf("metric %s = %v (exported %v), want %v", k, v, ok, want)
		}
	}
	em.Settle()
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if s.replayed.Load() != 1 {
		t.Fatalf("%d records skipped as replayed, want 1", s.replayed.Load())
	}
}

// TestDurableRefusesAnotherDefinition: state written by a window of
// another size is refused with a message saying what to do.
func TestDurableRefusesAnotherDefinition(t *testing.T) {
	logs := &stagetest.Changelogs{}
	rec := func(lease *flow.Lease) *flow.Batch {
		r := ev(1, "a", 1)
		r.Origin.Topic, r.Origin.Lease = "t", lease
		return flow.NewBatch([]flow.Record{r}, flow.NewAck(nil))
	}
	s := mustNewDurable(t, durableConfig())
	var em stagetest.Emitter
	if err := stagetest.Feed(s, &em, rec(flow.NewLease(logs))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := durableConfig()
	cfg.Size = 2 * time.Second
	s2 := mustNewDurable(t, cfg)
	defer s2.Close(context.Background())
	err := stagetest.Feed(s2, &em, rec(flow.NewLease(logs)))
	if err == nil || !strings.Contains(err.Error(), "another window definition") || !strings.Contains(err.Error(), "changelog_prefix") {
		t.Fatalf("got %v, want a refusal naming changelog_prefix", err)
	}
}

func TestDurableConfigRefusals(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Kind: Session, Gap: time.Second, Durable: true}, "session windows"},
		{Config{Kind: Tumbling, Size: time.Second, Durable: true, OnLimit: EmitEarly}, "emit_early is refused"},
		{Config{Kind: Tumbling, Size: time.Second, ChangelogPrefix: "x"}, "only used with state: changelog"},
	} {
		if _, err := New(tc.cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestDurableNeedsAKafkaSource: records without a lease fail the stage
// with a message naming the cause.
func TestDurableNeedsAKafkaSource(t *testing.T) {
	s := mustNewDurable(t, durableConfig())
	defer s.Close(context.Background())
	var em stagetest.Emitter
	err := stagetest.Feed(s, &em, flow.NewBatch([]flow.Record{ev(1, "a", 1)}, flow.NewAck(nil)))
	if !errors.Is(err, statelog.ErrNoProvider) {
		t.Fatalf("got %v, want ErrNoProvider", err)
	}
}

var crashRounds = 8
