package generate

import (
	"context"
	"time"
)

// tokenBucket paces the source: tokens accrue at rate per second up to
// burst; taking n waits until n are there. The clock is injectable so the
// pacing is testable without sleeping.
type tokenBucket struct {
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time

	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// newTokenBucket starts with initial tokens. burst must exceed the largest
// take by a margin: a sleep always overshoots a little, and tokens past
// burst are lost, so a bucket exactly one take deep runs below its rate.
func newTokenBucket(rate float64, burst, initial int, now func() time.Time, sleep func(context.Context, time.Duration) error) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(initial), last: now(), now: now, sleep: sleep}
}

// take waits until n tokens (n <= burst) are available and removes them.
// It returns ctx's error if ctx ends first.
func (b *tokenBucket) take(ctx context.Context, n int) error {
	need := float64(n)
	for {
		b.refill()
		if b.tokens >= need {
			b.tokens -= need
			return nil
		}
		wait := time.Duration((need - b.tokens) / b.rate * float64(time.Second))
		if err := b.sleep(ctx, max(wait, time.Microsecond)); err != nil {
			return err
		}
	}
}

func (b *tokenBucket) refill() {
	t := b.now()
	if el := t.Sub(b.last); el > 0 {
		b.tokens = min(b.burst, b.tokens+el.Seconds()*b.rate)
	}
	b.last = t
}

// batchAt picks the batch size at a given rate: at most a tenth of a
// second of records, so a slow generator emits small batches often instead
// of one large batch late.
func batchAt(rate float64, batch int) int {
	return max(1, min(batch, int(rate/10)))
}

// burstAt is the bucket depth for batches of size n: two batches, or a
// tenth of a second of records if that is more.
func burstAt(rate float64, n int) int {
	return max(2*n, int(rate/10))
}
