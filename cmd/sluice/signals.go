package main

import (
	"context"
	"log/slog"
	"os"
	"time"
)

// forceGuard is how long after the first signal a further one counts as a
// copy of the first rather than a request to exit at once.
//
// One user action can deliver a signal twice within microseconds: GNU
// timeout signals its child and then the child's process group, a
// terminal's Ctrl-C reaches every process in the foreground group (sluice
// and any wrapper that forwards it). The kernel and the Go runtime merge
// the two copies only while the first is still pending, so whether sluice
// sees one signal or two is a race; counting the copy as "force" made such
// a stop exit 1 without draining now and then. A second well apart is
// deliberate: a person presses again after reading the drain message, a
// script after waiting for the drain. One second is far more than the
// copies are apart, even on a loaded host, and short enough that an early
// second press, ignored with a log line, costs little: press again.
const forceGuard = time.Second

// watchSignals turns the first signal on sigs into cancel (a graceful
// drain) and a later one, forceGuard or more after the first, into force
// (exit at once). The goroutine it starts ends when stop is called; stop
// waits for it.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelFunc, force func(), log *slog.Logger) (stop func()) {
	return watchSignalsClock(sigs, cancel, force, log, time.Now)
}

// watchSignalsClock is watchSignals reading the time from now.
func watchSignalsClock(sigs <-chan os.Signal, cancel context.CancelFunc, force func(), log *slog.Logger, now func() time.Time) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		var first time.Time // when the drain began; zero before
		for {
			select {
			case sig := <-sigs:
				if first.IsZero() {
					first = now()
					log.Info("signal received: draining (send it again to exit immediately)", "signal", sig.String())
					cancel()
					continue
				}
				if since := now().Sub(first); since < forceGuard {
					log.Info("signal ignored: too soon after the first to be another request, taken as a copy of it (send it again to exit immediately)",
						"signal", sig.String(), "after", since.Round(time.Microsecond), "guard", forceGuard)
					continue
				}
				log.Error("forced exit: second signal during drain; unacknowledged input will be read again on restart", "signal", sig.String())
				force()
				return
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
