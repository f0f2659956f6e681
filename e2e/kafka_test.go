package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests of `sluice run` copying a topic of the real Apache
// Kafka broker (scripts/kafka.sh) to another: input written and output
// read back with kcat, every record accounted for. The helpers and the
// record layout are in kafka_helpers_test.go.

const (
	copyPipeline      = "e2e/testdata/kafka-copy.yaml"
	throttledPipeline = "e2e/testdata/kafka-copy-throttled.yaml"

	// Settings of the pipelines above that the duplicate bounds rely on.
	commitInterval = 200 * time.Millisecond
	sinkBatch      = 4096 // flow.DefaultSinkBatch: the most one sink Write carries
)

// copyJob is one pipeline copying a workload to a fresh output topic with
// a fresh consumer group.
type copyJob struct {
	w      workload
	out    string
	group  string
	config string
	env    []string
}

func newCopyJob(t *testing.T, broker string, w workload, outParts int, config string, env ...string) *copyJob {
	t.Helper()
	j := &copyJob{w: w, out: kafkaName(t, "out"), group: kafkaName(t, "g"), config: config}
	createTopic(t, w.broker, j.out, outParts)
	j.env = append([]string{"BROKERS=" + broker, "IN_TOPIC=" + w.topic, "OUT_TOPIC=" + j.out, "GROUP=" + j.group}, env...)
	return j
}

// start runs `sluice run [args] config` for the job.
func (j *copyJob) start(t *testing.T, args ...string) *proc {
	t.Helper()
	return start(t, j.env, append(append([]string{"run"}, args...), j.config)...)
}

// TestKafkaCopy1MKeepsOrder copies 1M records from 6 partitions through a
// map stage with 4 workers ordered by partition: the output is exactly
// the input, each key on its murmur2 partition, every key's records in
// order and, within each output partition, every input partition's
// records in order.
func TestKafkaCopy1MKeepsOrder(t *testing.T) {
	broker := kafkaBroker(t)
	const parts, n, keys = 6, 1_000_000, 100
	w := produceWorkload(t, broker, parts, n, keys)
	j := newCopyJob(t, broker, w, parts, copyPipeline)
	cl := kafkaClient(t, broker)

	began := time.Now()
	p := j.start(t)
	waitCopied(t, cl, j.group, w, 4*time.Minute, p)
	took := time.Since(began)
	p.stop(40 * time.Second)
	t.Logf("sluice copied %d records in %s including start-up and group join (%.0f rec/s)", n, took.Round(time.Millisecond), n/took.Seconds())

	recs := readOutput(t, broker, j.out)
	rep := checkCopy(t, w, parts, recs, true)
	if rep.unique != n || len(recs) != n {
		t.Fatalf("output holds %d records (%d distinct), want exactly %d", len(recs), rep.unique, n)
	}
	perPart := make([]int, parts)
	for _, r := range recs {
		perPart[r.partition]++
	}
	for op, c := range perPart {
		if c == 0 {
			t.Fatalf("output partition %d is empty (per partition: %v): keys were not spread", op, perPart)
		}
	}
	t.Logf("output per partition: %v", perPart)
}

// TestKafkaSIGTERMRestartNoLossNoDuplicates stops the copy with SIGTERM
// midway and restarts it with the same group: the drain commits exactly
// what was written, so the restart neither loses nor repeats a record.
func TestKafkaSIGTERMRestartNoLossNoDuplicates(t *testing.T) {
	broker := kafkaBroker(t)
	const parts, n, keys = 6, 200_000, 50
	w := produceWorkload(t, broker, parts, n, keys)
	j := newCopyJob(t, broker, w, parts, throttledPipeline, "RATE=40000")
	cl := kafkaClient(t, broker)

	first := j.start(t)
	waitRunning(t, 2*time.Minute, "a quarter of the records in the output", func() bool {
		return written(cl, j.out) >= n/4
	}, first)
	first.stop(40 * time.Second)
	out, done := written(cl, j.out), committedTotal(cl, j.group, w)
	t.Logf("first run: %d records written, %d committed at SIGTERM", out, done)
	if done >= int64(n) {
		t.Fatal("the first run copied everything before SIGTERM: the restart was not exercised")
	}
	if out != done {
		t.Fatalf("after the drain the output holds %d records but the group committed %d: they must match", out, done)
	}

	second := j.start(t)
	waitCopied(t, cl, j.group, w, 3*time.Minute, second)
	second.stop(40 * time.Second)

	recs := readOutput(t, broker, j.out)
	rep := checkCopy(t, w, parts, recs, true)
	if rep.unique != n || len(recs) != n {
		t.Fatalf("output holds %d records (%d distinct), want exactly %d", len(recs), rep.unique, n)
	}
}

