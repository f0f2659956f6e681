package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// check compiles the file at path and closes what was built, as `sluice
// validate` does.
func check(path string, opts Options, env *registry.Env) error {
	c, err := Compile(path, opts, env)
	if err != nil {
		return err
	}
	return c.Close()
}

// lines splits an error into its messages.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func TestGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			resetFakes()
			f, err := Load(file, Options{})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			p, err := Build(f, nil)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if got, want := len(p.Nodes()), len(f.Nodes); got != want {
				t.Errorf("pipeline has %d nodes, file %d", got, want)
			}
			if err := check(file, Options{}, nil); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

// badFiles lists, for each file in testdata/bad, every error it must give,
// exactly.
var badFiles = map[string][]string{
	"syntax.yaml": {
		`syntax.yaml:4:4: invalid YAML: did not find expected key`,
	},
	"unknown_key.yaml": {
		`unknown_key.yaml:2:1: unknown key "stage" (did you mean "stages"?)`,
		`unknown_key.yaml:5:3: settings: unknown key "bufer" (did you mean "buffer"?)`,
		`unknown_key.yaml:9:5: sources.numbers: unknown key "cont" (did you mean "count"?)`,
		`unknown_key.yaml:11:3: stages.shout: missing required key "expr"`,
		`unknown_key.yaml:14:5: stages.shout: unknown key "exprr" (did you mean "expr"?)`,
		`unknown_key.yaml:16:7: stages.shout.on_error: unknown key "retrys" (did you mean "retries"?)`,
	},
	"missing_required.yaml": {
		`missing_required.yaml:4:5: sources.numbers.tls: missing required key "ca"`,
		`missing_required.yaml:6:3: stages.shout: missing required key "type"`,
		`missing_required.yaml:10:3: sinks.out: missing required key "path"`,
		`missing_required.yaml:13:3: sinks.out2: a sink needs at least one input`,
	},
	"wrong_type.yaml": {
		`wrong_type.yaml:2:11: settings.buffer: want an integer, got number 1.5`,
		`wrong_type.yaml:3:18: settings.drain_timeout: want a duration such as 250ms, 5s or 1m30s; got integer 10, which has no unit`,
		`wrong_type.yaml:5:12: settings.http.pprof: want true or false, got string "yes"`,
		`wrong_type.yaml:9:12: sources.numbers.count: want an integer, got string "ten"`,
		`wrong_type.yaml:10:11: sources.numbers.rate: want a number, got string "fast"`,
		`wrong_type.yaml:11:15: sources.numbers.tags.1: want a string, got a list`,
		`wrong_type.yaml:12:17: sources.numbers.labels.a: want a string, got a mapping`,
		`wrong_type.yaml:16:13: stages.shout.inputs: want a list, got string "numbers"`,
		`wrong_type.yaml:17:11: stages.shout.expr: want a string, got integer 42 (quote it)`,
		`wrong_type.yaml:18:18: stages.shout.parallelism: must be between 1 and 256, got 0`,
		`wrong_type.yaml:19:15: stages.shout.ordering: want one of partition, key, none; got "prtition" (did you mean "partition"?)`,
		`wrong_type.yaml:21:15: stages.shout.on_error.action: want one of fail, skip, dead_letter, retry; got "skp" (did you mean "skip"?)`,
		`wrong_type.yaml:22:16: stages.shout.on_error.backoff: want a duration such as 250ms, 5s or 1m30s; got "1 minute"`,
		`wrong_type.yaml:28:12: sinks.out.flush: want a duration such as 250ms, 5s or 1m30s; got integer 10, which has no unit`,
		`wrong_type.yaml:29:10: sinks.out.max: invalid size "12 parsecs": unknown unit "parsecs" (want B, KB, KiB, MB, MiB, GB, GiB)`,
	},
	"unknown_type.yaml": {
		`unknown_type.yaml:5:5: sources.numbers: unknown key "whatever" (valid keys: count, extra, labels, rate, tags, tls, type)`,
		`unknown_type.yaml:8:11: stages.shout.type: unknown stage type "test_uper" (did you mean "test_upper"?)`,
		`unknown_type.yaml:13:11: sinks.out.type: unknown sink type "kafka_producer_of_doom" (known sink types: test_sink)`,
	},
	"dangling_input.yaml": {
		`dangling_input.yaml:6:23: stages.shout.inputs: input "numbrs" does not exist (did you mean "numbers"?)`,
		`dangling_input.yaml:6:31: stages.shout.inputs: input "out" is a sink; sinks have no output`,
		`dangling_input.yaml:6:36: stages.shout.inputs: node lists itself as input`,
		`dangling_input.yaml:6:43: stages.shout.inputs: input "numbers" listed twice`,
		`dangling_input.yaml:11:14: sinks.out.inputs: cycle: out -> shout -> out`,
	},
	"cycle.yaml": {
		`cycle.yaml:10:14: stages.b.inputs: cycle: b -> c -> a -> b`,
	},
	"unreachable.yaml": {
		`unreachable.yaml:4:3: stages.orphan: not reachable from any source`,
		`unreachable.yaml:6:14: stages.orphan.inputs: input "ghost" does not exist (did you mean "lost"?)`,
		`unreachable.yaml:8:3: stages.downstream: not reachable from any source`,
		`unreachable.yaml:14:3: sinks.lost: not reachable from any source`,
	},
	"duplicate_id.yaml": {
		`duplicate_id.yaml:6:3: sinks.numbers: duplicate id "numbers": already the source at line 2`,
	},
	"duplicate_key.yaml": {
		`duplicate_key.yaml:8:5: duplicate key "path" (first at line 7)`,
		`duplicate_key.yaml:9:1: duplicate key "sources" (first at line 1)`,
	},
	"dead_letter.yaml": {
		`dead_letter.yaml:2:22: settings.on_error: on_error.action dead_letter needs on_error.dead_letter naming a sink`,
		`dead_letter.yaml:10:50: stages.a.on_error: dead_letter "numbers" is a source, not a sink`,
		`dead_letter.yaml:15:50: stages.b.on_error: dead_letter "dlk" does not exist (did you mean "dlq"?)`,
	},
	"build_error.yaml": {
		`build_error.yaml:7:11: stages.shout.expr: "!!" is not an operator`,
		`build_error.yaml:8:3: stages.crash: building stage type "test_panic" panicked: boom`,
		`build_error.yaml:11:3: stages.confused: stage type "test_wrongkind" built a *config.memSink, which is not a flow.Stage or flow.Processor`,
		`build_error.yaml:15:3: sinks.out: cannot open /fail`,
		`build_error.yaml:15:45: sinks.out.inputs: input "missing" does not exist`,
	},
	"unset_var.yaml": {
		`unset_var.yaml:4:12: environment variable COUNT is not set (write ${COUNT:-default} to give a default)`,
		`unset_var.yaml:9:11: environment variable NOPE is not set (write ${NOPE:-default} to give a default)`,
		`unset_var.yaml:9:11: invalid variable reference "${1BAD}": want ${NAME} or ${NAME:-default}`,
		`unset_var.yaml:14:15: unterminated "${": close it with "}", or write "$${" for a literal "${"`,
	},
	"bad_id.yaml": {
		`bad_id.yaml:2:3: sources: invalid source id "num bers": use letters, digits, _ and -`,
		`bad_id.yaml:3:3: sources: invalid source id "": use letters, digits, _ and -`,
	},
	"alias_bomb.yaml": {
		`alias_bomb.yaml:1:1: unknown key "a"`,
		`alias_bomb.yaml:1:38: aliases expand to more than 200000 values; is this an alias bomb?`,
		`alias_bomb.yaml:2:1: unknown key "b"`,
		`alias_bomb.yaml:3:1: unknown key "c"`,
		`alias_bomb.yaml:4:1: unknown key "d"`,
		`alias_bomb.yaml:5:1: unknown key "e"`,
		`alias_bomb.yaml:6:1: unknown key "f"`,
		`alias_bomb.yaml: pipeline has no nodes`,
	},
	"alias_self.yaml": {
		`alias_self.yaml:4:12: alias *n refers to the value that contains it`,
	},
	"not_mapping.yaml": {
		`not_mapping.yaml:1:1: the top level must be a mapping with name, settings, sources, stages and sinks; got a list`,
		`not_mapping.yaml: pipeline has no nodes`,
	},
	"multi_doc.yaml": {
		`multi_doc.yaml:5:1: a pipeline file holds one YAML document; remove this "---" and what follows`,
	},
	"sections_list.yaml": {
		`sections_list.yaml:2:3: sources: want a mapping, got a list; a source is written as id: {type: ..., ...}`,
		`sections_list.yaml:4:3: sinks.out: not reachable from any source`,
		`sections_list.yaml:4:35: sinks.out.inputs: input "numbers" does not exist`,
		`sections_list.yaml: pipeline has no source`,
	},
	"source_inputs.yaml": {
		`source_inputs.yaml:2:29: sources.numbers: unknown key "inputs" (valid keys: count, extra, labels, rate, tags, tls, type)`,
	},
	"no_source.yaml": {
		`no_source.yaml:1:7: name: must not be empty`,
		`no_source.yaml:3:34: sinks.out.inputs: a sink needs at least one input`,
		`no_source.yaml: pipeline has no source`,
	},
	"node_not_mapping.yaml": {
		`node_not_mapping.yaml:2:12: sources.numbers: want a mapping, got integer 5`,
		`node_not_mapping.yaml:4:10: stages.shout: want a mapping, got a list`,
		`node_not_mapping.yaml:7:9: sinks.out2: want a mapping, got string "test_sink"`,
	},
	"empty.yaml": {
		`empty.yaml: pipeline has no nodes`,
	},
	"dead_end.yaml": {
		"dead_end.yaml:3:3: source idle feeds no sink: its records would be acknowledged without being written (a Kafka source would commit their offsets); route it to a sink, or to `discard` to drop on purpose",
		"dead_end.yaml:6:3: stage g feeds no sink (its output goes only to h and k, which feed no sink either): its records would be acknowledged without being written; route it to a sink, or to `discard` to drop on purpose",
		"dead_end.yaml:7:3: stage h feeds no sink: its records would be acknowledged without being written; route it to a sink, or to `discard` to drop on purpose",
		"dead_end.yaml:8:3: stage k feeds no sink: its records would be acknowledged without being written; route it to a sink, or to `discard` to drop on purpose",
		"dead_end.yaml:9:3: stage d feeds no sink (only the records it fails reach dlq): its records would be acknowledged without being written; route it to a sink, or to `discard` to drop on purpose",
	},
	"no_sink.yaml": {
		`no_sink.yaml: pipeline has no sink: every record would be acknowledged without being written; add one (type discard drops records on purpose)`,
	},
	"moot.yaml": {
		`moot.yaml:3:3: settings.buffer has no effect: every stage and sink sets its own buffer`,
		`moot.yaml:4:22: settings.http.token has no effect: settings.http.listen is empty, so there is no HTTP listener`,
		`moot.yaml:4:37: settings.http.pprof has no effect: settings.http.listen is empty, so there is no HTTP listener`,
		`moot.yaml:5:14: settings.on_error.dead_letter has no effect on any stage or sink that inherits it: on_error.action is fail, not dead_letter`,
		`moot.yaml:5:32: settings.on_error.backoff has no effect on any stage or sink that inherits it: nothing is retried: on_error.retries is 0`,
		`moot.yaml:13:30: stages.w: on_error.retries has no effect on a test_window stage: retries apply to processor stages (map, filter, ...) and sinks`,
		`moot.yaml:13:42: stages.w: on_error.backoff has no effect on a test_window stage: backoff applies to retries, and retries to processor stages (map, filter, ...) and sinks`,
		`moot.yaml:13:55: stages.w: on_error.timeout has no effect on a test_window stage: timeout applies to processor stages (map, filter, ...) and sinks; a test_window stage has a timeout of its own: stages.w.timeout`,
		`moot.yaml:18:5: stages.b: on_error has no effect on a test_batch stage: it never fails a record`,
		`moot.yaml:24:5: stages.f: ordering has no effect with parallelism 1: it says what parallel workers keep in order`,
		`moot.yaml:25:16: stages.f: on_error.action has no effect on a test_upper stage: retry is fail here, as on_error.retries is 0`,
		`moot.yaml:25:31: stages.f: on_error.max_backoff has no effect on a test_upper stage: nothing is retried: on_error.retries is 0`,
		`moot.yaml:25:48: stages.f: on_error.dead_letter has no effect on a test_upper stage: on_error.action is retry, not dead_letter`,
	},
}

