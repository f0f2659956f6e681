package window

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"time"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
)

// pane is one open window of one key.
type pane struct {
	key        string
	start, end int64 // unix nanoseconds, [start, end)
	agg        aggregate
	hold       *flow.Batch // acks of the inputs that fed it
	origin     flow.Origin // of the last record, for errors downstream
	index      int         // in the heap; -1 once closed or merged
	into       *pane       // a session merged into another
	seen       uint64      // last input batch that fed it
	early      bool        // closed before its end by a limit
	// off is the newest source offset folded in (durable state): a
	// record replayed after a crash at or below it is already counted.
	off int64
}

// live follows session merges to the pane that holds p's content now.
func (p *pane) live() *pane {
	for p.into != nil {
		p = p.into
	}
	return p
}

type paneID struct {
	key   string
	start int64
}

// state is one Run's windows: parallel workers each have their own.
type state struct {
	s        *Stage
	cfg      *Config
	env      *expr.Env
	panes    map[paneID]*pane   // tumbling and sliding
	sessions map[string][]*pane // session, per key
	heap     paneHeap
	maxEvent int64
	// watermark: windows ending at or before it are closed.
	watermark int64
	batch     uint64
	touched   []*pane
	failed    []flow.RecordError
	// out are the windows add closed (due, or early at a limit): they
	// hold the batch's acks too, so they are emitted after add.
	out []*pane
	hit []*pane // scratch: the sessions a record overlaps
	// perRecord is the most windows one record opens.
	perRecord int
	// part is the source partition this state belongs to, with durable
	// state (durable.go); nil when windows live in memory and hold acks.
	part *part
}

func newState(s *Stage) *state {
	progs := []*expr.Program{}
	for _, p := range []*expr.Program{s.cfg.Timestamp, s.cfg.Key, s.cfg.Expr} {
		if p != nil {
			progs = append(progs, p)
		}
	}
	return &state{
		s: s, cfg: &s.cfg, env: expr.NewEnv(progs...),
		panes: map[paneID]*pane{}, sessions: map[string][]*pane{},
		maxEvent: math.MinInt64, watermark: math.MinInt64,
		perRecord: max(int(windowsPerRecord(s.cfg.Size, s.cfg.Slide)), 1),
	}
}

// add puts b's records into their windows and makes those windows hold
// b's acks. It fails only when the error policy could not be applied.
func (st *state) add(ctx context.Context, out flow.Emitter, b *flow.Batch) error {
	st.batch++
	st.touched, st.failed = st.touched[:0], st.failed[:0]
	now := st.s.now().UnixNano()
	if !st.cfg.EventTime {
		st.watermark = now
	}
	for i := range b.Records {
		if err := st.addRecord(&b.Records[i], now); err != nil {
			st.failed = append(st.failed, flow.RecordError{Record: b.Records[i], Err: err})
		}
	}
	if err := out.Reject(ctx, b, st.failed); err != nil {
		b.Settle(err)
		return err
	}
	if st.part != nil {
		return nil // durable: b is settled once its changes are written
	}
	switch len(st.touched) {
	case 0:
		b.Settle(nil) // filtered (late) or failed: nothing to hold
	case 1:
		st.touched[0].live().hold.Absorb(b)
	default:
		for _, p := range st.touched {
			p.live().hold.Absorb(b.Derive(nil))
		}
		b.Settle(nil)
	}
	return nil
}

func (st *state) addRecord(r *flow.Record, now int64) error {
	if st.part != nil && r.Origin.Offset <= st.part.applied {
		st.s.replayed.Add(1) // counted before a crash: in the restored state
		return nil
	}
	st.env.Bind(r)
	t := now
	if st.cfg.EventTime {
		var err error
		if t, err = st.eventTime(r); err != nil {
			return err
		}
	}
	key := ""
	if st.cfg.Key != nil {
		var err error
		if key, err = st.env.EvalString(st.cfg.Key); err != nil {
			return fmt.Errorf("key: %w", err)
		}
	}
	var num float64
	var item any
	switch st.cfg.Op {
	case Count:
	case Collect:
		v, err := st.env.Eval(st.cfg.Expr)
		if err != nil {
			return fmt.Errorf("aggregate: %w", err)
		}
		item = v
	default:
		v, err := st.env.EvalFloat(st.cfg.Expr)
		if err != nil {
			return fmt.Errorf("aggregate: %w", err)
		}
		num = v
	}
	if st.cfg.EventTime && t > st.maxEvent {
		st.maxEvent = t
		st.watermark = max(st.watermark, satSub(t, int64(st.cfg.AllowedLateness)))
	}
	if st.cfg.OnLimit == FailOnLimit {
		if err := st.fits(key, t); err != nil {
			st.s.limitReached(err.Limit, err.Max)
			return err
		}
	}
	added := false
	st.assign(key, t, func(p *pane) {
		added = true
		if st.part != nil {
			if r.Origin.Offset <= p.off {
				return // written before a crash that lost the rest of its batch
			}
			p.off = r.Origin.Offset
		}
		p.agg.add(st.cfg.Op, num, item)
		p.origin = r.Origin
		if p.seen != st.batch {
			p.seen = st.batch
			st.touched = append(st.touched, p)
		}
	})
	if !added {
		st.s.late.Add(1)
	}
	return nil
}

