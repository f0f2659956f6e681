package config

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Issue 10, item 3: one pass reads the file, checks it, builds it and
// reports every problem at once.

// A file with problems of every stage (a type, a build, the graph) gets
// them in one answer, and what was built is closed.
func TestCompileReportsEveryProblemAtOnce(t *testing.T) {
	resetFakes()
	l3 := `  numbers: {type: test_gen, count: many}`
	l5 := `  shout: {type: test_upper, inputs: [numbers], expr: "a !! b"}`
	l7 := `  out: {type: test_sink, inputs: [shout, nope], path: p}`
	path := writeFile(t, "\nsources:\n"+l3+"\nstages:\n"+l5+"\nsinks:\n"+l7+"\n")
	c, err := Compile(path, Options{}, nil)
	want := []string{
		fmt.Sprintf(`%s:3:%d: sources.numbers.count: want an integer, got string "many"`, path, col(l3, "many", 1)),
		fmt.Sprintf(`%s:5:%d: stages.shout.expr: "!!" is not an operator`, path, col(l5, `"a !! b"`, 1)),
		fmt.Sprintf(`%s:7:%d: sinks.out.inputs: input "nope" does not exist (did you mean "out"?)`, path, col(l7, "nope", 1)),
	}
	if got := lines(err); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c == nil || c.File == nil || c.Pipeline != nil {
		t.Fatalf("on error: %+v, want the File and no Pipeline", c)
	}
	if o, cl := opened.Load(), closed.Load(); o != 1 || cl != o {
		t.Errorf("opened %d, closed %d: want the sink built and closed", o, cl)
	}
}

