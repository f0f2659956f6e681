package host

import (
	"fmt"
	"strings"
	"testing"
)

func TestStderrTailKeepsTheLastLines(t *testing.T) {
	var tl stderrTail
	if lines, cut := tl.lines(); len(lines) != 0 || cut {
		t.Fatalf("empty tail: %q, cut %v", lines, cut)
	}
	tl.add([]byte("one\n"))
	tl.add([]byte("\n"))
	tl.add([]byte("  \r\n"))
	tl.add([]byte("two\r\n"))
	if lines, cut := tl.lines(); strings.Join(lines, "|") != "one|two" || cut {
		t.Fatalf("got %q, cut %v; want one|two, blank lines skipped", lines, cut)
	}
	for i := range 3 * tailLines {
		tl.add(fmt.Appendf(nil, "line %d\n", i))
	}
	lines, cut := tl.lines()
	if len(lines) != tailLines || !cut || lines[0] != fmt.Sprintf("line %d", 2*tailLines) || lines[tailLines-1] != fmt.Sprintf("line %d", 3*tailLines-1) {
		t.Fatalf("got %q, cut %v", lines, cut)
	}
}

func TestStderrTailBoundsBytes(t *testing.T) {
	var tl stderrTail
	long := strings.Repeat("x", 1000)
	for range 10 {
		tl.add([]byte(long))
	}
	lines, _ := tl.lines()
	size := 0
	for _, l := range lines {
		size += len(l)
	}
	if size > tailBytes || len(lines) != tailBytes/1000 {
		t.Fatalf("%d lines of %d bytes held, want at most %d bytes", len(lines), size, tailBytes)
	}
	// A line longer than the whole budget keeps its start, alone.
	tl.add([]byte("start" + strings.Repeat("y", 3*tailBytes)))
	lines, _ = tl.lines()
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "start") || len(lines[0]) > tailBytes+8 || !strings.HasSuffix(lines[0], "…") {
		t.Fatalf("huge line kept as %d lines, first %d bytes", len(lines), len(lines[0]))
	}
	// Invalid UTF-8 does not reach the error text.
	tl.add([]byte("bad \xff byte"))
	lines, _ = tl.lines()
	if got := lines[len(lines)-1]; got != "bad \uFFFD byte" {
		t.Fatalf("got %q", got)
	}
}

func TestStderrTailPinsAPanic(t *testing.T) {
	var tl stderrTail
	tl.add([]byte("starting\n"))
	tl.add([]byte("panic: boom\n"))
	for i := range tailLines {
		tl.add(fmt.Appendf(nil, "frame %d\n", i))
	}
	lines, cut := tl.lines()
	if !cut || lines[0] != "panic: boom" || lines[1] == "…" || lines[1] != "frame 0" {
		t.Fatalf("panic just out of the ring: %q", lines)
	}
	tl.add([]byte("panic: a second one\n"))
	tl.add([]byte("frame x\n"))
	lines, _ = tl.lines()
	if lines[0] != "panic: boom" || lines[1] != "…" || len(lines) != tailLines+2 {
		t.Fatalf("got %q", lines)
	}
}
