package expr

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU reports the benchmark's own CPU time per op as "cpu-ns/op",
// which stays meaningful on a shared machine where ns/op (wall time)
// includes time spent waiting for a core. Call it first; it runs at the
// end of the benchmark.
func threadCPU(b *testing.B) {
	runtime.LockOSThread()
	start := threadTime()
	b.Cleanup(func() {
		d := threadTime() - start
		runtime.UnlockOSThread()
		if b.N > 0 {
			b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	})
}

func threadTime() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
