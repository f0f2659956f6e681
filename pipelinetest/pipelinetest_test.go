package pipelinetest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	_ "github.com/sluicedev/sluice/builtin"
	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Misbehaving stages, registered only in this test binary, for the checks
// a case makes beyond the sinks' records.
func init() {
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_drop_acks",
		Build: func(*registry.Conf) (any, error) { return dropAcks{}, nil },
	})
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_stuck",
		Build: func(*registry.Conf) (any, error) { return stuck{}, nil },
	})
}

// dropAcks passes records on in fresh batches, losing their acks.
type dropAcks struct{}

func (dropAcks) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	for b := range in {
		if err := out.Emit(ctx, flow.NewBatch(b.Records)); err != nil {
			return err
		}
	}
	return nil
}

// stuck never reads its input and returns only when killed.
type stuck struct{}

func (stuck) Run(ctx context.Context, _ <-chan *flow.Batch, _ flow.Emitter) error {
	<-ctx.Done()
	return nil
}

// evenDoubled is configs/even-doubled.yaml with a stdout sink: the sink is
// replaced anyway.
const evenDoubled = `
name: even-doubled
sources:
  gen: {type: generate, count: 100}
stages:
  even: {type: filter, inputs: [gen], expr: "value.seq % 2 == 0"}
  doubled:
    type: map
    inputs: [even]
    value: '{"seq": value.seq, "double": value.seq * 2}'
sinks:
  out: {type: stdout, inputs: [doubled]}
`

// write puts files in a fresh directory and returns it.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// quiet keeps the logs of cases that fail on purpose out of the output.
var quiet = &registry.Env{Logger: slog.New(slog.DiscardHandler)}

