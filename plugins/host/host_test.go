package host_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/host"
	"github.com/sluicedev/sluice/registry"
)

// checkInOrder asserts out holds exactly the records of src's values with
// the indexes in skip left out, in order, with every field intact.
func checkInOrder(t *testing.T, out *sink, src *source, skip map[int]bool, suffix string) {
	t.Helper()
	recs := out.records()
	want := 0
	for _, r := range recs {
		for skip[want] {
			want++
		}
		if got := string(r.Value); got != src.value(want)+suffix {
			t.Fatalf("output %d = %q, want %q (order or content broken)", want, got, src.value(want)+suffix)
		}
		if string(r.Key) != "k"+strconv.Itoa(want) || r.Origin.Offset != int64(want) || r.Origin.Topic != "in" {
			t.Fatalf("output %d: key %q origin %+v", want, r.Key, r.Origin)
		}
		if v, ok := r.Header("n"); !ok || string(v) != strconv.Itoa(want) {
			t.Fatalf("output %d: header n = %q", want, v)
		}
		if r.Timestamp.IsZero() {
			t.Fatalf("output %d lost its timestamp", want)
		}
		want++
	}
	for skip[want] {
		want++
	}
	if want != src.n {
		t.Fatalf("got %d outputs, want %d", len(recs), src.n-len(skip))
	}
}

func TestRoundTripThroughProcesses(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: plugins["passthrough"], Instances: 2, BatchSize: 97, Window: 3,
		Config: map[string]any{"suffix": "!"}})
	src := &source{n: 20000, size: 250, value: values(20000, nil)}
	out := &sink{}
	if err := run(t, st, src, out, nil); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, out, src, nil, "!")
	if src.acked.Load() != 20000 || src.failed.Load() != 0 {
		t.Fatalf("acked %d failed %d, want 20000 and 0", src.acked.Load(), src.failed.Load())
	}
	if s := st.Stats(); s.Restarts != 0 {
		t.Fatalf("restarts = %d on a healthy run", s.Restarts)
	}
}

// Node parallelism runs several Runs over shared processes; each keeps the
// order of its partitions.
func TestParallelRunsKeepPartitionOrder(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: plugins["passthrough"], Instances: 2, BatchSize: 50})
	src := &source{n: 8000, size: 200, partitions: 4, value: values(8000, nil)}
	out := &sink{}
	p := flow.New("test", flow.WithLogger(slog.New(slog.DiscardHandler))).
		Source("src", src).
		Stage("plugin", st, flow.Inputs("src"), flow.Parallelism(3, flow.OrderPartition)).
		Sink("out", out, flow.Inputs("plugin"))
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := map[int32]int64{0: -1, 1: -1, 2: -1, 3: -1}
	for _, r := range out.records() {
		o := r.Origin
		if o.Offset <= last[o.Partition] {
			t.Fatalf("partition %d: offset %d after %d", o.Partition, o.Offset, last[o.Partition])
		}
		last[o.Partition] = o.Offset
	}
	if n := len(out.records()); n != 8000 || src.acked.Load() != 8000 {
		t.Fatalf("got %d records, acked %d, want 8000", n, src.acked.Load())
	}
}

func TestFilterAndFlatMapKeepOrder(t *testing.T) {
	special := map[int]string{3: "drop-3", 4: "dup-4", 500: "dup-500", 999: "drop-999"}
	st, _ := newStage(t, host.Config{Path: plugins["passthrough"], BatchSize: 64, Linger: 5 * time.Millisecond,
		Config: map[string]any{"drop": "drop", "dup": "dup"}})
	src := &source{n: 1000, size: 10, value: values(1000, special)}
	out := &sink{}
	if err := run(t, st, src, out, nil); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 1000 {
		v := src.value(i)
		switch {
		case strings.HasPrefix(v, "drop"):
		case strings.HasPrefix(v, "dup"):
			want = append(want, v, v)
		default:
			want = append(want, v)
		}
	}
	if got := out.values(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %d outputs, want %d in order", len(got), len(want))
	}
	if src.acked.Load() != 1000 {
		t.Fatalf("acked %d, want 1000 (filtered records count as done)", src.acked.Load())
	}
}

