package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Values that validation used to accept and that the run could not
// survive (issue 9): `validate` and `run` both refuse them with exit 2, at
// the value's line and column, naming the allowed range.
func TestHostileNumbersExit2AtTheirLine(t *testing.T) {
	for _, c := range []struct {
		name, pipeline, want string
	}{
		{"buffer", `settings: {buffer: 4611686018427387904, http: {listen: ""}}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`, ":1:20: settings.buffer: must be between 1 and 1048576, got 4611686018427387904"},
		{"parallelism", `settings: {http: {listen: ""}}
sources:
  gen: {type: generate, count: 10}
stages:
  f: {type: filter, inputs: [gen], expr: "true", parallelism: 1000000000}
sinks:
  out: {type: discard, inputs: [f]}
`, ":5:63: stages.f.parallelism: must be between 1 and 256, got 1000000000"},
		{"slide below its range", `settings: {http: {listen: ""}}
sources:
  gen: {type: generate, count: 10}
stages:
  w: {type: window, inputs: [gen], kind: sliding, size: 1h, slide: 1ns}
sinks:
  out: {type: discard, inputs: [w]}
`, ":5:68: stages.w.slide: must be between 1ms and 720h, got 1ns"},
		{"too many windows per record", `settings: {http: {listen: ""}}
sources:
  gen: {type: generate, count: 10}
stages:
  w: {type: window, inputs: [gen], kind: sliding, size: 1h, slide: 1s}
sinks:
  out: {type: discard, inputs: [w]}
`, ":5:68: stages.w.slide: each record would count in 3600 windows (size 1h / slide 1s), more than 1000: make slide at least 3.6s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writePipeline(t, c.pipeline)
			for _, cmd := range []string{"validate", "run"} {
				var out, errOut bytes.Buffer
				code := execute(context.Background(), []string{cmd, path}, &out, &errOut)
				if code != 2 {
					t.Errorf("sluice %s: exit %d, want 2 (stderr %q)", cmd, code, errOut.String())
				}
				if want := path + c.want; !strings.Contains(errOut.String(), want+"\n") {
					t.Errorf("sluice %s: stderr\n%s\nlacks the line\n%s", cmd, errOut.String(), want)
				}
			}
		})
	}
}
