package pipelinetest

import (
	"fmt"
	"io"
	"strings"

	"github.com/sluicedev/sluice/config"
)

// Result is the outcome of one case.
type Result struct {
	Name string
	Pos  config.Pos
	// Failure says what went wrong, one problem or sink diff after the
	// other; "" when the case passed.
	Failure string
}

// Passed reports that the case met every expectation.
func (r Result) Passed() bool { return r.Failure == "" }

// Report is the outcome of a suite's cases.
type Report struct {
	Results []Result
}

// Failed counts the cases that failed.
func (r *Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if !res.Passed() {
			n++
		}
	}
	return n
}

// Write prints each failing case with what went wrong, every case when
// verbose, and a last line: "ok: N cases" or "FAIL: F of N cases failed".
func (r *Report) Write(w io.Writer, verbose bool) {
	for _, res := range r.Results {
		switch {
		case !res.Passed():
			fmt.Fprintf(w, "--- FAIL: %s (%s)\n", res.Name, res.Pos)
			for _, line := range strings.Split(res.Failure, "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		case verbose:
			fmt.Fprintf(w, "--- PASS: %s\n", res.Name)
		}
	}
	if f := r.Failed(); f > 0 {
		fmt.Fprintf(w, "FAIL: %d of %s failed\n", f, plural(len(r.Results), "case"))
		return
	}
	fmt.Fprintf(w, "ok: %s\n", plural(len(r.Results), "case"))
}