func (st *state) eventTime(r *flow.Record) (int64, error) {
	ts := r.Timestamp
	if st.cfg.Timestamp != nil {
		var err error
		if ts, err = st.env.EvalTime(st.cfg.Timestamp); err != nil {
			return 0, fmt.Errorf("timestamp: %w", err)
		}
	}
	if ts.IsZero() {
		return 0, errNoTimestamp
	}
	if ts.Year() < 1678 || ts.Year() > 2261 {
		return 0, fmt.Errorf("timestamp %s is out of range", ts.Format(time.RFC3339))
	}
	return ts.UnixNano(), nil
}

// fixedSpan is the size and slide of tumbling and sliding windows; a
// tumbling window slides by its size.
func (st *state) fixedSpan() (size, slide int64) {
	if st.cfg.Kind == Tumbling {
		return int64(st.cfg.Size), int64(st.cfg.Size)
	}
	return int64(st.cfg.Size), int64(st.cfg.Slide)
}

// assign calls fn for every open window of key containing t, creating
// them as needed; windows already closed (end <= watermark) are skipped.
func (st *state) assign(key string, t int64, fn func(*pane)) {
	if st.cfg.Kind == Session {
		st.session(key, t, fn)
		return
	}
	size, slide := st.fixedSpan()
	for start := floorTo(t, slide); start > t-size; start -= slide {
		st.fixed(key, start, start+size, fn)
	}
}

// fits says whether a record of key at t can be added within the limits
// (on_limit: fail), closing the windows already due (end at or before
// the watermark) to make room if need be. When it cannot, no window
// changes.
func (st *state) fits(key string, t int64) *LimitError {
	if st.cfg.Op != Collect && len(st.heap)+st.perRecord <= st.cfg.MaxOpenWindows {
		return nil // room for every window a record can open
	}
	need := 0
	if st.cfg.Kind == Session {
		start, end := t, t+int64(st.cfg.Gap)
		hit := st.overlapping(key, t)
		items := 0
		for _, p := range hit {
			items += len(p.agg.items)
			start, end = min(start, p.start), max(end, p.end)
		}
		switch {
		case len(hit) == 0 && end > st.watermark:
			need = 1
		case len(hit) > 0 && st.cfg.Op == Collect && items >= st.cfg.MaxCollect:
			return &LimitError{Limit: "max_collect", Max: st.cfg.MaxCollect, What: st.describe(key, start, end, items)}
		}
	} else {
		size, slide := st.fixedSpan()
		for start := floorTo(t, slide); start > t-size; start -= slide {
			if start+size <= st.watermark {
				continue
			}
			p := st.panes[paneID{key, start}]
			switch {
			case p == nil:
				need++
			case st.full(p):
				return &LimitError{Limit: "max_collect", Max: st.cfg.MaxCollect, What: st.describe(key, p.start, p.end, len(p.agg.items))}
			}
		}
	}
	if need == 0 || len(st.heap)+need <= st.cfg.MaxOpenWindows {
		return nil
	}
	st.out = append(st.out, st.closeUpTo(st.watermark)...)
	if len(st.heap)+need <= st.cfg.MaxOpenWindows {
		return nil
	}
	what := fmt.Sprintf("%d windows are open on this worker and the record needs %d more", len(st.heap), need)
	if st.cfg.Key != nil {
		what = fmt.Sprintf("%d windows are open on this worker and key %q needs %d more", len(st.heap), key, need)
	}
	return &LimitError{Limit: "max_open_windows", Max: st.cfg.MaxOpenWindows, What: what}
}

// describe names a window and the items its list holds, for a LimitError.
func (st *state) describe(key string, start, end int64, items int) string {
	w := fmt.Sprintf("the window [%s, %s)",
		time.Unix(0, start).UTC().Format(time.RFC3339Nano), time.Unix(0, end).UTC().Format(time.RFC3339Nano))
	if st.cfg.Key != nil {
		w += fmt.Sprintf(" of key %q", key)
	}
	return fmt.Sprintf("%s holds %d items", w, items)
}

