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

// emission is one emitted batch of closed windows of a partition.
type emission struct {
	end     int64 // the latest end among them
	panes   []paneID
	settled bool
	failed  bool
}

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

// partKey names a source partition; owner (the source) tells apart
// partitions of equally named topics read by two sources.
type partKey struct {
	owner     any
	topic     string
	partition int32
}

func (k partKey) String() string { return fmt.Sprintf("%s/%d", k.topic, k.partition) }

// part is one source partition's windows on one worker.
type part struct {
	key     partKey
	st      *state
	sp      *statelog.Part
	applied int64 // every record at or below this offset is in the state
	closed  int64 // windows ending at or before this were emitted and written

	mu    sync.Mutex
	emits []*emission // emitted, not yet all written by the sinks

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
	cl := p.sp.Log
	s.log.Info("window: restoring partition state", "partition", p.key.String(), "changelog", cl.Name())
	n, err := cl.Restore(ctx, p.key.partition, func(k, v []byte) error {
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
					"or delete topic %s to start from empty windows", s.cfg.describe(), cl.Name())
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
		return nil, fmt.Errorf("restore window state of %s from %s: %w", p.key, cl.Name(), err)
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

// emitted registers closed windows of p about to be emitted and returns
// the callback of their batch's ack. Once the sinks wrote them, and every
// emission of the partition before them, the changelog records how far
// windows are closed; their panes are deleted in the write after that
// one, so a restore never finds a window deleted but not marked closed.
func (s *Stage) emitted(w *statelog.Writer, p *part, end int64, panes []paneID) func(error) {
	e := &emission{end: end, panes: panes}
	p.mu.Lock()
	p.emits = append(p.emits, e)
	p.mu.Unlock()
	return func(err error) {
		// Under p.mu so closed marks are queued in the order they grow.
		p.mu.Lock()
		defer p.mu.Unlock()
		e.settled, e.failed = true, err != nil
		closed := int64(math.MinInt64)
		var gone [][]byte
		for len(p.emits) > 0 && p.emits[0].settled && !p.emits[0].failed {
			closed = max(closed, p.emits[0].end)
			for _, id := range p.emits[0].panes {
				gone = append(gone, paneKey(id.key, id.start))
			}
			p.emits[0] = nil
			p.emits = p.emits[1:]
		}
		if len(gone) == 0 {
			return
		}
		// Dropped once p was retired: the next owner emits them again.
		w.Put(p.sp, func(put statelog.Put) { put([]byte{keyClosed}, encodeClosed(closed)) }, gone)
	}
}
