package generate

import (
	"sync"
	"sync/atomic"

	"github.com/sluicedev/sluice/flow"
)

// watermark tracks acknowledged seq ranges like a Kafka consumer tracks
// offsets: next is the first seq not yet known to be safe, so every seq
// below it was acknowledged. Acks may arrive out of order (parallel stages,
// fan-out); ranges beyond next wait in done until the gap closes. A failed
// range never closes its gap, exactly as a consumer would not commit past
// it.
type watermark struct {
	mu   sync.Mutex
	next int64
	done map[int64]int64 // start -> end (exclusive) of acked ranges past next

	acked  atomic.Int64 // records acknowledged, contiguous or not
	failed atomic.Int64 // records whose ack reported an error
}

// track returns the Ack for records [start, start+n); then, if not nil,
// runs after the range is settled.
func (w *watermark) track(start int64, n int, then func()) *flow.Ack {
	return flow.NewAck(func(err error) {
		w.settle(start, start+int64(n), err)
		if then != nil {
			then()
		}
	})
}

func (w *watermark) settle(start, end int64, err error) {
	if err != nil {
		w.failed.Add(end - start)
		return
	}
	w.acked.Add(end - start)
	w.mu.Lock()
	defer w.mu.Unlock()
	if start != w.next {
		if w.done == nil {
			w.done = map[int64]int64{}
		}
		w.done[start] = end
		return
	}
	w.next = end
	for {
		e, ok := w.done[w.next]
		if !ok {
			return
		}
		delete(w.done, w.next)
		w.next = e
	}
}

// contiguous is the number of records from seq 0 on that are all
// acknowledged.
func (w *watermark) contiguous() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}
