package config

import (
	"context"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicedev/sluice/flow"
)

// edgeValues are numbers at the edges of what a field may hold: zero,
// negative, huge, beyond int64, NaN and infinities, the shortest and
// longest durations, sizes beyond any memory. FuzzLoad writes them into
// numeric fields, where random mutation would seldom reach them.
var edgeValues = []string{
	"0", "-1", "1", "2", "255", "256", "257", "1048576", "1048577", "1000000000",
	"4611686018427387904", "9223372036854775807", "-9223372036854775808", "18446744073709551616",
	"1e308", "-1e308", "1e-300", "0.5", ".nan", ".inf", "-.inf",
	"1ns", "0s", "-1ns", "1ms", "99ms", "1h", "24h", "2562047h", "2562048h", "1e9h",
	"1B", "0B", "1GiB", "9999999GiB", "1e400", "${N}", "${EMPTY}",
}

// numericPaths are numeric fields of the seed files (settings, common node
// fields and the fake types' own), for edgeValues.
var numericPaths = []string{
	"settings.buffer", "settings.drain_timeout", "settings.on_error.retries", "settings.on_error.backoff",
	"settings.on_error.max_backoff", "settings.on_error.timeout",
	"sources.numbers.count", "sources.numbers.rate",
	"stages.shout.parallelism", "stages.shout.buffer", "stages.shout.on_error.retries", "stages.shout.on_error.timeout",
	"sinks.out.flush", "sinks.out.max", "sinks.out.buffer", "sinks.out.parallelism",
}

// edgeSet is a --set flag putting one of edgeValues into one of
// numericPaths, chosen by a hash of the fuzzer's input.
func edgeSet(data []byte, set string) string {
	h := fnv.New32a()
	h.Write(data)
	h.Write([]byte(set))
	n := int(h.Sum32())
	return numericPaths[n/len(edgeValues)%len(numericPaths)] + "=" + edgeValues[n%len(edgeValues)]
}

// FuzzLoad feeds arbitrary bytes, and an arbitrary --set flag and
// environment override, through Compile: whatever the input, the
// answer is a File or a list of positioned errors, never a panic or a hang.
// Each input is tried again with a number at the edge of its range in a
// numeric field; and whatever validation accepts must also run: a value
// let through that the engine cannot survive (a buffer too large to
// allocate) is a failure.
func FuzzLoad(f *testing.F) {
	sets := []string{"settings.buffer=10", "stages.shout.inputs=[numbers, x]", "sinks.out={type: test_sink, path: p}", "a..b", "=", "stages.x.on_error.action=skip"}
	seed := 0
	for _, dir := range []string{"testdata/bad", "testdata/good"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data, sets[seed%len(sets)])
			seed++
		}
	}
	// Interpolation: nested defaults, values YAML would read as null, a
	// comment or a structure, references everywhere a scalar goes.
	for _, doc := range []string{
		"settings:\n  http: {listen: \"127.0.0.1:0\", token: \"${TOK}\"}\n  buffer: ${N:-${COUNT:-${EMPTY:-1}}}\nsources:\n  numbers:\n    type: test_gen\n    count: ${HASH}\n    tags:\n      - ${A:-${B:-${C:-${D:-${E:-${F:-${G:-${H:-${I:-x}}}}}}}}}\n      - $${N}${REF}\nsinks:\n  out: {type: test_sink, inputs: [numbers], path: \"${DEEP:-${N}\"}\n",
		"name: ${TOK:-${A:-}}\nsources:\n  ${N}: {type: test_gen, count: \"${N:-${\"}\nsinks:\n  out:\n    type: test_sink\n    inputs: [\"${A:-numbers}\"]\n    path: ${A${B}}\n    max: ${N}KiB\n    flush: ${N:-1}s\n",
	} {
		f.Add([]byte(doc), "settings.http.token=${TOK}")
		f.Add([]byte(doc), "sources.numbers.count={a: ${N}}")
	}
	// The hostile values of issue 9, on a file valid without them.
	minimal, err := os.ReadFile("testdata/good/minimal.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, set := range []string{
		"settings.buffer=4611686018427387904", "stages.shout.buffer=4611686018427387904",
		"stages.shout.parallelism=1000000000", "settings.drain_timeout=2562048h", "sources.numbers.rate=.nan",
	} {
		f.Add(minimal, set)
	}
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		key, value, _ := strings.Cut(set, "=")
		opts := Options{
			Sets:    []string{set},
			Environ: []string{"COUNT=3", "N=7", "EMPTY=", "TOK=null", "HASH=abc #def", "REF=${N}", "DEEP=${A:-${B}}", "SLUICE_STAGES__" + strings.ToUpper(strings.ReplaceAll(key, ".", "__")) + "=" + value},
		}
		loadBuildRun(t, data, opts)
		// Again, with only a number at the edge of its range: the --set
		// flag's own when it names a numeric field, else one of edgeValues.
		edge := Options{Sets: []string{edgeSet(data, set)}, Environ: []string{"COUNT=3", "N=7", "EMPTY="}}
		if slices.Contains(numericPaths, key) {
			edge.Sets = []string{set}
		}
		loadBuildRun(t, data, edge)
	})
}

func loadBuildRun(t *testing.T, data []byte, opts Options) {
	t.Helper()
	c, err := compile("fuzz.yaml", data, opts, nil)
	checkErrors(t, err)
	var errs Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			// A Build that panicked is reported, not fatal; but only the
			// fake made to panic may.
			if strings.Contains(e.Msg, "panicked") && !strings.Contains(e.Msg, `"test_panic"`) {
				t.Fatalf("a Build panicked: %s", e)
			}
		}
	}
	if err != nil {
		return
	}
	if c == nil || c.Pipeline == nil {
		t.Fatal("no pipeline and no error")
	}
	// Accepted: it must run. A cancelled context drains at once; the fakes
	// stop when asked. Only a drain slower than a small drain_timeout on a
	// busy machine may fail it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Pipeline.Run(ctx); err != nil && !errors.Is(err, flow.ErrDrainTimeout) {
		t.Fatalf("validation accepted %v, and Run failed: %v", opts.Sets, err)
	}
	checkErrors(t, c.Close())
}

func checkErrors(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var errs Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		t.Fatalf("error is %T %v, want a non-empty Errors", err, err)
	}
	for _, e := range errs {
		if e.Msg == "" || e.Pos.File == "" {
			t.Fatalf("error without a message or a file: %#v", e)
		}
	}
}
