package host

import (
	"errors"
	"fmt"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// A job is one input batch of a Run, in arrival order. Its records travel
// in chunks; once every chunk holding them is answered, the job's outputs
// are emitted, its failures rejected, in input order.
type job struct {
	b    *flow.Batch
	segs []seg
	open int // chunks holding this job's records still unanswered
}

// seg is a run of a job's records inside one chunk.
type seg struct {
	c       *chunk
	from, n int
}

// A chunk is one plugin batch: at most batch.size records and batch.bytes,
// from one or more jobs. When a process dies with a chunk in flight the
// chunk may be split (bisected) into halves that share its arrays; the
// root learns it is answered when its last leaf is.
type chunk struct {
	owner *flowRun // the Run it is answered to
	recs  []flow.Record
	// res is what each record became; nil while outs alone says it (every
	// record had exactly one output, the answer of a map).
	res   []result
	bytes int
	jobs  []*job

	root   *chunk // nil for a root
	leaves int    // on a root: unanswered leaves
	split  bool   // on a root: whether it was ever split

	outs  []flow.Record // every output, when answered in one piece
	alone int           // process failures while it was the only chunk in flight
	seq   uint64
}

// result is what one input record became.
type result struct {
	outs []flow.Record
	err  error
}

func newChunk(owner *flowRun) *chunk { return &chunk{owner: owner, leaves: 1} }

func (c *chunk) rootChunk() *chunk {
	if c.root != nil {
		return c.root
	}
	return c
}

func (c *chunk) needRes() {
	if c.res == nil {
		c.res = make([]result, len(c.recs))
	}
}

// result is what record k became.
func (c *chunk) result(k int) ([]flow.Record, error) {
	if c.res == nil {
		return c.outs[k : k+1 : k+1], nil
	}
	return c.res[k].outs, c.res[k].err
}

// halve splits a chunk of two or more records into two leaves, which
// answer into c's results.
func (c *chunk) halve() (*chunk, *chunk) {
	c.needRes()
	root := c.rootChunk()
	root.split = true
	root.leaves++ // one leaf becomes two
	mid := len(c.recs) / 2
	a := &chunk{root: root, recs: c.recs[:mid], res: c.res[:mid]}
	b := &chunk{root: root, recs: c.recs[mid:], res: c.res[mid:]}
	for i := range a.recs {
		a.bytes += a.recs[i].Size()
	}
	b.bytes = c.bytes - a.bytes
	return a, b
}

// answered marks a leaf done; the root goes back to its Run when it was
// the last one.
func (c *chunk) answered() {
	root := c.rootChunk()
	root.leaves--
	if root.leaves == 0 {
		root.owner.deliver(root)
	}
}

// failAll fails every record of c with err.
func (c *chunk) failAll(err error) {
	c.needRes()
	for i := range c.res {
		c.res[i] = result{err: err}
	}
}

// ReportedError is a failure the plugin itself reported, with its own
// message, for one record or for its whole batch: the plugin got the
// record and refused it. (A PoisonError is the host's: the plugin crashed
// or hung on the record.)
type ReportedError struct{ Msg string }

func (e *ReportedError) Error() string { return e.Msg }

// apply records the plugin's reply to c. A reply that breaks the protocol
// fails the chunk's records with an error saying how; the plugin is buggy
// and restarting it would not help.
func (c *chunk) apply(r *pb.Result) {
	if msg := r.GetBatchError(); msg != "" {
		c.failAll(&ReportedError{Msg: msg})
		return
	}
	if err := c.decode(r); err != nil {
		c.failAll(fmt.Errorf("plugin broke the protocol: %w", err))
	}
}

func (c *chunk) decode(r *pb.Result) error {
	n := len(c.recs)
	outs, err := wire.Decode(r.GetRecords(), nil)
	if err != nil {
		return err
	}
	counts := r.GetOutputCounts()
	switch {
	case len(counts) == 0:
		if len(outs) != n || len(r.GetErrors()) > 0 {
			return fmt.Errorf("result without output_counts has %d outputs and %d errors for %d inputs", len(outs), len(r.GetErrors()), n)
		}
		if c.root == nil && c.res == nil {
			break // outs says it all
		}
		c.needRes()
		for i := range c.res {
			c.res[i] = result{outs: outs[i : i+1 : i+1]}
		}
	case len(counts) != n:
		return fmt.Errorf("output_counts has %d entries for %d inputs", len(counts), n)
	default:
		c.needRes()
		o := 0
		for i, k := range counts {
			end := o + int(k)
			if end > len(outs) {
				return fmt.Errorf("output_counts add up to more than the %d outputs", len(outs))
			}
			c.res[i] = result{outs: outs[o:end:end]}
			o = end
		}
		if o != len(outs) {
			return fmt.Errorf("output_counts add up to %d, not the %d outputs", o, len(outs))
		}
	}
	for _, e := range r.GetErrors() {
		// Errors come with counts, so res exists.
		i := int(e.GetIndex())
		if i >= n {
			return fmt.Errorf("error for record %d of a %d-record batch", i, n)
		}
		if len(c.res[i].outs) > 0 {
			return fmt.Errorf("record %d has both outputs and an error", i)
		}
		c.res[i].err = &ReportedError{Msg: e.GetMessage()}
	}
	// Outputs keep their input's origin (that is what acks and dead
	// letters name) and, when the plugin set none, its timestamp.
	for i := range c.recs {
		in := &c.recs[i]
		outs, _ := c.resultOf(outs, i)
		for j := range outs {
			o := &outs[j]
			o.Origin = in.Origin
			if o.Timestamp.IsZero() {
				o.Timestamp = in.Timestamp
			}
		}
	}
	if c.root == nil {
		c.outs = outs
	}
	return nil
}

// resultOf is result(k) before c.outs is set.
func (c *chunk) resultOf(outs []flow.Record, k int) ([]flow.Record, error) {
	if c.res == nil {
		return outs[k : k+1 : k+1], nil
	}
	return c.res[k].outs, c.res[k].err
}

// PoisonError fails a record that crashed or hung the plugin on its own.
type PoisonError struct {
	Plugin string
	Reason string
}

func (e *PoisonError) Error() string {
	return fmt.Sprintf("plugin %s failed on this record alone (%s); the record was isolated, the rest of its batch went on", e.Plugin, e.Reason)
}

var errTooLarge = errors.New("record is larger than the plugin message limit")
