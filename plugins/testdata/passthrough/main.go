// Command passthrough is the plugin the host tests and benchmarks run: it
// returns each record unchanged unless its config asks for more.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sluicedev/sluice/plugins/sdk"
)

type config struct {
	Suffix string `json:"suffix"`  // appended to every value
	FailOn string `json:"fail_on"` // records whose value contains it fail
	Drop   string `json:"drop"`    // records whose value contains it are filtered out
	Dup    string `json:"dup"`     // records whose value contains it come out twice
	Events string `json:"events"`  // file receiving "drain" and "close" lines
}

func (c *config) Validate() error {
	var errs []error
	if len(c.Suffix) > 16 {
		errs = append(errs, sdk.FieldErr("suffix", "at most 16 bytes"))
	}
	if c.FailOn != "" && c.FailOn == c.Drop {
		errs = append(errs, sdk.FieldErr("drop", "must differ from fail_on"))
	}
	return errors.Join(errs...)
}

var cfg config

func main() {
	p := sdk.Plugin{Name: "passthrough", Version: "1.0.0", Process: process, Drain: event("drain"), Close: event("close")}
	// -batch: the same plugin through the batch API (the benchmark runs both).
	if len(os.Args) > 1 && os.Args[1] == "-batch" {
		p.Process, p.ProcessBatch = nil, processBatch
	}
	sdk.Serve(p, sdk.WithConfig(&cfg))
}

func process(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
	v := r.Value
	switch {
	case string(v) == "stderr":
		fmt.Fprintln(os.Stderr, "raw stderr: record", r.Origin.Offset)
	case string(v) == "env":
		r.Value = []byte(strings.Join(os.Environ(), "\n"))
		return []sdk.Record{r}, nil
	case cfg.FailOn != "" && bytes.Contains(v, []byte(cfg.FailOn)):
		return nil, errors.New("refused: value contains " + cfg.FailOn)
	case cfg.Drop != "" && bytes.Contains(v, []byte(cfg.Drop)):
		return nil, nil
	}
	if cfg.Suffix != "" {
		r.Value = append(v[:len(v):len(v)], cfg.Suffix...)
	}
	if cfg.Dup != "" && bytes.Contains(v, []byte(cfg.Dup)) {
		return []sdk.Record{r, r}, nil
	}
	return []sdk.Record{r}, nil
}

func processBatch(_ context.Context, in []sdk.Record, out *sdk.Results) error {
	for i := range in {
		out.Emit(i, in[i])
	}
	return nil
}

func event(name string) func(context.Context) error {
	return func(context.Context) error {
		sdk.Logger().Info("lifecycle event", "event", name)
		if cfg.Events == "" {
			return nil
		}
		f, err := os.OpenFile(cfg.Events, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = f.WriteString(name + "\n")
		return errors.Join(err, f.Close())
	}
}
