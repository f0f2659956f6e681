package main

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

func TestFormatFrame(t *testing.T) {
	prev := []nodeSample{
		{id: "gen", kind: "source", typ: "generate", in: 0, out: 0, running: true},
		{id: "out", kind: "sink", typ: "file", in: 0, out: 0, hasInput: true, running: true},
	}
	cur := []nodeSample{
		{id: "gen", kind: "source", typ: "generate", in: 2_000_000, out: 2_000_000, running: true},
		{id: "out", kind: "sink", typ: "file", in: 1500, out: 1000, fill: 0.5, hasInput: true},
	}
	got := formatFrame(prev, cur, 2*time.Second)
	if len(got) != 2 {
		t.Fatalf("%d lines, want one per node", len(got))
	}
	for i, want := range []string{
		"gen source generate in 1.00M/s out 1.00M/s total 2.00M buf -",
		"out sink file in 750/s out 500/s total 1.0k buf 50% done",
	} {
		if words(got[i]) != want {
			t.Errorf("line %q, want (spacing aside) %q", got[i], want)
		}
	}
	if len(got[0]) != len(got[1])-len("  done") {
		t.Errorf("columns not aligned:\n%s\n%s", got[0], got[1])
	}
}

func words(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestProgressWanted(t *testing.T) {
	var b bytes.Buffer
	for mode, want := range map[string]bool{"auto": false, "always": true, "never": false} {
		got, err := progressWanted(mode, &b)
		if err != nil || got != want {
			t.Errorf("%s on a buffer: %v, %v; want %v", mode, got, err, want)
		}
	}
	if _, err := progressWanted("loud", &b); exitCode(err) != 2 {
		t.Errorf("bad mode: %v, want a usage error", err)
	}
}

// lockedBuffer lets the test read what the progress goroutine wrote.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLiveTermKeepsLogsAboveTheBlock(t *testing.T) {
	var b lockedBuffer
	term := newLiveTerm(&b, 0)
	term.draw([]string{"a", "b"})
	term.Write([]byte("log line\n"))
	want := "a\nb\n" + "\x1b[2F\x1b[J" + "log line\n" + "a\nb\n"
	if b.String() != want {
		t.Fatalf("terminal got %q, want %q", b.String(), want)
	}
	term.detach()
	term.Write([]byte("after\n"))
	if !strings.HasSuffix(b.String(), "a\nb\nafter\n") {
		t.Fatalf("after detach the summary must stay: %q", b.String())
	}
}

func TestLiveTermClipsToWidth(t *testing.T) {
	var b lockedBuffer
	newLiveTerm(&b, 6).draw([]string{"0123456789"})
	if b.String() != "01234\n" {
		t.Fatalf("got %q, want the line clipped to 5 columns", b.String())
	}
}

