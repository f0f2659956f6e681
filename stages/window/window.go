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
}

// Stage is the window stage (a flow.Stage).
type Stage struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	late atomic.Int64
}

// New validates cfg and returns the stage. log may be nil.
func New(cfg Config, log *slog.Logger) (*Stage, error) {
	if cfg.Op == "" {
		cfg.Op = Count
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Stage{cfg: cfg, log: log, now: time.Now}, nil
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
	return nil
}

// Late is the number of records dropped as late so far.
func (s *Stage) Late() int64 { return s.late.Load() }

// Run implements flow.Stage.
func (s *Stage) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
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
	lateBefore := s.late.Load()
	defer func() {
		if n := s.late.Load() - lateBefore; n > 0 {
			s.log.Warn("window dropped late records", "count", n, "allowed_lateness", s.cfg.AllowedLateness)
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
			if err := st.emit(ctx, out, st.closeUpTo(st.watermark)); err != nil {
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
