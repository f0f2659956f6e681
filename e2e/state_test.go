package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of the window stage's durable state (state:
// changelog): the state of every source partition is written to a
// compacted changelog topic, source offsets are committed once the state
// change holding a record is acknowledged, and a member that crashes or
// loses a partition to a rebalance leaves the state to be restored from
// the changelog. Whatever the faults, the last count emitted for each
// (key, window) must be the fault-free count. The pipeline is
// testdata/window-state.yaml, the helpers are in state_helpers_test.go.

// stateKill is one planned kill -9 of TestDurableWindowSurvivesKills.
type stateKill struct {
	// at is the share of the input the group must have committed before
	// the kill; unless early is set.
	at float64
	// early kills the member delay after it joined the group, whatever it
	// committed: likely while it restores its state.
	early bool
	delay time.Duration
}

func (k stateKill) String() string {
	if k.early {
		return fmt.Sprintf("%s after the member joined", k.delay)
	}
	return fmt.Sprintf("at %.1f%% committed", 100*k.at)
}

// TestDurableWindowSurvivesKills counts records per key in tumbling 10s
// event-time windows with state: changelog, and kills sluice with SIGKILL
// five times at seeded moments, restarting it each time. The input (4
// partitions, 10,000 keys, 15 windows, then one far later marker per
// partition that closes every window) is all in the topic before sluice
// starts. After the last start it waits for an emit of every window, and
// then the last count emitted for every (key, window) must be the count
// of the input, and no window may be emitted that the input does not
// have (the markers' own windows aside). A throttle paces the count to
// about 40s of input, so that the kills land while records flow.
//
// SLUICE_STATE_RECORDS sets the input size (default 1,000,000),
// SLUICE_STATE_SEED replays a schedule (which kills are early, the
// shares they wait for, the keys of the records).
func TestDurableWindowSurvivesKills(t *testing.T) {
	broker := kafkaBroker(t)
	const parts, keys, windows, kills = 4, 10_000, 15, 5
	const size = 10 * time.Second
	n := envInt(t, "SLUICE_STATE_RECORDS", 1_000_000)
	seed := stateSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x57a7e))
	// Kills at stratified shares between 5% and 85% of the input; one of
	// them (sometimes) right after a start instead.
	plan := make([]stateKill, kills)
	for i := range plan {
		plan[i] = stateKill{at: 0.05 + 0.80*(float64(i)+rng.Float64())/kills}
	}
	if i := rng.IntN(kills + 2); i < kills && i > 0 {
		plan[i] = stateKill{early: true, delay: time.Duration(rng.IntN(2000)) * time.Millisecond}
	}
	t.Logf("seed %d (replay with SLUICE_STATE_SEED=%d): %d records, %d keys, %d partitions, %d windows of %s", seed, seed, n, keys, parts, windows, size)
	for i, k := range plan {
		t.Logf("  kill %d/%d: %s", i+1, kills, k)
	}

	began := time.Now()
	in := newWindowInput(t, broker, rng, parts, n, keys, size, windows*size, pastBase(size))
	in.produce(0, n)
	in.produceMarkers()
	in.checkProduced()
	w := in.workload()
	total := int64(w.total())
	t.Logf("produced %d records (per partition %v) in %s: %d windows expected", total, in.counts, time.Since(began).Round(time.Millisecond), len(in.expect))

	// session_timeout at the broker's minimum: a restarted member waits
	// that long for its killed predecessor to be dropped from the group.
	// Paced so that the input takes about 40s to count: the kills land
	// while records flow, whatever the machine's speed.
	rate := max(n/40, 1000)
	j := newWindowJob(t, broker, in.topic, parts, "STATE=changelog", "SIZE="+size.String(), "SESSION_TIMEOUT=6s", fmt.Sprintf("RATE=%d", rate))
	cl := kafkaClient(t, broker)
	tail := tailEmits(t, broker, j.out, parts, size)
	progress := func() int64 { return committedTotal(cl, j.group, w) }

	began = time.Now()
	var runs []*proc
	for i, k := range plan {
		base := progress()
		p := j.start(t)
		runs = append(runs, p)
		if k.early {
			waitRunning(t, 2*time.Minute, fmt.Sprintf("run %d to join the group", i+1), func() bool { return assigned(p) != "" }, p)
			time.Sleep(k.delay) // part of the schedule: the kill's moment
		} else {
			// Past the planned share, and past what the run found
			// committed: the run restored its state and went on.
			want := max(int64(k.at*float64(total)), base+1)
			waitRunning(t, 3*time.Minute, fmt.Sprintf("run %d: %d records committed (seed %d)", i+1, want, seed), func() bool {
				return progress() >= want
			}, p)
		}
		select {
		case <-p.done:
			t.Fatalf("run %d exited by itself (%v) before kill %d (seed %d); stderr:\n%s", i+1, p.err, i+1, seed, p.stderr.String())
		default:
		}
		p.signal(syscall.SIGKILL)
		p.wait(10 * time.Second)
		done := progress()
		t.Logf("[%s] kill %d/%d (%s): group committed %d of %d; %d emits so far, %d windows still to emit",
			time.Since(began).Round(100*time.Millisecond), i+1, kills, k, done, total, tail.emitted(), tail.missing(in.expect))
		if done >= total {
			t.Fatalf("the input ran out before kill %d (seed %d): the kills did not land while records flowed", i+1, seed)
		}
	}
	last := j.start(t)
	runs = append(runs, last)
	waitRunning(t, 4*time.Minute, fmt.Sprintf("an emit of each of the %d windows (seed %d)", len(in.expect), seed), func() bool {
		return tail.missing(in.expect) == 0
	}, last)
	waitCopied(t, cl, j.group, w, 2*time.Minute, last)
	took := time.Since(began)
	last.stop(60 * time.Second)
	tail.readAll(t, broker, j.out)

	restores := 0
	for _, p := range runs {
		restores += strings.Count(p.stderr.String(), "restored partition state")
	}
	rep := checkEmits(t, tail, in.expect, in.isMarker)
	t.Logf("seed %d: %d kills, %d partition restores logged; all %d windows emitted %s after sluice first started; %d emits: %d repeated (a window emitted up to %d times), %d of the markers' windows",
		seed, kills, restores, rep.windows, took.Round(100*time.Millisecond), rep.emits, rep.repeats, rep.maxTimes, rep.markers)
}

