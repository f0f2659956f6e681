// Package builtin compiles in every component that ships with sluice. Each
// imported package registers its types with registry in init; import
// this package (blank) to get them all:
//
//	import _ "github.com/sluicedev/sluice/builtin"
//
// To add a connector or stage: write its package, declare it with
// registry.Declare in init, and add the import here (docs/architecture.md).
package builtin

import (
	// Connectors.
	_ "github.com/sluicedev/sluice/connectors/discard"
	_ "github.com/sluicedev/sluice/connectors/file"
	_ "github.com/sluicedev/sluice/connectors/generate"
	_ "github.com/sluicedev/sluice/connectors/kafka"

	// Stages.
	_ "github.com/sluicedev/sluice/stages"

	// Plugin stages (type: plugin).
	_ "github.com/sluicedev/sluice/plugins/host"
)
