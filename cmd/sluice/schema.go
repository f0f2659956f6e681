package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/sluicedev/sluice/registry"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of pipeline YAML files",
		Long: `schema prints a JSON Schema (draft 2020-12) of the pipeline YAML, generated
from the same component declarations the validator uses. Point your editor's
YAML language server at it, e.g. first line of a pipeline file:
  # yaml-language-server: $schema=./sluice.schema.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(registry.Schema())
		},
	}
}

func newDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "docs",
		Short: "Print the component reference as Markdown (docs/components.md)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return registry.WriteMarkdown(cmd.OutOrStdout())
		},
	}
}