// inFlightWarning is the Kafka source's warning when a revoked partition
// waited its whole drain_timeout for records still in flight.
const inFlightWarning = "batches still in flight after drain_timeout"

// generationEndedRe matches the source's line when a generation's revoke
// drain and last commit are done.
var generationEndedRe = regexp.MustCompile(`kafka source: generation ended`)

// TestDurableWindowRebalance runs two members of one group over an input
// of 8 partitions that arrives in three parts: A starts and counts the
// first part, B joins while windows are open (a rebalance hands some of
// A's partitions and their state to B), the second part comes, A leaves
// with SIGTERM (its partitions and their open windows go to B), and the
// rest of the input and the markers that close every window come. The
// last count emitted for every (key, window) must be the input's.
//
// The handovers must not wait for the source's drain_timeout (20s here,
// with session and rebalance timeouts above it): a window stage that
// flushes a revoked partition's state and releases it at once lets the
// group settle in a few seconds, and no member may log that a revoked
// partition waited drain_timeout for records in flight.
func TestDurableWindowRebalance(t *testing.T) {
	broker := kafkaBroker(t)
	const parts, keys, windows = 8, 10_000, 15
	const size = 10 * time.Second
	const srcDrain = 20 * time.Second
	n := envInt(t, "SLUICE_STATE_REBALANCE_RECORDS", 300_000)
	seed := stateSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x4eba1))
	t.Logf("seed %d (replay with SLUICE_STATE_SEED=%d): %d records, %d keys, %d partitions, %d windows of %s", seed, seed, n, keys, parts, windows, size)

	in := newWindowInput(t, broker, rng, parts, n, keys, size, windows*size, pastBase(size))
	// The parts end inside windows (at 5.55 and 10.65 of 15), so windows
	// are open at each handover.
	cut1, cut2 := int(0.37*float64(n)), int(0.71*float64(n))
	// Paced so that each part takes seconds to count: the handovers come
	// while batches are in flight.
	rate := max(n/15, 1000)
	j := newWindowJob(t, broker, in.topic, parts, "STATE=changelog", "SIZE="+size.String(), fmt.Sprintf("RATE=%d", rate),
		"SRC_DRAIN="+srcDrain.String(), "SESSION_TIMEOUT=30s", "REBALANCE_TIMEOUT=40s", "DRAIN=60s")
	cl := kafkaClient(t, broker)
	tail := tailEmits(t, broker, j.out, parts, size)
	progress := func() int64 { return committedTotal(cl, j.group, in.workload()) }
	// No revoked partition may wait drain_timeout: checked after each
	// handover, so that it is reported even if a later step fails.
	warned := map[*proc]bool{}
	noDrainWait := func(name string, p *proc) {
		t.Helper()
		if log := p.stderr.String(); !warned[p] && strings.Contains(log, inFlightWarning) {
			warned[p] = true
			t.Errorf("member %s logged %q: a revoked partition waited drain_timeout for records in flight; its log:\n%s", name, inFlightWarning, log)
		}
	}
	holds := func(p *proc) int {
		if a := assigned(p); a != "" {
			return len(strings.Split(a, ","))
		}
		return 0
	}

	began := time.Now()
	a := j.start(t)
	waitRunning(t, 2*time.Minute, "A to hold all partitions", func() bool { return holds(a) == parts }, a)
	in.produce(0, cut1)
	t.Logf("[%s] A holds %s; produced part 1: %d records", time.Since(began).Round(100*time.Millisecond), assigned(a), cut1)
	waitRunning(t, 2*time.Minute, "A to commit half of part 1", func() bool { return progress() >= int64(cut1/2) }, a)

	// First handover: B joins, A gives up some partitions.
	bStart := time.Now()
	b := j.start(t)
	waitRunning(t, 2*time.Minute, "A and B to share the partitions", func() bool {
		return holds(b) > 0 && holds(a) > 0 && holds(a)+holds(b) == parts
	}, a, b)
	join := time.Since(bStart)
	t.Logf("[%s] B joined %s after its start: A holds %s, B holds %s; %d committed",
		time.Since(began).Round(100*time.Millisecond), join.Round(10*time.Millisecond), assigned(a), assigned(b), progress())
	if join >= srcDrain {
		t.Errorf("B took %s from its start to share the partitions with A, not less than the source's drain_timeout %s: the revoke waited for it", join, srcDrain)
	}
	waitRunning(t, time.Minute, "A to log the end of its first generation", func() bool {
		return len(generationEndedRe.FindAllString(a.stderr.String(), -1)) >= 1
	}, a, b)
	noDrainWait("A", a)

	in.produce(cut1, cut2)
	want := int64(cut1 + (cut2-cut1)/2)
	waitRunning(t, 2*time.Minute, fmt.Sprintf("the group to commit %d records", want), func() bool { return progress() >= want }, a, b)

	// Second handover: A leaves, B takes everything.
	aStop := time.Now()
	t.Logf("[%s] part 2 produced (%d records); SIGTERM A with %d committed", time.Since(began).Round(100*time.Millisecond), cut2-cut1, progress())
	a.signal(syscall.SIGTERM)
	waitRunning(t, 2*time.Minute, "B to hold all partitions", func() bool { return holds(b) == parts }, b)
	handover := time.Since(aStop)
	if code := a.wait(srcDrain + 40*time.Second); code != 0 {
		t.Fatalf("A: exit %d after SIGTERM, want 0; stderr:\n%s", code, a.stderr.String())
	}
	t.Logf("[%s] B holds all partitions %s after A's SIGTERM; A exited 0 (%s after the signal)",
		time.Since(began).Round(100*time.Millisecond), handover.Round(10*time.Millisecond), time.Since(aStop).Round(10*time.Millisecond))
	if handover >= srcDrain {
		t.Errorf("B held all partitions %s after A's SIGTERM, not less than the source's drain_timeout %s: the handover waited for it", handover, srcDrain)
	}
	noDrainWait("A", a)
	noDrainWait("B", b)

	in.produce(cut2, n)
	in.produceMarkers()
	in.checkProduced()
	w := in.workload()
	waitRunning(t, 4*time.Minute, fmt.Sprintf("an emit of each of the %d windows (seed %d)", len(in.expect), seed), func() bool {
		return tail.missing(in.expect) == 0
	}, b)
	waitCopied(t, cl, j.group, w, 2*time.Minute, b)
	b.stop(60 * time.Second)
	tail.readAll(t, broker, j.out)

	noDrainWait("B", b)
	for name, p := range map[string]*proc{"A": a, "B": b} {
		log := p.stderr.String()
		t.Logf("member %s: %d generations ended, %d partition restores logged", name,
			len(generationEndedRe.FindAllString(log, -1)), strings.Count(log, "restored partition state"))
	}
	rep := checkEmits(t, tail, in.expect, in.isMarker)
	t.Logf("seed %d: B joined in %s, took over from A in %s (drain_timeout %s); %d windows, %d emits: %d repeated (a window emitted up to %d times), %d of the markers' windows",
		seed, join.Round(10*time.Millisecond), handover.Round(10*time.Millisecond), srcDrain, rep.windows, rep.emits, rep.repeats, rep.maxTimes, rep.markers)
}

