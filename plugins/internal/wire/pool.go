package wire

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// bufferPool holds the buffers gRPC marshals messages into and gathers
// received messages in. gRPC's default pool jumps from 32 KiB to 1 MiB
// buffers, zeroes a buffer's whole capacity on every Get, and keeps them in
// a sync.Pool that each GC empties: under a plugin's allocation rate most
// Gets were a fresh 1 MiB allocation plus its page faults, a fifth of
// both processes' CPU. Large buffers are kept here instead, in power-of-two
// tiers, a few per tier, not zeroed: the connection carries one
// pipeline's own records, nothing to keep apart.
type bufferPool struct {
	small mem.BufferPool

	mu   sync.Mutex
	free [maxTier + 1][]*[]byte
}

const (
	minTier = 15 // 32 KiB; below it gRPC's own pool does well
	maxTier = 23 // 8 MiB; larger messages are rare enough to allocate
)

// keep is how many free buffers of a tier are retained: at most ~36 MiB.
func keep(tier int) int {
	if tier <= 20 {
		return 4
	}
	return 2
}

var pool = &bufferPool{small: mem.DefaultBufferPool()}

func (p *bufferPool) Get(n int) *[]byte {
	if n <= 1<<minTier {
		return p.small.Get(n)
	}
	tier := bits.Len(uint(n - 1))
	if tier > maxTier {
		b := make([]byte, n)
		return &b
	}
	p.mu.Lock()
	if l := len(p.free[tier]); l > 0 {
		b := p.free[tier][l-1]
		p.free[tier] = p.free[tier][:l-1]
		p.mu.Unlock()
		*b = (*b)[:n]
		return b
	}
	p.mu.Unlock()
	b := make([]byte, n, 1<<tier)
	return &b
}

func (p *bufferPool) Put(b *[]byte) {
	c := cap(*b)
	if c <= 1<<minTier {
		p.small.Put(b)
		return
	}
	tier := bits.Len(uint(c)) - 1
	if c != 1<<tier || tier > maxTier {
		return // not one of ours
	}
	p.mu.Lock()
	if len(p.free[tier]) < keep(tier) {
		p.free[tier] = append(p.free[tier], b)
	}
	p.mu.Unlock()
}
