package pipelinetest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// memSource emits a case's records for one source as one batch, then ends.
// It remembers how that batch was acknowledged, so a case can tell a stage
// that loses or holds on to acks.
type memSource struct {
	id      string
	records []flow.Record

	mu    sync.Mutex
	acked bool
	err   error
}

func (s *memSource) Run(ctx context.Context, out flow.Emitter) error {
	if len(s.records) == 0 {
		return nil
	}
	recs := make([]flow.Record, len(s.records))
	copy(recs, s.records)
	now := time.Now()
	for i := range recs {
		// As a real source would stamp them; event-time tests give their own.
		if recs[i].Timestamp.IsZero() {
			recs[i].Timestamp = now
		}
	}
	ack := flow.NewAck(func(err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.acked, s.err = true, err
	})
	return out.Emit(ctx, flow.NewBatch(recs, ack))
}

// ackProblem says what is wrong with the acknowledgement of s's input, ""
// when it was acknowledged without error (or there was none).
func (s *memSource) ackProblem() string {
	if len(s.records) == 0 {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.acked:
		return fmt.Sprintf("source %s: its records were never acknowledged: a stage dropped their acks or still holds them", s.id)
	case s.err != nil:
		return fmt.Sprintf("source %s: its records were acknowledged with an error: %v", s.id, s.err)
	}
	return ""
}

// collector is a sink keeping every record it is given, in order.
type collector struct {
	mu      sync.Mutex
	records []flow.Record
}

func (c *collector) Write(_ context.Context, recs []flow.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The engine may reuse the slice once Write returns; the records'
	// bytes are immutable once emitted, so copying the structs suffices.
	c.records = append(c.records, recs...)
	return nil
}

func (c *collector) got() []flow.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]flow.Record(nil), c.records...)
}
