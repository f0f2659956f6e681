// Package window is the window stage: it groups records by key into
// tumbling, sliding or session windows, in processing or event time, and
// emits one aggregate record per window and key when the window closes.
//
// Event time: the watermark is the largest event time seen minus
// allowed_lateness; a window closes once the watermark reaches its end,
// and a record arriving for windows that are all closed is dropped as late
// (acknowledged: it was dropped on purpose) and counted. The watermark
// only moves with input: an idle input keeps windows open until the drain.
// Processing time: windows close on a timer at their end.
//
// On drain every open window is emitted. A window holds the acks of every
// input batch that contributed to it until its output record is emitted.
//
// Memory is bounded per worker: at most MaxOpenWindows windows (one per
// key and window start, or per session) are open, and a collect list holds
// at most MaxCollect items. What happens at a limit is OnLimit: the record
// that would pass it fails (and goes to the node's on_error), or windows
// are emitted early, marked "early": true. Either way a warning is logged,
// at most once per LimitLogEvery, and counted (LimitFailed, EarlyEmitted).
package window

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

// Kind is the window shape.
type Kind string

// Window kinds.
const (
	Tumbling Kind = "tumbling" // fixed, adjacent, non-overlapping
	Sliding  Kind = "sliding"  // fixed size, a new one every Slide
	Session  Kind = "session"  // per key, extended while records come within Gap
)

// Op is the aggregate computed per window.
type Op string

// Aggregates.
const (
	Count   Op = "count"
	Sum     Op = "sum"
	Min     Op = "min"
	Max     Op = "max"
	Avg     Op = "avg"
	Collect Op = "collect" // a list of the expression's results, in arrival order
)

// Bounds of a window's durations, which the config loader holds size,
// slide, gap and allowed_lateness to. A record counts in size/slide
// sliding windows, each held in memory with its own aggregate, so that
// ratio is bounded too.
const (
	MinSpan             = time.Millisecond
	MaxSpan             = 30 * 24 * time.Hour
	MaxWindowsPerRecord = 1000
)

// Defaults and bounds of the memory limits (per worker): open windows and
// the items of one collect list.
const (
	DefaultMaxOpenWindows = 100_000
	DefaultMaxCollect     = 10_000
	MaxOpenWindowsBound   = 10_000_000
	MaxCollectBound       = 1_000_000
)

// LimitLogEvery is the least time between two warnings about a limit.
const LimitLogEvery = 10 * time.Second

// Policy is what a window stage does when a memory limit is reached.
type Policy string

// Policies.
const (
	// FailOnLimit fails the record that would pass the limit: it goes to
	// the node's on_error (fail, skip or dead_letter) and no window changes.
	FailOnLimit Policy = "fail"
	// EmitEarly emits the window in the way before its end, with what it
	// holds: the oldest open window when max_open_windows is reached, the
	// window whose list is full when max_collect is. A record arriving for
	// it later starts it again, so one window may be emitted in several
	// parts whose counts add up to the window's.
	EmitEarly Policy = "emit_early"
)

// windowsPerRecord is how many sliding windows of size, one starting
// every slide, contain a given instant at most.
func windowsPerRecord(size, slide time.Duration) int64 {
	if slide <= 0 {
		return 0
	}
	n := int64(size / slide)
	if size%slide != 0 {
		n++
	}
	return n
}

// Config describes a window stage.
type Config struct {
	Kind  Kind
	Size  time.Duration // tumbling, sliding
	Slide time.Duration // sliding: 0 < Slide <= Size
	Gap   time.Duration // session

	EventTime       bool
	Timestamp       *expr.Program // event time of a record; nil: the record timestamp
	AllowedLateness time.Duration

	Key  *expr.Program // nil: one window for all records
	Op   Op            // "" is Count
	Expr *expr.Program // the aggregated value; not used by Count

	MaxOpenWindows int    // 0 is DefaultMaxOpenWindows
	MaxCollect     int    // Collect only; 0 is DefaultMaxCollect
	OnLimit        Policy // "" is FailOnLimit

	// Durable keeps windows per source partition in a changelog topic
	// (durable.go) instead of only in memory; the records must come from
	// a source offering changelogs (the Kafka source).
	Durable         bool
	ChangelogPrefix string // "" is "<consumer group>-<ID>"
	ID              string // the node id: names the changelog and the metrics
}

