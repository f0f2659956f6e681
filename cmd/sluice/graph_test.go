package main

import (
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
