package stages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// dedupeConfig is the dedupe stage's config.
type dedupeConfig struct {
	Key             string
	Window          time.Duration
	MaxKeys         int
	OnLimit         string
	State           string
	ChangelogPrefix string
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
				registry.Bind(&c.MaxKeys, "max_keys", "keys remembered at most; reaching it acts as on_limit says. With parallelism each worker keeps its own; use ordering: key when the dedupe key is the record key",
					registry.Default(100000), registry.Range(1, MaxDedupeKeys), registry.Example(1000000)),
				registry.Bind(&c.OnLimit, "on_limit", fmt.Sprintf("when max_keys keys are remembered and a new one comes. forget: the oldest key is forgotten before its window ends, so a repeat of it may pass; "+
					"fail: the record with the new key fails and goes to on_error (fail, skip or dead_letter), with a message naming the limit. Either way a warning is logged (at most every %s)", registry.FormatDuration(limitLogEvery)),
					registry.OneOf(string(DedupeForget), string(DedupeFail)), registry.Default(string(DedupeForget))),
				registry.Bind(&c.State, "state", "memory: keys are remembered in this process only (a restart forgets them). "+
					"changelog: keys belong to the Kafka partition their records came from and are written to a compacted changelog topic before the records are acknowledged; a partition's keys are restored when it is assigned (after a restart or a rebalance), so repeats stay dropped across both. "+
					"Needs a Kafka source whose partitions group the duplicates (records with one dedupe key in one partition) and ordering: partition with parallelism",
					registry.OneOf("memory", "changelog"), registry.Default("memory")),
				registry.Bind(&c.ChangelogPrefix, "changelog_prefix", "state: changelog: the changelog topic is <prefix>-<source topic>-changelog; default prefix <consumer group>-<stage id>",
					registry.Example("orders-dedupe-v2")),
			}
		},
		Build: func(c *dedupeConfig, n *registry.Conf) (any, error) {
			p, err := expr.Compile(c.Key)
			if err != nil {
				return nil, registry.FieldErr("key", err)
			}
			if err := c.validate(); err != nil {
				return nil, err
			}
			d := NewDedupe(p, c.Window, c.MaxKeys, DedupePolicy(c.OnLimit), n.Logger())
			switch {
			case c.State == "changelog":
				if n.Int("parallelism") > 1 && n.Has("ordering") && n.String("ordering") != "partition" {
					return nil, registry.FieldErr("ordering", fmt.Errorf("state: changelog needs ordering: partition (each partition's records on one worker, in order), not %s", n.String("ordering")))
				}
				d.Durable(n.ID, c.ChangelogPrefix)
			case c.ChangelogPrefix != "":
				return nil, registry.FieldErr("changelog_prefix", errors.New("only used with state: changelog"))
			}
			return d, nil
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
	switch DedupePolicy(c.OnLimit) {
	case DedupeForget, DedupeFail:
	default:
		return registry.FieldErr("on_limit", fmt.Errorf("unknown policy %q (want forget or fail)", c.OnLimit))
	}
	return nil
}

// DedupePolicy is what dedupe does when max_keys keys are remembered and
// a new one comes.
type DedupePolicy string

// Dedupe policies.
const (
	// DedupeForget forgets the oldest key early: a repeat of it may pass.
	DedupeForget DedupePolicy = "forget"
	// DedupeFail fails the record with the new key: it goes to on_error.
	DedupeFail DedupePolicy = "fail"
)

// limitLogEvery is the least time between two warnings about a stage's
// limit.
const limitLogEvery = 10 * time.Second

// Dedupe is the dedupe stage. A key is remembered from its first sighting
// for window (not extended by repeats), so a key repeating forever passes
// once per window. Dropped records are acknowledged as filtered. At most
// maxKeys keys are remembered per worker; onLimit says what happens past
// it, and each time it acts is counted and warned about (rate-limited).
type Dedupe struct {
	key     *expr.Program
	window  time.Duration
	maxKeys int
	onLimit DedupePolicy
	log     *slog.Logger
	now     func() time.Time

	forgotten   atomic.Int64 // keys forgotten early (forget)
	limitFailed atomic.Int64 // records failed (fail)
	warned      atomic.Int64 // unix nanoseconds of the last limit warning

	dur *dedupeDurable // nil: keys live in memory only
}

