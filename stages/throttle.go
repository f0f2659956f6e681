package stages

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/flow/registry"
)

func init() {
	registry.Register(registry.Spec{
		Kind:    flow.KindStage,
		Type:    "throttle",
		Summary: "hold the record rate at or below a limit",
		Fields: []registry.Field{
			{Name: "rate", Type: registry.Float, Required: true, Doc: "records per second", Example: 1000},
			{Name: "burst", Type: registry.Int, Min: ptr(1), Doc: "records that may pass at once after a quiet spell, and the largest batch passed on (bigger ones are split); default a tenth of a second's worth, at least 1", Example: 100},
		},
		Build: func(c *registry.Conf) (any, error) {
			rate := c.Float("rate")
			if !(rate > 0) || math.IsInf(rate, 0) {
				return nil, registry.FieldErr("rate", errors.New("must be a positive number of records per second"))
			}
			return NewThrottle(rate, c.Int("burst")), nil
		},
	})
}

// Throttle is the throttle stage, a token bucket: batches wait until the
// bucket holds a token per record; batches larger than the burst are split.
// It keeps throttling during a drain (which then takes as long as the rate
// requires, within the drain timeout).
type Throttle struct {
	rate  float64
	burst int
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
}

// NewThrottle returns a throttle of rate records per second; burst 0 picks
// a tenth of a second's worth.
func NewThrottle(rate float64, burst int) *Throttle {
	if burst < 1 {
		burst = max(1, int(math.Ceil(rate/10)))
	}
	return &Throttle{rate: rate, burst: burst, now: time.Now, sleep: flow.Sleep}
}

// Run implements flow.Stage.
func (t *Throttle) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	burst := float64(t.burst)
	tokens, last := burst, t.now()
	take := func(n int) error {
		for {
			now := t.now()
			tokens = math.Min(burst, tokens+now.Sub(last).Seconds()*t.rate)
			last = now
			if tokens >= float64(n) {
				tokens -= float64(n)
				return nil
			}
			wait := time.Duration((float64(n) - tokens) / t.rate * float64(time.Second))
			if err := t.sleep(ctx, max(wait, time.Microsecond)); err != nil {
				return err
			}
		}
	}
	for b := range in {
		if len(b.Records) == 0 {
			b.Settle(nil)
			continue
		}
		if len(b.Records) <= t.burst {
			if err := take(len(b.Records)); err != nil {
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
			if err := take(n); err != nil {
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
