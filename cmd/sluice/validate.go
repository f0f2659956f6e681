package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func newValidateCmd() *cobra.Command {
	var (
		sets    []string
		plugins string
		dev     bool
	)
	cmd := &cobra.Command{
		Use:   "validate [flags] pipeline.yaml",
		Short: "Check a pipeline file without running it",
		Long: `validate loads the pipeline, applies --set overrides and the environment,
and builds every node without starting it. It prints "ok: NAME (...)" or
every problem as file:line:col: message, and exits 2 on any problem.`,
		Args: onePipeline,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := config.Options{
				Sets:    sets,
				Environ: os.Environ(),
				// As run would: a malformed listen address is a config error.
				BeforeBuild: func(f *config.File, _ *registry.Env) ([]flow.Option, error) {
					_, err := httpConfig(f)
					return nil, err
				},
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			env := newEnv(cmd.Context(), pluginsDir(plugins, os.Getenv), log)
			if dev {
				// As `run --dev` would: kafka nodes without brokers use the dev broker.
				env.DevBrokers = []string{devBrokerAddr}
			}
			compiled, err := config.Compile(args[0], opts, env)
			if err != nil {
				return err
			}
			if err := compiled.Close(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), summary(compiled.File))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a config value, `path=value` (repeatable)")
	cmd.Flags().BoolVar(&dev, "dev", false, "validate as `run --dev` would (kafka nodes without brokers use the dev broker)")
	cmd.Flags().StringVar(&plugins, "plugins-dir", "", "directory of plugin binaries (default $SLUICE_PLUGIN_DIR, else ./plugins.d)")
	return cmd
}

// summary is validate's success line.
func summary(f *config.File) string {
	var n [3]int
	for _, nd := range f.Nodes {
		switch nd.Kind {
		case flow.KindSource:
			n[0]++
		case flow.KindStage:
			n[1]++
		default:
			n[2]++
		}
	}
	return fmt.Sprintf("ok: %s (%s, %s, %s)", f.Name, plural(n[0], "source"), plural(n[1], "stage"), plural(n[2], "sink"))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
