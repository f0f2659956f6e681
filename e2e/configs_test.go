package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every shipped config runs: finite ones to exit 0 with the output they
// promise, the quickstart (endless, Kafka through the embedded --dev
// broker) until its enriched orders reach stdout, then SIGTERM drains it.
func TestShippedConfigsRun(t *testing.T) {
	type want struct {
		lines         map[string]int // env var naming an output file -> exact line count
		stdoutAtLeast int
	}
	cases := map[string]want{
		"even-doubled.yaml":     {lines: map[string]int{"OUT": 100}},
		"fan-out-in.yaml":       {lines: map[string]int{"OUT_ALL": 80000, "OUT_COPY": 80000}},
		"dead-letter.yaml":      {lines: map[string]int{"OUT": 3, "REJECTS": 2}},
		"windowed-counts.yaml":  {stdoutAtLeast: 1},
		"plugin-redact.yaml":    {lines: map[string]int{"OUT": 200}},
		"plugin-sentiment.yaml": {lines: map[string]int{"OUT": 10, "REJECTS": 2}},
		"quickstart.yaml":       {stdoutAtLeast: 50},
	}
	files, _ := filepath.Glob(filepath.Join(repoDir, "configs", "*.yaml"))
	for _, f := range files {
		name := filepath.Base(f)
		w, ok := cases[name]
		if !ok {
			t.Errorf("configs/%s has no run expectation in this test: add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			env := []string{"COUNT=200", "RATE=1000"}
			for _, v := range []string{"OUT", "OUT_ALL", "OUT_COPY", "REJECTS"} {
				env = append(env, v+"="+filepath.Join(dir, strings.ToLower(v)+".jsonl"))
			}
			args := []string{"run", "--plugins-dir", pluginBins(t), "--set", "settings.http.listen="}
			if name == "quickstart.yaml" {
				env[0] = "COUNT=50"
				args = append(args, "--dev")
			}
			p := start(t, env, append(args, filepath.Join("configs", name))...)
			if name == "quickstart.yaml" {
				eventually(t, 60*time.Second, "50 enriched orders on stdout", func() bool {
					return strings.Count(p.stdout.String(), "\n") >= 50
				})
				p.signal(syscall.SIGTERM)
			}
			if code := p.wait(90 * time.Second); code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, p.stderr.String())
			}
			for v, n := range w.lines {
				path := filepath.Join(dir, strings.ToLower(v)+".jsonl")
				if got := len(readLines(t, path)); got != n {
					t.Errorf("%s: %d lines, want %d", v, got, n)
				}
			}
			if got := strings.Count(p.stdout.String(), "\n"); got < w.stdoutAtLeast {
				t.Errorf("stdout has %d lines, want at least %d", got, w.stdoutAtLeast)
			}
		})
	}
}
