package main

import (
	"context"
	"log/slog"
	"os"
)

// watchSignals turns the first signal on sigs into cancel (a graceful
// drain) and the second into force (exit at once). The goroutine it starts
// ends when stop is called; stop waits for it.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelFunc, force func(), log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		draining := false
		for {
			select {
			case sig := <-sigs:
				if !draining {
					draining = true
					log.Info("signal received: draining (send it again to exit immediately)", "signal", sig.String())
					cancel()
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
