package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// watcher is a signal watcher under test whose clock the test sets: it
// reads the time once per signal, and deliver hands it that time.
type watcher struct {
	t      *testing.T
	sigs   chan os.Signal
	stamps chan time.Time
	forced chan struct{}
	stop   func()
}

func newWatcher(t *testing.T, cancel context.CancelFunc, log *slog.Logger) *watcher {
	w := &watcher{t: t, sigs: make(chan os.Signal), stamps: make(chan time.Time), forced: make(chan struct{})}
	now := func() time.Time { return <-w.stamps }
	w.stop = watchSignalsClock(w.sigs, cancel, func() { close(w.forced) }, log, now)
	t.Cleanup(w.stop)
	return w
}

// deliver hands sig to the watcher as if it arrived at time at. A watcher
// that forced an exit takes no more signals.
func (w *watcher) deliver(sig os.Signal, at time.Time) {
	w.t.Helper()
	select {
	case w.sigs <- sig:
	case <-w.forced:
		w.t.Fatal("an earlier signal forced an exit")
	case <-time.After(10 * time.Second):
		w.t.Fatal("the watcher did not take the signal")
	}
	select {
	case w.stamps <- at:
	case <-time.After(10 * time.Second):
		w.t.Fatal("the watcher did not read the time")
	}
}

func (w *watcher) wantForced(why string) {
	w.t.Helper()
	select {
	case <-w.forced:
	case <-time.After(10 * time.Second):
		w.t.Fatal(why)
	}
}

var t0 = time.Unix(1e9, 0)

func TestSignals(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	w := newWatcher(t, cancel, slog.New(slog.NewTextHandler(&logs, nil)))

	w.deliver(syscall.SIGTERM, t0)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("first signal did not cancel the run")
	}
	// Copies of the first, as GNU timeout or one Ctrl-C deliver them: at
	// the same instant, and just inside the guard.
	w.deliver(syscall.SIGTERM, t0)
	w.deliver(os.Interrupt, t0.Add(forceGuard-time.Millisecond))
	// deliver returns once the watcher took the signal, so the copies
	// were handled without forcing. A later one forces the exit.
	w.deliver(os.Interrupt, t0.Add(forceGuard))
	w.wantForced("a second signal after the guard did not force an exit")
	got := logs.String()
	if !strings.Contains(got, "draining") || !strings.Contains(got, "forced exit") {
		t.Fatalf("logs %q lack the drain and forced-exit lines", got)
	}
	if n := strings.Count(got, "signal ignored"); n != 2 {
		t.Fatalf("%d signals logged as ignored, want 2:\n%s", n, got)
	}
}

// The guard runs from the first signal, not from the last copy: copies
// that keep arriving do not postpone a deliberate second signal.
func TestSignalGuardRunsFromTheFirst(t *testing.T) {
	w := newWatcher(t, func() {}, slog.New(slog.DiscardHandler))
	w.deliver(syscall.SIGTERM, t0)
	w.deliver(syscall.SIGTERM, t0.Add(forceGuard/2)) // a copy
	// forceGuard after the first, half of it after the copy.
	w.deliver(syscall.SIGTERM, t0.Add(forceGuard))
	w.wantForced("a signal a guard after the first did not force an exit")
}

func TestSignalWatcherStopsWithoutSignals(t *testing.T) {
	var logs bytes.Buffer
	stop := watchSignals(make(chan os.Signal), func() {}, func() { t.Error("forced") }, slog.New(slog.NewTextHandler(&logs, nil)))
	stop() // returns only once the goroutine ended; goleak checks none is left
	if logs.Len() != 0 {
		t.Fatalf("logged without a signal: %s", logs.String())
	}
}
