package file

import (
	"bufio"
	"context"

	"github.com/sluicedev/sluice/flow"
)

const writeBuffer = 256 << 10

// writeLines writes each value followed by '\n' and flushes: when it
// returns nil the bytes are with the operating system.
func writeLines(w *bufio.Writer, recs []flow.Record) error {
	for i := range recs {
		w.Write(recs[i].Value) // errors are sticky: Flush reports them
		w.WriteByte('\n')
	}
	return w.Flush()
}

// acquire takes lock, a channel of capacity 1, unless ctx ends first.
func acquire(ctx context.Context, lock chan struct{}) error {
	select {
	case lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func release(lock chan struct{}) { <-lock }
