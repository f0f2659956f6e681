package stages

import (
	"context"
	"errors"
	"time"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// dedupeConfig is the dedupe stage's config.
type dedupeConfig struct {
	Key     string
	Window  time.Duration
	MaxKeys int
}

func init() {
	registry.Declare(registry.Component[dedupeConfig]{
		Kind:    flow.KindStage,
		Type:    "dedupe",
		Summary: "drop records whose key was already seen within a time window",
		Fields: func(c *dedupeConfig) []registry.Field {
			return []registry.Field{
				registry.Bind(&c.Key, "key", "what makes two records duplicates; non-strings are compared by their JSON",
					registry.Required(), registry.AsExpr(), registry.Example("value.id")),
				registry.Bind(&c.Window, "window", "how long after its first sighting a key drops repeats (processing time)",
					registry.Default(5*time.Minute), registry.Range(time.Millisecond, MaxDedupeWindow), registry.Example("1h")),
				registry.Bind(&c.MaxKeys, "max_keys", "keys remembered at most; past it the oldest are forgotten early. With parallelism each worker keeps its own; use ordering: key when the dedupe key is the record key",
					registry.Default(100000), registry.Range(1, MaxDedupeKeys), registry.Example(1000000)),
			}
		},
		Build: func(c *dedupeConfig, _ *registry.Conf) (any, error) {
			p, err := expr.Compile(c.Key)
			if err != nil {
				return nil, registry.FieldErr("key", err)
			}
			if err := c.validate(); err != nil {
				return nil, err
			}
			return NewDedupe(p, c.Window, c.MaxKeys), nil
		},
	})
}

// validate refuses a window that would remember no key. The declared
// range refuses it in a pipeline file; this holds for a Build that did not
// go through the config loader.
func (c *dedupeConfig) validate() error {
	if c.Window <= 0 {
		return registry.FieldErr("window", errors.New("must be positive"))
	}
	return nil
}

// Dedupe is the dedupe stage. A key is remembered from its first sighting
// for window (not extended by repeats), so a key repeating forever passes
// once per window. Dropped records are acknowledged as filtered.
type Dedupe struct {
	key     *expr.Program
	window  time.Duration
	maxKeys int
	now     func() time.Time
}

// NewDedupe returns a dedupe stage.
func NewDedupe(key *expr.Program, window time.Duration, maxKeys int) *Dedupe {
	return &Dedupe{key: key, window: window, maxKeys: max(maxKeys, 1), now: time.Now}
}

// Run implements flow.Stage.
func (d *Dedupe) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	seen := seenKeys{expiry: map[string]int64{}}
	env := expr.NewEnv(d.key)
	defer env.Bind(nil)
	var failed []flow.RecordError
	for b := range in {
		now := d.now().UnixNano()
		seen.expire(now)
		kept := b.Records[:0]
		failed = failed[:0]
		for i := range b.Records {
			env.Bind(&b.Records[i])
			k, err := env.EvalString(d.key)
			switch {
			case err != nil:
				failed = append(failed, flow.RecordError{Record: b.Records[i], Err: err})
			case seen.has(k, now):
			default:
				seen.add(k, now+int64(d.window), d.maxKeys)
				kept = append(kept, b.Records[i])
			}
		}
		if err := out.Reject(ctx, b, failed); err != nil {
			b.Settle(err)
			continue
		}
		if len(kept) == 0 {
			b.Settle(nil)
			continue
		}
		b.Records = kept
		if out.Emit(ctx, b) != nil {
			return nil
		}
	}
	return nil
}

// seenKeys remembers keys until their expiry. Keys expire in insertion
// order (every key lives for the same window), so a FIFO queue finds the
// expired ones and doubles as the eviction order when full.
type seenKeys struct {
	expiry map[string]int64
	queue  []seenEntry
	head   int
}

type seenEntry struct {
	key    string
	expiry int64
}

func (s *seenKeys) has(k string, now int64) bool {
	exp, ok := s.expiry[k]
	return ok && exp > now
}

func (s *seenKeys) add(k string, expiry int64, maxKeys int) {
	s.expiry[k] = expiry
	s.queue = append(s.queue, seenEntry{k, expiry})
	for len(s.expiry) > maxKeys {
		s.pop()
	}
}

func (s *seenKeys) expire(now int64) {
	for s.head < len(s.queue) && s.queue[s.head].expiry <= now {
		s.pop()
	}
}

// pop forgets the oldest entry. An entry is stale when its key was added
// again later; then the map holds the newer expiry and keeps it.
func (s *seenKeys) pop() {
	e := s.queue[s.head]
	s.queue[s.head] = seenEntry{}
	s.head++
	if s.expiry[e.key] == e.expiry {
		delete(s.expiry, e.key)
	}
	if s.head > 1024 && s.head*2 > len(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
}

// Len is the number of keys remembered.
func (s *seenKeys) Len() int { return len(s.expiry) }
