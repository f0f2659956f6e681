package e2e

import (
	"strings"
	"testing"
	"time"
)

// A stage whose output goes nowhere, a pipeline without a sink and a
// setting that would do nothing are config errors: exit 2, the exact
// file:line:col, in validate and in run alike, and run writes nothing.
func TestDeadEndsAndMootSettingsExit2(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"stage feeding no sink", `
sources: {gen: {type: generate, count: 10}}
stages:
  f: {type: filter, inputs: [gen], expr: "true"}
  g: {type: filter, inputs: [gen], expr: "true"}   # no node reads g
sinks: {out: {type: stdout, inputs: [f]}}
`, "FILE:5:3: stage g feeds no sink: its records would be acknowledged without being written; route it to a sink, or to `discard` to drop on purpose"},
		{"stages leading nowhere", `
sources: {gen: {type: generate, count: 10}}
stages:
  a: {type: filter, inputs: [gen], expr: "true"}
  b: {type: map, inputs: [a], value: "value"}
sinks: {out: {type: stdout, inputs: [gen]}}
`, "FILE:4:3: stage a feeds no sink (its output goes only to b, which feeds no sink either)"},
		{"no sink", `
sources: {gen: {type: generate, count: 10}}
stages:
  f: {type: filter, inputs: [gen], expr: "true"}
`, "FILE: pipeline has no sink"},
		{"retries on a window", `
sources: {gen: {type: generate, count: 10}}
stages:
  w: {type: window, inputs: [gen], size: 1s, on_error: {retries: 3}}
sinks: {out: {type: stdout, inputs: [w]}}
`, "FILE:4:57: stages.w: on_error.retries has no effect on a window stage: retries apply to processor stages (map, filter, ...) and sinks"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "p.yaml", "settings: {http: {listen: \"\"}}"+c.yaml)
			for _, cmd := range []string{"validate", "run"} {
				code, stdout, stderr := run(t, 30*time.Second, nil, cmd, path)
				if code != 2 {
					t.Fatalf("%s: exit %d, want 2; stderr:\n%s", cmd, code, stderr)
				}
				if want := strings.ReplaceAll(c.want, "FILE", path); !strings.Contains(stderr, want) {
					t.Errorf("%s: stderr lacks %q:\n%s", cmd, want, stderr)
				}
				if cmd == "run" && stdout != "" {
					t.Errorf("run wrote records of a refused pipeline: %q", stdout)
				}
			}
		})
	}
}