// full reports whether p's collect list has no room for another item.
func (st *state) full(p *pane) bool {
	return st.cfg.Op == Collect && len(p.agg.items) >= st.cfg.MaxCollect
}

// open starts a window of key. At max_open_windows it first closes the
// window ending first: at its due time, or early (with on_limit: fail,
// fits made room before).
func (st *state) open(key string, start, end int64) *pane {
	for len(st.heap) >= st.cfg.MaxOpenWindows {
		p := st.remove(heap.Pop(&st.heap).(*pane))
		if p.end > st.watermark {
			st.early(p, "max_open_windows")
		}
		st.out = append(st.out, p)
	}
	p := &pane{key: key, start: start, end: end, hold: flow.NewBatch(nil), off: -1}
	heap.Push(&st.heap, p)
	if st.cfg.Kind == Session {
		st.sessions[key] = append(st.sessions[key], p)
	} else {
		st.panes[paneID{key, start}] = p
	}
	return p
}

// closeEarly takes open window p out, to be emitted before its end: its
// list is full.
func (st *state) closeEarly(p *pane) {
	heap.Remove(&st.heap, p.index)
	st.remove(p)
	st.early(p, "max_collect")
	st.out = append(st.out, p)
}

// early marks p as emitted early because of limit, and counts it.
func (st *state) early(p *pane, limit string) {
	p.early = true
	if limit == "max_collect" {
		st.s.limitReached(limit, st.cfg.MaxCollect)
	} else {
		st.s.limitReached(limit, st.cfg.MaxOpenWindows)
	}
}

func (st *state) fixed(key string, start, end int64, fn func(*pane)) {
	if end <= st.watermark {
		return
	}
	p := st.panes[paneID{key, start}]
	if p != nil && st.full(p) {
		st.closeEarly(p)
		p = nil
	}
	if p == nil {
		p = st.open(key, start, end)
	}
	fn(p)
}

// overlapping returns the sessions of key that a record at t joins, those
// overlapping [t, t+gap), in the order they are held. The next call
// reuses the slice.
func (st *state) overlapping(key string, t int64) []*pane {
	clear(st.hit)
	st.hit = st.hit[:0]
	end := t + int64(st.cfg.Gap)
	for _, p := range st.sessions[key] {
		if p.start < end && t < p.end {
			st.hit = append(st.hit, p)
		}
	}
	return st.hit
}

// session adds t to the session of key overlapping [t, t+gap), merging
// the sessions it bridges, or starts a new one. A record whose own span
// ends at or before the watermark joins an open session it falls in, and
// is late otherwise. When the merged session's list has no room for the
// record (max_collect, on_limit: emit_early), the sessions are emitted
// early as they are and the record starts the session again over their
// span.
func (st *state) session(key string, t int64, fn func(*pane)) {
	start, end := t, t+int64(st.cfg.Gap)
	hit := st.overlapping(key, t)
	if len(hit) == 0 {
		if end <= st.watermark {
			return
		}
		fn(st.open(key, start, end))
		return
	}
	if st.cfg.Op == Collect {
		items := 0
		for _, p := range hit {
			items += len(p.agg.items)
		}
		if items >= st.cfg.MaxCollect {
			for _, p := range hit {
				start, end = min(start, p.start), max(end, p.end)
				st.closeEarly(p)
			}
			fn(st.open(key, start, end))
			return
		}
	}
	target, merged := hit[0], hit[1:]
	// Take the merged sessions out before changing target's end, so the
	// heap stays ordered while it is restructured.
	for _, q := range merged {
		heap.Remove(&st.heap, q.index)
		st.remove(q)
	}
	for _, q := range merged {
		target.merge(q)
	}
	target.start = min(target.start, start)
	target.end = max(target.end, end)
	heap.Fix(&st.heap, target.index)
	fn(target)
}

func (p *pane) merge(q *pane) {
	p.start = min(p.start, q.start)
	p.end = max(p.end, q.end)
	p.agg.merge(&q.agg)
	p.hold.Absorb(q.hold)
	if q.origin.Offset > p.origin.Offset || p.origin.Source == "" {
		p.origin = q.origin
	}
	q.into = p
}

// closeUpTo removes and returns the windows ending at or before wm, in
// end order.
func (st *state) closeUpTo(wm int64) []*pane {
	var closed []*pane
	for len(st.heap) > 0 && st.heap[0].end <= wm {
		closed = append(closed, st.remove(heap.Pop(&st.heap).(*pane)))
	}
	return closed
}

