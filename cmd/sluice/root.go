package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// execute runs the command line and returns the process exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	reportError(stderr, err)
	return exitCode(err)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "sluice",
		Short: "Run stream-processing pipelines described in YAML",
		Long: `sluice runs a pipeline: a graph of sources, stages and sinks described in a
YAML file. Records flow in batches on bounded edges; every source is
acknowledged only once its records reached every sink. SIGINT or SIGTERM
drains the pipeline within settings.drain_timeout; a second signal, 1s or
more after the first, exits at once.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Without Args, cobra reports unknown subcommands as ordinary
		// errors; this makes them usage errors (exit 2).
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(" (did you mean %q?)", s[0])
			}
			return usageErrorf("%s; run 'sluice --help'", msg)
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SuggestionsMinimumDistance = 2
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageErrorf("%v; run '%s --help'", err, cmd.CommandPath())
	})
	root.AddCommand(newRunCmd(), newValidateCmd(), newTestCmd(), newGraphCmd(), newSchemaCmd(), newDocsCmd(), newPluginCmd(), newVersionCmd())
	return root
}

// onePipeline is the Args check of commands taking one pipeline file.
func onePipeline(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageErrorf("%s takes one pipeline file, got %d arguments; usage: %s", cmd.Name(), len(args), cmd.UseLine())
	}
	return nil
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
