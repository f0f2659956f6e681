package e2e

import (
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// forceGuard mirrors cmd/sluice's: a second signal sooner than this after
// the first is taken as a copy of it.
const forceGuard = time.Second

// signalPipeline is generate -> throttle -> file with full edges, so a
// drain has records to write; rate sets how long that takes.
func signalPipeline(t *testing.T, rate int) (cfg, out string) {
	t.Helper()
	dir := t.TempDir()
	out = filepath.Join(dir, "out.jsonl")
	cfg = writeFile(t, dir, "signals.yaml", `
name: signals
settings: {buffer: 2000, drain_timeout: 60s, http: {listen: ""}}
sources:
  gen: {type: generate, count: 0, batch: 100}
stages:
  slow: {type: throttle, inputs: [gen], rate: `+strconv.Itoa(rate)+`}
sinks:
  out: {type: file, inputs: [slow], path: `+out+`}
`)
	return cfg, out
}

// Two SIGTERMs back to back, as GNU timeout sends them (to the process,
// then to its group) and as one Ctrl-C can deliver them, are one request
// to drain: exit 0 with every acknowledged record in the file. Before the
// fix the second copy forced an exit 1 whenever it was not coalesced with
// the first, so the test repeats the pair to catch that race.
func TestDoubleSIGTERMDrains(t *testing.T) {
	const tries = 12
	for i := range tries {
		cfg, out := signalPipeline(t, 20000)
		p := start(t, nil, "run", cfg)
		waitRunning(t, 30*time.Second, "records in the file", func() bool { return countLines(out) > 2000 }, p)
		pid := p.cmd.Process.Pid
		err1 := syscall.Kill(pid, syscall.SIGTERM)
		err2 := syscall.Kill(pid, syscall.SIGTERM)
		if err1 != nil || err2 != nil {
			t.Fatalf("kill: %v, %v", err1, err2)
		}
		code := p.wait(60 * time.Second)
		stderr := p.stderr.String()
		if code != 0 || strings.Contains(stderr, "forced exit") {
			t.Fatalf("try %d of %d: exit %d after two SIGTERMs at once, want a drain and exit 0; stderr:\n%s", i+1, tries, code, stderr)
		}
		if !strings.Contains(stderr, "pipeline drained after signal") {
			t.Fatalf("try %d: no clean-drain line in stderr:\n%s", i+1, stderr)
		}
		acked := ackedCount(t, stderr)
		lines := readLines(t, out)
		seqs := make([]int, len(lines))
		for j, l := range lines {
			seqs[j] = int(decode(t, l)["seq"].(float64))
		}
		sort.Ints(seqs)
		for j, s := range seqs {
			if s != j {
				t.Fatalf("try %d: seq gap or duplicate at position %d: got %d", i+1, j, s)
			}
		}
		if acked == 0 || len(seqs) < acked {
			t.Fatalf("try %d: file holds %d records, the source saw %d acknowledged", i+1, len(seqs), acked)
		}
	}
}

// A second signal that comes well after the first is a person asking to
// stop now: exit 1 at once, without waiting for the drain.
func TestLaterSecondSIGTERMForcesExit(t *testing.T) {
	// 200 records a second against 2000-record edges: the drain takes
	// far longer than the guard, so it is still running when the second
	// signal arrives.
	cfg, out := signalPipeline(t, 200)
	p := start(t, nil, "run", cfg)
	waitRunning(t, 30*time.Second, "records in the file", func() bool { return countLines(out) > 0 }, p)
	p.signal(syscall.SIGTERM)
	waitRunning(t, 30*time.Second, "the drain to start", func() bool {
		return strings.Contains(p.stderr.String(), "signal received: draining")
	}, p)
	// sluice read its clock for the first signal before it logged it, so
	// the guard has passed for it too once it passed since the log line.
	// The guard is a duration: only time can pass it.
	first := time.Now()
	<-time.After(forceGuard + 100*time.Millisecond)
	if strings.Contains(p.stderr.String(), "pipeline drained") {
		t.Fatalf("the drain ended before the second signal; make it slower:\n%s", p.stderr.String())
	}
	p.signal(syscall.SIGTERM)
	second := time.Now()
	code := p.wait(30 * time.Second)
	took := time.Since(second)
	stderr := p.stderr.String()
	if code != 1 || !strings.Contains(stderr, "forced exit") {
		t.Fatalf("exit %d after a second SIGTERM %s after the first, want a forced exit 1; stderr:\n%s", code, second.Sub(first), stderr)
	}
	if strings.Contains(stderr, "pipeline drained") {
		t.Fatalf("the drain completed, so the second signal forced nothing:\n%s", stderr)
	}
	if took > 5*time.Second {
		t.Fatalf("the forced exit took %s", took)
	}
}