// NewDedupe returns a dedupe stage. onLimit "" is DedupeForget; log may be
// nil.
func NewDedupe(key *expr.Program, window time.Duration, maxKeys int, onLimit DedupePolicy, log *slog.Logger) *Dedupe {
	if onLimit == "" {
		onLimit = DedupeForget
	}
	if log == nil {
		log = slog.Default()
	}
	return &Dedupe{key: key, window: window, maxKeys: max(maxKeys, 1), onLimit: onLimit, log: log, now: time.Now}
}

// Forgotten is the number of keys forgotten before their window ended
// because max_keys was reached (on_limit: forget).
func (d *Dedupe) Forgotten() int64 { return d.forgotten.Load() }

// LimitFailed is the number of records failed because max_keys was
// reached (on_limit: fail).
func (d *Dedupe) LimitFailed() int64 { return d.limitFailed.Load() }

// limitReached warns that max_keys acted, at most once per limitLogEvery
// for the stage.
func (d *Dedupe) limitReached(now int64) {
	last := d.warned.Load()
	if last != 0 && now-last < int64(limitLogEvery) || !d.warned.CompareAndSwap(last, now) {
		return
	}
	what := "the oldest keys are forgotten early: repeats of them may pass"
	if d.onLimit == DedupeFail {
		what = "records with new keys fail and go to on_error"
	}
	d.log.Warn("dedupe max_keys reached: "+what, "max_keys", d.maxKeys, "on_limit", string(d.onLimit),
		"forgotten", d.forgotten.Load(), "failed", d.limitFailed.Load())
}

// Run implements flow.Stage.
func (d *Dedupe) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	if d.dur != nil {
		return d.runDurable(ctx, in, out)
	}
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
			case d.onLimit == DedupeFail && seen.Len() >= d.maxKeys:
				d.limitFailed.Add(1)
				d.limitReached(now)
				failed = append(failed, flow.RecordError{Record: b.Records[i], Err: fmt.Errorf(
					"max_keys (%d) reached: %d keys are remembered on this worker and this one is new; raise max_keys, shorten window or set on_limit: forget",
					d.maxKeys, seen.Len())})
			default:
				if n := seen.add(k, now+int64(d.window), d.maxKeys); n > 0 {
					d.forgotten.Add(int64(n))
					d.limitReached(now)
				}
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
	// With durable state: the source offset of each key's first sighting
	// (a replay of that very record passes again; any other is a repeat),
	// and forgot hears of every key forgotten, to delete it from the
	// changelog.
	offs   map[string]int64
	forgot func(k string)
}

type seenEntry struct {
	key    string
	expiry int64
}

func (s *seenKeys) has(k string, now int64) bool {
	exp, ok := s.expiry[k]
	return ok && exp > now
}

// add remembers k until expiry, forgetting the oldest keys while more
// than maxKeys are remembered; it returns how many it forgot.
func (s *seenKeys) add(k string, expiry int64, maxKeys int) (forgot int) {
	s.expiry[k] = expiry
	s.queue = append(s.queue, seenEntry{k, expiry})
	for len(s.expiry) > maxKeys {
		if s.pop() {
			forgot++
		}
	}
	return forgot
}

func (s *seenKeys) expire(now int64) {
	for s.head < len(s.queue) && s.queue[s.head].expiry <= now {
		s.pop()
	}
}

// pop forgets the oldest entry, and reports whether it forgot a key. An
// entry is stale when its key was added again later; then the map holds
// the newer expiry and keeps it.
func (s *seenKeys) pop() (forgot bool) {
	e := s.queue[s.head]
	s.queue[s.head] = seenEntry{}
	s.head++
	if s.expiry[e.key] == e.expiry {
		delete(s.expiry, e.key)
		forgot = true
		if s.offs != nil {
			delete(s.offs, e.key)
			s.forgot(e.key)
		}
	}
	if s.head > 1024 && s.head*2 > len(s.queue) {
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	return forgot
}

// Len is the number of keys remembered.
func (s *seenKeys) Len() int { return len(s.expiry) }
