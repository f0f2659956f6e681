package host

import "time"

// Ranges the config loader holds a plugin stage's numeric fields to
// (declared with each field in spec.go).
const (
	// maxInstances bounds instances: each is an operating system process.
	maxInstances = 256
	// maxBatchSize and maxBatchBytes bound batch.size and batch.bytes; the
	// gRPC message limit is four times batch.bytes plus 1 MiB.
	maxBatchSize  = 100_000
	maxBatchBytes = 64 << 20
	// maxLinger bounds batch.linger.
	maxLinger = time.Minute
	// maxWindow bounds window, batches in flight per process: each end
	// queues that many.
	maxWindow = 1024
	// minTimeout bounds timeout and start_timeout from below: a zero would
	// read as "use the default", so it is refused instead.
	minTimeout = time.Millisecond
	// maxTimeout bounds timeout, the silence after which a process is
	// restarted; maxStartTimeout bounds start_timeout.
	maxTimeout      = 24 * time.Hour
	maxStartTimeout = time.Hour
)
