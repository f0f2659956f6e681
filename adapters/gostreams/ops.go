package gostreams

import (
	streams "github.com/reugn/go-streams"
	gsflow "github.com/reugn/go-streams/flow"

	"github.com/sluicedev/sluice/flow"
)

// Map returns a go-streams Map over envelopes calling fn on each record.
// An error or panic from fn becomes a record error; parallelism > 1
// reorders records.
func Map(fn func(flow.Record) (flow.Record, error), parallelism int) streams.Flow {
	// A FlatMap, so a failed record can leave the stream.
	return gsflow.NewFlatMap(func(e *Envelope) []*Envelope {
		r, err := safe(func() (flow.Record, error) { return fn(e.Record) })
		if err != nil {
			e.fail(err)
			return nil
		}
		e.Record = r
		return []*Envelope{e}
	}, max(parallelism, 1))
}

// Filter returns a go-streams Filter keeping records for which fn is true;
// dropped records are acknowledged as filtered, errors and panics become
// record errors.
func Filter(fn func(flow.Record) (bool, error), parallelism int) streams.Flow {
	return gsflow.NewFilter(func(e *Envelope) bool {
		keep, err := safe(func() (bool, error) { return fn(e.Record) })
		switch {
		case err != nil:
			e.fail(err)
			return false
		case !keep:
			e.Done(nil)
		}
		return keep
	}, max(parallelism, 1))
}

// FlatMap returns a go-streams FlatMap turning each record into any number
// of records; the input is acknowledged once all of them are written (at
// once when there are none).
func FlatMap(fn func(flow.Record) ([]flow.Record, error), parallelism int) streams.Flow {
	return gsflow.NewFlatMap(func(e *Envelope) []*Envelope {
		recs, err := safe(func() ([]flow.Record, error) { return fn(e.Record) })
		if err != nil {
			e.fail(err)
			return nil
		}
		if len(recs) == 0 {
			e.Done(nil)
			return nil
		}
		out := make([]*Envelope, len(recs))
		for i := 1; i < len(recs); i++ {
			out[i] = e.clone(recs[i])
		}
		e.Record = recs[0]
		out[0] = e
		return out
	}, max(parallelism, 1))
}

// Merge returns a go-streams Map turning a group of envelopes (the output
// of a go-streams window or Batch) into one record that holds the acks of
// the whole group.
func Merge(fn func([]flow.Record) (flow.Record, error)) streams.Flow {
	return gsflow.NewFlatMap(func(group []*Envelope) []*Envelope {
		if len(group) == 0 {
			return nil
		}
		recs := make([]flow.Record, len(group))
		for i, e := range group {
			recs[i] = e.Record
		}
		m := &Envelope{owner: group[0].owner}
		seen := map[*tracker]bool{}
		for _, e := range group {
			e.each(func(t *tracker) {
				if seen[t] {
					t.release(nil) // one reference per input is enough
					return
				}
				seen[t] = true
				if m.ref == nil {
					m.ref = t
				} else {
					m.more = append(m.more, t)
				}
			})
		}
		r, err := safe(func() (flow.Record, error) { return fn(recs) })
		m.Record, m.orig = r, r
		if err != nil {
			m.orig = recs[0]
			m.fail(err)
			return nil
		}
		return []*Envelope{m}
	}, 1)
}
