package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-isatty"
	"golang.org/x/sys/unix"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/ops"
)

const progressInterval = 500 * time.Millisecond

// progressWanted decides whether run draws live progress on w.
func progressWanted(mode string, w io.Writer) (bool, error) {
	switch mode {
	case "always":
		return true, nil
	case "never":
		return false, nil
	case "auto", "":
		f, ok := w.(*os.File)
		return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())), nil
	default:
		return false, usageErrorf("--progress %q: want auto, always or never", mode)
	}
}

// writesRecordsToTerminal reports whether a stdout sink of f writes to a
// terminal.
func writesRecordsToTerminal(f *config.File) bool {
	if f == nil || !isatty.IsTerminal(os.Stdout.Fd()) {
		return false
	}
	return slices.ContainsFunc(f.Nodes, func(n config.Node) bool { return n.Kind == flow.KindSink && n.Type == "stdout" })
}

// nodeSample is one node's counters at one instant.
type nodeSample struct {
	id, kind, typ string
	in, out       int64
	fill          float64
	hasInput      bool
	running       bool
	// ages is a sink's record age histogram since the start (none for
	// other nodes): a frame shows the quantiles of the records written
	// since the previous sample.
	ages flow.AgeCounts
}

func sample(stats []*flow.NodeStats) []nodeSample {
	out := make([]nodeSample, len(stats))
	for i, s := range stats {
		out[i] = nodeSample{
			id: s.ID, kind: s.Kind.String(), typ: s.Type,
			in: s.In.Load(), out: s.Out.Load(),
			fill: s.Fill(), hasInput: s.Kind != flow.KindSource,
			running: s.Running(),
		}
		if s.Kind == flow.KindSink {
			out[i].ages = s.Ages()
		}
	}
	return out
}

// formatFrame renders one line per node: records in and out per second
// since prev (taken dt earlier) and how full the node's input is; for a
// sink that wrote records with timestamps, the p50 and p99 of their age
// (now minus the timestamp, when written) over the records written since
// prev, or "-" when it wrote none since. A full input marks the
// bottleneck: the node after the last full one.
func formatFrame(prev, cur []nodeSample, dt time.Duration) []string {
	idw := 4
	for _, n := range cur {
		idw = max(idw, min(len(n.id), 24))
	}
	lines := make([]string, len(cur))
	for i, n := range cur {
		var inRate, outRate float64
		if i < len(prev) && prev[i].id == n.id && dt > 0 {
			inRate = float64(n.in-prev[i].in) / dt.Seconds()
			outRate = float64(n.out-prev[i].out) / dt.Seconds()
		}
		buf := "   -"
		if n.hasInput {
			buf = fmt.Sprintf("%3.0f%%", 100*n.fill)
		}
		state := ""
		if !n.running {
			state = "  done"
		}
		age := ""
		if n.ages.Count() > 0 {
			window := n.ages
			if i < len(prev) && prev[i].id == n.id {
				window = n.ages.Sub(prev[i].ages)
			}
			age = "  age -"
			if window.Count() > 0 {
				p50, _ := window.Quantile(0.5)
				p99, _ := window.Quantile(0.99)
				age = fmt.Sprintf("  age p50 %6s p99 %6s", shortAge(p50), shortAge(p99))
			}
		}
		lines[i] = fmt.Sprintf("%-*s %-6s %-12s in %7s/s  out %7s/s  total %7s  buf %s%s%s",
			idw, clipText(n.id, idw), n.kind, clipText(n.typ, 12), human(inRate), human(outRate), human(float64(n.out)), buf, age, state)
	}
	return lines
}

// shortAge is how the progress lines show an age: as /graph does.
func shortAge(d time.Duration) string { return ops.FormatAge(d) }

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "~"
}

// human shortens a count or rate: 950, 12.3k, 4.56M.
func human(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk", r/1e3)
	default:
		return fmt.Sprintf("%.0f", r)
	}
}

