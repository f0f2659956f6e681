package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// process is one running plugin process. A process that failed is never
// reused: go-plugin cannot restart a Client, so a restart is a new process.
type process struct {
	client *goplugin.Client
	hlog   *hclogSlog
	rpc    pb.ProcessorClient
	run    *procRunner
	info   *pb.InfoResponse
	log    *slog.Logger
}

// ConfigError lists the problems the plugin found in its config.
type ConfigError struct {
	Errors []*pb.FieldError
}

func (e *ConfigError) Error() string {
	msg := "plugin rejected its config:"
	for _, fe := range e.Errors {
		if fe.GetField() != "" {
			msg += fmt.Sprintf(" config.%s: %s;", fe.GetField(), fe.GetMessage())
		} else {
			msg += " config: " + fe.GetMessage() + ";"
		}
	}
	return msg[:len(msg)-1]
}

// configEncodingError is a config that JSON cannot carry.
type configEncodingError struct{ err error }

func (e *configEncodingError) Error() string {
	return "config cannot be encoded as JSON: " + e.err.Error()
}
func (e *configEncodingError) Unwrap() error { return e.err }

// launcher starts processes of one stage.
type launcher struct {
	cfg        *Config
	env        []string
	configJSON []byte
	maxMessage int
}

func newLauncher(cfg *Config) (*launcher, error) {
	js, err := json.Marshal(cfg.Config)
	if err != nil {
		return nil, &configEncodingError{err}
	}
	l := &launcher{cfg: cfg, configJSON: js, maxMessage: cfg.maxMessage()}
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		l.env = append(l.env, k+"="+cfg.Env[k])
	}
	l.env = append(l.env, wire.EnvMaxMessage+"="+strconv.Itoa(l.maxMessage))
	return l, nil
}

// start launches a process and runs Info and Configure. A *ConfigError
// means the plugin runs but refused its config.
func (l *launcher) start(ctx context.Context) (*process, error) {
	p, err := l.spawn(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.StartTimeout)
	defer cancel()
	res, err := p.rpc.Configure(ctx, &pb.ConfigureRequest{ConfigJson: l.configJSON})
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("plugin %s: Configure: %w", l.cfg.Path, err)
	}
	if len(res.GetErrors()) > 0 {
		p.kill()
		return nil, &ConfigError{Errors: res.GetErrors()}
	}
	info := p.info
	p.log.Debug("plugin started", "pid", p.pid(), "name", info.GetName(), "version", info.GetVersion(), "sdk", info.GetSdk())
	return p, nil
}

// spawn launches a process and runs Info: a plugin of this protocol
// version, not configured yet.
func (l *launcher) spawn(ctx context.Context) (*process, error) {
	cfg := l.cfg
	if cfg.SHA256 != "" {
		if err := checkSHA256(cfg.Path, cfg.SHA256); err != nil {
			return nil, err
		}
	}
	log := cfg.Logger.With("plugin", cfg.Name)
	var run *procRunner
	hlog := newHclog(log)
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		Plugins:          goplugin.PluginSet{wire.PluginName: &wire.GRPCPlugin{}},
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
			// spec.Env holds go-plugin's handshake variables only
			// (SkipHostEnv): the node's env goes first, the protocol's last.
			env := append(append([]string(nil), l.env...), spec.Env...)
			r, err := newProcRunner(cfg.Path, cfg.Args, env)
			run = r
			return r, err
		},
		SkipHostEnv:         true,
		StartTimeout:        cfg.StartTimeout,
		Logger:              hlog,
		PluginLogBufferSize: logBufferSize,
		SyncStdout:          &lineLog{log: log, msg: "plugin stdout"},
		SyncStderr:          &lineLog{log: log, msg: "plugin stderr"},
		GRPCDialOptions:     wire.DialOptions(l.maxMessage),
	})
	p := &process{client: client, log: log, hlog: hlog}
	fail := func(err error) (*process, error) {
		p.run = run
		p.kill()
		return nil, err
	}
	cp, err := client.Client()
	if err != nil {
		p.run = run
		// go-plugin killed the process if it was still up; this kill also
		// ends its group and waits until go-plugin reaped it, so the exit
		// status and the whole of stderr are known.
		p.kill()
		if run != nil {
			if why := run.startFailure(time.Second); why != "" {
				// After go-plugin's text, whose first line callers show
				// alone (`sluice plugins list`).
				return nil, fmt.Errorf("starting plugin %s: %w\n%s", cfg.Path, err, why)
			}
		}
		return nil, fmt.Errorf("starting plugin %s: %w", cfg.Path, err)
	}
	p.run = run
	raw, err := cp.Dispense(wire.PluginName)
	if err != nil {
		return fail(fmt.Errorf("plugin %s: %w", cfg.Path, err))
	}
	p.rpc = raw.(pb.ProcessorClient)

	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	info, err := p.rpc.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return fail(fmt.Errorf("plugin %s: Info: %w", cfg.Path, err))
	}
	if info.GetProtocolVersion() != wire.ProtocolVersion {
		return fail(fmt.Errorf("plugin %s speaks protocol version %d, this sluice speaks %d: rebuild it against this sluice's SDK",
			cfg.Path, info.GetProtocolVersion(), wire.ProtocolVersion))
	}
	p.info = info
	return p, nil
}

func (p *process) pid() int {
	if p.run == nil {
		return 0
	}
	return p.run.pid
}

// kill ends the process and its children at once, then lets go-plugin
// clean up (its Kill waits for the exit and the log pipes).
func (p *process) kill() {
	p.hlog.killing.Store(true)
	if p.run != nil {
		_ = killGroup(p.run.pid)
	}
	p.client.Kill()
}

// exitReason describes why the process is gone: its exit status once it
// was reaped (waiting up to wait for that), else fallback.
func (p *process) exitReason(wait time.Duration, fallback string) string {
	if p.run == nil {
		return fallback
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.run.exited:
		return p.run.exitStatus()
	case <-t.C:
		return fallback
	}
}

// shutdown is the graceful end: Drain and Close under ctx, then
// go-plugin's Kill (its controller Shutdown, then a SIGKILL after 2 s),
// then the process group for anything the plugin left behind.
func (p *process) shutdown(ctx context.Context) error {
	var errs []error
	res, err := p.rpc.Drain(ctx, &pb.DrainRequest{})
	if err != nil {
		errs = append(errs, rpcEndErr(ctx, "Drain", err))
	} else {
		p.log.Debug("plugin drained", "batches", res.GetBatches(), "records", res.GetRecords())
		if _, err := p.rpc.Close(ctx, &pb.CloseRequest{}); err != nil {
			errs = append(errs, rpcEndErr(ctx, "Close", err))
		}
	}
	// go-plugin's graceful exit waits up to 2 s, beyond our control: skip
	// it when the deadline is closer or the plugin already misbehaved.
	if dl, ok := ctx.Deadline(); len(errs) > 0 || ctx.Err() != nil || ok && time.Until(dl) < 2500*time.Millisecond {
		p.kill()
		return errors.Join(errs...)
	}
	p.client.Kill()
	if p.run != nil {
		_ = killGroup(p.run.pid)
	}
	return errors.Join(errs...)
}

// rpcEndErr says which shutdown call failed and, when the deadline was the
// cause, that the plugin was waited for until then.
func rpcEndErr(ctx context.Context, call string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s not answered before the drain deadline: %w", call, err)
	}
	return fmt.Errorf("%s: %w", strings.ToLower(call), err)
}
