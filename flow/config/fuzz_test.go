package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary bytes, and an arbitrary --set flag and
// environment override, through Load and Build: whatever the input, the
// answer is a File or a list of positioned errors, never a panic or a hang.
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
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		key, value, _ := strings.Cut(set, "=")
		opts := Options{
			Sets:    []string{set},
			Environ: []string{"COUNT=3", "N=7", "EMPTY=", "TOK=null", "HASH=abc #def", "REF=${N}", "DEEP=${A:-${B}}", "SLUICE_STAGES__" + strings.ToUpper(strings.ReplaceAll(key, ".", "__")) + "=" + value},
		}
		file, err := load("fuzz.yaml", data, opts)
		checkErrors(t, err)
		if file == nil {
			if err == nil {
				t.Fatal("no File and no error")
			}
			return
		}
		b := newBuilder(file, nil)
		b.build()
		checkErrors(t, b.errs.err())
		checkErrors(t, b.closeAll().err())
	})
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
