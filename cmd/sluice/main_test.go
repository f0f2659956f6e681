package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExitCodes(t *testing.T) {
	cfg := config.Errors{{Pos: config.Pos{File: "p.yaml", Line: 3, Col: 5}, Msg: "bad"}}
	cases := []struct {
		name string
		err  error
		want int
	}{
		{"success", nil, 0},
		{"usage", usageErrorf("nope"), 2},
		{"config", cfg, 2},
		{"wrapped config", fmt.Errorf("loading: %w", cfg), 2},
		{"drain timeout", fmt.Errorf("%w after 1s: records still held by out", flow.ErrDrainTimeout), 1},
		{"record failure", &flow.RecordFailure{Node: "map", Err: errors.New("boom")}, 1},
		{"reported", &reportedError{code: 1, err: errors.New("x")}, 1},
		{"other", errors.New("open plugin: permission denied"), 1},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("%s: exit code %d, want %d", c.name, got, c.want)
		}
	}
}

func TestReportError(t *testing.T) {
	cfg := config.Errors{
		{Pos: config.Pos{File: "p.yaml", Line: 3, Col: 5}, Msg: "first"},
		{Pos: config.Pos{File: "p.yaml", Line: 9, Col: 1}, Msg: "second"},
	}
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{cfg, "p.yaml:3:5: first\np.yaml:9:1: second\n"},
		{&reportedError{code: 1, err: errors.New("logged already")}, ""},
		{errors.New("boom"), "sluice: boom\n"},
	}
	for _, c := range cases {
		var b bytes.Buffer
		reportError(&b, c.err)
		if b.String() != c.want {
			t.Errorf("reportError(%v) printed %q, want %q", c.err, b.String(), c.want)
		}
	}
}

func TestCommandLineUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"run"},
		{"run", "a.yaml", "b.yaml"},
		{"run", "--bogus", "p.yaml"},
		{"run", "--progress", "sometimes", "p.yaml"},
		{"run", "--log-level", "loud", "p.yaml"},
		{"runn", "p.yaml"},
		{"graph", "--format", "png", "p.yaml"},
		{"version", "extra"},
	} {
		var out, errOut bytes.Buffer
		if code := execute(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("sluice %s: exit %d, want 2 (stderr %q)", strings.Join(args, " "), code, errOut.String())
		}
		if !strings.HasPrefix(errOut.String(), "sluice: ") {
			t.Errorf("sluice %s: stderr %q lacks the error", strings.Join(args, " "), errOut.String())
		}
	}
}

func writePipeline(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidate(t *testing.T) {
	good := writePipeline(t, `name: demo
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`)
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"validate", good}, &out, &errOut); code != 0 {
		t.Fatalf("validate good: exit %d, stderr %s", code, errOut.String())
	}
	if want := "ok: demo (1 source, 0 stages, 1 sink)\n"; out.String() != want {
		t.Fatalf("validate printed %q, want %q", out.String(), want)
	}

	bad := writePipeline(t, `name: demo
sources:
  gen: {type: generate, count: -1}
sinks:
  out: {type: discard, inputs: [gne]}
`)
	out.Reset()
	errOut.Reset()
	if code := execute(context.Background(), []string{"validate", bad}, &out, &errOut); code != 2 {
		t.Fatalf("validate bad: exit %d, want 2", code)
	}
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want every problem on its own line, got %q", errOut.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, bad+":") {
			t.Errorf("error line %q does not start with file:line:col", l)
		}
	}
}

func TestVersion(t *testing.T) {
	var b bytes.Buffer
	printVersion(&b, &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"},
	}})
	got := b.String()
	for _, want := range []string{"sluice dev\n", "go: go1.", "commit: abc123 (modified)"} {
		if !strings.Contains(got, want) {
			t.Errorf("version output %q lacks %q", got, want)
		}
	}
	b.Reset()
	printVersion(&b, nil)
	if !strings.Contains(b.String(), "commit: unknown") {
		t.Errorf("without build info: %q", b.String())
	}
}

func TestPluginsDirPrecedence(t *testing.T) {
	env := func(v string) func(string) string { return func(string) string { return v } }
	if got := pluginsDir("/flag", env("/env")); got != "/flag" {
		t.Errorf("flag: got %s", got)
	}
	if got := pluginsDir("", env("/env")); got != "/env" {
		t.Errorf("env: got %s", got)
	}
	if got := pluginsDir("", env("")); got != "plugins.d" {
		t.Errorf("default: got %s", got)
	}
}

func TestKafkaTopics(t *testing.T) {
	// Read from the checked config: a --set override counts, a sink with
	// topic_expr names none, and only Kafka nodes are asked.
	path := writePipeline(t, `
sources:
  in: {type: kafka, brokers: [b:9092], topics: [b, a], group: g}
  gen: {type: generate}
stages:
  tag: {type: map, inputs: [in, gen], key: '"not-kafka"'}
sinks:
  out: {type: kafka, brokers: [b:9092], inputs: [tag], topic: x}
  each: {type: kafka, brokers: [b:9092], inputs: [tag], topic_expr: 'value.topic'}
`)
	c, err := config.Compile(path, config.Options{Sets: []string{"sinks.out.topic=a"}, CheckOnly: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(kafkaTopics(c.File)); got != "[a b]" {
		t.Fatalf("topics %s, want [a b]", got)
	}
}

func TestLoggerFormats(t *testing.T) {
	var b bytes.Buffer
	log, err := newLogger(&b, logFlags{format: "json", level: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	if got := b.String(); strings.Contains(got, "hidden") || !strings.HasPrefix(got, `{"time":`) || !strings.Contains(got, `"msg":"shown"`) {
		t.Fatalf("json warn logger wrote %q", got)
	}
	if _, err := newLogger(&b, logFlags{format: "xml"}); exitCode(err) != 2 {
		t.Fatalf("bad format: err %v, want a usage error", err)
	}
}
