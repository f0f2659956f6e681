package host_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/host"
	"github.com/sluicedev/sluice/plugins/internal/naivepb"
	"github.com/sluicedev/sluice/plugins/internal/wire"
)

// BenchmarkPlugin runs generate -> stage -> discard with five stages side
// by side: an in-process passthrough, the passthrough plugin (per-record
// and batch API), and two baselines: a naive go-plugin stream carrying one
// protobuf message per record, and the same stream carrying each 1000-record
// batch as one message (what anyone who batches would write first; the
// fair baseline of sluice's protocol). Run it short, the CPU is shared:
//
//	go test ./plugins/host -run '^$' -bench Plugin -benchtime 2s
func BenchmarkPlugin(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(fmt.Sprintf("%dB/inprocess", size), func(b *testing.B) {
			benchStage(b, size, func(b *testing.B) flow.Stage { return flow.ProcessorStage(passthrough{}) })
		})
		b.Run(fmt.Sprintf("%dB/plugin", size), func(b *testing.B) {
			benchStage(b, size, func(b *testing.B) flow.Stage { return benchPlugin(b) })
		})
		b.Run(fmt.Sprintf("%dB/plugin-batchapi", size), func(b *testing.B) {
			benchStage(b, size, func(b *testing.B) flow.Stage { return benchPlugin(b, "-batch") })
		})
		b.Run(fmt.Sprintf("%dB/naive", size), func(b *testing.B) {
			benchStage(b, size, func(b *testing.B) flow.Stage { return newNaive(b) })
		})
		b.Run(fmt.Sprintf("%dB/naive-batched", size), func(b *testing.B) {
			benchStage(b, size, func(b *testing.B) flow.Stage { return &naiveBatched{newNaive(b)} })
		})
	}
}

// cpuTime is the user+system CPU of this process and its reaped children.
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	var total time.Duration
	for _, tv := range []syscall.Timeval{self.Utime, self.Stime, children.Utime, children.Stime} {
		total += time.Duration(tv.Nano())
	}
	return total
}

type passthrough struct{}

func (passthrough) Process(_ context.Context, in []flow.Record, out *flow.Output) error {
	out.Records = append(out.Records, in...)
	return nil
}