func TestCompileChecksTheNodesOnce(t *testing.T) {
	c, err := Compile(writeFile(t, pipeline), Options{Environ: []string{"SLUICE_SOURCES__NUMBERS__RATE=2"}, CheckOnly: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := c.File.Nodes[0]
	if n.ID != "numbers" || n.Config.Int("count") != 3 || n.Config.Float("rate") != 2 || n.Config.Type != "test_gen" {
		t.Errorf("numbers: %+v, want its values checked, typed and defaulted", n.Config)
	}
	if out := c.File.Nodes[2].Config; out.Duration("flush") != time.Second || !slices.Equal(out.Strings("inputs"), []string{"shout"}) {
		t.Errorf("out: %+v", out)
	}
}

func TestCheckOnlyBuildsNothing(t *testing.T) {
	resetFakes()
	c, err := Compile("testdata/good/full.yaml", Options{CheckOnly: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Pipeline != nil || opened.Load() != 0 {
		t.Errorf("pipeline %v, built %d components; want nothing built", c.Pipeline, opened.Load())
	}
	// The graph is still checked.
	_, err = Compile("testdata/bad/dangling_input.yaml", Options{CheckOnly: true}, nil)
	if err == nil || !strings.Contains(err.Error(), `input "numbrs" does not exist`) {
		t.Errorf("a dangling input: %v", err)
	}
	if opened.Load() != 0 {
		t.Errorf("built %d components", opened.Load())
	}
}

type countingObserver struct{ batches atomic.Int64 }

func (o *countingObserver) ObserveBatch(string, flow.Kind, int, time.Duration) { o.batches.Add(1) }

func TestBeforeBuild(t *testing.T) {
	resetFakes()
	obs := &countingObserver{}
	var calls int
	c, err := Compile("testdata/good/fanout.yaml", Options{BeforeBuild: func(f *File, env *registry.Env) ([]flow.Option, error) {
		calls++
		if opened.Load() != 0 || len(f.Nodes) != 5 {
			t.Errorf("BeforeBuild after %d builds, with %d nodes", opened.Load(), len(f.Nodes))
		}
		env.DevBrokers = []string{"dev:9092"}
		return []flow.Option{flow.WithObserver(obs)}, nil
	}}, &registry.Env{BaseDir: "/elsewhere"})
	if err != nil || calls != 1 {
		t.Fatalf("err %v, %d calls", err, calls)
	}
	conf := builtConf("a")
	abs, _ := filepath.Abs("testdata/good")
	if !slices.Equal(conf.Env.DevBrokers, []string{"dev:9092"}) || conf.Env.BaseDir != abs {
		t.Errorf("env %+v: want BeforeBuild's dev brokers, and the file's directory", conf.Env)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Pipeline.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if obs.batches.Load() == 0 {
		t.Error("the observer BeforeBuild gave saw no batch")
	}

	// Not called for a file with problems; its Errors join the file's,
	// and the nodes are still built for theirs; another error stops all.
	calls = 0
	_, err = Compile("testdata/bad/unknown_key.yaml", Options{BeforeBuild: func(*File, *registry.Env) ([]flow.Option, error) {
		calls++
		return nil, nil
	}}, nil)
	if err == nil || calls != 0 {
		t.Errorf("a file with problems: err %v, %d calls", err, calls)
	}
	resetFakes()
	listen := &Error{Pos: Pos{File: "x.yaml", Line: 1, Col: 1}, Msg: "settings.http.listen: bad"}
	_, err = Compile(writeFile(t, strings.Replace(pipeline, "expr: value", "expr: a !! b", 1)), Options{BeforeBuild: func(*File, *registry.Env) ([]flow.Option, error) {
		return nil, Errors{listen}
	}}, nil)
	got := lines(err)
	if len(got) != 2 || !slices.Contains(got, listen.Error()) || !strings.Contains(err.Error(), `stages.shout.expr: "!!" is not an operator`) {
		t.Errorf("BeforeBuild's Errors beside the build's: got\n%v", err)
	}
	if o, c := opened.Load(), closed.Load(); o != 2 || c != o {
		t.Errorf("opened %d, closed %d; want the two good nodes built, then closed", o, c)
	}
	resetFakes()
	boom := errors.New("port taken")
	c, err = Compile("testdata/good/fanout.yaml", Options{BeforeBuild: func(*File, *registry.Env) ([]flow.Option, error) {
		return nil, boom
	}}, nil)
	if err != boom || c == nil || c.Pipeline != nil || opened.Load() != 0 {
		t.Errorf("err %v, result %+v, %d built; want the error as it is, nothing built", err, c, opened.Load())
	}
}

// Issue 10, item 8: an unknown key that is no typo of a valid one is
// answered by the keys the node takes.
func TestUnknownKeyListsTheValidKeys(t *testing.T) {
	l2 := `settings: {on_error: {what: 1}}`
	l4 := `  numbers: {type: test_gen, expr: x, cuont: 2, tls: {ca: c, verfiy: true}}`
	l6 := `  shout: {type: test_upper, inputs: [numbers], expr: value, typo: 1}`
	path := writeFile(t, "\n"+l2+"\nsources:\n"+l4+"\nstages:\n"+l6+"\nsinks:\n  out: {type: test_sink, inputs: [shout], path: p}\n")
	_, err := Compile(path, Options{}, nil)
	at := func(line int, text, key string) string {
		return fmt.Sprintf("%s:%d:%d: ", path, line, col(text, key+":", 1))
	}
	want := []string{
		at(2, l2, "what") + `settings.on_error: unknown key "what" (valid keys: action, backoff, dead_letter, max_backoff, retries, timeout)`,
		at(4, l4, "expr") + `sources.numbers: unknown key "expr" (valid keys: count, extra, labels, rate, tags, tls, type)`,
		at(4, l4, "cuont") + `sources.numbers: unknown key "cuont" (did you mean "count"?)`,
		at(4, l4, "verfiy") + `sources.numbers.tls: unknown key "verfiy" (did you mean "verify"?)`,
		at(6, l6, "typo") + `stages.shout: unknown key "typo" (did you mean "type"?)`,
	}
	if got := lines(err); !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
