package stages

import "time"

// Ranges the config loader holds the stages' numeric fields to (declared
// with each field, shown in docs/components.md and the JSON schema).
const (
	// MaxBatchSize bounds batch.size: a batch is held in memory whole.
	MaxBatchSize = 1_000_000
	// MaxBatchBytes bounds batch.bytes.
	MaxBatchBytes = 1 << 30
	// MaxLinger bounds batch.linger.
	MaxLinger = time.Hour

	// MaxDedupeWindow bounds dedupe.window: past it, remembering keys is a
	// job for a database.
	MaxDedupeWindow = 30 * 24 * time.Hour
	// MaxDedupeKeys bounds dedupe.max_keys, the keys held in memory (per
	// worker).
	MaxDedupeKeys = 10_000_000

	// MinRate and MaxRate bound throttle.rate, in records per second:
	// from one record per 1000 seconds to more than a machine passes.
	MinRate = 0.001
	MaxRate = 1e9
	// MaxBurst bounds throttle.burst.
	MaxBurst = 10_000_000
)
