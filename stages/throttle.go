package stages

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// throttleConfig is the throttle stage's config.
type throttleConfig struct {
	Rate  float64
	Burst int
}

func init() {
	registry.Declare(registry.Component[throttleConfig]{
		Kind:    flow.KindStage,
		Type:    "throttle",
		Summary: "hold the record rate at or below a limit",
		Fields: func(c *throttleConfig) []registry.Field {
			return []registry.Field{
				registry.Bind(&c.Rate, "rate", "records per second, for the node as a whole (parallel workers share it)",
					registry.Required(), registry.Range(MinRate, MaxRate), registry.Example(1000)),
				registry.Bind(&c.Burst, "burst", "records that may pass at once after a quiet spell, and the largest batch passed on (bigger ones are split); default a tenth of a second's worth, at least 1",
					registry.Range(1, MaxBurst), registry.Example(100)),
			}
		},
		Build: func(c *throttleConfig, _ *registry.Conf) (any, error) {
			if err := c.validate(); err != nil {
				return nil, err
			}
			return NewThrottle(c.Rate, c.Burst), nil
		},
	})
}

// validate refuses a rate the token bucket cannot divide by. The declared
// range refuses it in a pipeline file; this holds for a Build that did not
// go through the config loader.
func (c *throttleConfig) validate() error {
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		return registry.FieldErr("rate", errors.New("must be a positive number of records per second"))
	}
	return nil
}

// Throttle is the throttle stage, a token bucket: batches wait until the
// bucket holds a token per record; batches larger than the burst are split.
// Parallel workers (parallelism) share the one bucket, so the rate holds
// for the node as a whole. It keeps throttling during a drain (which then
// takes as long as the rate requires, within the drain timeout).
type Throttle struct {
	rate  float64
	burst int
	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu      sync.Mutex
	tokens  float64 // below zero: tokens promised to callers still waiting
	last    time.Time
	started bool
}

// NewThrottle returns a throttle of rate records per second; burst 0 picks
// a tenth of a second's worth.
func NewThrottle(rate float64, burst int) *Throttle {
	if burst < 1 {
		burst = max(1, int(math.Ceil(rate/10)))
	}
	return &Throttle{rate: rate, burst: burst, now: time.Now, sleep: flow.Sleep}
}

// RejectsRecords implements flow.Rejecter: a throttle never fails a
// record, so on_error has nothing to act on.
func (*Throttle) RejectsRecords() bool { return false }

// reserve takes n tokens and returns how long the caller must wait before
// they are its own. Tokens refill at rate up to the burst.
func (t *Throttle) reserve(n int) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if !t.started {
		t.tokens, t.last, t.started = float64(t.burst), now, true
	}
	t.tokens = math.Min(float64(t.burst), t.tokens+now.Sub(t.last).Seconds()*t.rate)
	t.last = now
	t.tokens -= float64(n)
	if t.tokens >= 0 {
		return 0
	}
	return time.Duration(-t.tokens / t.rate * float64(time.Second))
}

// unreserve gives back n tokens a caller will not use.
func (t *Throttle) unreserve(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tokens = math.Min(float64(t.burst), t.tokens+float64(n))
}

// take waits until n tokens are the caller's.
func (t *Throttle) take(ctx context.Context, n int) error {
	wait := t.reserve(n)
	if wait <= 0 {
		return nil
	}
	if err := t.sleep(ctx, wait); err != nil {
		t.unreserve(n)
		return err
	}
	return nil
}

// Run implements flow.Stage.
func (t *Throttle) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	for b := range in {
		if len(b.Records) == 0 {
			b.Settle(nil)
			continue
		}
		if len(b.Records) <= t.burst {
			if err := t.take(ctx, len(b.Records)); err != nil {
				b.Settle(err)
				return nil
			}
			if out.Emit(ctx, b) != nil {
				return nil
			}
			continue
		}
		for recs := b.Records; len(recs) > 0; {
			n := min(len(recs), t.burst)
			if err := t.take(ctx, n); err != nil {
				b.Settle(err)
				return nil
			}
			if out.Emit(ctx, b.Derive(recs[:n:n])) != nil {
				b.Settle(ctx.Err())
				return nil
			}
			recs = recs[n:]
		}
		b.Settle(nil)
	}
	return nil
}