func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		want, ok := badFiles[name]
		if !ok {
			t.Errorf("%s has no expected errors in badFiles", file)
			continue
		}
		t.Run(name, func(t *testing.T) {
			resetFakes()
			err := check(file, Options{}, nil)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Check returned %T %v, want Errors", err, err)
			}
			got := lines(err)
			want := slices.Clone(want) // badFiles is shared across -count runs
			for i := range want {
				want[i] = "testdata/bad/" + want[i]
			}
			if !slices.Equal(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if o, c := opened.Load(), closed.Load(); o != c {
				t.Errorf("built %d components, closed %d", o, c)
			}
		})
	}
	for name := range badFiles {
		if _, err := os.Stat(filepath.Join("testdata/bad", name)); err != nil {
			t.Errorf("badFiles names %s: %v", name, err)
		}
	}
}

func TestValuesTypedWithDefaults(t *testing.T) {
	resetFakes()
	f, err := Load("testdata/good/full.yaml", Options{Environ: []string{"ENV=prod"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "full-prod" {
		t.Errorf("name %q", f.Name)
	}
	s := f.Settings
	if s.Int("buffer") != 256 || s.Duration("drain_timeout") != 5*time.Second {
		t.Errorf("settings buffer %v drain_timeout %v", s.Raw("buffer"), s.Raw("drain_timeout"))
	}
	if http := s.Object("http"); !http.Has("listen") || http.String("listen") != "" || !http.Has("pprof") || http.Bool("pprof") {
		t.Errorf("settings.http = %v", http.Values)
	}
	if oe := s.Object("on_error"); oe.Int("retries") != 2 || oe.Duration("backoff") != 50*time.Millisecond || oe.Duration("max_backoff") != 10*time.Second {
		t.Errorf("settings.on_error = %v", oe.Values)
	}

	var ids []string
	for _, n := range f.Nodes {
		ids = append(ids, n.Kind.String()+":"+n.ID)
	}
	if want := []string{"source:numbers", "source:letters", "stage:shout", "stage:whisper", "sink:out", "sink:dlq"}; !slices.Equal(ids, want) {
		t.Errorf("nodes %v, want %v", ids, want)
	}
	if n := f.Nodes[2]; n.Type != "test_upper" || !slices.Equal(n.Inputs, []string{"numbers", "letters"}) || n.Pos.String() != "testdata/good/full.yaml:25:3" {
		t.Errorf("shout = %+v", n)
	}

	p, err := Build(f, &registry.Env{})
	if err != nil || p.Name() != "full-prod" {
		t.Fatalf("Build: %v", err)
	}
	numbers := builtConf("numbers")
	if numbers.Kind != "source" || numbers.Type != "test_gen" || numbers.Int("count") != 5 || numbers.Float("rate") != 2.5 ||
		!slices.Equal(numbers.Strings("tags"), []string{"a", "b"}) || numbers.Map("labels")["cost"] != "7" ||
		numbers.Object("tls").String("ca") != "ca.pem" || !numbers.Object("tls").Bool("verify") {
		t.Errorf("numbers conf = %+v", numbers.Values)
	}
	if abs, _ := filepath.Abs("testdata/good"); numbers.Env.BaseDir != abs {
		t.Errorf("BaseDir %q, want %q", numbers.Env.BaseDir, abs)
	}
	if _, isStrings := numbers.Values["tags"].([]string); !isStrings {
		t.Errorf("tags is %T", numbers.Values["tags"])
	}
	if _, common := numbers.Values["type"]; common {
		t.Error("Build sees the common field type")
	}
	letters := builtConf("letters")
	if letters.Int("count") != 3 || letters.Has("rate") || letters.Has("tls") {
		t.Errorf("letters conf = %v: want only the default count", letters.Values)
	}
	out, dlq := builtConf("out"), builtConf("dlq")
	if out.Duration("flush") != 250*time.Millisecond || out.Size("max") != 64<<10 || out.String("path") != "/tmp/out.txt" {
		t.Errorf("out conf = %v", out.Values)
	}
	if dlq.Duration("flush") != 250*time.Millisecond || dlq.Size("max") != 1<<20 || dlq.String("path") != "dlq.txt" {
		t.Errorf("dlq conf (merged from out's anchor) = %v", dlq.Values)
	}
	if got := builtConf("shout").String("expr"); got != `value + "${literal}"` {
		t.Errorf("shout expr %q: $${ must be a literal ${", got)
	}
}

func TestErrorPolicies(t *testing.T) {
	f, err := Load("testdata/good/full.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := newBuilder(f, nil)
	b.build(true)
	if len(b.errs) > 0 {
		t.Fatal(b.errs)
	}
	defer b.closeAll()
	shout := b.nodes["shout"]
	want := flow.ErrorPolicy{Action: flow.ActionSkip, Retries: 2, Timeout: 2 * time.Second, DeadLetter: "dlq",
		Backoff: flow.Backoff{Initial: 50 * time.Millisecond, Max: 10 * time.Second}}
	if !shout.ownPolicy || shout.policy != want {
		t.Errorf("shout policy %+v (own %v), want settings overlaid with its own keys %+v", shout.policy, shout.ownPolicy, want)
	}
	if w := b.nodes["whisper"]; w.ownPolicy || w.policy.Action != flow.ActionDeadLetter {
		t.Errorf("whisper policy %+v (own %v), want the settings' dead_letter", w.policy, w.ownPolicy)
	}
	if d := b.nodes["dlq"]; !d.ownPolicy || d.policy.Action != flow.ActionFail {
		t.Errorf("dlq policy %+v: the dead-letter sink cannot inherit dead-lettering into itself", d.policy)
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const pipeline = `
sources:
  numbers: {type: test_gen}
stages:
  shout: {type: test_upper, inputs: [numbers], expr: value}
sinks:
  out: {type: test_sink, inputs: [shout], path: out.txt}
`

func TestEnvOverrides(t *testing.T) {
	path := writeFile(t, pipeline)
	f, err := Load(path, Options{Environ: []string{
		"SLUICE_NAME=renamed",
		"SLUICE_SETTINGS__BUFFER=64",
		"SLUICE_STAGES__SHOUT__EXPR=upper(value)",
		"SLUICE_SOURCES__NUMBERS__TAGS=[x, y]",
		"SLUICE_SINKS__OUT__MAX=2KiB",
		// Process settings, not config keys:
		"SLUICE_PLUGIN_DIR=/opt/plugins",
		"SLUICE_KAFKA_BROKERS=localhost:9092",
		"SLUICE_NAMESPACE=x",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "renamed" || f.Settings.Values["buffer"] != 64 {
		t.Errorf("name %q buffer %#v", f.Name, f.Settings.Values["buffer"])
	}
	vals := map[string]map[string]any{}
	for _, n := range f.Nodes {
		vals[n.ID] = n.Values
	}
	if vals["shout"]["expr"] != "upper(value)" || vals["out"]["max"] != "2KiB" || len(vals["numbers"]["tags"].([]any)) != 2 {
		t.Errorf("values after env overrides: %v", vals)
	}

	for _, tc := range []struct{ env, want string }{
		{"SLUICE_SETTINGS__BUFFER=ten", `env SLUICE_SETTINGS__BUFFER: settings.buffer: want an integer, got string "ten"`},
		{"SLUICE_STAGES__SHOUT__EXPRR=x", `env SLUICE_STAGES__SHOUT__EXPRR: stages.shout: unknown key "exprr" (did you mean "expr"?)`},
		{"SLUICE_STAGES__NEW__TYPE=test_upper", `env SLUICE_STAGES__NEW__TYPE: stages.new: missing required key "inputs"`},
		{"SLUICE_STAGES____EXPR=x", `env SLUICE_STAGES____EXPR: cannot name a config key: use __ between keys, as in SLUICE_STAGES__MY_STAGE__EXPR`},
	} {
		_, err := Load(path, Options{Environ: []string{tc.env}})
		if !slices.Contains(lines(err), tc.want) {
			t.Errorf("%s: got\n%v\nwant a line %s", tc.env, err, tc.want)
		}
	}
	_, err = Load(path, Options{Environ: []string{"SLUICE_STAGES__SHOUT=x", "SLUICE_STAGES__SHOUT__EXPR=y"}})
	if want := "env SLUICE_STAGES__SHOUT__EXPR: conflicts with env SLUICE_STAGES__SHOUT, which sets the whole of stages.shout"; !slices.Contains(lines(err), want) {
		t.Errorf("conflicting env: got\n%v\nwant a line %s", err, want)
	}
}

func TestSetFlags(t *testing.T) {
	path := writeFile(t, pipeline)
	f, err := Load(path, Options{
		Environ: []string{"SLUICE_SETTINGS__BUFFER=64"},
		Sets: []string{
			"settings.buffer=10", // beats the environment
			"stages.shout.inputs=[numbers, numbers2]",
			"sources.numbers2.type=test_gen",
			"stages.shout.expr=true", // a string field takes the text
			"sinks.out.path=",        // empty is a string, not null
			"settings.http.listen=",
			"stages.shout.on_error={action: skip}",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.Settings.Values["buffer"] != 10 || f.Settings.Object("http").String("listen") != "" || !f.Settings.Object("http").Has("listen") {
		t.Errorf("settings %v", f.Settings.Values)
	}
	if len(f.Nodes) != 4 || f.Nodes[1].ID != "numbers2" || f.Nodes[1].Pos.String() != "--set sources.numbers2.type" {
		t.Fatalf("nodes %+v", f.Nodes)
	}
	shout := f.Nodes[2]
	if !slices.Equal(shout.Inputs, []string{"numbers", "numbers2"}) {
		t.Errorf("inputs %v", shout.Inputs)
	}
	resetFakes()
	if _, err := Build(f, nil); err != nil {
		t.Fatal(err)
	}
	if got := builtConf("shout").String("expr"); got != "true" {
		t.Errorf("expr %q", got)
	}
	if got := builtConf("out"); !got.Has("path") || got.String("path") != "" {
		t.Errorf("path %v", got.Values)
	}

	for _, tc := range []struct{ set, want string }{
		{"nonsense", `--set nonsense: want path=value, as in --set settings.buffer=512`},
		{"a..b=1", `--set a..b=1: "a..b" is not a config path: want dot-separated keys, as in stages.even.expr`},
		{"settings.buffer=0", `--set settings.buffer: settings.buffer: must be between 1 and 1048576, got 0`},
		{"stages.shout.inputs=[numbers, nope]", `--set stages.shout.inputs: stages.shout.inputs: input "nope" does not exist (did you mean "out"?)`},
		{"stages.shout.ordering=sideways", `--set stages.shout.ordering: stages.shout.ordering: want one of partition, key, none; got "sideways"`},
	} {
		err := check(path, Options{Sets: []string{tc.set}}, nil)
		if !slices.Contains(lines(err), tc.want) {
			t.Errorf("--set %s: got\n%v\nwant a line %s", tc.set, err, tc.want)
		}
	}
}

func TestInterpolation(t *testing.T) {
	path := writeFile(t, `
sources:
  numbers:
    type: test_gen
    count: ${N:-10}
    rate: ${RATE:-1.5}
  quoted: {type: test_gen, tags: ["${N:-10}", '${N:-10}']}
sinks:
  out:
    type: test_sink
    inputs: [numbers, quoted]
    path: ${P}
    flush: "${FLUSH:-2s}"
  raw: {type: test_sink, inputs: [numbers], path: "$${HOME}/x $$ ${EMPTY}"}
`)
	for _, tc := range []struct {
		env   []string
		count int
		tag   string // what the quoted "${N:-10}" reads as
		path  string
	}{
		{[]string{"P=out.txt", "EMPTY="}, 10, "10", "out.txt"},
		{[]string{"P=123", "N=7", "EMPTY="}, 7, "7", "123"}, // a plain 123 reads as an int; path is a string field: kept as text
		{[]string{"P=", "N=", "EMPTY="}, 10, "10", ""},      // :- also covers empty
	} {
		resetFakes()
		f, err := Load(path, Options{Environ: tc.env})
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if _, err := Build(f, nil); err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if n := builtConf("numbers"); n.Values["count"] != tc.count || n.Values["rate"] != 1.5 {
			t.Errorf("%v: count %#v rate %#v", tc.env, n.Values["count"], n.Values["rate"])
		}
		if q := builtConf("quoted").Strings("tags"); !slices.Equal(q, []string{tc.tag, tc.tag}) {
			t.Errorf("%v: quoted tags %q", tc.env, q)
		}
		if out := builtConf("out"); out.String("path") != tc.path || out.Duration("flush") != 2*time.Second {
			t.Errorf("%v: out %v", tc.env, out.Values)
		}
		if raw := builtConf("raw").String("path"); raw != "${HOME}/x $$ " {
			t.Errorf("%v: raw path %q", tc.env, raw)
		}
	}
	_, err := Load(path, Options{Environ: []string{"EMPTY="}})
	want := path + ":12:11: environment variable P is not set (write ${P:-default} to give a default)"
	if got := lines(err); !slices.Equal(got, []string{want}) {
		t.Errorf("unset variable: got\n%v\nwant only\n%s", err, want)
	}
}

func TestBuildRuns(t *testing.T) {
	resetFakes()
	f, err := Load("testdata/good/fanout.yaml", Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got := func(id string) []string {
		v, _ := sinks.Load(id)
		s := v.(*memSink)
		s.mu.Lock()
		defer s.mu.Unlock()
		out := slices.Clone(s.got)
		slices.Sort(out)
		return out
	}
	if k1 := got("k1"); !slices.Equal(k1, []string{"RA", "RA", "RB", "RB"}) {
		t.Errorf("k1 got %v", k1)
	}
	if k2 := got("k2"); !slices.Equal(k2, []string{"RA", "RA", "RB", "RB", "ra", "rb"}) {
		t.Errorf("k2 got %v", k2)
	}
	// The stage is a Processor wrapped by Build; its Close must still run.
	if o, c := opened.Load(), closed.Load(); o != 5 || c != o {
		t.Errorf("opened %d, closed %d", o, c)
	}
}

func TestCheckClosesWhatItBuilt(t *testing.T) {
	resetFakes()
	if err := check("testdata/good/full.yaml", Options{}, nil); err != nil {
		t.Fatal(err)
	}
	if o, c := opened.Load(), closed.Load(); o != 6 || c != o {
		t.Errorf("opened %d, closed %d", o, c)
	}
	resetFakes()
	f, _ := Load("testdata/bad/build_error.yaml", Options{})
	if _, err := Build(f, nil); err == nil {
		t.Fatal("Build succeeded")
	}
	if o, c := opened.Load(), closed.Load(); o != 2 || c != o {
		t.Errorf("after a failed Build: opened %d, closed %d", o, c)
	}
}

func TestBuildRefusesAFileWithProblems(t *testing.T) {
	resetFakes()
	f, err := Load("testdata/bad/unknown_key.yaml", Options{})
	if f == nil || err == nil {
		t.Fatalf("Load: %v, %v", f, err)
	}
	p, berr := Build(f, nil)
	if p != nil || berr == nil || !strings.Contains(berr.Error(), `unknown key "stage"`) {
		t.Errorf("Build of a File with load errors: %v, %v", p, berr)
	}
	if o, c := opened.Load(), closed.Load(); c != o {
		t.Errorf("opened %d, closed %d", o, c)
	}
}

func TestPositionsThroughAliases(t *testing.T) {
	path := writeFile(t, `
sources:
  numbers: {type: test_gen}
sinks:
  out: &base
    type: test_sink
    inputs: [numbers]
    path: out.txt
    flush: soon
  copy:
    <<: *base
    max: lots
`)
	got := lines(check(path, Options{}, nil))
	want := []string{
		path + ":9:12: sinks.copy.flush: want a duration such as 250ms, 5s or 1m30s; got \"soon\"",
		path + ":9:12: sinks.out.flush: want a duration such as 250ms, 5s or 1m30s; got \"soon\"",
		path + ":12:10: sinks.copy.max: invalid size \"lots\": want a number with an optional unit (B, KB, KiB, MB, MiB, GB, GiB)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFileLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if fh, err := os.Create(big); err != nil {
		t.Fatal(err)
	} else if err := errors.Join(fh.Truncate(MaxFileSize+1), fh.Close()); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big, Options{})
	if want := big + ": file is larger than 10 MiB; is it really a pipeline file?"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"), Options{})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}

	for name, tc := range map[string]struct{ text, want string }{
		"deep":   {"sources: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000), "p.yaml:1:73: nested more than 64 levels deep"},
		"deeper": {"a: " + strings.Repeat("[", 20000), "invalid YAML: exceeded max depth of 10000"},
		"wide":   {"sources: {a: {type: test_gen, extra: [" + strings.Repeat("1,", 300_000) + "1]}}", "more than 200000 values: too many for a pipeline file"},
		"binary": {"\x00\xff\xfe garbage \x01", "p.yaml:1:1: not a text file: NUL byte at offset 0"},
	} {
		start := time.Now()
		_, err := Load(writeFile(t, tc.text), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %s", name, err, tc.want)
		}
		t.Logf("%s: %v", name, time.Since(start))
	}
}

func TestErrorFormat(t *testing.T) {
	errs := Errors{
		{Pos: Pos{Origin: "--set a.b"}, Msg: "m4"},
		{Pos: Pos{File: "p.yaml"}, Msg: "m5"},
		{Pos: Pos{File: "p.yaml", Line: 3, Col: 2}, Msg: "m2"},
		{Pos: Pos{File: "p.yaml", Line: 1}, Msg: "m1"},
		{Pos: Pos{File: "p.yaml", Line: 3, Col: 2}, Msg: "m2"},
		{Pos: Pos{File: "p.yaml", Line: 3, Col: 7}, Msg: "m3"},
	}
	want := "p.yaml:1: m1\np.yaml:3:2: m2\np.yaml:3:7: m3\n--set a.b: m4\np.yaml: m5"
	if got := errs.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var e *Error
	if !errors.As(error(errs), &e) || e.Msg != "m4" {
		t.Errorf("errors.As found %v", e)
	}
}

// A Build failing with a typed nil component (return s, err) has nothing
// to close: closing it must not panic.
func TestFailedBuildTypedNilNotClosed(t *testing.T) {
	path := writeFile(t, `
sources:
  numbers: {type: test_gen}
stages:
  nil: {type: test_typednil, inputs: [numbers]}
sinks:
  out: {type: test_sink, inputs: [nil], path: out.txt}
`)
	want := []string{path + ":5:3: stages.nil: no upper today"}
	if got := lines(check(path, Options{}, nil)); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
