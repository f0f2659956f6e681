package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// (c) Bad configs exit 2 and name the exact file:line:col.
func TestBadConfigsExit2WithPosition(t *testing.T) {
	cases := []struct {
		name, yaml string
		env        []string
		want       []string // each a substring of stderr; FILE is replaced by the path
	}{
		{"unknown key", `
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen], pathh: x}
`, nil, []string{`FILE:5:39: sinks.out: unknown key "pathh"`}},
		{"typo in type", `
sources:
  gen: {type: generat, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`, nil, []string{`FILE:3:15: sources.gen.type: unknown source type "generat" (did you mean "generate"?)`}},
		{"dangling input and cycle", `
sources:
  gen: {type: generate, count: 10}
stages:
  a: {type: filter, inputs: [b], expr: "true"}
  b: {type: filter, inputs: [a], expr: "true"}
sinks:
  out: {type: discard, inputs: [gne]}
`, nil, []string{`FILE:8:33: sinks.out.inputs: input "gne" does not exist (did you mean "gen"?)`, "cycle: "}},
		{"expression compile error", `
sources:
  gen: {type: generate, count: 10}
stages:
  f: {type: filter, inputs: [gen], expr: "value.seq %% 2"}
sinks:
  out: {type: discard, inputs: [f]}
`, nil, []string{`FILE:5:42: stages.f.expr:`}},
		{"bad duration and missing path", `
settings: {drain_timeout: 10}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: file, inputs: [gen]}
`, nil, []string{`FILE:2:27: settings.drain_timeout: want a duration`, `FILE:6:3: sinks.out: missing required key "path"`}},
		{"unset variable", `
sources:
  gen: {type: generate, count: "${NOPE}"}
sinks:
  out: {type: discard, inputs: [gen]}
`, nil, []string{`environment variable NOPE is not set`, `FILE:3:`}},
		{"input names a sink", `
sources:
  gen: {type: generate, count: 10}
sinks:
  a: {type: discard, inputs: [gen]}
  b: {type: discard, inputs: [a]}
`, nil, []string{`FILE:6:31: sinks.b.inputs: input "a" is a sink`}},
		{"malformed http listen address", `
settings: {http: {listen: "nonsense"}}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`, nil, []string{`FILE:2:27: settings.http.listen "nonsense": want host:port`}},
		{"syntax error", "sources:\n  gen: {type: generate\nsinks: [\n", nil, []string{"FILE:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "p.yaml", c.yaml)
			for _, cmd := range []string{"validate", "run"} {
				code, _, stderr := run(t, 30*time.Second, c.env, cmd, path)
				if code != 2 {
					t.Fatalf("%s: exit %d, want 2; stderr:\n%s", cmd, code, stderr)
				}
				for _, w := range c.want {
					w = strings.ReplaceAll(w, "FILE", path)
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: stderr lacks %q:\n%s", cmd, w, stderr)
					}
				}
			}
		})
	}
	_ = filepath.Join
}