// TestKafkaKill9FiveTimes crashes the copy with SIGKILL five times while
// records flow, restarting it each time: nothing is lost, and the
// duplicates stay within what a crash can repeat.
//
// A crash repeats the records written since the group's last commit.
// Those are at most the records acknowledged during one commit interval
// plus the commit's own round trip (allowed 500ms on this loaded
// machine), at the throttle's rate plus its burst (a tenth of a second's
// worth), plus one sink Write that reached the broker but whose
// acknowledgement the crash cut off (at most sinkBatch records). Records
// still queued on edges were never written, so re-reading them repeats
// nothing.
func TestKafkaKill9FiveTimes(t *testing.T) {
	broker := kafkaBroker(t)
	const parts, n, keys, rate, kills = 6, 200_000, 50, 20_000, 5
	w := produceWorkload(t, broker, parts, n, keys)
	// session_timeout at the broker's minimum: a restarted member waits
	// that long for its killed predecessor to be dropped from the group.
	j := newCopyJob(t, broker, w, parts, throttledPipeline, fmt.Sprintf("RATE=%d", rate), "SESSION_TIMEOUT=6s")
	cl := kafkaClient(t, broker)

	for i := range kills {
		p := j.start(t)
		base := written(cl, j.out)
		waitRunning(t, 2*time.Minute, fmt.Sprintf("run %d to write %d records", i+1, rate/2), func() bool {
			return written(cl, j.out) >= base+rate/2
		}, p)
		p.signal(syscall.SIGKILL)
		p.wait(10 * time.Second)
		done := committedTotal(cl, j.group, w)
		t.Logf("kill %d: output holds %d records, group committed %d of %d", i+1, written(cl, j.out), done, n)
		if done >= n {
			t.Fatalf("input ran out before kill %d: the test did not crash the copy midway", i+1)
		}
	}
	last := j.start(t)
	waitCopied(t, cl, j.group, w, 3*time.Minute, last)
	last.stop(40 * time.Second)

	recs := readOutput(t, broker, j.out)
	rep := checkCopy(t, w, parts, recs, false)
	perKill := int(float64(rate)*(commitInterval+500*time.Millisecond).Seconds()) + rate/10 + sinkBatch
	bound := kills * perKill
	t.Logf("%d kills: %d records out, %d distinct, %d duplicates (bound %d = %d kills x %d)", kills, len(recs), rep.unique, rep.dups, bound, kills, perKill)
	if rep.dups > bound {
		t.Fatalf("%d duplicates, above the in-flight bound %d", rep.dups, bound)
	}
}

// joinedRe matches the source's log line for each generation it joins.
var joinedRe = regexp.MustCompile(`kafka source: joined group.* partitions=(\S*)`)

// assigned returns the partitions ("0,3,4") of the last generation p
// joined.
func assigned(p *proc) string {
	m := joinedRe.FindAllStringSubmatch(p.stderr.String(), -1)
	if len(m) == 0 {
		return ""
	}
	return topicPrefix.ReplaceAllString(m[len(m)-1][1], "")
}

var topicPrefix = regexp.MustCompile(`[^,]*/`)

// offsetWatch polls a group's committed offsets and remembers every time
// one moved backwards.
type offsetWatch struct {
	stop    context.CancelFunc
	wg      sync.WaitGroup
	polls   int
	errs    int
	regress []string
}

