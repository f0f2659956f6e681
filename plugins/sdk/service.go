package sdk

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// sdkName is reported by Info.
const sdkName = "sluice-go-sdk"

// service implements the plugin side of plugins/proto.
type service struct {
	pb.UnimplementedProcessorServer

	p          Plugin
	opts       options
	batch      func(ctx context.Context, in []Record, out *Results) error
	maxMessage int

	mu       sync.Mutex
	streams  int
	idle     chan struct{} // closed while no Process stream runs
	draining bool
	closing  sync.Once
	closed   atomic.Bool // the host sent Close: its connection ending is expected

	batches, records atomic.Uint64
}

func newService(p Plugin, o options) (*service, error) {
	if (p.Process == nil) == (p.ProcessBatch == nil) {
		return nil, errNoFunc
	}
	s := &service{p: p, opts: o, maxMessage: wire.DefaultMaxMessage, idle: make(chan struct{})}
	close(s.idle)
	s.batch = p.ProcessBatch
	if p.Process != nil {
		s.batch = perRecord(p.Process)
	}
	if o.config != nil {
		if err := checkConfigTarget(o.config); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *service) Info(context.Context, *pb.InfoRequest) (*pb.InfoResponse, error) {
	return &pb.InfoResponse{Name: s.p.Name, Version: s.p.Version, ProtocolVersion: wire.ProtocolVersion, Sdk: sdkName}, nil
}

func (s *service) Configure(_ context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	var res pb.ConfigureResponse
	for _, fe := range configure(s.opts.config, req.GetConfigJson()) {
		res.Errors = append(res.Errors, &pb.FieldError{Field: fe.Field, Message: fe.Message})
	}
	return &res, nil
}

// enter registers a Process stream unless the plugin is draining.
func (s *service) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	if s.streams == 0 {
		s.idle = make(chan struct{})
	}
	s.streams++
	return true
}

func (s *service) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams--
	if s.streams == 0 {
		close(s.idle)
	}
}

func (s *service) Process(stream pb.Processor_ProcessServer) error {
	if !s.enter() {
		return status.Error(codes.FailedPrecondition, "plugin is draining: no new streams")
	}
	defer s.leave()
	ctx := stream.Context()

	// Receiving (and unmarshalling) overlaps processing the previous batch.
	// The goroutine ends when the host closes its side, the stream breaks,
	// or this handler returns (which cancels ctx).
	batches := make(chan *pb.Batch, 1)
	recvErr := make(chan error, 1)
	go func() {
		defer close(batches)
		for {
			b, err := stream.Recv()
			if err != nil {
				if err != io.EOF {
					recvErr <- err
				}
				return
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
		}
	}()

	var w worker
	for b := range batches {
		res := w.handle(ctx, s, b)
		if err := stream.Send(res); err != nil {
			return err
		}
	}
	select {
	case err := <-recvErr:
		return err
	default:
		return nil
	}
}

func (s *service) Drain(ctx context.Context, _ *pb.DrainRequest) (*pb.DrainResponse, error) {
	s.mu.Lock()
	s.draining = true
	idle := s.idle
	s.mu.Unlock()
	select {
	case <-idle:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if s.p.Drain != nil {
		if err := protect(func() error { return s.p.Drain(ctx) }); err != nil {
			return nil, status.Errorf(codes.Internal, "drain: %v", err)
		}
	}
	return &pb.DrainResponse{Batches: s.batches.Load(), Records: s.records.Load()}, nil
}

func (s *service) Close(ctx context.Context, _ *pb.CloseRequest) (*pb.CloseResponse, error) {
	s.closed.Store(true)
	if err := s.close(ctx); err != nil {
		return nil, status.Errorf(codes.Internal, "close: %v", err)
	}
	return &pb.CloseResponse{}, nil
}

// close runs the plugin's Close hook once, whoever asks first.
func (s *service) close(ctx context.Context) error {
	var err error
	s.closing.Do(func() {
		if s.p.Close != nil {
			err = protect(func() error { return s.p.Close(ctx) })
		}
	})
	return err
}

// hostGone runs when the host's connection closed. After Close that is
// the host's go-plugin shutdown, which ends Serve normally (and removes the
// socket) unless it takes too long. Otherwise the host exited, crashed or
// was killed: an orphaned plugin must not linger, so it closes, removes its
// socket (nobody else will) and leaves.
func (s *service) hostGone(socket string) {
	if s.closed.Load() {
		time.Sleep(2 * time.Second) // a grace period, not a synchronisation
		os.Exit(0)
	}
	Logger().Warn("host connection closed without Close; exiting")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.close(ctx); err != nil {
		Logger().Error("close failed", "err", err)
	}
	if socket != "" {
		_ = os.Remove(socket)
	}
	os.Exit(0)
}

func protect(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v}
		}
	}()
	return fn()
}

