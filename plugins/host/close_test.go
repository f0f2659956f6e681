package host_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/host"
)

// A process that died leaves its instance backing off before the restart.
// Close must not wait that backoff out: with nothing left to send it stops
// at once, well inside its deadline (issue 8: the whole shutdown must fit
// in drain_timeout).
func TestCloseCutsARestartBackoffShort(t *testing.T) {
	defer host.SetRestartBackoff(flow.Backoff{Initial: time.Hour, Max: time.Hour})()
	st, logs := newStage(t, host.Config{Path: plugins["passthrough"]})
	in := make(chan *flow.Batch)
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	ran := make(chan error, 1)
	go func() { ran <- st.Run(runCtx, in, emitter{out: make(chan *flow.Batch, 1)}) }()

	pid := st.Pids()[0]
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	eventually(t, 10*time.Second, "the instance to notice the kill", func() bool { return st.Stats().Restarts == 1 })
	close(in)
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := st.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Close returned only when its deadline passed: it waited out the hour-long restart backoff\n%v", logs.lines())
	}
}
