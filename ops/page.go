package ops

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"time"
	"unicode/utf8"
)

//go:embed graph.html
var pageSource string

// pageTemplate renders /graph: the whole page in one response, no
// external assets, so it works on an air-gapped host.
var pageTemplate = template.Must(template.New("graph").Parse(pageSource))

// pageData is the template's input.
type pageData struct {
	Pipeline      string
	Width, Height int
	Nodes         []pageNode
	Arcs          []pageArc
	// AgeLimit is the record age histogram's last bound, in seconds: the
	// script shows a quantile past it (null in /graph.json) as older.
	AgeLimit float64
	// Auth is the Authorization header the page was fetched with, handed
	// to its script so /graph.json polls carry the same credentials. Only
	// set when a token guards the server: the caller already holds it.
	Auth string
}

type pageNode struct {
	ID, Label, Kind, Type string
	State                 string // "changelog", "memory" or "" (stateless)
	X, Y, W, H            int
	Rates, Buffer, Age    string
	Done                  bool
}

type pageArc struct {
	To    string // id of the node whose input edge this is
	D     string
	Color string
	Width string
}

// pageHandler serves /graph, drawn from g's current state; the page's
// script then refreshes the numbers in place from /graph.json.
func pageHandler(g *graphSource, guarded bool) http.Handler {
	draw := layOut(g.nodes)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := g.state(time.Now())
		data := pageData{Pipeline: g.pipeline, Width: draw.Width, Height: draw.Height, AgeLimit: ageLimit.Seconds()}
		if guarded {
			data.Auth = r.Header.Get("Authorization")
		}
		for i, n := range st.Nodes {
			b := draw.Boxes[i]
			data.Nodes = append(data.Nodes, pageNode{
				ID: n.ID, Label: clipLabel(n.ID, 26), Kind: n.Kind, Type: n.Type, State: n.State,
				X: b.X, Y: b.Y, W: b.W, H: b.H,
				Rates: rateLine(n), Buffer: bufferLine(n), Age: ageLine(n), Done: !n.Running,
			})
		}
		for _, a := range draw.Arcs {
			to := st.Nodes[a.To]
			data.Arcs = append(data.Arcs, pageArc{To: to.ID, D: a.D, Color: fillColor(to.Fill), Width: fillWidth(to.Fill)})
		}
		var buf bytes.Buffer
		if err := pageTemplate.Execute(&buf, data); err != nil {
			http.Error(w, fmt.Sprintf("rendering graph: %v", err), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(buf.Bytes())
	})
}

// The formatting below is mirrored by the page's script, which redraws the
// same lines from /graph.json.

func rateLine(n nodeState) string {
	switch n.Kind {
	case "source":
		return "out " + human(n.OutRate) + "/s"
	case "sink":
		return "in " + human(n.InRate) + "/s  wrote " + human(n.OutRate) + "/s"
	}
	return "in " + human(n.InRate) + "/s  out " + human(n.OutRate) + "/s"
}

func bufferLine(n nodeState) string {
	s := ""
	if n.Kind != "source" {
		s = fmt.Sprintf("buffer %.0f%% (%d/%d)", 100*min(n.Fill, 1), n.Buffered, n.Capacity)
	}
	if n.Errors > 0 {
		if s != "" {
			s += "  "
		}
		s += fmt.Sprintf("%d failed", n.Errors)
	}
	return s
}

// ageLine is a sink's p50 and p99 record age over the last window; empty
// when it wrote no record with a timestamp then.
func ageLine(n nodeState) string {
	if n.Age == nil {
		return ""
	}
	return "age p50 " + ageText(n.Age.P50) + "  p99 " + ageText(n.Age.P99)
}

// ageText renders an age in seconds with two or three significant digits
// and its unit; nil is past ageLimit.
func ageText(s *float64) string {
	if s == nil {
		return FormatAge(ageLimit + 1)
	}
	return FormatAge(time.Duration(*s * float64(time.Second)))
}

// FormatAge renders a record age in two or three digits and a unit, as
// /graph and the terminal progress lines show it: 420µs, 3.1ms, 12ms,
// 2.2s, 42s, 1.5min; past the histogram's last bound, >10min.
func FormatAge(d time.Duration) string {
	if d > ageLimit {
		return ">" + FormatAge(ageLimit)
	}
	switch s := d.Seconds(); {
	case s < 0.001:
		return fmt.Sprintf("%.0fµs", s*1e6)
	case s < 0.01:
		return fmt.Sprintf("%.1fms", s*1e3)
	case s < 1:
		return fmt.Sprintf("%.0fms", s*1e3)
	case s < 10:
		return fmt.Sprintf("%.1fs", s)
	case s < 60:
		return fmt.Sprintf("%.0fs", s)
	case s < 600:
		return fmt.Sprintf("%.1fmin", s/60)
	default:
		return fmt.Sprintf("%.0fmin", s/60)
	}
}

// human renders a rate with at most four significant characters.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// fillColor runs from green (empty buffer) through yellow to red (full).
func fillColor(fill float64) string {
	return fmt.Sprintf("hsl(%.0f,70%%,42%%)", 120*(1-min(max(fill, 0), 1)))
}

// fillWidth thickens the edges in front of a full buffer.
func fillWidth(fill float64) string {
	return fmt.Sprintf("%.1f", 1.5+5*min(max(fill, 0), 1))
}

// clipLabel shortens a label to limit runes; the full text stays in the
// node's tooltip.
func clipLabel(s string, limit int) string {
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	r := []rune(s)
	return string(r[:limit-1]) + "…"
}
