package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/ops"
	"github.com/sluicedev/sluice/registry"
)

// httpStopTimeout bounds how long requests in flight (a scrape, a pprof
// profile) may hold up the exit after the pipeline ended.
const httpStopTimeout = 2 * time.Second

type runFlags struct {
	sets       []string
	logs       logFlags
	pluginsDir string
	dev        bool
	progress   string
}

func newRunCmd() *cobra.Command {
	var fl runFlags
	cmd := &cobra.Command{
		Use:   "run [flags] pipeline.yaml",
		Short: "Run a pipeline until its sources end or a signal drains it",
		Long: `run builds the pipeline and runs it. A finite pipeline (every source ends)
exits 0 once everything was written. The first SIGINT or SIGTERM stops the
sources and drains in-flight records to the sinks within
settings.drain_timeout, then exits 0. A second signal, 1s or more after
the first, exits 1 at once; one sooner is taken as a copy of the first
(GNU timeout and a terminal's Ctrl-C can deliver one signal twice) and
ignored.

Exit codes: 0 success, 1 runtime failure (a record failed under
on_error: fail, drain timeout, second signal), 2 usage or config error.`,
		Example: `  sluice run pipeline.yaml
  sluice run --set sources.gen.count=1000 --log-format json pipeline.yaml
  sluice run --dev kafka-demo.yaml`,
		Args: onePipeline,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPipeline(cmd.Context(), args[0], fl, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&fl.sets, "set", nil, "override a config value, `path=value` (repeatable; e.g. sources.gen.count=10)")
	addLogFlags(cmd, &fl.logs)
	f.StringVar(&fl.pluginsDir, "plugins-dir", "", "directory of plugin binaries (default $SLUICE_PLUGIN_DIR, else ./plugins.d)")
	f.BoolVar(&fl.dev, "dev", false, "start an embedded Kafka broker on "+devBrokerAddr+" for Kafka nodes that name no brokers")
	f.StringVar(&fl.progress, "progress", "auto", "live per-node progress on stderr: auto (when stderr is a terminal), always or never")
	return cmd
}

func addLogFlags(cmd *cobra.Command, fl *logFlags) {
	cmd.Flags().StringVar(&fl.format, "log-format", "text", "log format on stderr: text or json")
	cmd.Flags().StringVar(&fl.level, "log-level", "info", "log level: debug, info, warn or error")
}

// pluginsDir picks the plugin directory: flag, then environment, then
// ./plugins.d.
func pluginsDir(flag string, getenv func(string) string) string {
	if flag != "" {
		return flag
	}
	if d := getenv("SLUICE_PLUGIN_DIR"); d != "" {
		return d
	}
	return "plugins.d"
}

// newEnv is what every Build is given. Compile sets its BaseDir (the
// pipeline file's directory).
func newEnv(ctx context.Context, plugins string, log *slog.Logger) *registry.Env {
	// Like PATH: several directories separated by the OS list separator.
	return &registry.Env{Context: ctx, Logger: log, PluginDirs: filepath.SplitList(plugins)}
}

func runPipeline(ctx context.Context, path string, fl runFlags, stderr io.Writer) (err error) {
	showProgress, err := progressWanted(fl.progress, stderr)
	if err != nil {
		return err
	}
	var term *liveTerm
	logOut := stderr
	if showProgress {
		term = newLiveTerm(stderr, termWidth(stderr))
		logOut = term
	}
	direct, err := newLogger(logOut, fl.logs)
	if err != nil {
		return err
	}
	// Until the pipeline is built, log records are held back: a run that
	// stops at a config error prints only the errors (and the warnings
	// validate would print), nothing of what was started and closed on
	// the way.
	hold := &logHold{}
	defer func() {
		level := allLevels
		var cfg config.Errors
		if errors.As(err, &cfg) {
			level = slog.LevelWarn
		}
		hold.release(level) // if still held: the run stopped before it began
	}()
	log := slog.New(hold.handler(direct.Handler()))
	slog.SetDefault(log) // libraries and components without an Env logger

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	// Signals are reported at once, held logs or not.
	stopSignals := watchSignals(sigs, cancel, func() { os.Exit(exitRuntime) }, direct)
	defer stopSignals()

	// Started once the file is checked, before anything is built, and
	// stopped when the run ends, in the reverse order.
	var (
		srv     *ops.Server
		stopDev func()
	)
	defer func() {
		if stopDev != nil {
			stopDev()
		}
		if srv != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpStopTimeout)
			defer cancel()
			if err := srv.Stop(stopCtx); err != nil {
				log.Warn("http listener stopped with requests in flight", "err", err)
			}
		}
	}()
	beforeBuild := func(f *config.File, env *registry.Env) ([]flow.Option, error) {
		httpCfg, err := httpConfig(f)
		if err != nil {
			return nil, err
		}
		var buildOpts []flow.Option
		if httpCfg.Enabled() {
			// Bound before anything is built: a busy port fails at once.
			s, err := ops.Listen(ctx, httpCfg, log)
			switch {
			case errors.Is(err, ops.ErrAddrInUse) && httpCfg.Listen == ops.DefaultListen:
				// The default port is a convenience, not a requirement: a
				// second pipeline on this host runs without a listener.
				log.Warn("http listener off: the default port is taken; set settings.http.listen to serve metrics", "err", err)
			case err != nil:
				return nil, err
			default:
				srv = s
				buildOpts = append(buildOpts, flow.WithObserver(srv.Observer()))
			}
		}
		if fl.dev {
			stop, err := startDevBroker(ctx, devBrokerAddr, kafkaTopics(f), log)
			if err != nil {
				return nil, err
			}
			stopDev = stop
			env.DevBrokers = []string{devBrokerAddr}
		}
		return buildOpts, nil
	}
	opts := config.Options{Sets: fl.sets, Environ: os.Environ(), BeforeBuild: beforeBuild}
	compiled, err := config.Compile(path, opts, newEnv(ctx, pluginsDir(fl.pluginsDir, os.Getenv), log))
	if err != nil {
		return err
	}
	p := compiled.Pipeline
	hold.release(allLevels)
	if srv != nil {
		srv.Serve(p)
	}

	log.Info("pipeline running", "pipeline", p.Name(), "file", path, "nodes", len(p.Nodes()))
	if term != nil && fl.progress != "always" && writesRecordsToTerminal(compiled.File) {
		// Records printed by a stdout sink do not pass through the live
		// block's writer, so the block would erase them: in auto mode the
		// records win, and the block stays off.
		log.Debug("live progress off: a stdout sink writes to this terminal")
		term = nil
	}
	if term != nil {
		stopProgress := startProgress(term, p.Stats, progressInterval)
		err = p.Run(ctx)
		stopProgress()
	} else {
		err = p.Run(ctx)
	}
	if err != nil {
		log.Error("pipeline failed", "pipeline", p.Name(), "err", err)
		return &reportedError{code: exitRuntime, err: err}
	}
	if ctx.Err() != nil {
		log.Info("pipeline drained after signal", "pipeline", p.Name())
	} else {
		log.Info(finishedMessage(p.Stats()), "pipeline", p.Name())
	}
	return nil
}

// finishedMessage says how a finite run ended: "all records were written"
// only when no record was skipped or dead-lettered on the way.
func finishedMessage(stats []*flow.NodeStats) string {
	var skipped, dead int64
	var where []string
	for _, st := range stats {
		s, d := st.Skipped.Load(), st.DeadLettered.Load()
		if s+d > 0 {
			where = append(where, st.ID)
		}
		skipped += s
		dead += d
	}
	if skipped+dead == 0 {
		return "pipeline finished: every source ended and all records were written"
	}
	return fmt.Sprintf("pipeline finished: every source ended; %d records were skipped and %d dead-lettered under on_error (at %s), the rest were written",
		skipped, dead, strings.Join(where, ", "))
}

// httpConfig reads settings.http. A bad value is a config error at the
// place it was written (or the override that set it).
func httpConfig(f *config.File) (ops.Config, error) {
	cfg, err := ops.ConfigFrom(f.Settings)
	var bad *ops.SettingError
	if errors.As(err, &bad) {
		return cfg, config.Errors{{Pos: f.Pos("settings.http." + bad.Key), Msg: err.Error()}}
	}
	return cfg, err
}
