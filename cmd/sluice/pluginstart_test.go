//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A plugin that dies before its handshake: validate and run print its
// exit status and its stderr at the node, not only go-plugin's "Failed to
// read any lines from plugin's stdout".
func TestPluginStartFailureIsPrinted(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "broken")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\necho 'boom: missing module foo' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := writePipeline(t, `name: broken
settings: {http: {listen: ""}}
sources: {gen: {type: generate, count: 10}}
stages:
  plug: {type: plugin, inputs: [gen], plugin: `+plugin+`}
sinks: {out: {type: discard, inputs: [plug]}}
`)
	for _, args := range [][]string{{"validate", path}, {"run", "--progress", "never", path}} {
		code, _, stderr := runCLI(t, args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2 (a config error at the node); stderr:\n%s", args[0], code, stderr)
		}
		for _, want := range []string{"p.yaml:5:", "stages.plug", "exit status 3", "boom: missing module foo"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", args[0], want, stderr)
			}
		}
	}
}
