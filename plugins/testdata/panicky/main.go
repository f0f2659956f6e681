// Command panicky panics on records whose value contains "poison": the SDK
// must turn that into an error for the record alone.
package main

import (
	"bytes"
	"context"

	"github.com/sluicedev/sluice/plugins/sdk"
)

func main() {
	sdk.Serve(sdk.Plugin{Name: "panicky", Version: "1.0.0", Process: func(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
		if bytes.Contains(r.Value, []byte("poison")) {
			panic("poisoned record")
		}
		return []sdk.Record{r}, nil
	}})
}
