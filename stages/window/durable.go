package window

// Durable state (state: changelog). Windows belong to the source partition
// their records came from. Every batch's changes (the panes it touched,
// then the partition's progress) are written to the stage's changelog
// partition of the same number, and the batch is acknowledged only when
// that write was: source offsets advance while windows stay open. When a
// partition is assigned its windows are restored from the changelog before
// its first record is counted; when it is taken away (its lease ends) they
// are flushed and dropped.
//
// Exactness after a crash or a rebalance rests on offsets. The progress
// entry says up to which source offset every record is in the state;
// records replayed at or below it are skipped. Each pane also carries the
// newest offset it counted, so a batch whose changes were only partly
// written when the process died is counted once: the panes written skip
// it, the others count it. A closed window's result is emitted with an ack
// of its own; once the sinks wrote it, the changelog records how far
// windows are closed and deletes their panes. If the process dies before,
// the restored panes are emitted again: results may repeat after a crash,
// and the last one per key and window is the fault-free one.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicedev/sluice/flow"
	statelog "github.com/sluicedev/sluice/state"
)

// maxPendingRecords bounds the records whose changes wait for the
// changelog: a slow changelog slows the stage instead of filling memory.
const maxPendingRecords = 100_000

// errRevoked settles records of a partition taken away from this member
// before their changes were written: the next owner reads them again.
var errRevoked = errors.New("partition revoked before its window state was written; the next owner reads these records again")

// Changelog entry kinds: the first byte of an entry's key.
const (
	keyPane     = 'w' // 'w' start(8) key: one window of one key
	keyProgress = 'm' // the partition's progress
	keyClosed   = 'c' // windows ending at or before this are emitted
	entryV1     = 1   // first byte of every value
)

type partKey struct {
	topic     string
	partition int32
}

func (k partKey) String() string { return fmt.Sprintf("%s/%d", k.topic, k.partition) }

// part is one source partition's windows on one worker.
type part struct {
	key     partKey
	st      *state
	lease   *flow.Lease
	cl      statelog.Changelog
	applied int64       // every record at or below this offset is in the state
	closed  int64       // windows ending at or before this were emitted and written
	dead    bool        // retired: its changes are no longer written (flusher.mu)
	emits   []*emission // emitted, not yet all written by the sinks (flusher.mu)

	panes     atomic.Int64 // open windows, for metrics
	restoreNs atomic.Int64
	restored  atomic.Int64 // entries read at restore
}

// fingerprint identifies a window definition: state written under another
// one is refused, never mixed in.
func (c *Config) fingerprint() [32]byte {
	src := func(p interface{ Source() string }) string {
		if p == nil {
			return ""
		}
		return p.Source()
	}
	var ts, key, ex string
	if c.Timestamp != nil {
		ts = src(c.Timestamp)
	}
	if c.Key != nil {
		key = src(c.Key)
	}
	if c.Expr != nil {
		ex = src(c.Expr)
	}
	def := strings.Join([]string{string(c.Kind), c.Size.String(), c.Slide.String(), c.Gap.String(),
		fmt.Sprint(c.EventTime), ts, c.AllowedLateness.String(), key, string(c.Op), ex}, "\x00")
	return sha256.Sum256([]byte(def))
}

// describe is the definition in words, for the refusal message.
func (c *Config) describe() string {
	s := fmt.Sprintf("%s %s", c.Kind, c.Size)
	if c.Kind == Sliding {
		s += " slide " + c.Slide.String()
	}
	return s + " " + string(c.Op)
}

func paneKey(key string, start int64) []byte {
	b := make([]byte, 9, 9+len(key))
	b[0] = keyPane
	binary.BigEndian.PutUint64(b[1:], uint64(start))
	return append(b, key...)
}

func (st *state) encodePane(p *pane) []byte {
	b := make([]byte, 1, 64)
	b[0] = entryV1
	for _, v := range []uint64{uint64(p.end), uint64(p.off), uint64(p.agg.count),
		math.Float64bits(p.agg.sum), math.Float64bits(p.agg.min), math.Float64bits(p.agg.max)} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	if st.cfg.Op == Collect {
		items, err := json.Marshal(p.agg.items)
		if err != nil {
			items = []byte("[]") // values came from JSON: cannot happen
		}
		b = append(b, items...)
	}
	return b
}

const paneFixed = 1 + 6*8

func (st *state) decodePane(k, v []byte) (*pane, error) {
	if len(k) < 9 || len(v) < paneFixed || v[0] != entryV1 {
		return nil, fmt.Errorf("window entry %q: not written by this version of sluice", k)
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(v[1+8*i:]) }
	p := &pane{key: string(k[9:]), start: int64(binary.BigEndian.Uint64(k[1:])), end: int64(u(0)), off: int64(u(1)), hold: flow.NewBatch(nil)}
	p.agg.count = int64(u(2))
	p.agg.sum, p.agg.min, p.agg.max = math.Float64frombits(u(3)), math.Float64frombits(u(4)), math.Float64frombits(u(5))
	if st.cfg.Op == Collect && len(v) > paneFixed {
		if err := json.Unmarshal(v[paneFixed:], &p.agg.items); err != nil {
			return nil, fmt.Errorf("window entry %q: %w", k, err)
		}
	}
	return p, nil
}