func TestPerRecordErrorsGoToTheErrorPolicy(t *testing.T) {
	for _, tc := range []struct {
		plugin string
		config any
		bad    string
		errMsg string
	}{
		{"passthrough", map[string]any{"fail_on": "bad"}, "bad", "refused: value contains bad"},
		{"panicky", nil, "poison", "plugin panic: poisoned record"},
	} {
		t.Run(tc.plugin, func(t *testing.T) {
			special := map[int]string{7: tc.bad + "-7", 123: tc.bad + "-123", 124: tc.bad + "-124"}
			st, _ := newStage(t, host.Config{Path: plugins[tc.plugin], BatchSize: 50, Config: tc.config})
			src := &source{n: 400, size: 40, value: values(400, special)}
			out, dlq := &sink{}, &sink{}
			if err := run(t, st, src, out, dlq); err != nil {
				t.Fatal(err)
			}
			checkInOrder(t, out, src, map[int]bool{7: true, 123: true, 124: true}, "")
			dead := dlq.records()
			if len(dead) != 3 {
				t.Fatalf("dead letters %v, want the 3 bad records", dlq.values())
			}
			for i, off := range []int64{7, 123, 124} {
				msg, _ := dead[i].Header(flow.HeaderError)
				if dead[i].Origin.Offset != off || string(msg) != tc.errMsg {
					t.Errorf("dead letter %d: offset %d error %q, want %d %q", i, dead[i].Origin.Offset, msg, off, tc.errMsg)
				}
			}
			if s := st.Stats(); s.Restarts != 0 {
				t.Errorf("restarts = %d: a per-record error must not restart the plugin", s.Restarts)
			}
			if src.acked.Load() != 400 {
				t.Errorf("acked %d, want 400", src.acked.Load())
			}
		})
	}
}

func TestKill9MidStreamLosesNothing(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: plugins["passthrough"], BatchSize: 100, Window: 4})
	src := &source{n: 50000, size: 100, value: values(50000, nil)}
	killed := make(chan int, 1)
	out := &sink{}
	out.hook = func(total int) {
		// Once some records are through, kill the plugin and hold the sink
		// until the replacement answered: in-flight work must be resent.
		if total >= 5000 && len(killed) == 0 {
			pid := st.Pids()[0]
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill %d: %v", pid, err)
			}
			killed <- pid
		}
	}
	if err := run(t, st, src, out, nil); err != nil {
		t.Fatal(err)
	}
	if len(killed) != 1 {
		t.Fatal("the plugin was never killed")
	}
	checkInOrder(t, out, src, nil, "")
	if s := st.Stats(); s.Restarts < 1 {
		t.Fatalf("restarts = %d after a kill -9", s.Restarts)
	}
	if src.acked.Load() != 50000 {
		t.Fatalf("acked %d, want 50000", src.acked.Load())
	}
}

func TestCrashIsIsolatedToThePoisonRecord(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: plugins["crashy"], BatchSize: 64, Window: 4})
	src := &source{n: 2000, size: 100, value: values(2000, map[int]string{1337: "crash-1337"})}
	out, dlq := &sink{}, &sink{}
	if err := run(t, st, src, out, dlq); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, out, src, map[int]bool{1337: true}, "")
	dead := dlq.records()
	if len(dead) != 1 || dead[0].Origin.Offset != 1337 {
		t.Fatalf("dead letters %v, want only record 1337", dlq.values())
	}
	msg, _ := dead[0].Header(flow.HeaderError)
	if !strings.Contains(string(msg), "exit status 3") {
		t.Errorf("dead letter error %q does not say how the plugin died", msg)
	}
	s := st.Stats()
	if s.Poisoned != 1 || s.Restarts < 2 {
		t.Fatalf("stats %+v, want 1 poisoned record and restarts", s)
	}
	// Bisecting restarted the plugin several times within seconds.
	if err := st.Ready(); s.Restarts >= 3 && (err == nil || !strings.Contains(err.Error(), "crash loop")) {
		t.Errorf("Ready() = %v after %d quick restarts, want a crash loop", err, s.Restarts)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(st)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var restarts float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "sluice_plugin_restarts_total" {
			restarts = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if restarts != float64(s.Restarts) {
		t.Errorf("sluice_plugin_restarts_total = %v, want %d", restarts, s.Restarts)
	}
	if src.acked.Load() != 2000 {
		t.Fatalf("acked %d, want 2000", src.acked.Load())
	}
}

func TestPoisonUnderFailPolicyFailsTheRun(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: plugins["crashy"], BatchSize: 8})
	src := &source{n: 100, size: 10, value: values(100, map[int]string{42: "crash-42"})}
	err := run(t, st, src, &sink{}, nil)
	var rf *flow.RecordFailure
	var pe *host.PoisonError
	if !errors.As(err, &rf) || rf.Origin.Offset != 42 || !errors.As(err, &pe) {
		t.Fatalf("err = %v, want a RecordFailure at offset 42 caused by a PoisonError", err)
	}
}