// liveTerm keeps a block of progress lines at the bottom of a terminal.
// Logs are written through it: it erases the block, writes the log lines
// and draws the block again, all under one lock, so they never overwrite
// each other.
//
// Erasing moves the cursor up as many rows as the block took, so the block
// must take one row per line and nothing else may end up among its rows:
// its lines are clipped to the terminal's width as it is at each drawing
// (a terminal narrowed while running would otherwise wrap them, and the
// rows left over would pile up between the log lines), and a log line
// comes out only once whole (the block drawn after half a line would take
// that half with it when next erased).
type liveTerm struct {
	mu    sync.Mutex
	w     io.Writer
	width func() int // terminal columns now; 0 = unknown
	frame []string   // what is on screen below the logs
	// partial is the start of a log line whose end has not come yet.
	partial  []byte
	detached bool
}

// maxPartial bounds a held unfinished log line: past it, the line is
// written with a line break of its own.
const maxPartial = 64 << 10

// newLiveTerm wraps w; lines are clipped to the width of the terminal w
// is (read again at each drawing, so a resize is followed), else to width
// columns (0: not clipped), because a wrapped line would throw off the
// erasing.
func newLiveTerm(w io.Writer, width int) *liveTerm {
	return &liveTerm{w: w, width: func() int {
		if n := termWidth(w); n > 0 {
			return n
		}
		return width
	}}
}

// erase moves to the first line of the block and clears to the end of the
// screen.
func (t *liveTerm) erase(b *strings.Builder) {
	if n := len(t.frame); n > 0 {
		fmt.Fprintf(b, "\x1b[%dF\x1b[J", n)
	}
}

func (t *liveTerm) paint(b *strings.Builder) {
	width := 0
	if len(t.frame) > 0 {
		width = t.width()
	}
	for _, l := range t.frame {
		b.WriteString(clipColumns(l, width-1))
		b.WriteByte('\n')
	}
}

// clipColumns cuts s to n characters (n < 1: not cut), at a character
// boundary.
func clipColumns(s string, n int) string {
	if n < 1 || utf8.RuneCountInString(s) <= n {
		return s
	}
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// Write writes the whole lines of p above the progress block, and holds
// what follows the last line break until the rest of its line comes.
func (t *liveTerm) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.detached {
		return t.w.Write(p)
	}
	end := bytes.LastIndexByte(p, '\n') + 1
	if end == 0 && len(t.partial)+len(p) <= maxPartial {
		t.partial = append(t.partial, p...)
		return len(p), nil
	}
	var b strings.Builder
	t.erase(&b)
	b.Write(t.partial)
	b.Write(p[:end])
	t.partial = append(t.partial[:0], p[end:]...)
	if end == 0 { // a line too long to hold: break it here
		b.Write(t.partial)
		b.WriteByte('\n')
		t.partial = t.partial[:0]
	}
	t.paint(&b)
	if _, err := io.WriteString(t.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// draw replaces the block with frame.
func (t *liveTerm) draw(frame []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.detached {
		return
	}
	var b strings.Builder
	t.erase(&b)
	t.frame = frame
	t.paint(&b)
	io.WriteString(t.w, b.String())
}

// detach leaves the last frame on screen as a summary; later writes go
// below it, as they come.
func (t *liveTerm) detach() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.frame = nil
	t.detached = true
	if len(t.partial) > 0 {
		t.w.Write(t.partial)
		t.partial = nil
	}
}

// termWidth is w's width in columns when w is a terminal, else 0.
func termWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	return int(ws.Col)
}

// startProgress redraws stats on t every interval until stop is called;
// stop draws a final frame, whose record ages are those of the whole run,
// and waits for the goroutine to end.
func startProgress(t *liveTerm, stats func() []*flow.NodeStats, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		prev, last := sample(stats()), time.Now()
		redraw := func() {
			cur, now := sample(stats()), time.Now()
			t.draw(formatFrame(prev, cur, now.Sub(last)))
			prev, last = cur, now
		}
		t.draw(formatFrame(prev, prev, 0))
		for {
			select {
			case <-tick.C:
				redraw()
			case <-done:
				// The frame left on screen sums the run up: ages since
				// the start.
				for i := range prev {
					prev[i].ages = flow.AgeCounts{}
				}
				redraw()
				t.detach()
				return
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
