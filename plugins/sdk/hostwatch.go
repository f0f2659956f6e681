package sdk

import (
	"context"
	"net"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/stats"
)

// hostWatch notices when the host's last gRPC connection closes. The host
// holds one connection for the plugin's whole life, so its end means the
// host exited, crashed or was killed: a plugin left running then would be
// an orphan nobody drains. (The host also asks the kernel to kill the
// plugin when it dies, on Linux; this covers everything else.)
type hostWatch struct {
	conns  atomic.Int32
	once   sync.Once
	socket atomic.Pointer[string] // the Unix socket served, to remove on the way out
	gone   func(socket string)
}

func (h *hostWatch) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (h *hostWatch) HandleRPC(context.Context, stats.RPCStats)                       {}

func (h *hostWatch) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	if a, ok := info.LocalAddr.(*net.UnixAddr); ok && a.Name != "" {
		name := a.Name
		h.socket.CompareAndSwap(nil, &name)
	}
	return ctx
}

func (h *hostWatch) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		h.conns.Add(1)
	case *stats.ConnEnd:
		if h.conns.Add(-1) == 0 {
			// Not on gRPC's transport goroutine: gone closes and exits.
			socket := ""
			if p := h.socket.Load(); p != nil {
				socket = *p
			}
			h.once.Do(func() { go h.gone(socket) })
		}
	}
}
