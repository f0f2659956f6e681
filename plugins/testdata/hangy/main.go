// Command hangy never returns on records whose value contains "hang", not
// even when its context ends: the host's timeout must kill it.
package main

import (
	"bytes"
	"context"

	"github.com/sluicedev/sluice/plugins/sdk"
)

func main() {
	sdk.Serve(sdk.Plugin{Name: "hangy", Version: "1.0.0", Process: func(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
		if bytes.Contains(r.Value, []byte("hang")) {
			select {}
		}
		return []sdk.Record{r}, nil
	}})
}
