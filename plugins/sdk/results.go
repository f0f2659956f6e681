package sdk

import (
	"fmt"

	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// Results collects what ProcessBatch produced, attributed to input
// records by index. Outputs are encoded as they are emitted, so calls must
// come in input order: Emit(3, ...) after Emit(5, ...) is refused (the
// batch fails with an error saying so).
type Results struct {
	st   *resultState
	base int // index of this view's first input in the batch
	n    int
}

// Emit adds an output of input record i.
func (r *Results) Emit(i int, rec Record) {
	if i < 0 || i >= r.n {
		r.st.misuse(fmt.Errorf("Results.Emit(%d) with %d input records", i, r.n))
		return
	}
	r.st.emit(r.base+i, &rec)
}

// Fail marks input record i as failed: it goes to the node's error policy.
// A record cannot both have outputs and fail.
func (r *Results) Fail(i int, err error) {
	if i < 0 || i >= r.n {
		r.st.misuse(fmt.Errorf("Results.Fail(%d) with %d input records", i, r.n))
		return
	}
	if err == nil {
		err = fmt.Errorf("record failed (Fail called with a nil error)")
	}
	r.st.fail(r.base+i, err)
}

// failed marks an input in counts while the batch is built.
const failed = ^uint32(0)

// resultState is one batch's reply under construction.
type resultState struct {
	enc    wire.Encoder
	counts []uint32
	errs   []*pb.RecordError
	last   int // highest input index touched so far
	bad    error
}

func (s *resultState) reset(m *pb.Records, n int) {
	s.enc.Reset(m, false)
	if cap(s.counts) < n {
		s.counts = make([]uint32, n)
	}
	s.counts = s.counts[:n]
	clear(s.counts)
	s.errs = s.errs[:0]
	s.last = 0
	s.bad = nil
}

func (s *resultState) misuse(err error) {
	if s.bad == nil {
		s.bad = err
	}
}

func (s *resultState) emit(i int, rec *Record) {
	switch {
	case i < s.last:
		s.misuse(fmt.Errorf("Results.Emit(%d) after a call for record %d: outputs must follow input order", i, s.last))
		return
	case s.counts[i] == failed:
		s.misuse(fmt.Errorf("Results.Emit(%d) for a record that failed", i))
		return
	}
	s.last = i
	s.counts[i]++
	s.enc.Add(rec)
}

func (s *resultState) fail(i int, err error) {
	switch {
	case s.counts[i] == failed:
		return // first error wins
	case s.counts[i] > 0:
		s.misuse(fmt.Errorf("Results.Fail(%d) for a record that already has outputs", i))
		return
	}
	s.last = max(s.last, i)
	s.counts[i] = failed
	s.errs = append(s.errs, &pb.RecordError{Index: uint32(i), Message: err.Error()})
}

// rewind forgets everything recorded for input i and later: the batch is
// being redone from there.
func (s *resultState) rewind(i int, k wire.Mark) {
	s.enc.Rewind(k)
	clear(s.counts[i:])
	kept := s.errs[:0]
	for _, e := range s.errs {
		if int(e.Index) < i {
			kept = append(kept, e)
		}
	}
	s.errs = kept
	s.last = i
}

// finish writes counts and errors into res.
func (s *resultState) finish(res *pb.Result) {
	s.enc.Finish()
	oneEach := len(s.errs) == 0
	for i, c := range s.counts {
		if c == failed {
			s.counts[i] = 0
		} else if c != 1 {
			oneEach = false
		}
	}
	res.OutputCounts = res.OutputCounts[:0]
	if !oneEach {
		res.OutputCounts = append(res.OutputCounts, s.counts...)
	}
	res.Errors = append(res.Errors[:0], s.errs...)
}
