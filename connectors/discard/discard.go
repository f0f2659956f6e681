// Package discard is the `discard` sink: it counts records and drops them,
// for benchmarks and for trying out the front of a pipeline.
package discard

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func init() {
	registry.Declare(registry.Component[struct{}]{
		Kind:    flow.KindSink,
		Type:    "discard",
		Summary: "drops every record (counting them); for benchmarks and dry runs",
		Fields:  func(*struct{}) []registry.Field { return nil },
		Build: func(_ *struct{}, n *registry.Conf) (any, error) {
			return &Sink{log: n.Logger()}, nil
		},
	})
}

// Sink is the discard sink.
type Sink struct {
	log *slog.Logger
	n   atomic.Int64
}

// Write counts recs.
func (s *Sink) Write(ctx context.Context, recs []flow.Record) error {
	s.n.Add(int64(len(recs)))
	return nil
}

// Count is the number of records dropped so far.
func (s *Sink) Count() int64 { return s.n.Load() }

// Close logs the count.
func (s *Sink) Close(ctx context.Context) error {
	s.log.LogAttrs(ctx, slog.LevelInfo, "discard sink done", slog.Int64("records", s.n.Load()))
	return nil
}
