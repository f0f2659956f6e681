package flow

import (
	"context"
	"runtime"
	"strconv"
	"testing"
)

// heapGrowth is how many bytes fn allocated.
func heapGrowth(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// An edge takes memory as batches queue on it, not its capacity up front:
// issue 9 had settings.buffer: 4611686018427387904 panic in makechan, and
// the largest buffer the config accepts cost 8 MiB per edge before a
// record moved.
func TestEdgeDoesNotAllocateItsCapacity(t *testing.T) {
	for _, capacity := range []int{MaxBuffer, 1 << 30, 1 << 62} {
		var e *edge
		if grew := heapGrowth(func() { e = newEdge("x", capacity) }); grew > 4<<10 {
			t.Errorf("newEdge(%d) allocated %d bytes up front", capacity, grew)
		}
		// A few batches take a few slots, whatever the capacity.
		ctx := context.Background()
		grew := heapGrowth(func() {
			for range 10 {
				if err := e.send(ctx, &Batch{}); err != nil {
					t.Fatal(err)
				}
			}
		})
		if grew > 4<<10 {
			t.Errorf("capacity %d: queueing 10 batches allocated %d bytes", capacity, grew)
		}
		if got := e.used.Load(); got != 10 {
			t.Errorf("capacity %d: %d records counted, want 10", capacity, got)
		}
	}
}

func TestEdgeIsFIFOAndClosesAfterTheLastWriter(t *testing.T) {
	e := newEdge("x", 1<<20)
	e.addWriter()
	e.addWriter()
	ctx := context.Background()
	const n = 5000 // past several doublings of the ring
	for i := range n {
		b := NewBatch([]Record{{Value: []byte(strconv.Itoa(i))}})
		if err := e.send(ctx, b); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // interleave receives so the ring wraps around
			got, ok := e.recv(ctx)
			if !ok {
				t.Fatal("recv failed with batches queued")
			}
			e.received(got)
			if want := strconv.Itoa(i / 3); string(got.Records[0].Value) != want {
				t.Fatalf("got %s, want %s", got.Records[0].Value, want)
			}
		}
	}
	e.writerDone()
	b, done := e.tryRecv()
	if b == nil || done {
		t.Fatal("one writer left and batches queued: the edge must not be done")
	}
	e.received(b)
	e.writerDone()
	for i := n/3 + 2; i < n; i++ {
		b, ok := e.recv(ctx)
		if !ok {
			t.Fatalf("edge ended at %d of %d", i, n)
		}
		e.received(b)
		if want := strconv.Itoa(i); string(b.Records[0].Value) != want {
			t.Fatalf("got %s, want %s", b.Records[0].Value, want)
		}
	}
	if b, ok := e.recv(ctx); ok {
		t.Fatalf("closed and drained edge gave %v", b)
	}
	if got := e.used.Load(); got != 0 {
		t.Errorf("%d records still counted", got)
	}
	if e.q.ring != nil {
		t.Errorf("a drained queue keeps %d slots after growing past %d", len(e.q.ring), keepSlots)
	}
}

// recv returns when the context ends, not only when a batch comes.
func TestEdgeRecvHonoursContext(t *testing.T) {
	e := newEdge("x", 8)
	e.addWriter()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b, ok := e.recv(ctx); ok || b != nil {
		t.Fatalf("recv on an ended context gave %v, %v", b, ok)
	}
}

// send blocks while the edge is full and goes on once capacity is freed.
func TestEdgeSendWaitsForRoom(t *testing.T) {
	e := newEdge("x", 2)
	ctx := context.Background()
	two := func() *Batch { return NewBatch(make([]Record, 2)) }
	if err := e.send(ctx, two()); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { sent <- e.send(ctx, two()) }()
	b, ok := e.recv(ctx)
	if !ok {
		t.Fatal("recv failed")
	}
	// Until received frees the first batch's two records, the second
	// cannot be queued: nothing else may be on the edge.
	if got, _ := e.tryRecv(); got != nil {
		t.Fatal("a send went past a full edge")
	}
	e.received(b)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if got, ok := e.recv(ctx); !ok || len(got.Records) != 2 {
		t.Fatalf("second batch: %v %v", got, ok)
	}
}
