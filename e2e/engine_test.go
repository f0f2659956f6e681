package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// (a) generate -> filter -> map -> file gives exactly the expected lines.
func TestGenerateFilterMapFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out.jsonl")
	code, _, stderr := run(t, 60*time.Second, []string{"COUNT=10000", "OUT=" + out}, "run", "configs/even-doubled.yaml")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	lines := readLines(t, out)
	if len(lines) != 5000 {
		t.Fatalf("%d lines, want 5000", len(lines))
	}
	for i, l := range lines {
		m := decode(t, l)
		if len(m) != 2 || m["seq"] != float64(2*i) || m["double"] != float64(4*i) {
			t.Fatalf("line %d = %s, want seq %d double %d and nothing else", i, l, 2*i, 4*i)
		}
	}
}

// (b) SIGTERM while a slow sink holds the pipeline back: exit 0 within the
// drain timeout, and every record acknowledged to the source is in the
// file, with no gap in seq.
func TestSIGTERMDrainsWithoutLoss(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := writeFile(t, dir, "slow.yaml", `
name: slow
settings: {buffer: 2000, drain_timeout: 20s}
sources:
  gen: {type: generate, count: 0, batch: 100}
stages:
  slow: {type: throttle, inputs: [gen], rate: 20000}
sinks:
  out: {type: file, inputs: [slow], path: `+out+`}
`)
	p := start(t, nil, "run", cfg)
	eventually(t, 30*time.Second, "records in the file", func() bool { return countLines(out) > 2000 })
	p.signal(syscall.SIGTERM)
	if code := p.wait(25 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, stderr:\n%s", code, p.stderr.String())
	}
	acked := ackedCount(t, p.stderr.String())
	lines := readLines(t, out)
	seqs := make([]int, len(lines))
	for i, l := range lines {
		seqs[i] = int(decode(t, l)["seq"].(float64))
	}
	sort.Ints(seqs)
	for i, s := range seqs {
		if s != i {
			t.Fatalf("seq gap or duplicate at position %d: got %d", i, s)
		}
	}
	if len(seqs) < acked {
		t.Fatalf("file holds %d records but the source saw %d acknowledged", len(seqs), acked)
	}
	if acked == 0 {
		t.Fatal("no record acknowledged")
	}
	t.Logf("acknowledged %d, written %d", acked, len(seqs))
}

var ackedRe = regexp.MustCompile(`acknowledged[= ](\d+)`)

func ackedCount(t *testing.T, stderr string) int {
	t.Helper()
	m := ackedRe.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no 'acknowledged N' line from the generator in stderr:\n%s", stderr)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// (d) fan-in from two sources and fan-out to two sinks deliver every
// record to each sink.
func TestFanOutFanIn(t *testing.T) {
	dir := t.TempDir()
	all, cp := filepath.Join(dir, "all.jsonl"), filepath.Join(dir, "copy.jsonl")
	code, _, stderr := run(t, 60*time.Second, []string{"OUT_ALL=" + all, "OUT_COPY=" + cp}, "run", "configs/fan-out-in.yaml")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, f := range []string{all, cp} {
		seen := map[string]bool{}
		for _, l := range readLines(t, f) {
			m := decode(t, l)
			k := fmt.Sprintf("%v-%v", m["side"], m["seq"])
			if seen[k] {
				t.Fatalf("%s: duplicate %s", f, k)
			}
			seen[k] = true
		}
		for side, n := range map[string]int{"left": 50000, "right": 30000} {
			for i := 0; i < n; i++ {
				if !seen[fmt.Sprintf("%s-%d", side, i)] {
					t.Fatalf("%s: missing %s-%d (have %d records)", f, side, i, len(seen))
				}
			}
		}
		if len(seen) != 80000 {
			t.Fatalf("%s: %d records, want 80000", f, len(seen))
		}
	}
}

// Every shipped config validates, and the finite ones run to exit 0.
func TestShippedConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repoDir, "configs", "*.yaml"))
	if len(files) < 3 {
		t.Fatalf("want at least 3 configs, have %d", len(files))
	}
	for _, f := range files {
		rel, _ := filepath.Rel(repoDir, f)
		t.Run(filepath.Base(f), func(t *testing.T) {
			// --dev: the quickstart's kafka nodes name no brokers on purpose.
			code, stdout, stderr := run(t, 60*time.Second, nil, "validate", "--dev", "--plugins-dir", pluginBins(t), rel)
			if code != 0 {
				t.Fatalf("validate exit %d:\n%s%s", code, stdout, stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, stderr := run(t, 10*time.Second, nil, "version")
	if code != 0 || !strings.Contains(stdout+stderr, "sluice") {
		t.Fatalf("version: exit %d %q %q", code, stdout, stderr)
	}
}

var _ = os.Getenv
