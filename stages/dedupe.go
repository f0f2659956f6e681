package stages

import (
	"context"
	"errors"
	"time"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func init() {
	registry.Register(registry.Spec{
		Kind:    flow.KindStage,
		Type:    "dedupe",
		Summary: "drop records whose key was already seen within a time window",
		Fields: []registry.Field{
			{Name: "key", Type: registry.Expr, Required: true, Doc: "what makes two records duplicates; non-strings are compared by their JSON", Example: "value.id"},
			{Name: "window", Type: registry.Duration, Default: "5m", MinDuration: time.Millisecond, MaxDuration: MaxDedupeWindow, Doc: "how long after its first sighting a key drops repeats (processing time)", Example: "1h"},
			{Name: "max_keys", Type: registry.Int, Default: 100000, Min: ptr(1), Max: ptr(MaxDedupeKeys), Doc: "keys remembered at most; past it the oldest are forgotten early. With parallelism each worker keeps its own; use ordering: key when the dedupe key is the record key", Example: 1000000},
		},
		Build: func(c *registry.Conf) (any, error) {
			p, err := expr.Compile(c.String("key"))
			if err != nil {
				return nil, registry.FieldErr("key", err)
			}
			if c.Duration("window") <= 0 {
				return nil, registry.FieldErr("window", errors.New("must be positive"))
			}
			return NewDedupe(p, c.Duration("window"), c.Int("max_keys")), nil
		},
	})
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
