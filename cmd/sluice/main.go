// Command sluice runs, checks and draws stream-processing pipelines
// described in YAML.
//
//	sluice run pipeline.yaml
//	sluice validate pipeline.yaml
//	sluice graph pipeline.yaml --format mermaid
//	sluice version
//
// Exit codes: 0 success (including a clean drain after SIGINT/SIGTERM),
// 1 runtime failure (a record failed, drain timeout, a second signal 1s
// or more after the first), 2 usage or configuration error.
package main

import (
	"context"
	"os"
	"runtime/debug"
)

func main() {
	// The hot path allocates batches whose lifetime is short and whose live
	// set is bounded by the edges' capacity: a larger GC target trades a
	// few megabytes for far fewer collections. GOGC still wins when set.
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(400)
	}
	os.Exit(execute(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
