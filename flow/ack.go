package flow

import (
	"sync/atomic"
)

// Ack tracks one unit of source input (a generated block, a Kafka fetch of
// one partition, a line range of a file) until every record derived from it
// is settled. It is reference counted: each batch holding records of the
// unit holds one reference; the callback runs once, when the last reference
// is released, with the first error any holder reported.
type Ack struct {
	refs atomic.Int64
	err  atomic.Pointer[error]
	done func(error)
}

// NewAck returns an Ack holding one reference, owned by the caller (normally
// handed straight to NewBatch). done runs exactly once, on the goroutine that
// releases the last reference; it must not block for long.
func NewAck(done func(err error)) *Ack {
	a := &Ack{done: done}
	a.refs.Store(1)
	return a
}

func (a *Ack) retain(n int64) { a.refs.Add(n) }

func (a *Ack) release(err error) {
	if err != nil {
		e := err
		a.err.CompareAndSwap(nil, &e)
	}
	if a.refs.Add(-1) == 0 && a.done != nil {
		if p := a.err.Load(); p != nil {
			a.done(*p)
			return
		}
		a.done(nil)
	}
}

// Batch is what flows on an edge: a slice of records and the references it
// holds on the Acks of the source input those records came from.
//
// Ownership: whoever holds a *Batch must either pass it on (Emit takes
// ownership) or Settle it exactly once. A stage that turns one batch into
// others calls Derive for each output and then Settles the input.
type Batch struct {
	Records []Record
	acks    []*Ack
}

// NewBatch wraps records emitted by a source. It takes over the caller's
// reference on each ack (normally the single one from NewAck).
func NewBatch(records []Record, acks ...*Ack) *Batch {
	return &Batch{Records: records, acks: acks}
}

// Derive returns a new batch for records computed from b. The new batch
// holds its own reference on every ack of b, so b can be settled at once.
func (b *Batch) Derive(records []Record) *Batch {
	acks := make([]*Ack, len(b.acks))
	copy(acks, b.acks)
	for _, a := range acks {
		a.retain(1)
	}
	return &Batch{Records: records, acks: acks}
}

// Absorb moves other's ack references into b and consumes other (its records
// are not touched; callers copy what they need first). Batch and window
// stages use it to hold their inputs' acks until their own output settles.
// A reference b already holds is released instead of kept twice.
func (b *Batch) Absorb(other *Batch) {
	for _, a := range other.acks {
		if b.holds(a) {
			a.release(nil)
			continue
		}
		b.acks = append(b.acks, a)
	}
	other.acks = nil
	other.Records = nil
}

func (b *Batch) holds(a *Ack) bool {
	// Accumulated batches hold few distinct acks in practice: a linear scan
	// beats a map until several hundred.
	for _, x := range b.acks {
		if x == a {
			return true
		}
	}
	return false
}

// Settle releases b's references: err nil means every record of b reached
// its end (written, filtered on purpose, dead-lettered); non-nil tells the
// sources the records failed. A batch must be settled exactly once.
func (b *Batch) Settle(err error) {
	for _, a := range b.acks {
		a.release(err)
	}
	b.acks = nil
}

// Len is the number of records in b.
func (b *Batch) Len() int { return len(b.Records) }

// Bytes is the approximate payload size of b.
func (b *Batch) Bytes() int {
	n := 0
	for i := range b.Records {
		n += b.Records[i].Size()
	}
	return n
}

// fork returns n batches sharing b's records (the slice is copied, the bytes
// are shared) each with their own ack references; b itself becomes the
// first. Fan-out uses it to count its branches.
func (b *Batch) fork(n int) []*Batch {
	out := make([]*Batch, n)
	out[0] = b
	for i := 1; i < n; i++ {
		recs := make([]Record, len(b.Records))
		copy(recs, b.Records)
		out[i] = b.Derive(recs)
	}
	return out
}
