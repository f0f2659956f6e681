package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTestCommandExitCodes(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"p.yaml": `
sources: {gen: {type: generate}}
stages: {even: {type: filter, inputs: [gen], expr: "value.seq % 2 == 0"}}
sinks: {out: {type: discard, inputs: [even]}}
`,
		"fail.test.yaml": `pipeline: p.yaml
cases:
  - name: odd kept
    inputs: {gen: [{value: {seq: 1}}, {value: {seq: 2}}]}
    expect: {out: [{value: {seq: 1}}, {value: {seq: 2}}]}
`,
		"bad.test.yaml": `pipeline: p.yaml
cases:
  - name: x
    inputs: {gem: []}
    expect: {out: []}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name       string
		args       []string
		code       int
		out, inErr string
	}{
		{"all pass", []string{"test", "../../configs/tests/even-doubled.test.yaml"}, 0, "ok: 3 cases\n", ""},
		{"verbose", []string{"test", "-v", "../../configs/tests/even-doubled.test.yaml"}, 0,
			"--- PASS: keeps even numbers, doubled\n--- PASS: odd numbers only, nothing written\n--- PASS: a value that is not JSON stops the run\nok: 3 cases\n",
			"pipeline failed, draining"}, // -v shows the pipeline's logs
		{"a case fails", []string{"test", filepath.Join(dir, "fail.test.yaml")}, 1,
			"--- FAIL: odd kept (" + filepath.Join(dir, "fail.test.yaml") + ":3:5)\n" +
				"    sink out: 1 missing (want 2 records, got 1, in order)\n" +
				"      - {\"seq\":1}  [missing, line 5]\n" +
				"        {\"seq\":2}\n" +
				"FAIL: 1 of 1 case failed\n", ""},
		{"bad test file", []string{"test", filepath.Join(dir, "bad.test.yaml")}, 2, "",
			filepath.Join(dir, "bad.test.yaml") + `:4:14: case "x": inputs: "gem" is not a source of ` + filepath.Join(dir, "p.yaml") + ` (did you mean "gen"?)`},
		{"no file", []string{"test"}, 2, "", "sluice: test takes one test file, got 0 arguments"},
		{"missing file", []string{"test", filepath.Join(dir, "none.test.yaml")}, 2, "", "no such file or directory"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := execute(context.Background(), c.args, &out, &errOut)
		if code != c.code {
			t.Errorf("%s: exit %d, want %d (stdout %q, stderr %q)", c.name, code, c.code, out.String(), errOut.String())
		}
		if out.String() != c.out {
			t.Errorf("%s: stdout:\n%s\nwant:\n%s", c.name, out.String(), c.out)
		}
		if !strings.Contains(errOut.String(), c.inErr) || c.inErr == "" && errOut.Len() > 0 {
			t.Errorf("%s: stderr %q, want it to contain %q", c.name, errOut.String(), c.inErr)
		}
	}
}
