package file

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// followPoll is how often a following source looks for appended lines.
const followPoll = 200 * time.Millisecond

func init() {
	registry.Register(registry.Spec{
		Kind:    flow.KindSource,
		Type:    "file",
		Summary: "one record per line of a file; Origin.Offset is the line number (from 1)",
		Fields: []registry.Field{
			{Name: "path", Type: registry.String, Required: true, Example: "events.jsonl",
				Doc: "file to read; a relative path resolves against the pipeline file's directory"},
			{Name: "follow", Type: registry.Bool, Default: false, Example: true,
				Doc: "keep reading lines appended after the end (like tail -f) until the pipeline stops; false ends the source at end of file. Rotation and truncation are not detected"},
			maxLineField,
			batchField,
		},
		Build: buildSource,
	})
}

func buildSource(c *registry.Conf) (any, error) {
	path := resolve(c, c.String("path"))
	if err := readableFile(path); err != nil {
		return nil, err
	}
	maxLine, err := size(c, "max_line", DefaultMaxLine)
	if err != nil {
		return nil, err
	}
	batch, err := batchSize(c)
	if err != nil {
		return nil, err
	}
	return &Source{id: c.ID, path: path, follow: c.Bool("follow"), maxLine: maxLine, batch: batch, log: c.Logger()}, nil
}

// Source is the file source.
type Source struct {
	id      string
	path    string
	follow  bool
	maxLine int
	batch   int
	log     *slog.Logger
	count   lineCount
}

// Run emits the file's lines; without follow it ends at end of file.
func (s *Source) Run(ctx context.Context, out flow.Emitter) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	lr := newLineReader(f, s.path, s.id, s.maxLine)
	lr.keepPartial = s.follow
	for ctx.Err() == nil {
		recs, err := lr.readBatch(s.batch, false)
		if len(recs) > 0 {
			if out.Emit(ctx, flow.NewBatch(recs, s.count.track(len(recs)))) != nil {
				return nil // draining
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			if !s.follow {
				return nil
			}
			if flow.Sleep(ctx, followPoll) != nil {
				return nil
			}
		default:
			return err
		}
	}
	return nil
}

// Acked is the number of lines acknowledged so far.
func (s *Source) Acked() int64 { return s.count.acked.Load() }

// Close reports how many lines were read and acknowledged.
func (s *Source) Close(ctx context.Context) error {
	s.log.LogAttrs(ctx, slog.LevelInfo, "file source done", slog.String("path", s.path),
		slog.Int64("read", s.count.read.Load()), slog.Int64("acked", s.count.acked.Load()), slog.Int64("failed", s.count.failed.Load()))
	return nil
}