func (st *state) encodeProgress(fp [32]byte) []byte {
	b := make([]byte, 1, 1+32+24)
	b[0] = entryV1
	b = append(b, fp[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(st.part.applied))
	b = binary.BigEndian.AppendUint64(b, uint64(st.maxEvent))
	return binary.BigEndian.AppendUint64(b, uint64(st.watermark))
}

func encodeClosed(end int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{entryV1}, uint64(end))
}

// restore rebuilds p's windows from its changelog partition.
func (s *Stage) restore(ctx context.Context, p *part) (due []*pane, err error) {
	st := p.st
	fp := s.cfg.fingerprint()
	panes := map[paneID]*pane{}
	began := time.Now()
	s.log.Info("window: restoring partition state", "partition", p.key.String(), "changelog", p.cl.Name())
	n, err := p.cl.Restore(ctx, p.key.partition, func(k, v []byte) error {
		if len(k) == 0 {
			return nil
		}
		switch k[0] {
		case keyPane:
			if v == nil {
				delete(panes, paneID{string(k[9:]), int64(binary.BigEndian.Uint64(k[1:]))})
				return nil
			}
			pn, err := st.decodePane(k, v)
			if err != nil {
				return err
			}
			panes[paneID{pn.key, pn.start}] = pn
		case keyProgress:
			if len(v) != 1+32+24 || v[0] != entryV1 {
				return fmt.Errorf("progress entry not written by this version of sluice")
			}
			if [32]byte(v[1:33]) != fp {
				return fmt.Errorf("the changelog holds state of another window definition than this stage's (%s): "+
					"state is never mixed across definitions; give the changed stage a new changelog_prefix (or a new id), "+
					"or delete topic %s to start from empty windows", s.cfg.describe(), p.cl.Name())
			}
			p.applied = int64(binary.BigEndian.Uint64(v[33:]))
			st.maxEvent = int64(binary.BigEndian.Uint64(v[41:]))
			st.watermark = int64(binary.BigEndian.Uint64(v[49:]))
		case keyClosed:
			if len(v) == 9 && v[0] == entryV1 {
				p.closed = max(p.closed, int64(binary.BigEndian.Uint64(v[1:])))
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("restore window state of %s from %s: %w", p.key, p.cl.Name(), err)
	}
	st.watermark = max(st.watermark, p.closed)
	for _, pn := range panes {
		if pn.end <= p.closed {
			continue // emitted and written before the crash
		}
		heapPush(st, pn)
	}
	if !s.cfg.EventTime {
		st.watermark = max(st.watermark, s.now().UnixNano())
	}
	due = st.closeUpTo(st.watermark)
	took := time.Since(began)
	p.restoreNs.Store(int64(took))
	p.restored.Store(n)
	p.panes.Store(int64(len(st.heap)))
	s.log.Info("window: restored partition state", "partition", p.key.String(), "entries", n,
		"open_windows", len(st.heap), "due", len(due), "applied_offset", p.applied, "took", took.Round(time.Millisecond))
	return due, nil
}

func heapPush(st *state, p *pane) {
	st.heap.Push(p)
	st.panes[paneID{p.key, p.start}] = p
	// Restored in map order: one heapify at the end would do, but the
	// count is small next to the read, and Fix keeps the heap valid now.
	st.heap.up(p.index)
}

// up moves h[i] towards the root while it orders before its parent.
func (h paneHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h.Less(i, parent) {
			return
		}
		h.Swap(i, parent)
		i = parent
	}
}

// flusher writes the changes of every durable partition of a stage to
// the changelogs, one write in flight at a time: while it is, changes
// queue and coalesce (a pane changed by ten batches is written once), and
// the next write takes them all.
type flusher struct {
	s    *Stage
	mu   sync.Mutex
	todo map[*part]*changes
	// records whose batches wait in todo or in the write in flight.
	held    int
	release []*part // retired: released once what was queued before is written
	err     error   // the first failed write: the stage stops
	closed  bool
	wake    chan struct{}
	written chan struct{} // closed and replaced after every write
	done    chan struct{}
	pending atomic.Int64 // entries not yet acknowledged, for metrics
}

// changes are one partition's entries waiting to be written, in order,
// coalesced by key: a key changed again moves to the end.
type changes struct {
	entries []statelog.Entry
	at      map[string]int
	batches []*flow.Batch
	records int
	later   []paneID // panes to delete in the next write
}

func (c *changes) put(p int32, k, v []byte) {
	if i, ok := c.at[string(k)]; ok {
		c.entries[i].Key = nil // superseded
	}
	c.at[string(k)] = len(c.entries)
	c.entries = append(c.entries, statelog.Entry{Partition: p, Key: k, Value: v})
}

func newFlusher(s *Stage) *flusher {
	f := &flusher{s: s, todo: map[*part]*changes{}, wake: make(chan struct{}, 1),
		written: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

func (f *flusher) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *flusher) changesOf(p *part) *changes {
	c := f.todo[p]
	if c == nil {
		c = &changes{at: map[string]int{}}
		f.todo[p] = c
	}
	return c
}

// batch queues the panes b touched and p's progress; b is settled once
// they are written. It waits while too many records wait for writes.
func (f *flusher) batch(ctx context.Context, p *part, b *flow.Batch, touched []*pane) error {
	st := p.st
	fp := f.s.cfg.fingerprint()
	f.mu.Lock()
	for f.held >= maxPendingRecords && f.err == nil {
		w := f.written
		f.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			b.Settle(ctx.Err())
			return ctx.Err()
		}
		f.mu.Lock()
	}
	if f.err != nil || f.closed {
		err := f.err
		f.mu.Unlock()
		if err == nil {
			err = errors.New("window stage closed")
		}
		b.Settle(err)
		return err
	}
	c := f.changesOf(p)
	for _, pn := range touched {
		pn = pn.live()
		c.put(p.key.partition, paneKey(pn.key, pn.start), st.encodePane(pn))
	}
	c.put(p.key.partition, []byte{keyProgress}, st.encodeProgress(fp))
	c.batches = append(c.batches, b)
	c.records += b.Len()
	f.held += b.Len()
	f.pending.Add(int64(len(touched) + 1))
	f.mu.Unlock()
	f.kick()
	return nil
}

// emission is one emitted batch of closed windows of a partition.
type emission struct {
	end     int64 // the latest end among them
	panes   []paneID
	settled bool
	failed  bool
}

// emitted registers closed windows about to be emitted and returns the
// callback of their batch's ack. Once the sinks wrote them, and every
// emission of the partition before them, the changelog records how far
// windows are closed; their panes are deleted in the write after that one,
// so a restore never finds a window deleted but not marked closed.
func (f *flusher) emitted(p *part, end int64, panes []paneID) func(error) {
	e := &emission{end: end, panes: panes}
	f.mu.Lock()
	p.emits = append(p.emits, e)
	f.mu.Unlock()
	return func(err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		e.settled, e.failed = true, err != nil
		if p.dead || f.closed {
			return // the next owner (or the next run) emits them again
		}
		closed := int64(math.MinInt64)
		var gone []paneID
		for len(p.emits) > 0 && p.emits[0].settled && !p.emits[0].failed {
			closed = max(closed, p.emits[0].end)
			gone = append(gone, p.emits[0].panes...)
			p.emits[0] = nil
			p.emits = p.emits[1:]
		}
		if len(gone) == 0 {
			return
		}
		c := f.changesOf(p)
		c.put(p.key.partition, []byte{keyClosed}, encodeClosed(closed))
		c.later = append(c.later, gone...)
		f.pending.Add(1)
		f.kick()
	}
}

// retire stops writing p's changes once what was queued is written, then
// releases its lease.
func (f *flusher) retire(p *part) {
	f.mu.Lock()
	p.dead = true
	f.release = append(f.release, p)
	f.mu.Unlock()
	f.kick()
}

func (f *flusher) run() {
	defer close(f.done)
	for {
		<-f.wake
		f.mu.Lock()
		todo, release, closing := f.todo, f.release, f.closed
		f.todo, f.release = map[*part]*changes{}, nil
		f.mu.Unlock()
		err := f.write(todo)
		f.mu.Lock()
		for p, c := range todo {
			f.held -= c.records
			if len(c.later) > 0 && err == nil && !p.dead {
				next := f.changesOf(p)
				for _, id := range c.later {
					next.put(p.key.partition, paneKey(id.key, id.start), nil)
				}
				f.pending.Add(int64(len(c.later)))
				f.kick()
			}
		}
		if err != nil && f.err == nil {
			f.err = err
		}
		close(f.written)
		f.written = make(chan struct{})
		f.mu.Unlock()
		for _, c := range todo {
			for _, b := range c.batches {
				b.Settle(err)
			}
		}
		for _, p := range release {
			if p.lease != nil {
				p.lease.Release()
			}
		}
		if closing {
			f.mu.Lock()
			empty := len(f.todo) == 0 && len(f.release) == 0
			f.mu.Unlock()
			if empty {
				return
			}
			f.kick()
		}
	}
}

// write writes todo, one Write per changelog, all in flight together.
func (f *flusher) write(todo map[*part]*changes) error {
	byLog := map[statelog.Changelog][]statelog.Entry{}
	n := 0
	for p, c := range todo {
		for _, e := range c.entries {
			if e.Key != nil {
				byLog[p.cl] = append(byLog[p.cl], e)
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	defer f.pending.Add(-int64(n))
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for cl, entries := range byLog {
		wg.Go(func() {
			// The stage's own context ended before: Close bounds this.
			if err := cl.Write(f.s.closeCtx, entries); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("write window state to changelog %s: %w", cl.Name(), err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// failed returns the error of a failed write, if one failed.
func (f *flusher) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// close writes what is queued and stops, within ctx.
func (f *flusher) close(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.kick()
	select {
	case <-f.done:
		return f.failed()
	case <-ctx.Done():
		return fmt.Errorf("window state not written before the drain deadline: %w", ctx.Err())
	}
}