func TestStartProgressStopsAndDrawsFinalFrame(t *testing.T) {
	var b lockedBuffer
	st := &flow.NodeStats{ID: "gen", Kind: flow.KindSource, Type: "generate"}
	stats := func() []*flow.NodeStats { return []*flow.NodeStats{st} }
	stop := startProgress(newLiveTerm(&b, 0), stats, time.Millisecond)
	st.Out.Store(12345)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(words(b.String()), "total 12.3k") {
		if time.Now().After(deadline) {
			stop()
			t.Fatal("progress never showed the new total")
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	out := b.String()
	last := out[strings.LastIndex(out, "\x1b[J")+len("\x1b[J"):]
	if words(last) != "gen source generate in 0/s out 0/s total 12.3k buf - done" {
		t.Fatalf("final frame %q should show the total and mark the stopped node done", last)
	}
}

// screen is a terminal for tests: it keeps every row ever written (no
// scrolling off), wraps at width like a real terminal (a character past
// the last column goes to the next row, which continues the line), turns
// "\n" into a new line (what the tty's onlcr does) and understands the
// escapes liveTerm uses: CSI n F (to the start of the line n rows up) and
// CSI J (clear from the cursor to the end of the screen).
type screen struct {
	width   int
	rows    [][]rune
	wrapped []bool // the line of row i goes on in row i+1
	row     int
	col     int
	esc     []byte // an escape sequence not yet complete
}

func (s *screen) Write(p []byte) (int, error) {
	for _, r := range string(p) {
		s.put(r)
	}
	return len(p), nil
}

func (s *screen) line() {
	s.row++
	s.col = 0
	for len(s.rows) <= s.row {
		s.rows = append(s.rows, nil)
		s.wrapped = append(s.wrapped, false)
	}
}

func (s *screen) put(r rune) {
	if s.rows == nil {
		s.rows, s.wrapped = [][]rune{nil}, []bool{false}
	}
	if s.esc != nil || r == 0x1b {
		s.esc = append(s.esc, string(r)...)
		if len(s.esc) < 3 || r < '@' || r > '~' {
			return // not the final byte of CSI params yet
		}
		n, err := strconv.Atoi(string(s.esc[2 : len(s.esc)-1]))
		if err != nil {
			n = 0
		}
		switch r {
		case 'F':
			s.row, s.col = max(s.row-max(n, 1), 0), 0
		case 'J':
			if s.col < len(s.rows[s.row]) {
				s.rows[s.row] = s.rows[s.row][:s.col]
			}
			s.wrapped[s.row] = false
			s.rows, s.wrapped = s.rows[:s.row+1], s.wrapped[:s.row+1]
		}
		s.esc = nil
		return
	}
	switch r {
	case '\n':
		s.line()
	case '\r':
		s.col = 0
	default:
		if s.col >= s.width {
			s.wrapped[s.row] = true
			s.line()
		}
		for len(s.rows[s.row]) <= s.col {
			s.rows[s.row] = append(s.rows[s.row], ' ')
		}
		s.rows[s.row][s.col] = r
		s.col++
	}
}

// lines is what the screen shows, a line wrapped over rows joined again,
// without the empty row the cursor waits on.
func (s *screen) lines() []string {
	var out []string
	cur := ""
	for i, r := range s.rows {
		cur += string(r)
		if i < len(s.wrapped) && s.wrapped[i] {
			continue
		}
		out = append(out, strings.TrimRight(cur, " "))
		cur = ""
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

func progressFrame(n int) []string {
	return []string{
		fmt.Sprintf("gen  source generate     in    1.1k/s  out    1.1k/s  total %7d  buf    -", n),
		fmt.Sprintf("out  sink   file         in    1.1k/s  out    1.1k/s  total %7d  buf   0%%", n),
	}
}

// Every log line comes out whole on a line of its own above the progress
// block, however the writes and the redraws interleave: here a drain line
// arrives in two writes with a redraw between them (before, the redraw
// erased its first half).
func TestLiveTermLogLinesStayWhole(t *testing.T) {
	scr := &screen{width: 120}
	term := newLiveTerm(scr, 120)
	logs := []string{
		`level=INFO msg="pipeline running" pipeline=p nodes=2`,
		`level=INFO msg="signal received: draining (send it again to exit immediately)" signal=interrupt`,
		`level=INFO msg="draining: sources stopped, flushing in-flight records" pipeline=p timeout=30s`,
	}
	term.draw(progressFrame(1))
	term.Write([]byte(logs[0] + "\n"))
	term.draw(progressFrame(2))
	term.Write([]byte(logs[1] + "\n" + logs[2][:40]))
	term.draw(progressFrame(3))
	term.Write([]byte(logs[2][40:60]))
	term.draw(progressFrame(4))
	term.Write([]byte(logs[2][60:] + "\n"))
	term.draw(progressFrame(5))
	term.detach()
	term.Write([]byte("after\n"))
	want := append(append(slices.Clone(logs), progressFrame(5)...), "after")
	if got := scr.lines(); !slices.Equal(got, want) {
		t.Fatalf("the terminal shows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Log lines (one write each, as a slog handler makes them) and redraws
// from many goroutines: each line whole, none lost.
func TestLiveTermConcurrentLogsStayWhole(t *testing.T) {
	scr := &screen{width: 100}
	term := newLiveTerm(scr, 100)
	var wg sync.WaitGroup
	want := map[string]bool{}
	for g := range 4 {
		for i := range 50 {
			want[fmt.Sprintf("level=INFO msg=\"record batch\" writer=%d n=%d padding=%s", g, i, strings.Repeat("x", 20*g))] = true
		}
		wg.Go(func() {
			for i := range 50 {
				term.Write(fmt.Appendf(nil, "level=INFO msg=\"record batch\" writer=%d n=%d padding=%s\n", g, i, strings.Repeat("x", 20*g)))
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			term.draw(progressFrame(i))
		}
	})
	wg.Wait()
	term.draw(progressFrame(999))
	got := scr.lines()
	if !slices.Equal(got[len(got)-2:], progressFrame(999)) {
		t.Fatalf("the block is not at the bottom: %q", got[len(got)-2:])
	}
	for _, l := range got[:len(got)-2] {
		if !want[l] {
			t.Errorf("line %q is no log line, or not whole", l)
		}
		delete(want, l)
	}
	if len(want) > 0 {
		t.Errorf("%d log lines missing from the terminal", len(want))
	}
}
