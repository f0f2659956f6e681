package flow

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"
)

// Middleware wraps a ProcessFunc; a node's chain is built once at start.
// Processors and sinks share the same chain (a sink is a processor with no
// output), so Retry, Timeout and Recover mean the same thing everywhere.
type Middleware func(next ProcessFunc) ProcessFunc

// Chain applies mws so that the first is the outermost.
func Chain(fn ProcessFunc, mws ...Middleware) ProcessFunc {
	for i := len(mws) - 1; i >= 0; i-- {
		fn = mws[i](fn)
	}
	return fn
}

// PanicError is a recovered panic from user or stage code.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Recover turns a panic inside next into an error failing the batch, so one
// bad record cannot take the process down.
func Recover() Middleware {
	return func(next ProcessFunc) ProcessFunc {
		return func(ctx context.Context, in []Record, out *Output) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = &PanicError{Value: v, Stack: debug.Stack()}
				}
			}()
			return next(ctx, in, out)
		}
	}
}

// Timeout bounds each call. It only helps processors that honour ctx.
func Timeout(d time.Duration) Middleware {
	return func(next ProcessFunc) ProcessFunc {
		if d <= 0 {
			return next
		}
		return func(ctx context.Context, in []Record, out *Output) error {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next(ctx, in, out)
		}
	}
}

// Backoff is exponential with full jitter, capped.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// Delay returns the wait before retry number attempt (1-based).
func (b Backoff) Delay(attempt int) time.Duration {
	initial, maxd := b.Initial, b.Max
	if initial <= 0 {
		initial = 100 * time.Millisecond
	}
	if maxd <= 0 {
		maxd = 10 * time.Second
	}
	d := initial
	for i := 1; i < attempt && d < maxd; i++ {
		d *= 2
	}
	d = min(d, maxd)
	// Half fixed, half random: spreads retries of many records without ever
	// retrying at once.
	return d/2 + rand.N(d/2+1)
}

// Sleep waits for d or until ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Retry re-runs failed records up to retries more times with backoff. The
// records still failing afterwards stay in out.Errors with their attempts
// counted; retries are always bounded.
func Retry(retries int, backoff Backoff, onRetry func(n int)) Middleware {
	return func(next ProcessFunc) ProcessFunc {
		if retries <= 0 {
			return next
		}
		return func(ctx context.Context, in []Record, out *Output) error {
			// next may reuse in's array; keep the originals for a whole-batch
			// failure. Paid only by nodes configured to retry.
			orig := append([]Record(nil), in...)
			failed := callAll(ctx, next, in, orig, out, 1)
			for attempt := 1; attempt <= retries && len(failed) > 0; attempt++ {
				if onRetry != nil {
					onRetry(len(failed))
				}
				if err := Sleep(ctx, backoff.Delay(attempt)); err != nil {
					break
				}
				again := make([]Record, len(failed))
				for i, f := range failed {
					again[i] = f.Record
				}
				var o Output
				failed = callAll(ctx, next, append([]Record(nil), again...), again, &o, attempt+1)
				out.Records = append(out.Records, o.Records...)
			}
			out.Errors = append(out.Errors, failed...)
			return nil
		}
	}
}

// callAll runs next and returns every failure as RecordErrors, turning a
// whole-batch error into one failure per original record.
func callAll(ctx context.Context, next ProcessFunc, in, orig []Record, out *Output, attempt int) []RecordError {
	mark := len(out.Errors)
	recMark := len(out.Records)
	err := next(ctx, in, out)
	if err != nil {
		out.Records = out.Records[:recMark]
		out.Errors = out.Errors[:mark]
		failed := make([]RecordError, len(orig))
		for i := range orig {
			failed[i] = RecordError{Record: orig[i], Err: err, Attempts: attempt}
		}
		return failed
	}
	failed := append([]RecordError(nil), out.Errors[mark:]...)
	out.Errors = out.Errors[:mark]
	for i := range failed {
		failed[i].Attempts = attempt
	}
	return failed
}