// Stage is the window stage (a flow.Stage).
type Stage struct {
	cfg         Config
	log         *slog.Logger
	now         func() time.Time
	late        atomic.Int64
	early       atomic.Int64 // windows emitted early
	limitFailed atomic.Int64 // records failed by a limit
	replayed    atomic.Int64 // records skipped: already in restored state
	warned      atomic.Int64 // unix nanoseconds of the last limit warning

	dur   durable
	descs *descs
}

// New validates cfg and returns the stage. log may be nil.
func New(cfg Config, log *slog.Logger) (*Stage, error) {
	if cfg.Op == "" {
		cfg.Op = Count
	}
	if cfg.OnLimit == "" {
		cfg.OnLimit = FailOnLimit
	}
	if cfg.MaxOpenWindows == 0 {
		cfg.MaxOpenWindows = DefaultMaxOpenWindows
	}
	if cfg.MaxCollect == 0 && cfg.Op == Collect {
		cfg.MaxCollect = DefaultMaxCollect
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Stage{cfg: cfg, log: log, now: time.Now, descs: newDescs(cfg.ID)}
	return s, nil
}

// ConfigError names the field a validation problem is about.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func bad(field, format string, args ...any) error {
	return &ConfigError{Field: field, Err: fmt.Errorf(format, args...)}
}

