package stages

import (
	"context"
	"fmt"
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
	"github.com/sluicedev/sluice/stages/window"
)

// TestDurableDedupeCrashReplay crashes a durable dedupe stage again and
// again, mid-write included, and replays every partition from its
// committed offset on a fresh stage: every key's first record must have
// passed (at least once), and no other record with the key ever.
func TestDurableDedupeCrashReplay(t *testing.T) {
	for _, durable := range []bool{true, false} {
		t.Run(map[bool]string{true: "changelog", false: "memory"}[durable], func(t *testing.T) {
			leaked, lost := dedupeCrashRounds(t, durable)
			switch {
			case durable && (leaked > 0 || lost > 0):
				t.Fatalf("%d repeats passed, %d first sightings lost", leaked, lost)
			case !durable && leaked == 0:
				t.Fatal("memory state let no repeat through after the crashes: the test cannot tell the two apart")
			}
		})
	}
}

func dedupeCrashRounds(t *testing.T, durable bool) (leaked, lost int) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("SLUICE_DEDUPE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (SLUICE_DEDUPE_SEED=%d replays it)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	const parts, perPart = 3, 300
	ins := make([][]flow.Record, parts)
	first := map[string]int64{} // key -> offset of its first record
	for p := range ins {
		for i := range perPart {
			k := fmt.Sprintf("p%d-%d", p, rng.IntN(60))
			if _, ok := first[k]; !ok {
				first[k] = int64(i)
			}
			ins[p] = append(ins[p], flow.Record{Value: []byte(`{"id":"` + k + `"}`),
				Origin: flow.Origin{Source: "src", Topic: "t", Partition: int32(p), Offset: int64(i)}})
		}
	}
	logs := &stagetest.Changelogs{}
	commits := make([]int64, parts) // contiguous acknowledged prefix
	acked := make([]map[int64]int64, parts)
	for p := range acked {
		acked[p] = map[int64]int64{}
	}
	passed := map[string]bool{}
	clock := &fakeClock{t: time.Unix(1000, 0)}
	for round := 0; round <= 6; round++ {
		final := round == 6
		d := NewDedupe(expr.MustCompile(`value.id`), time.Hour, 10000, DedupeForget, quiet)
		d.now = clock.now
		if durable {
			d.Durable("dd", "")
		}
		var em stagetest.Emitter
		in, wait := stagetest.Start(context.Background(), d, &em)
		leases := make([]*flow.Lease, parts)
		pos := make([]int64, parts)
		for p := range leases {
			leases[p] = flow.NewLease(logs)
			pos[p] = commits[p]
		}
		var mu sync.Mutex
		stopAt := rng.IntN(40)
		for sent := 0; ; sent++ {
			p := rng.IntN(parts)
			left := false
			for q := range pos {
				left = left || pos[q] < perPart
			}
			if !left || !final && sent == stopAt {
				break
			}
			if pos[p] >= perPart {
				continue
			}
			n := min(int64(1+rng.IntN(20)), perPart-pos[p])
			recs := append([]flow.Record(nil), ins[p][pos[p]:pos[p]+n]...)
			for i := range recs {
				recs[i].Origin.Lease = leases[p]
			}
			from, end := pos[p], pos[p]+n
			in <- flow.NewBatch(recs, flow.NewAck(func(err error) {
				if err != nil {
					return
				}
				mu.Lock()
				acked[p][from] = end
				for e, ok := acked[p][commits[p]]; ok; e, ok = acked[p][commits[p]] {
					delete(acked[p], commits[p])
					commits[p] = e
				}
				mu.Unlock()
			}))
			pos[p] = end
			if rng.IntN(3) == 0 {
				em.Settle()
			}
		}
		if !final {
			logs.Crash(func() int { return rng.IntN(30) })
		}
		close(in)
		if err := wait(); err != nil && final {
			t.Fatal(err)
		}
		for _, r := range em.Records() {
			k := strings.TrimSuffix(strings.TrimPrefix(string(r.Value), `{"id":"`), `"}`)
			if r.Origin.Offset != first[k] {
				leaked++
			}
			passed[k] = true
		}
		em.Settle()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := d.Close(ctx); err != nil && final {
			t.Fatal(err)
		}
		cancel()
		for _, l := range leases {
			l.End()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := l.Wait(ctx); err != nil {
				t.Fatalf("round %d: lease not released", round)
			}
			cancel()
		}
		logs.Revive()
	}
	for k := range first {
		if !passed[k] {
			lost++
		}
	}
	t.Logf("%d keys; %d repeats passed, %d first sightings lost", len(first), leaked, lost)
	return leaked, lost
}

// A durable dedupe and a durable window in one pipeline export their
// state metrics side by side (the same names, told apart by node), and
// the dedupe's say how many keys it holds per partition.
func TestDurableStateMetricsCoexist(t *testing.T) {
	logs := &stagetest.Changelogs{}
	d := NewDedupe(expr.MustCompile(`value.id`), time.Hour, 100, DedupeForget, quiet)
	d.Durable("dd", "")
	defer d.Close(context.Background())
	w, err := window.New(window.Config{Kind: window.Tumbling, Size: time.Second, Durable: true, ID: "win"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(d); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(w); err != nil {
		t.Fatalf("window metrics clash with dedupe's: %v", err)
	}
	var em stagetest.Emitter
	in, wait := stagetest.Start(context.Background(), d, &em)
	lease := flow.NewLease(logs)
	recs := idRecords(`"a"`, `"b"`, `"a"`)
	for i := range recs {
		recs[i].Origin.Topic, recs[i].Origin.Partition, recs[i].Origin.Lease = "t", 2, lease
	}
	in <- flow.NewBatch(recs, flow.NewAck(nil))
	stagetest.Eventually(t, "two first sightings passed", func() bool { return len(em.Records()) == 2 })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "sluice_state_dedupe_keys" {
			found = true
			if m := mf.GetMetric(); len(m) != 1 || m[0].GetGauge().GetValue() != 2 {
				t.Fatalf("sluice_state_dedupe_keys %v, want one series of 2", m)
			}
		}
	}
	if !found {
		t.Fatal("sluice_state_dedupe_keys not exported")
	}
	em.Settle()
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}
