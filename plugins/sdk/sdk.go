// Package sdk writes sluice plugins in Go: stages that run as separate
// processes, started and supervised by sluice (a node of `type: plugin`).
//
// A whole plugin:
//
//	func main() {
//		sdk.Serve(sdk.Plugin{Name: "upper", Version: "1.0.0",
//			Process: func(ctx context.Context, r sdk.Record) ([]sdk.Record, error) {
//				r.Value = bytes.ToUpper(r.Value)
//				return []sdk.Record{r}, nil
//			}})
//	}
//
// Process is called once per record and returns zero or more outputs or an
// error failing only that record; a panic fails only that record too. For
// speed, ProcessBatch handles a whole batch at once. Typed config comes
// with WithConfig. Test with package sdktest. docs/plugins.md has the rest.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// Record is one message, the same type sluice stages see. Outputs keep
// their input's Origin whatever the plugin sets, and an output with a zero
// Timestamp gets its input's.
type Record = flow.Record

// Header is one record header.
type Header = flow.Header

// Origin says where a record came from (read-only for plugins).
type Origin = flow.Origin

// Plugin describes a plugin. Set exactly one of Process and ProcessBatch.
type Plugin struct {
	Name    string
	Version string

	// Process handles one record: zero outputs filter it out; an error
	// fails only this record (it goes to the node's on_error policy).
	Process func(ctx context.Context, r Record) ([]Record, error)

	// ProcessBatch handles a batch. in is valid only during the call (its
	// records' bytes stay valid). Outputs and failures go to out, in input
	// order. Returning an error fails every record of the batch; a panic is
	// narrowed down by calling ProcessBatch again one record at a time.
	ProcessBatch func(ctx context.Context, in []Record, out *Results) error

	// Drain, optional, runs when the host will send no more batches and
	// every batch was answered: flush what the plugin buffers elsewhere.
	Drain func(ctx context.Context) error

	// Close, optional, releases resources before the process ends. It
	// also runs when the plugin finds its host gone (on Linux sluice has
	// the kernel kill its plugins when it dies, and then nothing runs).
	Close func(ctx context.Context) error
}

// Option configures Serve.
type Option func(*options)

type options struct {
	config any
}

// WithConfig decodes the node's `config` block (as JSON, unknown fields
// refused) into target, a pointer to a struct, before any record arrives.
// If target has a method `Validate() error` it runs next; return
// FieldErr values (joined with errors.Join for several) so `sluice
// validate` points at config.<field> in the pipeline file.
func WithConfig(target any) Option { return func(o *options) { o.config = target } }

// FieldError is a problem with one config field.
type FieldError struct {
	Field   string // dotted path below `config`; "" for the config as a whole
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// FieldErr returns a *FieldError for field.
func FieldErr(field, message string) error { return &FieldError{Field: field, Message: message} }

// PanicError is a recovered panic in plugin code, failing one record.
type PanicError struct{ Value any }

func (e *PanicError) Error() string { return fmt.Sprintf("plugin panic: %v", e.Value) }

// NewServer returns the gRPC service a plugin serves. Serve uses it; so do
// sdktest and hosts that embed a plugin in their own gRPC server.
func NewServer(p Plugin, opts ...Option) (pb.ProcessorServer, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return newService(p, o)
}

// Serve runs the plugin until the host stops it. It must be called from
// main, and nothing may be written to stdout before it: go-plugin's
// handshake line goes there. SIGINT, SIGTERM and SIGPIPE are ignored (the
// host drains plugins itself); the process leaves when the host says so or
// when the host's connection closes.
func Serve(p Plugin, opts ...Option) {
	srv, err := NewServer(p, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice plugin:", err)
		os.Exit(1)
	}
	maxMsg := wire.DefaultMaxMessage
	if v, err := strconv.Atoi(os.Getenv(wire.EnvMaxMessage)); err == nil && v > 0 {
		maxMsg = v
	}
	s := srv.(*service)
	s.maxMessage = maxMsg
	// A terminal's Ctrl-C or systemd's SIGTERM reaches the whole process
	// group; the host must get to drain its plugins before they leave.
	// SIGPIPE: once the host is gone, a log line to the dead stderr pipe
	// would kill the plugin before its Close hook ran.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	watch := &hostWatch{gone: s.hostGone}
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: wire.Handshake,
		Plugins:         goplugin.PluginSet{wire.PluginName: &wire.GRPCPlugin{Impl: srv}},
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			o = append(o, wire.ServerOptions(maxMsg)...)
			o = append(o, grpc.StatsHandler(watch))
			return grpc.NewServer(o...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "go-plugin",
			Level:      hclog.Info,
			Output:     stderr,
			JSONFormat: true,
		}),
	})
}

var errNoFunc = errors.New("set exactly one of Plugin.Process and Plugin.ProcessBatch")