func TestHangIsKilledAfterTimeout(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: plugins["hangy"], BatchSize: 16, Timeout: 300 * time.Millisecond})
	src := &source{n: 200, size: 50, value: values(200, map[int]string{77: "hang-77"})}
	out, dlq := &sink{}, &sink{}
	if err := run(t, st, src, out, dlq); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, out, src, map[int]bool{77: true}, "")
	dead := dlq.records()
	if len(dead) != 1 || dead[0].Origin.Offset != 77 {
		t.Fatalf("dead letters %v, want record 77", dlq.values())
	}
	if msg, _ := dead[0].Header(flow.HeaderError); !strings.Contains(string(msg), "no reply within timeout 300ms") {
		t.Errorf("dead letter error %q", msg)
	}
	if s := st.Stats(); s.Hangs < 1 {
		t.Fatalf("stats %+v, want hangs", s)
	}
}

func TestSHA256(t *testing.T) {
	bin := plugins["passthrough"]
	wrong := strings.Repeat("ab", 32)
	_, err := host.New(context.Background(), host.Config{Path: bin, SHA256: wrong})
	var ce *host.ChecksumError
	if !errors.As(err, &ce) || ce.Expected != wrong || len(ce.Actual) != 64 || ce.Actual == wrong {
		t.Fatalf("err = %v, want a ChecksumError naming both digests", err)
	}
	if !strings.Contains(err.Error(), "expected "+wrong) || !strings.Contains(err.Error(), "actual "+ce.Actual) {
		t.Errorf("message %q does not name both digests", err)
	}
	// The right digest starts it.
	st, _ := newStage(t, host.Config{Path: bin, SHA256: strings.ToUpper(ce.Actual)})
	if pids := st.Pids(); len(pids) != 1 || !alive(pids[0]) {
		t.Fatalf("pids %v: the plugin did not start with its own digest", pids)
	}
}

// conf builds what the config loader hands Build, defaults filled in.
func conf(values map[string]any) *registry.Conf {
	v := map[string]any{
		"instances": 1, "window": 4, "timeout": 30 * time.Second, "start_timeout": 10 * time.Second,
		"batch": map[string]any{"size": 1000, "bytes": int64(4 << 20), "linger": time.Duration(0)},
	}
	for k, x := range values {
		v[k] = x
	}
	return &registry.Conf{ID: "enrich", Kind: "stage", Type: "plugin", Values: v, Env: &registry.Env{}}
}

func buildStage(t *testing.T, values map[string]any) (any, error) {
	t.Helper()
	spec, ok := registry.Lookup(flow.KindStage, "plugin")
	if !ok {
		t.Fatal("stage type plugin is not registered")
	}
	got, err := spec.Build(conf(values))
	if c, ok := got.(flow.Closer); ok {
		t.Cleanup(func() { _ = c.Close(context.Background()) })
	}
	return got, err
}

func fieldErrors(err error) map[string]string {
	out := map[string]string{}
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *registry.FieldError
		if errors.As(err, &fe) {
			out[fe.Field] = fe.Err.Error()
		}
	}
	walk(err)
	return out
}

