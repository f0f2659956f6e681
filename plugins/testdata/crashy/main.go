// Command crashy exits with status 3 on records whose value contains
// "crash": the host must restart it and isolate the record.
package main

import (
	"bytes"
	"context"
	"os"

	"github.com/sluicedev/sluice/plugins/sdk"
)

func main() {
	sdk.Serve(sdk.Plugin{Name: "crashy", Version: "1.0.0", Process: func(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
		if bytes.Contains(r.Value, []byte("crash")) {
			os.Exit(3)
		}
		return []sdk.Record{r}, nil
	}})
}