func (c *Config) validate() error {
	switch c.Kind {
	case Tumbling, Sliding:
		if c.Size <= 0 {
			return bad("size", "a %s window needs a positive size", c.Kind)
		}
		if c.Gap != 0 {
			return bad("gap", "only used by session windows")
		}
		if c.Kind == Tumbling && c.Slide != 0 {
			return bad("slide", "only used by sliding windows")
		}
		if c.Kind == Sliding && (c.Slide <= 0 || c.Slide > c.Size) {
			return bad("slide", "a sliding window needs 0 < slide <= size (size %s)", c.Size)
		}
		if n := windowsPerRecord(c.Size, c.Slide); c.Kind == Sliding && n > MaxWindowsPerRecord {
			least := c.Size / MaxWindowsPerRecord
			if c.Size%MaxWindowsPerRecord != 0 {
				least++
			}
			return bad("slide", "each record would count in %d windows (size %s / slide %s), more than %d: make slide at least %s",
				n, registry.FormatDuration(c.Size), registry.FormatDuration(c.Slide), MaxWindowsPerRecord, registry.FormatDuration(least))
		}
	case Session:
		if c.Gap <= 0 {
			return bad("gap", "a session window needs a positive gap")
		}
		if c.Size != 0 {
			return bad("size", "not used by session windows (they last while records come within gap)")
		}
		if c.Slide != 0 {
			return bad("slide", "only used by sliding windows")
		}
	default:
		return bad("kind", "unknown window kind %q (want tumbling, sliding or session)", c.Kind)
	}
	if !c.EventTime {
		if c.Timestamp != nil {
			return bad("timestamp", "only used with time: event")
		}
		if c.AllowedLateness != 0 {
			return bad("allowed_lateness", "only used with time: event")
		}
	}
	if c.AllowedLateness < 0 {
		return bad("allowed_lateness", "must not be negative")
	}
	switch c.Op {
	case Count:
	case Sum, Min, Max, Avg, Collect:
		if c.Expr == nil {
			return bad("aggregate.expr", "aggregate %s needs an expression", c.Op)
		}
	default:
		return bad("aggregate.op", "unknown aggregate %q (want count, sum, min, max, avg or collect)", c.Op)
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if c.Durable {
		switch {
		case c.Kind == Session:
			return bad("state", "changelog state supports tumbling and sliding windows; session windows merge and are kept in memory only")
		case c.OnLimit == EmitEarly:
			return bad("on_limit", "emit_early is refused with state: changelog: a window emitted in parts cannot be made exact again after a restore; use fail")
		}
	} else if c.ChangelogPrefix != "" {
		return bad("changelog_prefix", "only used with state: changelog")
	}
	return nil
}

func (c *Config) validateLimits() error {
	switch c.OnLimit {
	case FailOnLimit, EmitEarly:
	default:
		return bad("on_limit", "unknown policy %q (want fail or emit_early)", c.OnLimit)
	}
	if c.MaxOpenWindows < 1 || c.MaxOpenWindows > MaxOpenWindowsBound {
		return bad("max_open_windows", "%d is outside 1-%d", c.MaxOpenWindows, MaxOpenWindowsBound)
	}
	if n := windowsPerRecord(c.Size, c.Slide); c.Kind == Sliding && int64(c.MaxOpenWindows) < n {
		return bad("max_open_windows", "each record counts in %d windows (size %s / slide %s): make it at least %d",
			n, registry.FormatDuration(c.Size), registry.FormatDuration(c.Slide), n)
	}
	if c.Op != Collect {
		if c.MaxCollect != 0 {
			return bad("max_collect", "only used by aggregate.op collect (the other aggregates keep one number per window)")
		}
		return nil
	}
	if c.MaxCollect < 1 || c.MaxCollect > MaxCollectBound {
		return bad("max_collect", "%d is outside 1-%d", c.MaxCollect, MaxCollectBound)
	}
	return nil
}

// LimitError is a record failed because a memory limit was reached, with
// on_limit: fail.
type LimitError struct {
	Limit string // max_open_windows or max_collect
	Max   int
	What  string // what the record would have needed
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s (%d) reached: %s; raise %s or set on_limit: emit_early", e.Limit, e.Max, e.What, e.Limit)
}

// Late is the number of records dropped as late so far.
func (s *Stage) Late() int64 { return s.late.Load() }

// EarlyEmitted is the number of windows emitted early so far because a
// limit was reached (on_limit: emit_early).
func (s *Stage) EarlyEmitted() int64 { return s.early.Load() }

// LimitFailed is the number of records failed so far because a limit was
// reached (on_limit: fail).
func (s *Stage) LimitFailed() int64 { return s.limitFailed.Load() }

// limitReached counts a limit acting (a record failed, or a window
// emitted early) and warns, at most once per LimitLogEvery for the stage.
func (s *Stage) limitReached(limit string, max int) {
	if s.cfg.OnLimit == EmitEarly {
		s.early.Add(1)
	} else {
		s.limitFailed.Add(1)
	}
	now := s.now().UnixNano()
	last := s.warned.Load()
	if last != 0 && now-last < int64(LimitLogEvery) || !s.warned.CompareAndSwap(last, now) {
		return
	}
	what := "records past it fail and go to on_error"
	if s.cfg.OnLimit == EmitEarly {
		what = "windows are emitted early, marked \"early\": true"
	}
	s.log.Warn("window limit reached: "+what, "limit", limit, "max", max, "on_limit", string(s.cfg.OnLimit),
		"early_emitted", s.early.Load(), "failed", s.limitFailed.Load())
}

// Run implements flow.Stage.
func (s *Stage) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	if s.cfg.Durable {
		return s.runDurable(ctx, in, out)
	}
	st := newState(s)
	defer st.env.Bind(nil)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var tick <-chan time.Time
	// arm sets the processing-time timer to the earliest window end.
	arm := func() {
		timer.Stop()
		tick = nil
		if s.cfg.EventTime || len(st.heap) == 0 {
			return
		}
		timer.Reset(max(time.Duration(st.heap[0].end-s.now().UnixNano()), 0))
		tick = timer.C
	}
	lateBefore, earlyBefore, failedBefore := s.late.Load(), s.early.Load(), s.limitFailed.Load()
	defer func() {
		if n := s.late.Load() - lateBefore; n > 0 {
			s.log.Warn("window dropped late records", "count", n, "allowed_lateness", s.cfg.AllowedLateness)
		}
		if n := s.early.Load() - earlyBefore; n > 0 {
			s.log.Warn("window emitted windows early at a limit", "count", n,
				"max_open_windows", s.cfg.MaxOpenWindows, "max_collect", s.cfg.MaxCollect)
		}
		if n := s.limitFailed.Load() - failedBefore; n > 0 {
			s.log.Warn("window failed records at a limit", "count", n,
				"max_open_windows", s.cfg.MaxOpenWindows, "max_collect", s.cfg.MaxCollect)
		}
	}()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return st.emit(ctx, out, st.closeAll())
			}
			if err := st.add(ctx, out, b); err != nil {
				st.abort(err)
				return nil
			}
			// First the windows add closed at a limit, then those the
			// watermark closes.
			closed := append(st.out, st.closeUpTo(st.watermark)...)
			st.out = nil
			if err := st.emit(ctx, out, closed); err != nil {
				st.abort(err)
				return nil
			}
			arm()
		case <-tick:
			tick = nil
			if err := st.emit(ctx, out, st.closeUpTo(s.now().UnixNano())); err != nil {
				st.abort(err)
				return nil
			}
			arm()
		}
	}
}

// errNoTimestamp is a record without event time.
var errNoTimestamp = errors.New("record has no timestamp (set the window's timestamp expression)")