// TestDurableWindowCommitsWhileOpen feeds a steady 200 records/s for 15s
// into a window of one hour, which stays open throughout.
//
// With state: changelog the group's committed offsets must advance while
// records come, and the lag (end offset minus committed, summed) must
// fall to a few hundred records while no window has been emitted. A
// SIGTERM then emits nothing (the open window is kept), and a restart
// after a record that closes the window emits every key's full count.
//
// With state: memory (the default) a window holds the acknowledgements
// of its records until it is emitted, so the committed offsets must not
// pass the window's first record (offset 0 of each partition) while
// sluice has read every record; the SIGTERM drain then emits the window
// with all of them, and commits.
func TestDurableWindowCommitsWhileOpen(t *testing.T) {
	broker := kafkaBroker(t)
	t.Run("changelog", func(t *testing.T) { commitsWhileOpen(t, broker, "changelog") })
	t.Run("memory", func(t *testing.T) { commitsWhileOpen(t, broker, "memory") })
}

func commitsWhileOpen(t *testing.T, broker, state string) {
	const parts, keys, rate, seconds = 4, 100, 200, 15
	const size = time.Hour
	const maxLag = 300
	n := rate * seconds
	seed := stateSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x09e9))
	t.Logf("seed %d: %d records at %d/s into a window of %s, state: %s", seed, n, rate, size, state)

	// One window: the records are stamped from its start on, an hour ago
	// at most, and span only a minute of it.
	in := newWindowInput(t, broker, rng, parts, n, keys, size, time.Minute, time.Now().Truncate(size).Add(-size))
	if len(in.expect) != keys {
		t.Fatalf("the input covers %d (key, window) pairs, want %d: one window per key", len(in.expect), keys)
	}
	j := newWindowJob(t, broker, in.topic, parts, "STATE="+state, "SIZE="+size.String())
	cl := kafkaClient(t, broker)
	tail := tailEmits(t, broker, j.out, parts, size)
	committedNow := func() (map[int]int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return committed(ctx, cl, j.group, in.topic, parts)
	}
	sum := func(m map[int]int64) int64 {
		var s int64
		for _, off := range m {
			s += max(off, 0)
		}
		return s
	}

	p := j.start(t)
	waitRunning(t, 2*time.Minute, "sluice to join the group", func() bool { return assigned(p) != "" }, p)

	// The producer paces itself: a tenth of a second's records each tick.
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < n; i += rate / 10 {
			<-tick.C
			if err := in.write(i, min(i+rate/10, n)); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Watch the committed offsets while records come.
	var samples []int64 // committed totals seen while producing, when they changed
	maxCommitted := map[int]int64{}
	producing := true
	for producing {
		select {
		case err, ok := <-errc:
			if ok && err != nil {
				t.Fatal(err)
			}
			producing = false
		case <-time.After(100 * time.Millisecond):
		}
		select {
		case <-p.done:
			t.Fatalf("sluice exited (%v) while records came; stderr:\n%s", p.err, p.stderr.String())
		default:
		}
		got, err := committedNow()
		if err != nil {
			continue
		}
		for part, off := range got {
			maxCommitted[part] = max(maxCommitted[part], off)
		}
		if s := sum(got); len(samples) == 0 || s != samples[len(samples)-1] {
			samples = append(samples, s)
		}
	}
	in.checkProduced()
	total := in.produced()
	if e := tail.emitted(); e != 0 {
		t.Fatalf("%d windows emitted while the hour-long window was open", e)
	}

	switch state {
	case "changelog":
		// Offsets advance while the window is open.
		rising := 0
		for i := 1; i < len(samples); i++ {
			if samples[i] > samples[i-1] {
				rising++
			}
		}
		t.Logf("committed total while producing moved forward %d times, to %d of %d", rising, samples[len(samples)-1], total)
		if rising < 3 {
			t.Errorf("the committed offsets moved forward %d times in %ds of input (totals seen: %v); want them to advance while the window is open", rising, seconds, samples)
		}
		var lag int64
		waitRunning(t, 30*time.Second, fmt.Sprintf("the lag to fall to %d records or less", maxLag), func() bool {
			got, err := committedNow()
			if err != nil {
				return false
			}
			lag = total - sum(got)
			return lag <= maxLag
		}, p)
		if e := tail.emitted(); e != 0 {
			t.Fatalf("%d windows emitted while the hour-long window was open", e)
		}
		t.Logf("lag %d of %d records, no window emitted", lag, total)
		cl2 := j.changelog(in.topic)
		if got := partitionCount(t, broker, cl2); got != parts {
			t.Errorf("changelog topic %s has %d partitions, want %d (the source's)", cl2, got, parts)
		}
		if entries := written(cl, cl2); entries == 0 {
			t.Errorf("changelog topic %s holds no entries", cl2)
		} else {
			t.Logf("changelog %s holds %d entries for %d records", cl2, entries, total)
		}

		// SIGTERM keeps the open window; a restart continues it.
		p.stop(40 * time.Second)
		tail.readAll(t, broker, j.out)
		if e := tail.emitted(); e != 0 {
			t.Fatalf("%d windows emitted on SIGTERM: with state: changelog an open window is kept, not emitted", e)
		}
		in.markersAt(in.base.Add(size))
		in.checkProduced()
		again := j.start(t)
		waitRunning(t, 2*time.Minute, fmt.Sprintf("the restarted member to emit all %d keys' windows", keys), func() bool {
			return tail.missing(in.expect) == 0
		}, again)
		again.stop(40 * time.Second)
		tail.readAll(t, broker, j.out)
		rep := checkEmits(t, tail, in.expect, in.isMarker)
		t.Logf("after the restart: %d windows, %d emits, %d repeated", rep.windows, rep.emits, rep.repeats)

	case "memory":
		// Every record is read, and still nothing is committed past the
		// window's first record.
		waitRunning(t, 30*time.Second, fmt.Sprintf("the window stage to take in all %d records", total), func() bool {
			return nodeIn(p, "counts") >= total
		}, p)
		// Watch ten commit intervals more, now that all was read.
		deadline := time.Now().Add(10 * 200 * time.Millisecond)
		for time.Now().Before(deadline) {
			if got, err := committedNow(); err == nil {
				for part, off := range got {
					maxCommitted[part] = max(maxCommitted[part], off)
				}
			}
			time.Sleep(100 * time.Millisecond) // the poll's pace
		}
		t.Logf("state: memory: the highest committed offset per partition was %v while the window held all %d records", maxCommitted, total)
		for part, off := range maxCommitted {
			if off > 0 {
				t.Errorf("partition %d: committed offset %d while its window (from offset 0) was open: with state: memory the window holds the acknowledgements of its records", part, off)
			}
		}
		p.stop(40 * time.Second)
		tail.readAll(t, broker, j.out)
		rep := checkEmits(t, tail, in.expect, in.isMarker)
		if rep.repeats != 0 {
			t.Errorf("%d windows emitted more than once by one drain", rep.repeats)
		}
		if done := committedTotal(cl, j.group, in.workload()); done != total {
			t.Errorf("after the drain the group committed %d of %d records", done, total)
		}
	}
}
