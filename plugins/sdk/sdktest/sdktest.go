// Package sdktest tests sluice plugins without a pipeline, through the
// real protocol: records are encoded, sent over gRPC, processed and
// decoded exactly as sluice does it.
//
//	func TestUpper(t *testing.T) {
//		p := sdktest.New(t, plugin) // in-process, over an in-memory connection
//		res := p.Process(sdk.Record{Value: []byte("a")})
//		// res[0].Outputs[0].Value == "A"
//	}
//
// Exec runs a built binary (see Build) as a separate process through
// go-plugin, the way sluice starts it.
package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
	"github.com/sluicedev/sluice/plugins/sdk"
)

// Plugin is a running plugin under test. Its methods fail the test on a
// transport error; what the plugin reports comes back as values.
type Plugin struct {
	t      testing.TB
	rpc    pb.ProcessorClient
	stream pb.Processor_ProcessClient
	cancel context.CancelFunc
	seq    uint64
	pid    int
	stop   func()
}

// Result is what one input record became.
type Result struct {
	Outputs []sdk.Record
	Err     error // the record's failure, as the plugin reported it
}

// Info is what the plugin says about itself.
type Info struct {
	Name, Version, SDK string
	ProtocolVersion    uint32
}

const rpcTimeout = 30 * time.Second

// New serves p in-process over an in-memory connection. It is stopped when
// the test ends.
func New(t testing.TB, p sdk.Plugin, opts ...sdk.Option) *Plugin {
	t.Helper()
	srv, err := sdk.NewServer(p, opts...)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(wire.ServerOptions(wire.DefaultMaxMessage)...)
	pb.RegisterProcessorServer(gs, srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis)
	}()
	dial := append(wire.DialOptions(wire.DefaultMaxMessage),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	conn, err := grpc.NewClient("passthrough:///sdktest", dial...)
	if err != nil {
		t.Fatalf("sdktest: dial: %v", err)
	}
	h := &Plugin{t: t, rpc: pb.NewProcessorClient(conn)}
	h.stop = func() {
		_ = conn.Close()
		gs.Stop()
		<-served
	}
	t.Cleanup(h.Close)
	return h
}

// Build compiles the main package in dir (a path, e.g. "./cmd/myplugin")
// into t.TempDir() and returns the binary's path.
func Build(t testing.TB, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	// Base of the absolute path: Build(t, ".") names the binary after the
	// directory, not ".".
	out := filepath.Join(t.TempDir(), filepath.Base(abs))
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sdktest: go build %s: %v\n%s", dir, err, b)
	}
	return out
}

// Exec starts binary as a separate process, the way sluice does: gRPC
// only, the handshake checked, an environment of env alone. Its log lines
// go to t.Log. It is stopped when the test ends.
func Exec(t testing.TB, binary string, env map[string]string, args ...string) *Plugin {
	t.Helper()
	cmd := exec.Command(binary, args...)
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		Plugins:          goplugin.PluginSet{wire.PluginName: &wire.GRPCPlugin{}},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Cmd:              cmd,
		SkipHostEnv:      true,
		StartTimeout:     rpcTimeout,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: testWriter{t}, Level: hclog.Info}),
		GRPCDialOptions:  wire.DialOptions(wire.DefaultMaxMessage),
	})
	cp, err := client.Client()
	if err != nil {
		client.Kill()
		t.Fatalf("sdktest: starting %s: %v", binary, err)
	}
	raw, err := cp.Dispense(wire.PluginName)
	if err != nil {
		client.Kill()
		t.Fatalf("sdktest: %v", err)
	}
	h := &Plugin{t: t, rpc: raw.(pb.ProcessorClient), stop: client.Kill}
	if rc := client.ReattachConfig(); rc != nil {
		h.pid = rc.Pid
	}
	t.Cleanup(h.Close)
	return h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// Pid is the plugin's process id (0 in-process).
func (h *Plugin) Pid() int { return h.pid }

func (h *Plugin) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), rpcTimeout)
}

// Info calls the plugin's Info.
func (h *Plugin) Info() Info {
	h.t.Helper()
	ctx, cancel := h.ctx()
	defer cancel()
	r, err := h.rpc.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		h.t.Fatalf("sdktest: Info: %v", err)
	}
	return Info{Name: r.GetName(), Version: r.GetVersion(), SDK: r.GetSdk(), ProtocolVersion: r.GetProtocolVersion()}
}

