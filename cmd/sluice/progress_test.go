package main

import (
	"bytes"
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