func benchPlugin(b *testing.B, args ...string) flow.Stage {
	st, err := host.New(context.Background(), host.Config{Path: plugins["passthrough"], Args: args, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// benchStage times b.N records of size bytes through the stage build
// returns; starting and stopping processes is not timed.
func benchStage(b *testing.B, size int, build func(*testing.B) flow.Stage) {
	b.StopTimer()
	st := build(b)
	value := make([]byte, size)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	src := &genSource{n: b.N, value: value}
	p := flow.New("bench", flow.WithBuffer(8192), flow.WithLogger(slog.New(slog.DiscardHandler))).
		Source("gen", src).
		Stage("stage", st, flow.Inputs("gen")).
		Sink("discard", discard{}, flow.Inputs("stage"))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.StartTimer()
	start := time.Now()
	if err := p.Run(context.Background()); err != nil { // closes the stage too
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rec/s")
	b.StopTimer()
	// CPU of the host and its plugin processes (reaped by Close): unlike
	// rec/s, it hardly depends on what else the machine is running.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/rec")
	if n := src.acked.Load(); n != int64(b.N) {
		b.Fatalf("acked %d of %d", n, b.N)
	}
}

// genSource emits n records of one shared value in batches of 1000.
type genSource struct {
	n     int
	value []byte
	acked atomic.Int64
}

func (g *genSource) Run(ctx context.Context, out flow.Emitter) error {
	for i := 0; i < g.n; i += 1000 {
		n := min(1000, g.n-i)
		recs := make([]flow.Record, n)
		for j := range recs {
			recs[j] = flow.Record{Value: g.value, Origin: flow.Origin{Source: "gen", Offset: int64(i + j)}}
		}
		ack := flow.NewAck(func(error) { g.acked.Add(int64(n)) })
		if err := out.Emit(ctx, flow.NewBatch(recs, ack)); err != nil {
			return nil
		}
	}
	return nil
}

type discard struct{}

func (discard) Write(context.Context, []flow.Record) error { return nil }

// naive is the baseline: a go-plugin gRPC stream carrying one protobuf
// message per record, each input batch (1000 records) sent by one
// goroutine while another reads the replies.
type naive struct {
	client *goplugin.Client
	rpc    naivepb.NaiveClient
}

type naivePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (naivePlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error { return nil }

func (naivePlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return naivepb.NewNaiveClient(c), nil
}

func newNaive(b *testing.B) *naive {
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		Plugins:          goplugin.PluginSet{"naive": naivePlugin{}},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Cmd:              exec.Command(plugins["naive"]),
		SkipHostEnv:      true,
		Logger:           hclog.NewNullLogger(),
	})
	cp, err := client.Client()
	if err != nil {
		client.Kill()
		b.Fatal(err)
	}
	raw, err := cp.Dispense("naive")
	if err != nil {
		client.Kill()
		b.Fatal(err)
	}
	return &naive{client: client, rpc: raw.(naivepb.NaiveClient)}
}

func (n *naive) Close(context.Context) error {
	n.client.Kill()
	return nil
}

func (n *naive) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := n.rpc.Stream(ctx)
	if err != nil {
		return err
	}
	sendErr := make(chan error, 1)
	for batch := range in {
		go func(recs []flow.Record) {
			for i := range recs {
				r := &recs[i]
				m := &naivepb.Record{Key: r.Key, Value: r.Value}
				if !r.Timestamp.IsZero() {
					m.TimestampUnixNano = r.Timestamp.UnixNano()
				}
				for _, h := range r.Headers {
					m.Headers = append(m.Headers, &naivepb.Header{Key: h.Key, Value: h.Value})
				}
				if err := stream.Send(m); err != nil {
					sendErr <- err
					return
				}
			}
			sendErr <- nil
		}(batch.Records)
		outs := make([]flow.Record, len(batch.Records))
		for i := range outs {
			m, err := stream.Recv()
			if err != nil {
				batch.Settle(err)
				return err
			}
			outs[i] = flow.Record{Key: m.GetKey(), Value: m.GetValue(), Origin: batch.Records[i].Origin}
			if ts := m.GetTimestampUnixNano(); ts != 0 {
				outs[i].Timestamp = time.Unix(0, ts)
			}
			for _, h := range m.GetHeaders() {
				outs[i].Headers = append(outs[i].Headers, flow.Header{Key: h.GetKey(), Value: h.GetValue()})
			}
		}
		if err := <-sendErr; err != nil {
			batch.Settle(err)
			return err
		}
		batch.Records = outs
		if err := out.Emit(ctx, batch); err != nil {
			return nil
		}
	}
	return stream.CloseSend()
}

// naiveBatched is the batched baseline: each input batch travels as one
// protobuf message of its records. One goroutine converts and sends while
// this one reads replies, with up to four batches in flight: the pipelining
// anyone tuning a batched stream would add, so the ratio is against the
// strongest simple design, not a stop-and-wait one.
type naiveBatched struct{ *naive }

func (n *naiveBatched) Run(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := n.rpc.StreamBatch(ctx)
	if err != nil {
		return err
	}
	pending := make(chan *flow.Batch, 4)
	sendErr := make(chan error, 1)
	go func() {
		defer close(pending)
		for batch := range in {
			msg := &naivepb.Records{Records: make([]*naivepb.Record, len(batch.Records))}
			for i := range batch.Records {
				r := &batch.Records[i]
				m := &naivepb.Record{Key: r.Key, Value: r.Value}
				if !r.Timestamp.IsZero() {
					m.TimestampUnixNano = r.Timestamp.UnixNano()
				}
				for _, h := range r.Headers {
					m.Headers = append(m.Headers, &naivepb.Header{Key: h.Key, Value: h.Value})
				}
				msg.Records[i] = m
			}
			select {
			case pending <- batch:
			case <-ctx.Done():
				batch.Settle(ctx.Err())
				return
			}
			if err := stream.Send(msg); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	for batch := range pending {
		reply, err := stream.Recv()
		if err == nil && len(reply.Records) != len(batch.Records) {
			err = fmt.Errorf("naive plugin returned %d records for %d", len(reply.Records), len(batch.Records))
		}
		if err != nil {
			batch.Settle(err)
			cancel()
			for b := range pending {
				b.Settle(err)
			}
			return err
		}
		outs := make([]flow.Record, len(reply.Records))
		for i, m := range reply.Records {
			outs[i] = flow.Record{Key: m.GetKey(), Value: m.GetValue(), Origin: batch.Records[i].Origin}
			if ts := m.GetTimestampUnixNano(); ts != 0 {
				outs[i].Timestamp = time.Unix(0, ts)
			}
			for _, h := range m.GetHeaders() {
				outs[i].Headers = append(outs[i].Headers, flow.Header{Key: h.GetKey(), Value: h.GetValue()})
			}
		}
		batch.Records = outs
		if err := out.Emit(ctx, batch); err != nil {
			cancel()
			for b := range pending {
				b.Settle(err)
			}
			return nil
		}
	}
	return <-sendErr
}
