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

// sourceConfig is the file source's config.
type sourceConfig struct {
	Path   string
	Follow bool
	lineConfig
}

func init() {
	registry.Declare(registry.Component[sourceConfig]{
		Kind:    flow.KindSource,
		Type:    "file",
		Summary: "one record per line of a file; Origin.Offset is the line number (from 1)",
		Fields: func(c *sourceConfig) []registry.Field {
			return append([]registry.Field{
				registry.Bind(&c.Path, "path", "file to read; a relative path resolves against the pipeline file's directory",
					registry.Required(), registry.Example("events.jsonl")),
				registry.Bind(&c.Follow, "follow", "keep reading lines appended after the end (like tail -f) until the pipeline stops; false ends the source at end of file. Rotation and truncation are not detected",
					registry.Default(false), registry.Example(true)),
			}, c.lineConfig.fields()...)
		},
		Build: buildSource,
	})
}

func buildSource(c *sourceConfig, n *registry.Conf) (any, error) {
	path := resolve(n, c.Path)
	if err := readableFile(path); err != nil {
		return nil, err
	}
	return &Source{id: n.ID, path: path, follow: c.Follow, lines: c.lineConfig, log: n.Logger()}, nil
}

// Source is the file source.
type Source struct {
	id     string
	path   string
	follow bool
	lines  lineConfig
	log    *slog.Logger
	count  lineCount
}

// Run emits the file's lines; without follow it ends at end of file.
func (s *Source) Run(ctx context.Context, out flow.Emitter) error {
	f, err := os.Open(s.path)
	if err != nil {
		return err
	}
	defer f.Close()
	lr := newLineReader(f, s.path, s.id, int(s.lines.MaxLine))
	lr.keepPartial = s.follow
	for ctx.Err() == nil {
		recs, err := lr.readBatch(s.lines.Batch, false)
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
