package e2e

import (
	"strings"
	"testing"
	"time"
)

// Issue 9, parts 2 and 4, through the binary: config errors have a line
// and a column wherever they come from, a token cannot be switched off by
// its own value, and a run that fails validation prints exactly what
// validate prints.
func TestHostileConfigsExit2WithOnlyTheErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		env  []string
		want string // all of stderr (a line of it for a build error); FILE is the path
	}{
		{"NUL byte", "name: x\nsources:\n  g: \"a\x00b\"\n", nil,
			"FILE:3:8: not a text file: NUL byte at offset 24\n"},
		{"binary", "\x7fELF\x02\x01\x01\x00\x00\x00\x00", nil,
			"FILE:1:8: not a text file: NUL byte at offset 7\n"},
		{"control character", "name: x\nsources:\n  g: {type: generate, count: \x07}\n", nil,
			"FILE:3:30: invalid YAML: control character U+0007 at offset 46 is not allowed\n"},
		{"syntax error on line 1", "name: a: b\nsources: {}\n", nil,
			"FILE:1:8: invalid YAML: mapping values are not allowed in this context\n"},
		{"syntax error", "sources:\n  gen:\n    type: generate\n   count: 3\n", nil,
			"FILE:4:4: invalid YAML: did not find expected key\n"},
		{"listen address", `
settings: {http: {listen: "nonsense"}}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`, nil, "FILE:2:27: settings.http.listen \"nonsense\": want host:port, as in 127.0.0.1:9464 or :9464 (\"\" turns the listener off)\n"},
		{"empty token variable", `
settings:
  http: {listen: "127.0.0.1:0", token: "${TOK}"}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`, []string{"TOK="}, "FILE:3:40: settings.http.token: is empty (written as \"${TOK}\"); an empty token would turn authentication off: set a token, or leave the key out to serve without one\n"},
		{"empty token override", `
settings:
  http: {listen: "127.0.0.1:0", token: "from-the-file"}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`, []string{"SLUICE_SETTINGS__HTTP__TOKEN="}, "env SLUICE_SETTINGS__HTTP__TOKEN: settings.http.token: is empty; an empty token would turn authentication off: set a token, or leave the key out to serve without one\n"},
		{"build error after the listener is bound", `
settings: {http: {listen: "127.0.0.1:0"}}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gne]}
`, nil, "FILE:6:33: sinks.out.inputs: input \"gne\" does not exist (did you mean \"gen\"?)\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "p.yaml", c.yaml)
			want := strings.ReplaceAll(c.want, "FILE", path)
			var validated string
			for _, cmd := range []string{"validate", "run"} {
				code, _, stderr := run(t, 30*time.Second, c.env, cmd, path)
				if code != 2 {
					t.Fatalf("%s: exit %d, want 2; stderr:\n%s", cmd, code, stderr)
				}
				if cmd == "run" && stderr != validated {
					t.Errorf("run printed\n%s\nvalidate printed\n%s", stderr, validated)
				}
				validated = stderr
			}
			// A build also reports the graph's problems: other lines.
			build := strings.HasPrefix(c.name, "build error")
			if !build && validated != want || build && !strings.Contains(validated, want) {
				t.Errorf("validate printed\n%s\nwant\n%s", validated, want)
			}
		})
	}
}