func TestConfigErrorsPointAtFields(t *testing.T) {
	_, err := buildStage(t, map[string]any{"plugin": plugins["passthrough"],
		"config": map[string]any{"suffix": strings.Repeat("x", 20), "fail_on": "a", "drop": "a"}})
	got := fieldErrors(err)
	if got["config.suffix"] != "at most 16 bytes" || got["config.drop"] != "must differ from fail_on" || len(got) != 2 {
		t.Fatalf("field errors %v (err %v)", got, err)
	}
	_, err = buildStage(t, map[string]any{"plugin": plugins["passthrough"], "config": map[string]any{"sufix": "!"}})
	if got := fieldErrors(err); got["config.sufix"] != "unknown field" {
		t.Fatalf("field errors %v", got)
	}
	_, err = buildStage(t, map[string]any{"plugin": "no-such-plugin"})
	if got := fieldErrors(err); !strings.Contains(got["plugin"], `plugin "no-such-plugin" not found`) {
		t.Fatalf("field errors %v", got)
	}
	_, err = buildStage(t, map[string]any{"plugin": plugins["passthrough"], "sha256": strings.Repeat("0", 64)})
	if got := fieldErrors(err); !strings.Contains(got["sha256"], "sha256 mismatch") {
		t.Fatalf("field errors %v", got)
	}
	st, err := buildStage(t, map[string]any{"plugin": plugins["passthrough"], "config": map[string]any{"suffix": "ok"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(flow.Stage); !ok {
		t.Fatalf("Build returned %T, not a flow.Stage", st)
	}
}

func TestPluginFoundByNameInPluginDirs(t *testing.T) {
	dir := filepath.Dir(plugins["passthrough"])
	c := conf(map[string]any{"plugin": "passthrough"})
	c.Env.PluginDirs = []string{t.TempDir(), dir}
	spec, _ := registry.Lookup(flow.KindStage, "plugin")
	st, err := spec.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.(flow.Closer).Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Setenv(host.EnvPluginDir, dir)
	if p, err := host.Resolve("passthrough", nil, ""); err != nil || p != plugins["passthrough"] {
		t.Fatalf("Resolve via $%s = %q, %v", host.EnvPluginDir, p, err)
	}
}

func TestEnvironmentIsNotInherited(t *testing.T) {
	t.Setenv("SLUICE_TEST_SECRET", "hunter2")
	st, _ := newStage(t, host.Config{Path: plugins["passthrough"], Env: map[string]string{"ONLY": "this"}})
	src := &source{n: 1, size: 1, value: func(int) string { return "env" }}
	out := &sink{}
	if err := run(t, st, src, out, nil); err != nil {
		t.Fatal(err)
	}
	env := out.values()[0]
	if strings.Contains(env, "SLUICE_TEST_SECRET") || strings.Contains(env, "PATH=") || !strings.Contains(env, "ONLY=this") {
		t.Fatalf("plugin environment:\n%s", env)
	}
}

func TestDrainBeforeKill(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events")
	st, logs := newStage(t, host.Config{Path: plugins["passthrough"], Config: map[string]any{"events": events}})
	src := &source{n: 3000, size: 100, value: values(3000, nil)}
	out := &sink{}
	if err := run(t, st, src, out, nil); err != nil { // the engine calls Close
		t.Fatal(err)
	}
	got, err := os.ReadFile(events)
	if err != nil || string(got) != "drain\nclose\n" {
		t.Fatalf("plugin saw %q (%v), want drain then close", got, err)
	}
	if line := logs.find("plugin drained", "records=3000", "node=plugin"); line == "" {
		t.Fatalf("no drain log with the records count and node id in:\n%s", strings.Join(logs.lines(), "\n"))
	}
}

// emitter hands what a stage emits to a channel.
type emitter struct{ out chan *flow.Batch }

func (e emitter) Emit(ctx context.Context, b *flow.Batch) error {
	select {
	case e.out <- b:
		return nil
	case <-ctx.Done():
		b.Settle(ctx.Err())
		return ctx.Err()
	}
}

func (e emitter) Reject(context.Context, *flow.Batch, []flow.RecordError) error { return nil }

func TestPluginLogsReachTheHostLog(t *testing.T) {
	st, logs := newStage(t, host.Config{Path: plugins["passthrough"]})
	in, out := make(chan *flow.Batch), emitter{make(chan *flow.Batch, 1)}
	done := make(chan error, 1)
	go func() { done <- st.Run(context.Background(), in, out) }()
	in <- flow.NewBatch([]flow.Record{{Value: []byte("stderr"), Origin: flow.Origin{Offset: 7}}})
	(<-out.out).Settle(nil)
	// Raw stderr travels go-plugin's stdio stream, behind the reply.
	eventually(t, 10*time.Second, "raw stderr line logged", func() bool {
		return logs.find("INFO plugin stderr", "line=raw stderr: record 7", "node=plugin") != ""
	})
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A line of the SDK's logger (the plugin's real stderr, read to its end
	// before Close returns) keeps its level and attributes.
	if logs.find("INFO lifecycle event", "event=close", "node=plugin", "logger=passthrough") == "" {
		t.Errorf("no SDK log line in:\n%s", strings.Join(logs.lines(), "\n"))
	}
}

// The plugin must not outlive its host: sluice's parent-death signal kills
// it, and with a host that sets none (bare: go-plugin alone) the SDK notices
// the closed connection, runs Close and exits.
func TestPluginExitsWhenHostDies(t *testing.T) {
	checkExitsWhenHostDies(t, plugins["passthrough"], "plugin")
}

// checkExitsWhenHostDies kills a host (this test binary in host mode, as
// sluice or as a bare go-plugin host) running the plugin at path and
// expects the plugin to exit by itself; under the bare host, which never
// calls Close, the plugin must have run its Close hook on the way out.
func checkExitsWhenHostDies(t *testing.T, path, what string) {
	for _, bare := range []bool{false, true} {
		t.Run(map[bool]string{false: "sluice host", true: "bare go-plugin host"}[bare], func(t *testing.T) {
			self, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(self, "-test.run=^$")
			// The killed host cannot remove its temporary socket directory.
			cmd.Env = append(os.Environ(), envHostMode+"="+path, "TMPDIR="+t.TempDir())
			events := filepath.Join(t.TempDir(), "events")
			if bare {
				cmd.Env = append(cmd.Env, envBareHost+"=1", envEvents+"="+events)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("host said %q: %v", line, err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
			if err != nil || !alive(pid) {
				t.Fatalf("host reported %q", line)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			eventually(t, 10*time.Second, what+" "+strconv.Itoa(pid)+" gone after its host was killed", func() bool { return !alive(pid) })
			if bare {
				// Noticing by itself, the plugin ran its Close hook on the way out.
				if got, err := os.ReadFile(events); err != nil || string(got) != "close\n" {
					t.Fatalf("events %q (%v), want close", got, err)
				}
			}
		})
	}
}

// With the sink stuck, the stage must stop taking input after a bounded
// number of batches: backpressure reaches the source instead of piling up
// in the host or the plugin.
func TestBackpressureBoundsWhatTheStageTakes(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: plugins["passthrough"], BatchSize: 10, Window: 2})
	gate := make(chan struct{})
	in, out := make(chan *flow.Batch), &gatedEmitter{gate: gate}
	done := make(chan error, 1)
	go func() { done <- st.Run(context.Background(), in, out) }()
	batch := func(i int) *flow.Batch {
		recs := make([]flow.Record, 10)
		for j := range recs {
			recs[j] = flow.Record{Value: []byte(strconv.Itoa(i*10 + j)), Origin: flow.Origin{Offset: int64(i*10 + j)}}
		}
		return flow.NewBatch(recs)
	}
	accepted := 0
	for blocked := false; !blocked && accepted < 1000; {
		select {
		case in <- batch(accepted):
			accepted++
		case <-time.After(time.Second): // long after the stage would have taken more
			blocked = true
		}
	}
	// 1 batch held in a blocked Emit, up to instances*(window+1)+1 chunks
	// queued or in flight, 1 being cut.
	t.Logf("the stage took %d batches before blocking", accepted)
	if accepted == 0 || accepted > 8 {
		t.Fatalf("the stage took %d batches with its output blocked, want 1..8", accepted)
	}
	close(gate)
	close(in)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := int(out.records.Load()); got != accepted*10 {
		t.Fatalf("emitted %d records, want %d", got, accepted*10)
	}
}

// gatedEmitter blocks every Emit until gate is closed.
type gatedEmitter struct {
	gate    chan struct{}
	records atomic.Int64
}

func (e *gatedEmitter) Emit(ctx context.Context, b *flow.Batch) error {
	select {
	case <-e.gate:
	case <-ctx.Done():
		b.Settle(ctx.Err())
		return ctx.Err()
	}
	e.records.Add(int64(len(b.Records)))
	b.Settle(nil)
	return nil
}

func (e *gatedEmitter) Reject(context.Context, *flow.Batch, []flow.RecordError) error { return nil }

func TestPluginIgnoresSIGTERM(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: plugins["passthrough"]})
	pid := st.Pids()[0]
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// It must still answer: the host drains it when the host decides.
	src := &source{n: 100, size: 10, value: values(100, nil)}
	out := &sink{}
	if err := run(t, st, src, out, nil); err != nil {
		t.Fatal(err)
	}
	checkInOrder(t, out, src, nil, "")
	if s := st.Stats(); s.Restarts != 0 {
		t.Fatalf("the plugin died of SIGTERM (restarts %d)", s.Restarts)
	}
}