func watchOffsets(poll func(ctx context.Context) (map[int]int64, error)) *offsetWatch {
	ctx, cancel := context.WithCancel(context.Background())
	ow := &offsetWatch{stop: cancel}
	ow.wg.Go(func() {
		high := map[int]int64{}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			got, err := poll(ctx)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				ow.errs++
			default:
				ow.polls++
				for p, off := range got {
					h, ok := high[p]
					if ok && off < h {
						ow.regress = append(ow.regress, fmt.Sprintf("partition %d from %d to %d", p, h, off))
					}
					if !ok || off > h {
						high[p] = off
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return ow
}

// finish stops the polling; the counters are safe to read afterwards.
func (ow *offsetWatch) finish() {
	ow.stop()
	ow.wg.Wait()
}

// TestKafkaGroupChurn runs two sluice processes in one group, has a third
// join and one leave (SIGTERM) while records flow, and polls the group's
// committed offsets every 50ms the whole time: no offset ever moves
// backwards, and every record is copied exactly once.
func TestKafkaGroupChurn(t *testing.T) {
	broker := kafkaBroker(t)
	const parts, n, keys, rate = 6, 300_000, 50, 15_000 // rate per process
	w := produceWorkload(t, broker, parts, n, keys)
	j := newCopyJob(t, broker, w, parts, throttledPipeline, fmt.Sprintf("RATE=%d", rate))
	cl := kafkaClient(t, broker)
	watch := watchOffsets(func(ctx context.Context) (map[int]int64, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return committed(ctx, cl, j.group, w.topic, parts)
	})
	defer watch.finish()

	a, b := j.start(t), j.start(t)
	waitRunning(t, 2*time.Minute, "both members to hold partitions", func() bool {
		return assigned(a) != "" && assigned(b) != ""
	}, a, b)
	waitRunning(t, 2*time.Minute, "records in the output", func() bool { return written(cl, j.out) >= n/10 }, a, b)

	c := j.start(t)
	waitRunning(t, 2*time.Minute, "the third member to hold partitions", func() bool { return assigned(c) != "" }, a, b, c)
	base := written(cl, j.out)
	waitRunning(t, 2*time.Minute, "records after the join", func() bool { return written(cl, j.out) >= base+n/15 }, a, b, c)
	t.Logf("after the join: a=%s b=%s c=%s", assigned(a), assigned(b), assigned(c))

	a.stop(40 * time.Second)
	if done := committedTotal(cl, j.group, w); done >= n {
		t.Fatal("input ran out before a member left: the test did not exercise the leave midway")
	}
	base = written(cl, j.out)
	waitRunning(t, 2*time.Minute, "records after the leave", func() bool { return written(cl, j.out) >= base+n/15 }, b, c)
	t.Logf("after the leave: b=%s c=%s", assigned(b), assigned(c))
	waitCopied(t, cl, j.group, w, 3*time.Minute, b, c)
	b.stop(40 * time.Second)
	c.stop(40 * time.Second)

	watch.finish()
	if len(watch.regress) > 0 {
		t.Fatalf("committed offsets moved backwards %d times: %s", len(watch.regress), strings.Join(watch.regress, "; "))
	}
	if watch.polls < 20 {
		t.Fatalf("only %d successful offset polls (%d failed): the monotonicity check saw too little", watch.polls, watch.errs)
	}
	recs := readOutput(t, broker, j.out)
	// A revoked partition drains and commits before its next owner reads
	// it, and the leaver drains before it goes: nothing is read twice.
	rep := checkCopy(t, w, parts, recs, true)
	t.Logf("%d offset polls (%d failed), none backwards; %d records out, %d distinct, %d duplicates", watch.polls, watch.errs, len(recs), rep.unique, rep.dups)
}

// TestKafkaSASL copies through the SASL_PLAINTEXT listener with each
// SCRAM mechanism, and checks a wrong password ends the run with exit 1
// and an error naming the listener, soon.
func TestKafkaSASL(t *testing.T) {
	broker := kafkaBroker(t)
	saslBroker := kafkaEnv(t, "SLUICE_KAFKA_SASL_BROKERS")
	user := kafkaEnv(t, "SLUICE_KAFKA_SASL_USER")
	password := kafkaEnv(t, "SLUICE_KAFKA_SASL_PASSWORD")
	const parts, n, keys = 3, 5000, 10
	w := produceWorkload(t, broker, parts, n, keys)
	cl := kafkaClient(t, broker)

	// The password comes through the environment override layer, never the
	// command line.
	saslArgs := func(mech string) []string {
		return []string{
			"--set", "sources.in.sasl.mechanism=" + mech, "--set", "sources.in.sasl.user=" + user,
			"--set", "sinks.out.sasl.mechanism=" + mech, "--set", "sinks.out.sasl.user=" + user,
		}
	}
	passwordEnv := func(pw string) []string {
		return []string{"SLUICE_SOURCES__IN__SASL__PASSWORD=" + pw, "SLUICE_SINKS__OUT__SASL__PASSWORD=" + pw}
	}
	for _, mech := range []string{"scram-sha-256", "scram-sha-512"} {
		t.Run(mech, func(t *testing.T) {
			j := newCopyJob(t, saslBroker, w, parts, copyPipeline, passwordEnv(password)...)
			p := j.start(t, saslArgs(mech)...)
			waitCopied(t, cl, j.group, w, 2*time.Minute, p)
			p.stop(40 * time.Second)
			recs := readOutput(t, broker, j.out)
			if rep := checkCopy(t, w, parts, recs, true); rep.unique != n || len(recs) != n {
				t.Fatalf("output holds %d records (%d distinct), want exactly %d", len(recs), rep.unique, n)
			}
		})
	}
	t.Run("wrong-password", func(t *testing.T) {
		j := newCopyJob(t, saslBroker, w, parts, copyPipeline, passwordEnv("not-"+password)...)
		began := time.Now()
		code, _, stderr := run(t, 60*time.Second, j.env, append(append([]string{"run"}, saslArgs("scram-sha-256")...), j.config)...)
		if code != 1 {
			t.Fatalf("exit %d with a wrong password, want 1; stderr:\n%s", code, stderr)
		}
		for _, want := range []string{saslBroker, "sasl scram-sha-256", "Authentication"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
		if strings.Contains(stderr, "not-"+password) {
			t.Errorf("stderr shows the password:\n%s", stderr)
		}
		t.Logf("rejected in %s", time.Since(began).Round(time.Millisecond))
	})
}

// kafkaScript runs scripts/kafka.sh with args.
func kafkaScript(timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoDir, "scripts", "kafka.sh"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("scripts/kafka.sh %s: %v\n%s", strings.Join(args, " "), err, clip(out))
	}
	return nil
}

// TestKafkaBrokerRestart crashes the broker (SIGKILL) while records flow
// and starts it again on the same data: the running pipeline reconnects
// and finishes the copy by itself, losing nothing. It runs last: the
// other tests share the broker.
func TestKafkaBrokerRestart(t *testing.T) {
	broker := kafkaBroker(t)
	if err := kafkaScript(30*time.Second, "status"); err != nil {
		t.Fatalf("the broker at %s is not the one scripts/kafka.sh manages, so this test cannot restart it: %v", broker, err)
	}
	const parts, n, keys, rate = 6, 150_000, 50, 20_000
	w := produceWorkload(t, broker, parts, n, keys)
	j := newCopyJob(t, broker, w, parts, throttledPipeline, fmt.Sprintf("RATE=%d", rate))
	cl := kafkaClient(t, broker)

	p := j.start(t)
	waitRunning(t, 2*time.Minute, "records in the output", func() bool { return written(cl, j.out) >= n/5 }, p)

	// Whatever happens below, leave a serving broker for whoever comes next.
	t.Cleanup(func() {
		if kafkaScript(30*time.Second, "status") != nil {
			if err := kafkaScript(3*time.Minute, "start", "--keep-data"); err != nil {
				t.Errorf("restarting the broker after the test: %v", err)
			}
		}
	})
	logged := len(p.stderr.String())
	if err := kafkaScript(time.Minute, "kill"); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	waitRunning(t, time.Minute, "sluice to notice the broker is gone", func() bool {
		return strings.Contains(p.stderr.String()[logged:], "level=WARN")
	}, p)
	if err := kafkaScript(3*time.Minute, "start", "--keep-data"); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker down for %s", time.Since(down).Round(time.Millisecond))
	up := time.Now()
	waitCopied(t, cl, j.group, w, 3*time.Minute, p)
	t.Logf("copy finished %s after the broker came back", time.Since(up).Round(time.Millisecond))
	p.stop(40 * time.Second)

	recs := readOutput(t, broker, j.out)
	rep := checkCopy(t, w, parts, recs, false)
	t.Logf("%d records out, %d distinct, %d duplicates", len(recs), rep.unique, rep.dups)
}