// Configure hands config (encoded as JSON, like a pipeline's `config`
// block) to the plugin. It returns nil or the problems found, joined, each
// a *sdk.FieldError.
func (h *Plugin) Configure(config any) error {
	h.t.Helper()
	js, err := jsonOf(config)
	if err != nil {
		h.t.Fatalf("sdktest: %v", err)
	}
	ctx, cancel := h.ctx()
	defer cancel()
	r, err := h.rpc.Configure(ctx, &pb.ConfigureRequest{ConfigJson: js})
	if err != nil {
		h.t.Fatalf("sdktest: Configure: %v", err)
	}
	var errs []error
	for _, fe := range r.GetErrors() {
		errs = append(errs, &sdk.FieldError{Field: fe.GetField(), Message: fe.GetMessage()})
	}
	return errors.Join(errs...)
}

// Process sends records as one batch and returns what each became.
func (h *Plugin) Process(records ...sdk.Record) []Result {
	h.t.Helper()
	if h.stream == nil {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := h.rpc.Process(ctx)
		if err != nil {
			cancel()
			h.t.Fatalf("sdktest: opening the Process stream: %v", err)
		}
		h.stream, h.cancel = s, cancel
	}
	var enc wire.Encoder
	var recs pb.Records
	enc.Reset(&recs, true)
	for i := range records {
		enc.Add(&records[i])
	}
	enc.Finish()
	h.seq++
	if err := h.stream.Send(&pb.Batch{Seq: h.seq, Records: &recs}); err != nil {
		h.t.Fatalf("sdktest: sending a batch: %v", err)
	}
	res, err := h.stream.Recv()
	if err != nil {
		h.t.Fatalf("sdktest: receiving a result: %v", err)
	}
	if res.GetSeq() != h.seq {
		h.t.Fatalf("sdktest: result for batch %d, want %d", res.GetSeq(), h.seq)
	}
	out, err := decodeResult(res, len(records))
	if err != nil {
		h.t.Fatalf("sdktest: the plugin broke the protocol: %v", err)
	}
	return out
}

func decodeResult(res *pb.Result, n int) ([]Result, error) {
	out := make([]Result, n)
	if msg := res.GetBatchError(); msg != "" {
		for i := range out {
			out[i].Err = errors.New(msg)
		}
		return out, nil
	}
	recs, err := wire.Decode(res.GetRecords(), nil)
	if err != nil {
		return nil, err
	}
	counts := res.GetOutputCounts()
	if len(counts) == 0 {
		if len(recs) != n {
			return nil, fmt.Errorf("%d outputs for %d inputs without output_counts", len(recs), n)
		}
		for i := range out {
			out[i].Outputs = recs[i : i+1 : i+1]
		}
	} else {
		if len(counts) != n {
			return nil, fmt.Errorf("%d output_counts for %d inputs", len(counts), n)
		}
		o := 0
		for i, c := range counts {
			if o+int(c) > len(recs) {
				return nil, fmt.Errorf("output_counts exceed the %d outputs", len(recs))
			}
			out[i].Outputs = recs[o : o+int(c) : o+int(c)]
			o += int(c)
		}
	}
	for _, e := range res.GetErrors() {
		if int(e.GetIndex()) >= n {
			return nil, fmt.Errorf("error for record %d of %d", e.GetIndex(), n)
		}
		out[e.GetIndex()].Err = errors.New(e.GetMessage())
	}
	return out, nil
}

// Drain ends the Process stream and calls Drain, as sluice does before
// stopping a plugin. It returns the plugin's error, if any.
func (h *Plugin) Drain() error {
	h.t.Helper()
	if h.stream != nil {
		if err := h.stream.CloseSend(); err != nil {
			h.t.Fatalf("sdktest: closing the stream: %v", err)
		}
		// The plugin ends its side once it answered everything.
		for {
			if _, err := h.stream.Recv(); err != nil {
				break
			}
		}
		h.cancel()
		h.stream = nil
	}
	ctx, cancel := h.ctx()
	defer cancel()
	_, err := h.rpc.Drain(ctx, &pb.DrainRequest{})
	return err
}

// Close calls the plugin's Close and stops it. Safe to call twice.
func (h *Plugin) Close() {
	if h.stop == nil {
		return
	}
	if h.cancel != nil {
		h.cancel()
	}
	ctx, cancel := h.ctx()
	defer cancel()
	_, _ = h.rpc.Close(ctx, &pb.CloseRequest{})
	h.stop()
	h.stop = nil
}

func jsonOf(v any) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("config cannot be encoded as JSON: %w", err)
	}
	return js, nil
}
