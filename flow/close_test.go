package flow_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// slowCloser is a finite source whose Close waits for its context, like a
// consumer group waiting for a rebalance to finish.
type slowCloser struct{ counter }

func (s *slowCloser) Close(ctx context.Context) error {
	<-ctx.Done()
	return fmt.Errorf("leaving the group: coordinator did not answer: %w", ctx.Err())
}

// closeProbe is a sink that remembers the time its Close had left.
type closeProbe struct {
	collect
	left chan time.Duration
}

func (c *closeProbe) Close(ctx context.Context) error {
	dl, ok := ctx.Deadline()
	if !ok {
		c.left <- -1
		return nil
	}
	c.left <- time.Until(dl)
	return nil
}

// One Close that waits for its deadline must not take the time of the
// others (issue 8: a consumer group's leave used the whole close budget
// and the plugin stage's Close got an expired context). The error names
// the node and what it waited for.
func TestSlowCloseDoesNotStarveTheOthers(t *testing.T) {
	src := &slowCloser{counter{n: 100, size: 10}}
	sink := &closeProbe{left: make(chan time.Duration, 1)}
	const drain = 2 * time.Second
	p := flow.New("t", flow.WithDrainTimeout(drain)).
		Source("src", src).
		Sink("out", sink, flow.Inputs("src"))
	err := p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "close src: leaving the group: coordinator did not answer") {
		t.Fatalf("Run = %v, want the slow source's close error", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want it to wrap the deadline", err)
	}
	if left := <-sink.left; left < drain/2 {
		t.Fatalf("the sink's Close got %s of the %s drain_timeout: it ran after the slow one instead of beside it", left, drain)
	}
	if got := len(sink.values()); got != 100 {
		t.Fatalf("sink holds %d records, want 100", got)
	}
}