// runFile loads and runs a test file, failing the test on a load or run
// error.
func runFile(t *testing.T, path string) *Report {
	t.Helper()
	s, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := s.Run(ctx, quiet)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func output(rep *Report, verbose bool) string {
	var b bytes.Buffer
	rep.Write(&b, verbose)
	return b.String()
}

func TestExampleFilePasses(t *testing.T) {
	rep := runFile(t, "../configs/tests/even-doubled.test.yaml")
	if got := output(rep, false); got != "ok: 3 cases\n" {
		t.Errorf("output:\n%s", got)
	}
}

func TestFailingCaseShowsADiffPerSink(t *testing.T) {
	dir := write(t, map[string]string{
		"p.yaml": evenDoubled,
		"p.test.yaml": `pipeline: p.yaml
cases:
  - name: passes
    inputs: {gen: [{value: {seq: 2}}]}
    expect: {out: [{value: {seq: 2, double: 4}}]}
  - name: wrong
    inputs:
      gen:
        - value: {seq: 2}
        - value: {seq: 4}
          key: k4
        - value: {seq: 6}
        - value: {seq: 8}
    expect:
      out:
        - value: {seq: 2, double: 4}
        - value: {seq: 4, double: 9}
          key: k4
        - value: {double: 16, seq: 8.0}
        - value: {seq: 10, double: 20}
`,
	})
	rep := runFile(t, filepath.Join(dir, "p.test.yaml"))
	want := `--- FAIL: wrong (DIR/p.test.yaml:6:5)
    sink out: 1 missing, 1 extra, 1 changed (want 4 records, got 4, in order)
        {"double":4,"seq":2} key=<empty>
      ~ {"double":9,"seq":4} key=k4  [want, line 17]
        {"double":8,"seq":4} key=k4  [got: value differs]
      + {"double":12,"seq":6} key=<empty>  [extra]
        {"double":16,"seq":8} key=<empty>
      - {"double":20,"seq":10}  [missing, line 20]
FAIL: 1 of 2 cases failed
`
	if got := strings.ReplaceAll(output(rep, false), dir, "DIR"); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if rep.Failed() != 1 || !rep.Results[0].Passed() {
		t.Errorf("want only the second case failed, got %+v", rep.Results)
	}
}

func TestExpectError(t *testing.T) {
	dir := write(t, map[string]string{
		"p.yaml": evenDoubled,
		"p.test.yaml": `pipeline: p.yaml
cases:
  - name: fails as expected
    inputs: {gen: [{value: not json}]}
    expect_error: "even: record from source gen offset 0 failed"
  - name: fails otherwise
    inputs: {gen: [{value: not json}]}
    expect_error: timeout
  - name: does not fail
    inputs: {gen: [{value: {seq: 1}}]}
    expect_error: anything
  - name: fails unexpectedly
    inputs: {gen: [{value: "[1]"}]}
    expect: {out: []}
`,
	})
	rep := runFile(t, filepath.Join(dir, "p.test.yaml"))
	want := []string{
		"",
		`want the run to fail with an error containing "timeout"; it failed with: even: record from source gen offset 0 failed: value is not valid JSON: invalid literal at offset 0`,
		`want the run to fail with an error containing "anything"; it succeeded`,
		`the run failed: even: record from source gen offset 0 failed: `,
	}
	for i, w := range want {
		got := rep.Results[i].Failure
		if i == 3 && strings.HasPrefix(got, w) || got == w {
			continue
		}
		t.Errorf("case %q: failure %q, want %q", rep.Results[i].Name, got, w)
	}
}

func TestBadTestFileErrorsHavePositions(t *testing.T) {
	dir := write(t, map[string]string{
		"p.yaml": evenDoubled,
		"bad.test.yaml": `pipeline: p.yaml
timeout: 5
set: {settings.bufer: 3}
cases:
  - name: a
    inputs:
      gem: [{value: 1, partition: -1}]
    expect:
      ot: [{vlaue: 1}]
  - nme: b
  - name: a
    expect_error: x
    unordered: yes
  - name: c
    inputs: {gen: [{value: {x: 1}, timestamp: noon}]}
    expect: {out: {value: 1}}
`,
		"nopipeline.test.yaml": "pipeline: missing.yaml\ncases: []\n",
		"syntax.test.yaml":     "pipeline: p.yaml\ncases:\n  - name: [oops\n",
		"nokeys.test.yaml":     "cases:\n  - {name: a, expect_error: ''}\n",
		"nocases.test.yaml":    "pipeline: p.yaml\ncases:\n",
	})
	cases := map[string]string{
		"bad.test.yaml": `DIR/bad.test.yaml:2:10: timeout: want a positive duration such as 10s or 1m, got 5
DIR/bad.test.yaml:3:7: --set settings.bufer: settings: unknown key "bufer" (did you mean "buffer"?)
DIR/bad.test.yaml:7:7: case "a": inputs: "gem" is not a source of DIR/p.yaml (did you mean "gen"?)
DIR/bad.test.yaml:7:35: case "a": inputs.gem[0].partition: want a whole number from 0 to 2147483647, got -1
DIR/bad.test.yaml:9:7: case "a": expect: "ot" is not a sink of DIR/p.yaml (did you mean "out"?)
DIR/bad.test.yaml:9:13: case "a": expect.ot[0]: unknown key "vlaue" (did you mean "value"?)
DIR/bad.test.yaml:10:5: cases[1]: missing required key "name"
DIR/bad.test.yaml:10:5: cases[1]: nothing to check: give expect (records per sink id) or expect_error
DIR/bad.test.yaml:10:5: cases[1]: unknown key "nme" (did you mean "name"?)
DIR/bad.test.yaml:11:11: cases[2].name: duplicate case name "a" (first at line 5)
DIR/bad.test.yaml:13:16: cases[2].unordered: want true or false, got "yes"
DIR/bad.test.yaml:15:47: case "c": inputs.gen[0].timestamp: want RFC 3339 time (2024-05-01T10:00:00Z) or Unix milliseconds, got "noon"
DIR/bad.test.yaml:16:19: case "c": expect.out: want a list, got a mapping`,
		"nopipeline.test.yaml": `DIR/nopipeline.test.yaml:1:11: pipeline: stat DIR/missing.yaml: no such file or directory
DIR/nopipeline.test.yaml:2:8: cases: the list is empty; a test file needs at least one case`,
		"syntax.test.yaml": `DIR/syntax.test.yaml:3: invalid YAML: did not find expected ',' or ']'`,
		"nokeys.test.yaml": `DIR/nokeys.test.yaml:1:1: missing required key "pipeline": the pipeline file to test, relative to this file
DIR/nokeys.test.yaml:2:29: cases[0].expect_error: give part of the error's text; "" would match any error`,
		"nocases.test.yaml": `DIR/nocases.test.yaml:1:1: missing required key "cases": a list of cases, each with name, inputs and expect`,
	}
	for name, want := range cases {
		_, err := Load(filepath.Join(dir, name))
		var errs config.Errors
		if !errors.As(err, &errs) {
			t.Errorf("%s: want config.Errors, got %T %v", name, err, err)
			continue
		}
		if got := strings.ReplaceAll(err.Error(), dir, "DIR"); got != want {
			t.Errorf("%s: errors:\n%s\nwant:\n%s", name, got, want)
		}
	}
}

func TestPipelineBuildProblemsAreConfigErrors(t *testing.T) {
	dir := write(t, map[string]string{
		"p.yaml": strings.Replace(evenDoubled, `"value.seq % 2 == 0"`, `"value.seq %% 2"`, 1),
		"p.test.yaml": `pipeline: p.yaml
cases:
  - name: a
    expect: {out: []}
`,
	})
	s, err := Load(filepath.Join(dir, "p.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Run(context.Background(), quiet)
	var errs config.Errors
	if !errors.As(err, &errs) || !strings.HasPrefix(err.Error(), filepath.Join(dir, "p.yaml")+":6:") {
		t.Fatalf("want config errors pointing at the filter's expr in p.yaml, got %v", err)
	}
}

func TestDeadLetterExpectation(t *testing.T) {
	dir := write(t, map[string]string{
		"p.yaml": `
sources:
  lines: {type: file, path: nowhere.jsonl}
stages:
  big:
    type: filter
    inputs: [lines]
    expr: "value.amount > 100"
    on_error: {action: dead_letter, dead_letter: rejects}
sinks:
  out: {type: file, inputs: [big], path: big.jsonl}
  rejects: {type: file, path: rejects.jsonl}
`,
		"p.test.yaml": `pipeline: p.yaml
cases:
  - name: bad records are dead-lettered
    inputs:
      lines:
        - value: {amount: 500}
        - value: "oops"
          headers: {trace: t1}
        - value: {amount: 5}
    expect:
      out:
        - value: {amount: 500}
      rejects:
        - value: oops
          headers: {trace: t1, sluice.stage: big, sluice.source: lines, sluice.source.offset: "1"}
  - name: wrong stage header
    inputs:
      lines: [{value: "oops"}]
    expect:
      rejects:
        - value: oops
          headers: {sluice.stage: small}
`,
	})
	rep := runFile(t, filepath.Join(dir, "p.test.yaml"))
	if !rep.Results[0].Passed() {
		t.Errorf("dead-letter case failed:\n%s", rep.Results[0].Failure)
	}
	want := `sink rejects: 1 changed (want 1 record, got 1, in order)
  ~ oops headers{sluice.stage=small}  [want, line 21]
    oops headers{sluice.stage=big}  [got: header sluice.stage differs]`
	if got := rep.Results[1].Failure; got != want {
		t.Errorf("failure:\n%s\nwant:\n%s", got, want)
	}
	// Neither file sink nor file source was built: nothing was written.
	for _, name := range []string{"big.jsonl", "rejects.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s exists: the real sink ran", name)
		}
	}
}

func TestWindowAndBatchFlushedByTheDrain(t *testing.T) {
	dir := write(t, map[string]string{
		"p.yaml": `
sources:
  clicks: {type: generate}
stages:
  per_user:
    type: window
    inputs: [clicks]
    size: 1m
    time: event
    key: value.user
    aggregate: {op: count}
  batched: {type: batch, inputs: [per_user], size: 100, linger: 0s}
sinks:
  out: {type: stdout, inputs: [batched]}
`,
		// The 10:01 window's end is never passed by the watermark, and the
		// batch stage never fills: only the drain at the end of the input
		// brings out the last record.
		"p.test.yaml": `pipeline: p.yaml
cases:
  - name: windows close on the watermark, the last on the drain
    inputs:
      clicks:
        - {value: {user: a}, timestamp: "2024-05-01T10:00:10Z"}
        - {value: {user: a}, timestamp: "2024-05-01T10:00:20Z"}
        - {value: {user: b}, timestamp: "2024-05-01T10:00:30Z"}
        - {value: {user: a}, timestamp: 1714557665000}
    expect:
      out:
        - value: {key: a, count: 2, value: 2, start: "2024-05-01T10:00:00Z", end: "2024-05-01T10:01:00Z"}
          key: a
        - value: {key: b, count: 1, value: 1, start: "2024-05-01T10:00:00Z", end: "2024-05-01T10:01:00Z"}
        - value: {key: a, count: 1, value: 1, start: "2024-05-01T10:01:00Z", end: "2024-05-01T10:02:00Z"}
`,
	})
	rep := runFile(t, filepath.Join(dir, "p.test.yaml"))
	if got := output(rep, true); got != "--- PASS: windows close on the watermark, the last on the drain\nok: 1 case\n" {
		t.Errorf("output:\n%s", got)
	}
}

func TestUnorderedFanIn(t *testing.T) {
	dir := write(t, map[string]string{
		"p.yaml": `
sources:
  a: {type: generate}
  b: {type: generate}
  idle: {type: generate}
stages:
  all: {type: filter, inputs: [a, b, idle], expr: "true", parallelism: 2}
sinks:
  out: {type: stdout, inputs: [all]}
`,
		"p.test.yaml": `pipeline: p.yaml
cases:
  - name: any order
    unordered: true
    inputs:
      a: [{value: a1, key: x}, {value: a2, key: x}]
      b: [{value: b1, key: y}]
    expect:
      out:
        - {value: b1}
        - {value: a2}
        - {key: x}
  - name: one missing
    unordered: true
    inputs:
      a: [{value: a1}]
      b: [{value: b1}]
    expect:
      out: [{value: b1}, {value: b2}, {value: a1}]
`,
	})
	rep := runFile(t, filepath.Join(dir, "p.test.yaml"))
	if !rep.Results[0].Passed() {
		t.Errorf("unordered case failed:\n%s", rep.Results[0].Failure)
	}
	want := `sink out: 1 missing (want 3 records, got 2, in any order)
    b1
  - b2  [missing, line 19]
    a1`
	if got := rep.Results[1].Failure; got != want {
		t.Errorf("failure:\n%s\nwant:\n%s", got, want)
	}
}

func TestLostAcksAndTimeoutsFail(t *testing.T) {
	dir := write(t, map[string]string{
		"drop.yaml": `
sources: {in: {type: generate}}
stages: {lose: {type: test_drop_acks, inputs: [in]}}
sinks: {out: {type: stdout, inputs: [lose]}}
`,
		"stuck.yaml": `
settings: {drain_timeout: 100ms}
sources: {in: {type: generate}}
stages: {hang: {type: test_stuck, inputs: [in]}}
sinks: {out: {type: stdout, inputs: [hang]}}
`,
		"drop.test.yaml": `pipeline: drop.yaml
cases:
  - name: acks lost
    inputs: {in: [{value: "1"}]}
    expect: {out: [{value: 1}]}
`,
		"stuck.test.yaml": `pipeline: stuck.yaml
timeout: 200ms
cases:
  - name: never ends
    inputs: {in: [{value: "1"}]}
    expect: {out: []}
`,
	})
	rep := runFile(t, filepath.Join(dir, "drop.test.yaml"))
	if got, want := rep.Results[0].Failure, "source in: its records were never acknowledged: a stage dropped their acks or still holds them"; got != want {
		t.Errorf("lost acks: failure %q, want %q", got, want)
	}
	rep = runFile(t, filepath.Join(dir, "stuck.test.yaml"))
	got := rep.Results[0].Failure
	if !strings.HasPrefix(got, "did not finish within 200ms") || !strings.Contains(got, "the drain then failed: drain timeout") {
		t.Errorf("stuck: failure %q", got)
	}
}

func TestRecordPartsReachTheStages(t *testing.T) {
	dir := write(t, map[string]string{
		"p.yaml": `
sources: {in: {type: generate}}
stages:
  show:
    type: map
    inputs: [in]
    value: '{"topic": topic, "partition": partition, "offset": offset, "ms": timestamp.UnixMilli(), "h": headers.h, "v": value}'
sinks: {out: {type: stdout, inputs: [show]}}
`,
		"p.test.yaml": `pipeline: p.yaml
set: {stages.show.parallelism: 1}
cases:
  - name: parts
    inputs:
      in:
        - {value: [7, "x"], key: k, headers: {h: hv}, timestamp: "2024-05-01T10:00:00.5Z", topic: t, partition: 3, offset: 42}
        - {value: {n: 1}}
    expect:
      out:
        - {value: {v: [7, "x"], h: hv, ms: 1714557600500, topic: t, partition: 3, offset: 42}, key: k}
        - {value: '{"v": {"n": 1.0}, "topic": "", "partition": 0, "offset": 1, "h": null, "ms": 0}'}
`,
	})
	rep := runFile(t, filepath.Join(dir, "p.test.yaml"))
	// The second record's time is stamped at emission, as by a real
	// source: only its ms differs, and the diff says so.
	f := rep.Results[0].Failure
	if !strings.HasPrefix(f, "sink out: 1 changed") || !strings.Contains(f, "[got: value differs]") || strings.Count(f, "~") != 1 {
		t.Errorf("failure:\n%s", f)
	}
}

func TestSameValue(t *testing.T) {
	cases := []struct {
		a, b string
		same bool
	}{
		{`{"a":1,"b":[1,2]}`, `{"b":[1,2.0],"a":1e0}`, true},
		{`9007199254740993`, `9007199254740992`, false},
		{`"x"`, `x`, false},
		{`x`, `x`, true},
		{`{"a":1}`, `{"a":1,"b":2}`, false},
		{``, ``, true},
		{`1 2`, `1 2`, true}, // not one JSON value: compared as bytes
	}
	for _, c := range cases {
		if got := sameValue(newPayload([]byte(c.a)), newPayload([]byte(c.b))); got != c.same {
			t.Errorf("sameValue(%s, %s) = %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

func TestPluginStagesRunTheirProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin binary")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "passthrough"), "../plugins/testdata/passthrough")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test plugin: %v\n%s", err, out)
	}
	for name, text := range map[string]string{
		"p.yaml": `
sources: {in: {type: generate}}
stages:
  shout:
    type: plugin
    plugin: ./passthrough
    inputs: [in]
    config: {suffix: "!", fail_on: bad}
    on_error: {action: dead_letter, dead_letter: rejects}
sinks:
  out: {type: stdout, inputs: [shout]}
  rejects: {type: stdout}
`,
		"p.test.yaml": `pipeline: p.yaml
cases:
  - name: through the plugin
    inputs: {in: [{value: hi, key: k}, {value: bad}, {value: ho}]}
    expect:
      out: [{value: hi!, key: k}, {value: ho!}]
      rejects: [{value: bad, headers: {sluice.stage: shout, sluice.error: "refused: value contains bad"}}]
  - name: a fresh process per case
    inputs: {in: [{value: again}]}
    expect: {out: [{value: again!}], rejects: []}
`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep := runFile(t, filepath.Join(dir, "p.test.yaml"))
	if got := output(rep, false); got != "ok: 2 cases\n" {
		t.Errorf("output:\n%s", got)
	}
}
