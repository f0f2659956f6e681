package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
)

func newGraphCmd() *cobra.Command {
	var (
		sets   []string
		format string
		output string
	)
	cmd := &cobra.Command{
		Use:   "graph [flags] pipeline.yaml",
		Short: "Draw the pipeline as Graphviz DOT or Mermaid",
		Long: `graph prints the pipeline's graph: sources, stages and sinks drawn in
different shapes, labelled "id (type)", edges following the inputs, dead
letters dashed. With -o FILE.svg and Graphviz's dot on PATH it renders SVG.`,
		Example: `  sluice graph pipeline.yaml | dot -Tpng > pipeline.png
  sluice graph pipeline.yaml --format mermaid
  sluice graph pipeline.yaml -o pipeline.svg`,
		Args: onePipeline,
		RunE: func(cmd *cobra.Command, args []string) error {
			render := map[string]func(*config.File) string{"dot": renderDOT, "mermaid": renderMermaid}[format]
			if render == nil {
				return usageErrorf("--format %q: want dot or mermaid", format)
			}
			// Checked as validate would, but nothing is built: no plugin
			// is started, nothing connects.
			compiled, err := config.Compile(args[0], config.Options{Sets: sets, Environ: os.Environ(), CheckOnly: true}, nil)
			if err != nil {
				return err
			}
			text := render(compiled.File)
			return writeGraph(cmd.Context(), cmd.OutOrStdout(), output, format, text)
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a config value, `path=value` (repeatable)")
	cmd.Flags().StringVar(&format, "format", "dot", "output format: dot or mermaid")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to `FILE` instead of stdout; a .svg name renders with Graphviz dot")
	return cmd
}

func writeGraph(ctx context.Context, stdout io.Writer, output, format, text string) error {
	switch {
	case output == "":
		_, err := io.WriteString(stdout, text)
		return err
	case strings.HasSuffix(strings.ToLower(output), ".svg"):
		if format != "dot" {
			return usageErrorf("-o %s: SVG is rendered from DOT; drop --format %s", output, format)
		}
		return renderSVG(ctx, text, output)
	default:
		return os.WriteFile(output, []byte(text), 0o644)
	}
}

func renderSVG(ctx context.Context, dot, output string) error {
	bin, err := exec.LookPath("dot")
	if err != nil {
		return errors.New("rendering SVG needs Graphviz's dot on PATH (e.g. apt install graphviz); or write DOT with -o FILE.dot")
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-Tsvg", "-o", output)
	cmd.Stdin = strings.NewReader(dot)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("dot -Tsvg: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// deadLetterOf returns the sink a node dead-letters into, if any.
func deadLetterOf(n config.Node) string {
	onErr, _ := n.Values["on_error"].(map[string]any)
	if onErr == nil {
		return ""
	}
	if a, _ := onErr["action"].(string); a != "" && a != string(flow.ActionDeadLetter) {
		return ""
	}
	dl, _ := onErr["dead_letter"].(string)
	return dl
}

// dotQuote quotes s as a DOT string; `\n` inside stays a DOT line break.
func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// renderDOT draws sources as green houses, stages as blue boxes, sinks as
// red cylinders, data left to right.
func renderDOT(f *config.File) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(f.Name))
	b.WriteString("  rankdir=LR;\n  node [fontname=\"Helvetica\", style=filled];\n  edge [fontname=\"Helvetica\"];\n")
	for _, n := range f.Nodes {
		shape, fill := "box", "#dae8fc"
		switch n.Kind {
		case flow.KindSource:
			shape, fill = "invhouse", "#d5e8d4"
		case flow.KindSink:
			shape, fill = "cylinder", "#f8cecc"
		}
		fmt.Fprintf(&b, "  %s [label=%s, shape=%s, fillcolor=%s];\n",
			dotQuote(n.ID), dotQuote(n.ID+"\n("+n.Type+")"), shape, dotQuote(fill))
	}
	for _, n := range f.Nodes {
		for _, in := range n.Inputs {
			fmt.Fprintf(&b, "  %s -> %s;\n", dotQuote(in), dotQuote(n.ID))
		}
		if dl := deadLetterOf(n); dl != "" {
			fmt.Fprintf(&b, "  %s -> %s [style=dashed, color=\"#b85450\", label=\"dead letter\"];\n", dotQuote(n.ID), dotQuote(dl))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// renderMermaid draws the same graph as a Mermaid flowchart. Node ids are
// replaced by n0, n1, ... because Mermaid reserves words (end, graph) and
// characters an id may contain.
func renderMermaid(f *config.File) string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	alias := map[string]string{}
	for i, n := range f.Nodes {
		alias[n.ID] = fmt.Sprintf("n%d", i)
	}
	for _, n := range f.Nodes {
		label := `"` + mermaidLabel(n.ID) + "<br/>(" + mermaidLabel(n.Type) + `)"`
		open, close := "[", "]"
		switch n.Kind {
		case flow.KindSource:
			open, close = "([", "])"
		case flow.KindSink:
			open, close = "[(", ")]"
		}
		fmt.Fprintf(&b, "  %s%s%s%s\n", alias[n.ID], open, label, close)
	}
	for _, n := range f.Nodes {
		// An unknown id is a problem Compile reports; were one to get
		// here, it is left out so the chart stays valid.
		for _, in := range n.Inputs {
			if a, ok := alias[in]; ok {
				fmt.Fprintf(&b, "  %s --> %s\n", a, alias[n.ID])
			}
		}
		if a, ok := alias[deadLetterOf(n)]; ok {
			fmt.Fprintf(&b, "  %s -. dead letter .-> %s\n", alias[n.ID], a)
		}
	}
	return b.String()
}

// mermaidLabel escapes text for a quoted Mermaid label.
func mermaidLabel(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", "<br/>").Replace(s)
}
