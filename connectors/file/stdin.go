package file

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func init() {
	registry.Declare(registry.Component[lineConfig]{
		Kind:    flow.KindSource,
		Type:    "stdin",
		Summary: "one record per line of standard input; ends at end of input",
		Fields:  (*lineConfig).fields,
		Build: func(c *lineConfig, n *registry.Conf) (any, error) {
			return newStdin(n.ID, os.Stdin, *c, n.Logger()), nil
		},
	})
}

// Stdin is the stdin source.
type Stdin struct {
	id    string
	in    io.Reader
	lines lineConfig
	log   *slog.Logger
	count lineCount
}

func newStdin(id string, in io.Reader, lines lineConfig, log *slog.Logger) *Stdin {
	return &Stdin{id: id, in: in, lines: lines, log: log}
}

// lineBatch is what the reading goroutine hands to Run.
type lineBatch struct {
	recs []flow.Record
	err  error
}

// Run emits lines until end of input or until ctx ends. A read from a
// terminal or pipe cannot be interrupted, so reading happens on a goroutine
// Run owns: on drain Run stops taking its lines and returns at once; the
// reader exits when its read returns (at the latest, with the process).
func (s *Stdin) Run(ctx context.Context, out flow.Emitter) error {
	batches := make(chan lineBatch)
	stop := make(chan struct{})
	defer close(stop)
	go s.read(batches, stop)
	for {
		select {
		case lb, ok := <-batches:
			if !ok {
				return nil
			}
			if lb.err != nil {
				return lb.err
			}
			if out.Emit(ctx, flow.NewBatch(lb.recs, s.count.track(len(lb.recs)))) != nil {
				return nil // draining
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Stdin) read(batches chan<- lineBatch, stop <-chan struct{}) {
	defer close(batches)
	lr := newLineReader(s.in, "stdin", s.id, int(s.lines.MaxLine))
	for {
		recs, err := lr.readBatch(s.lines.Batch, true)
		if len(recs) > 0 {
			select {
			case batches <- lineBatch{recs: recs}:
			case <-stop:
				return
			}
		}
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			select {
			case batches <- lineBatch{err: err}:
			case <-stop:
			}
			return
		}
	}
}

// Acked is the number of lines acknowledged so far.
func (s *Stdin) Acked() int64 { return s.count.acked.Load() }

// Close reports how many lines were read and acknowledged.
func (s *Stdin) Close(ctx context.Context) error {
	s.log.LogAttrs(ctx, slog.LevelInfo, "stdin source done",
		slog.Int64("read", s.count.read.Load()), slog.Int64("acked", s.count.acked.Load()), slog.Int64("failed", s.count.failed.Load()))
	return nil
}
