package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
)

func sampleFile() *config.File {
	return &config.File{Name: `demo "x"`, Nodes: []config.Node{
		{ID: "gen", Kind: flow.KindSource, Type: "generate"},
		{ID: "end", Kind: flow.KindStage, Type: "map", Inputs: []string{"gen"},
			Values: map[string]any{"on_error": map[string]any{"action": "dead_letter", "dead_letter": "dlq"}}},
		{ID: "out", Kind: flow.KindSink, Type: "file", Inputs: []string{"end", "gen"}},
		{ID: "dlq", Kind: flow.KindSink, Type: "file", Inputs: []string{"end"}},
	}}
}

func TestRenderDOT(t *testing.T) {
	got := renderDOT(sampleFile())
	for _, want := range []string{
		`digraph "demo \"x\"" {`,
		`"gen" [label="gen\n(generate)", shape=invhouse`,
		`"end" [label="end\n(map)", shape=box`,
		`"out" [label="out\n(file)", shape=cylinder`,
		`"gen" -> "end";`,
		`"end" -> "out";`,
		`"gen" -> "out";`,
		`"end" -> "dlq" [style=dashed`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("DOT lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "->") != 5 {
		t.Errorf("want 5 edges (4 inputs, 1 dead letter):\n%s", got)
	}
	// When Graphviz is installed, it must accept the output.
	if dot, err := exec.LookPath("dot"); err == nil {
		out := filepath.Join(t.TempDir(), "g.svg")
		if err := renderSVG(context.Background(), got, out); err != nil {
			t.Fatalf("%s rejects the DOT: %v", dot, err)
		}
		if svg, _ := os.ReadFile(out); !strings.Contains(string(svg), "<svg") {
			t.Fatal("dot wrote no SVG")
		}
	}
}

func TestRenderMermaid(t *testing.T) {
	got := renderMermaid(sampleFile())
	want := `flowchart LR
  n0(["gen<br/>(generate)"])
  n1["end<br/>(map)"]
  n2[("out<br/>(file)")]
  n3[("dlq<br/>(file)")]
  n1 --> n2
  n0 --> n2
  n0 --> n1
  n1 -. dead letter .-> n3
  n1 --> n3
`
	// Edges are listed per node in file order: compare as sets of lines.
	if lines(got) != lines(want) {
		t.Fatalf("mermaid:\n%s\nwant:\n%s", got, want)
	}
}

func lines(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	m := map[string]bool{}
	for _, l := range ls {
		m[l] = true
	}
	var out []string
	for l := range m {
		out = append(out, l)
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func TestMermaidEscapesLabels(t *testing.T) {
	f := &config.File{Nodes: []config.Node{{ID: `a"<b>`, Kind: flow.KindSource, Type: "t"}}}
	if got := renderMermaid(f); !strings.Contains(got, `n0(["a#quot;#lt;b#gt;<br/>(t)"])`) {
		t.Fatalf("label not escaped: %s", got)
	}
}

// graph compiles the file as validate does, but builds nothing: a plugin
// that validate would start (here one that does not exist) is drawn, not
// run; a problem of the graph is still an error at its position.
func TestGraphChecksButBuildsNothing(t *testing.T) {
	path := writePipeline(t, `
sources:
  gen: {type: generate, count: ${N:-3}}
stages:
  enrich: {type: plugin, plugin: no-such-plugin, inputs: [gen]}
sinks:
  out: {type: discard, inputs: [enrich]}
`)
	var out, errOut bytes.Buffer
	if code := execute(context.Background(), []string{"graph", path}, &out, &errOut); code != 0 {
		t.Fatalf("graph: exit %d, stderr %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), `"enrich" [label="enrich\n(plugin)"`) {
		t.Errorf("graph drew:\n%s", out.String())
	}
	errOut.Reset()
	if code := execute(context.Background(), []string{"validate", "--plugins-dir", t.TempDir(), path}, &out, &errOut); code != 2 {
		t.Errorf("validate of a missing plugin: exit %d, stderr %s", code, errOut.String())
	}

	errOut.Reset()
	code := execute(context.Background(), []string{"graph", "--set", "sinks.out.inputs=[enrich, gne]", path}, &out, &errOut)
	if want := `--set sinks.out.inputs: sinks.out.inputs: input "gne" does not exist (did you mean "gen"?)`; code != 2 || !strings.Contains(errOut.String(), want) {
		t.Errorf("graph of a dangling input: exit %d, stderr %q; want 2 and %q", code, errOut.String(), want)
	}
}
