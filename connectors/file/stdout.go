package file

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func init() {
	registry.Declare(registry.Component[struct{}]{
		Kind:    flow.KindSink,
		Type:    "stdout",
		Summary: "writes each record's value and a newline to standard output",
		Fields:  func(*struct{}) []registry.Field { return nil },
		Build: func(*struct{}, *registry.Conf) (any, error) {
			return newStdout(os.Stdout), nil
		},
	})
}

// Stdout is the stdout sink: lines are flushed before Write returns, not
// fsynced (standard output is usually a pipe or a terminal).
type Stdout struct {
	lock chan struct{} // see Sink.lock
	out  io.Writer
	w    *bufio.Writer
}

func newStdout(out io.Writer) *Stdout {
	return &Stdout{lock: make(chan struct{}, 1), out: out, w: bufio.NewWriterSize(out, writeBuffer)}
}

// Write writes recs and flushes.
func (s *Stdout) Write(ctx context.Context, recs []flow.Record) error {
	if err := acquire(ctx, s.lock); err != nil {
		return err
	}
	defer release(s.lock)
	if err := writeLines(s.w, recs); err != nil {
		s.w.Reset(s.out) // bufio errors are sticky: start clean for a retry
		return fmt.Errorf("write stdout: %w", err)
	}
	return nil
}
