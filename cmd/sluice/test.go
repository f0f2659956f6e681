package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicedev/sluice/pipelinetest"
)

func newTestCmd() *cobra.Command {
	var (
		plugins string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "test [flags] file.test.yaml",
		Short: "Run a pipeline's unit tests: records in, records expected out",
		Long: `test runs the cases of a test file against the pipeline it names. Each case
builds the pipeline afresh with its sources replaced by the case's inputs
and its sinks by collectors, runs the stages as configured (plugins too),
and compares what every listed sink got with what the case expects. A
failing case prints a diff per sink: "-" missing, "+" extra, "~" changed.

The pipeline sees only the environment the test file's env gives.

Exit codes: 0 every case passed, 1 a case failed, 2 the test file or the
pipeline has a problem (printed as file:line:col: message).`,
		Example: `  sluice test configs/tests/even-doubled.test.yaml
  sluice test -v --plugins-dir ./bin pipeline.test.yaml`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("%s takes one test file, got %d arguments; usage: %s", cmd.Name(), len(args), cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTests(cmd.Context(), args[0], pluginsDir(plugins, os.Getenv), verbose, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&plugins, "plugins-dir", "", "directory of plugin binaries (default $SLUICE_PLUGIN_DIR, else ./plugins.d)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing cases too, and show the pipeline's logs on stderr")
	return cmd
}

func runTests(ctx context.Context, path, plugins string, verbose bool, stdout, stderr io.Writer) error {
	suite, err := pipelinetest.Load(path)
	if err != nil {
		return err
	}
	// A case expecting a failure logs it; that is noise unless asked for.
	log := slog.New(slog.DiscardHandler)
	if verbose {
		log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	// An interrupt drains the running case, so plugin processes are stopped.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := suite.Run(ctx, newEnv(ctx, plugins, log))
	if err != nil {
		return err
	}
	report.Write(stdout, verbose)
	if n := report.Failed(); n > 0 {
		return &reportedError{code: exitRuntime, err: fmt.Errorf("%d of %d cases failed", n, len(report.Results))}
	}
	return nil
}