// worker turns one received batch into its reply, reusing its buffers from
// batch to batch (a reply is fully marshalled by the time Send returns).
type worker struct {
	in  []Record
	res pb.Result
	out pb.Records
	st  resultState
}

func (w *worker) handle(ctx context.Context, s *service, b *pb.Batch) *pb.Result {
	res := &w.res
	res.Seq = b.GetSeq()
	res.BatchError = ""
	res.Records = &w.out
	in, err := wire.Decode(b.GetRecords(), w.in)
	w.in = in
	if err != nil {
		return batchFailed(res, fmt.Errorf("sdk: cannot decode batch: %w", err))
	}
	s.batches.Add(1)
	s.records.Add(uint64(len(in)))

	w.st.reset(&w.out, len(in))
	if err := s.run(ctx, in, &w.st); err != nil {
		return batchFailed(res, err)
	}
	if w.st.bad != nil {
		return batchFailed(res, fmt.Errorf("sdk: %w", w.st.bad))
	}
	w.st.finish(res)
	// Only a reply that may be near the limit pays for measuring it.
	if w.st.enc.Bytes() > s.maxMessage/2 {
		if n := proto.Size(res); n > s.maxMessage {
			return batchFailed(res, fmt.Errorf("outputs of this batch take %d bytes, above the %d-byte message limit; lower the node's batch.size or batch.bytes", n, s.maxMessage))
		}
	}
	return res
}

func batchFailed(res *pb.Result, err error) *pb.Result {
	res.BatchError = err.Error()
	res.Records = nil
	res.OutputCounts = res.OutputCounts[:0]
	res.Errors = res.Errors[:0]
	return res
}

// run calls the batch function. A panic cannot be pinned on a record from
// here, so the batch is redone one record at a time: the records that
// panic alone fail, the others keep their outputs.
func (s *service) run(ctx context.Context, in []Record, st *resultState) error {
	var err error
	panicked := false
	func() {
		defer func() {
			if v := recover(); v != nil {
				panicked = true
			}
		}()
		err = s.batch(ctx, in, &Results{st: st, n: len(in)})
	}()
	if !panicked {
		return err
	}
	st.reset(st.enc.Records(), len(in))
	for i := range in {
		k := st.enc.Mark()
		err := protect(func() error { return s.batch(ctx, in[i:i+1], &Results{st: st, base: i, n: 1}) })
		if err != nil {
			st.rewind(i, k)
			st.fail(i, err)
		}
	}
	return nil
}

// perRecord adapts a per-record function; each call is recovered on its
// own, so a panic fails exactly its record.
func perRecord(fn func(context.Context, Record) ([]Record, error)) func(context.Context, []Record, *Results) error {
	return func(ctx context.Context, in []Record, out *Results) error {
		for i := range in {
			if err := ctx.Err(); err != nil {
				return err
			}
			outs, err := callRecord(ctx, fn, in[i])
			if err != nil {
				out.Fail(i, err)
				continue
			}
			for j := range outs {
				out.Emit(i, outs[j])
			}
		}
		return nil
	}
}

func callRecord(ctx context.Context, fn func(context.Context, Record) ([]Record, error), r Record) (outs []Record, err error) {
	defer func() {
		if v := recover(); v != nil {
			outs, err = nil, &PanicError{Value: v}
		}
	}()
	return fn(ctx, r)
}