// abort fails the inputs of every window not emitted: the run is ending
// without emitting them.
func (st *state) abort(err error) {
	for _, p := range append(st.out, st.closeAll()...) {
		p.hold.Settle(err)
	}
	st.out = nil
}

// closeAll removes every window, in end order: the drain.
func (st *state) closeAll() []*pane {
	return st.closeUpTo(math.MaxInt64)
}

func (st *state) remove(p *pane) *pane {
	if st.cfg.Kind == Session {
		ss := st.sessions[p.key]
		for i, q := range ss {
			if q == p {
				ss = append(ss[:i], ss[i+1:]...)
				break
			}
		}
		if len(ss) == 0 {
			delete(st.sessions, p.key)
		} else {
			st.sessions[p.key] = ss
		}
	} else {
		delete(st.panes, paneID{p.key, p.start})
	}
	return p
}

// emit sends one record per closed window in one batch holding all their
// acks.
func (st *state) emit(ctx context.Context, out flow.Emitter, closed []*pane) error {
	if len(closed) == 0 {
		return nil
	}
	recs := make([]flow.Record, len(closed))
	b := flow.NewBatch(nil)
	for i, p := range closed {
		recs[i] = st.record(p)
		b.Absorb(p.hold)
	}
	b.Records = recs
	return out.Emit(ctx, b)
}

func (st *state) record(p *pane) flow.Record {
	v := make([]byte, 0, 128)
	v = append(v, `{"key":`...)
	var key []byte
	if st.cfg.Key != nil {
		key = []byte(p.key)
		v, _ = expr.AppendJSON(v, p.key)
	} else {
		v = append(v, "null"...)
	}
	v = append(v, `,"start":`...)
	v, _ = expr.AppendJSON(v, time.Unix(0, p.start).UTC())
	v = append(v, `,"end":`...)
	v, _ = expr.AppendJSON(v, time.Unix(0, p.end).UTC())
	v = append(v, `,"count":`...)
	v, _ = expr.AppendJSON(v, p.agg.count)
	v = append(v, `,"value":`...)
	var err error
	if v, err = expr.AppendJSON(v, p.agg.result(st.cfg.Op)); err != nil {
		// Only a sum overflowing to ±Inf (or NaN input) gets here.
		v = append(v, "null"...)
	}
	if p.early {
		v = append(v, `,"early":true`...)
	}
	v = append(v, '}')
	return flow.Record{Key: key, Value: v, Timestamp: time.Unix(0, p.end), Origin: p.origin}
}

// floorTo rounds t down to a multiple of d, also below zero.
func floorTo(t, d int64) int64 {
	r := t % d
	if r < 0 {
		r += d
	}
	return t - r
}

// satSub is a-b without wrapping below MinInt64.
func satSub(a, b int64) int64 {
	if b > 0 && a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

// aggregate is the running value of one window.
type aggregate struct {
	count    int64
	sum      float64
	min, max float64
	items    []any
}

func (a *aggregate) add(op Op, num float64, item any) {
	if a.count == 0 {
		a.min, a.max = num, num
	}
	a.count++
	switch op {
	case Sum, Avg:
		a.sum += num
	case Min:
		a.min = math.Min(a.min, num)
	case Max:
		a.max = math.Max(a.max, num)
	case Collect:
		a.items = append(a.items, item)
	}
}

func (a *aggregate) merge(b *aggregate) {
	if b.count == 0 {
		return
	}
	if a.count == 0 {
		a.min, a.max = b.min, b.max
	}
	a.count += b.count
	a.sum += b.sum
	a.min = math.Min(a.min, b.min)
	a.max = math.Max(a.max, b.max)
	a.items = append(a.items, b.items...)
}

func (a *aggregate) result(op Op) any {
	switch op {
	case Sum:
		return a.sum
	case Min:
		return a.min
	case Max:
		return a.max
	case Avg:
		return a.sum / float64(a.count)
	case Collect:
		if a.items == nil {
			return []any{}
		}
		return a.items
	}
	return a.count
}

// paneHeap orders open windows by end, then key and start, so windows
// closing together are emitted in a stable order.
type paneHeap []*pane

func (h paneHeap) Len() int { return len(h) }
func (h paneHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if a.end != b.end {
		return a.end < b.end
	}
	if a.key != b.key {
		return a.key < b.key
	}
	return a.start < b.start
}
func (h paneHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *paneHeap) Push(x any) {
	p := x.(*pane)
	p.index = len(*h)
	*h = append(*h, p)
}
func (h *paneHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.index = -1
	return p
}
