//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal of cols columns: what is written to tty
// can be read from ptm, as a terminal would.
func openPTY(t *testing.T, cols int) (ptm, tty *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	// Not through ptm.Fd(), which would make reads blocking and their
	// deadlines void.
	rc, err := ptm.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	err = rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	})
	if err = errors.Join(err, ierr); err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	resize(t, tty, cols)
	return ptm, tty
}

func resize(t *testing.T, tty *os.File, cols int) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
}

// show hands scr everything written to the terminal so far.
func show(t *testing.T, ptm *os.File, scr *screen) {
	t.Helper()
	buf := make([]byte, 4096)
	for {
		if err := ptm.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := ptm.Read(buf)
		scr.Write(buf[:n])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A terminal narrowed while sluice runs: the progress lines follow its
// width, so no wrapped rest of one is left among the log lines (before,
// the width read at the start stayed, the lines wrapped, and each redraw
// left a piece of the block above the next log line).
func TestLiveTermFollowsAResize(t *testing.T) {
	ptm, tty := openPTY(t, 100)
	scr := &screen{width: 100}
	term := newLiveTerm(tty, termWidth(tty))
	logs := []string{
		`level=INFO msg="pipeline running" pipeline=p nodes=2`,
		`level=INFO msg="signal received: draining (send it again to exit immediately)" signal=interrupt`,
		`level=INFO msg="draining: sources stopped, flushing in-flight records" pipeline=p timeout=30s`,
	}
	term.draw(progressFrame(1))
	term.Write([]byte(logs[0] + "\n"))
	show(t, ptm, scr)
	resize(t, tty, 60)
	scr.width = 60
	term.draw(progressFrame(2))
	term.Write([]byte(logs[1] + "\n"))
	term.draw(progressFrame(3))
	term.Write([]byte(logs[2] + "\n"))
	term.draw(progressFrame(4))
	show(t, ptm, scr)
	want := slices.Clone(logs)
	for _, l := range progressFrame(4) {
		want = append(want, l[:59])
	}
	if got := scr.lines(); !slices.Equal(got, want) {
		t.Fatalf("the terminal shows\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
