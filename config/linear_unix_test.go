//go:build unix

package config

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time this process used so far: unlike the time on
// the clock, it does not grow with what other processes run meanwhile.
func cpuTime(t *testing.T) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		t.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// checkCPU validates a file of n stages, each with an input that does not
// exist, and returns the least CPU time of runs runs.
func checkCPU(t *testing.T, n, runs int) time.Duration {
	var b strings.Builder
	b.WriteString("sources:\n  numbers: {type: test_gen}\nstages:\n")
	for i := range n {
		fmt.Fprintf(&b, "  stage%d: {type: test_upper, expr: value, inputs: [stge%dx]}\n", i, i)
	}
	b.WriteString("sinks:\n  out: {type: test_sink, inputs: [numbers], path: p}\n")
	path := writeFile(t, b.String())
	best := time.Duration(1 << 62)
	for range runs {
		start := cpuTime(t)
		err := check(path, Options{}, nil)
		best = min(best, cpuTime(t)-start)
		if got := len(lines(err)); got != 2*n { // does not exist; not reachable
			t.Fatalf("%d stages: %d errors, want %d", n, got, 2*n)
		}
	}
	return best
}

// Validation takes time about linear in the file's size: issue 9 had
// 1,000 misspelled inputs take 0.7 s, 4,000 11.5 s and 10,000 80 s, from
// "did you mean" comparing every unknown id with every id, and from
// finding each value's line by scanning its section. Eight times the
// stages may take about eight times as long; quadratic would be 64.
func TestValidationTimeIsAboutLinear(t *testing.T) {
	small := checkCPU(t, 500, 3)
	large := checkCPU(t, 4000, 2)
	ratio := float64(large) / float64(small)
	msg := fmt.Sprintf("500 stages: %s of CPU; 4,000: %s (%.1f times as much)", small, large, ratio)
	if ratio > 24 {
		t.Errorf("%s, want about 8", msg)
	} else {
		t.Log(msg)
	}
}
