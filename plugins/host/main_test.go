package host_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/host"
	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// The test plugins, built once by TestMain: name -> executable.
var plugins = map[string]string{}

var testPlugins = []string{"passthrough", "panicky", "crashy", "hangy", "naive"}

// envHostMode makes the test binary act as a bare plugin host (see
// hostMode), so a test can kill a host and watch its plugin.
const envHostMode = "SLUICE_PLUGIN_TEST_HOST"

func TestMain(m *testing.M) {
	if bin := os.Getenv(envHostMode); bin != "" {
		hostMode(bin)
		return
	}
	dir, err := os.MkdirTemp("", "sluice-test-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, p := range testPlugins {
		args = append(args, "../testdata/"+p)
		plugins[p] = filepath.Join(dir, p)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building test plugins: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// envBareHost makes hostMode start the plugin with go-plugin alone: no
// process group, no parent-death signal, so only the SDK's own guard can
// end the plugin when the host dies.
const envBareHost = "SLUICE_PLUGIN_TEST_BARE"

// envEvents names the events file the bare host configures the plugin with.
const envEvents = "SLUICE_PLUGIN_TEST_EVENTS"

// hostMode starts a plugin, prints its pid and waits to be killed.
func hostMode(bin string) {
	pid := 0
	if os.Getenv(envBareHost) != "" {
		client := goplugin.NewClient(&goplugin.ClientConfig{
			HandshakeConfig:  wire.Handshake,
			Plugins:          goplugin.PluginSet{wire.PluginName: &wire.GRPCPlugin{}},
			AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
			Cmd:              exec.Command(bin),
			SkipHostEnv:      true,
			Logger:           hclog.NewNullLogger(),
		})
		cp, err := client.Client()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		raw, err := cp.Dispense(wire.PluginName)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		js := fmt.Appendf(nil, `{"events": %q}`, os.Getenv(envEvents))
		if _, err := raw.(pb.ProcessorClient).Configure(context.Background(), &pb.ConfigureRequest{ConfigJson: js}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pid = client.ReattachConfig().Pid
	} else {
		st, err := host.New(context.Background(), host.Config{Path: bin, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pid = st.Pids()[0]
	}
	fmt.Printf("pid %d\n", pid)
	time.Sleep(time.Hour)
}

// alive reports whether pid is a live process (a zombie counts as gone).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The state follows the parenthesised command name.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// source emits records whose values come from value(i), in batches of
// size, with offset i.
type source struct {
	n, size    int
	partitions int // records go round-robin to this many partitions (default 1)
	value      func(i int) string

	acked, failed atomic.Int64
}

func values(n int, special map[int]string) func(int) string {
	return func(i int) string {
		if v, ok := special[i]; ok {
			return v
		}
		return "r" + strconv.Itoa(i)
	}
}

func (s *source) Run(ctx context.Context, out flow.Emitter) error {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < s.n; i += s.size {
		end := min(i+s.size, s.n)
		recs := make([]flow.Record, 0, end-i)
		for j := i; j < end; j++ {
			recs = append(recs, flow.Record{
				Key:       []byte("k" + strconv.Itoa(j)),
				Value:     []byte(s.value(j)),
				Headers:   []flow.Header{{Key: "n", Value: []byte(strconv.Itoa(j))}},
				Timestamp: base.Add(time.Duration(j) * time.Millisecond),
				Origin:    flow.Origin{Source: "src", Topic: "in", Partition: int32(j % max(s.partitions, 1)), Offset: int64(j)},
			})
		}
		n := int64(len(recs))
		ack := flow.NewAck(func(err error) {
			if err != nil {
				s.failed.Add(n)
				return
			}
			s.acked.Add(n)
		})
		if err := out.Emit(ctx, flow.NewBatch(recs, ack)); err != nil {
			return nil
		}
	}
	return nil
}

// sink keeps every record written; hook, when set, runs after each write.
type sink struct {
	mu   sync.Mutex
	recs []flow.Record
	hook func(total int)
}

func (s *sink) Write(_ context.Context, recs []flow.Record) error {
	s.mu.Lock()
	s.recs = append(s.recs, recs...)
	total := len(s.recs)
	s.mu.Unlock()
	if s.hook != nil {
		s.hook(total)
	}
	return nil
}

func (s *sink) records() []flow.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]flow.Record(nil), s.recs...)
}

func (s *sink) values() []string {
	var vs []string
	for _, r := range s.records() {
		vs = append(vs, string(r.Value))
	}
	return vs
}

// logs collects log records for assertions and is quiet otherwise.
type logs struct {
	mu   sync.Mutex
	recs []string
	with []slog.Attr
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }

func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range l.with {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}

func (l *logs) WithAttrs(as []slog.Attr) slog.Handler {
	return &logsView{root: l, with: append(append([]slog.Attr(nil), l.with...), as...)}
}

func (l *logs) WithGroup(string) slog.Handler { return l }

func (l *logs) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.recs...)
}

func (l *logs) find(parts ...string) string {
	for _, line := range l.lines() {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return line
		}
	}
	return ""
}

// logsView is logs with attributes added by With.
type logsView struct {
	root *logs
	with []slog.Attr
}

func (v *logsView) Enabled(context.Context, slog.Level) bool { return true }
func (v *logsView) Handle(ctx context.Context, r slog.Record) error {
	r2 := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r2.AddAttrs(v.with...)
	r.Attrs(func(a slog.Attr) bool { r2.AddAttrs(a); return true })
	return v.root.Handle(ctx, r2)
}
func (v *logsView) WithAttrs(as []slog.Attr) slog.Handler {
	return &logsView{root: v.root, with: append(append([]slog.Attr(nil), v.with...), as...)}
}
func (v *logsView) WithGroup(string) slog.Handler { return v }

// newStage starts a plugin stage and makes sure it is closed.
func newStage(t *testing.T, cfg host.Config) (*host.Stage, *logs) {
	t.Helper()
	l := &logs{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(l).With("node", "plugin")
	}
	st, err := host.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("host.New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = st.Close(ctx)
	})
	return st, l
}

// run pipes src through st into out; failed records go to dlq when it is
// given, else they fail the run.
func run(t *testing.T, st flow.Stage, src *source, out, dlq *sink) error {
	t.Helper()
	pol := flow.ErrorPolicy{Action: flow.ActionFail}
	if dlq != nil {
		pol = flow.ErrorPolicy{Action: flow.ActionDeadLetter, DeadLetter: "dlq"}
	}
	p := flow.New("test", flow.WithDrainTimeout(30*time.Second), flow.WithLogger(slog.New(slog.DiscardHandler))).
		Source("src", src).
		Stage("plugin", st, flow.Inputs("src"), flow.OnError(pol)).
		Sink("out", out, flow.Inputs("plugin"))
	if dlq != nil {
		p.Sink("dlq", dlq)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return p.Run(ctx)
}
