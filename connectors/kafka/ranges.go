package kafka

import (
	"time"

	"github.com/sluicedev/sluice/registry"
)

// Ranges the Kafka connectors' numeric fields are held to (declared with
// each field in spec.go).
const (
	// minInterval is the shortest interval, wait or backoff accepted: a
	// zero would read as "use the default", so it is refused instead.
	minInterval = time.Millisecond
	// minGroupTimeout bounds session_timeout and rebalance_timeout from
	// below; brokers refuse session timeouts under 6s by default.
	minGroupTimeout = time.Second
	// maxFetchWait bounds max_wait, linger and backoff: waits measured in
	// milliseconds, for which a minute is already long.
	maxFetchWait = time.Minute
	// maxTimeout bounds the group timeouts and intervals (brokers cap
	// session timeouts at 30 minutes by default) and max_backoff.
	maxTimeout = time.Hour
	// minPartitionWatchInterval keeps the topic checks from flooding the
	// brokers with metadata requests.
	minPartitionWatchInterval = 100 * time.Millisecond
	// maxFetchBytes bounds min_bytes and max_bytes, per partition fetch.
	maxFetchBytes registry.ByteSize = 256 << 20
	// maxProduceBytes bounds batch_bytes; brokers refuse more than their
	// message.max.bytes anyway (1 MiB by default).
	maxProduceBytes registry.ByteSize = 256 << 20
	// maxRecords bounds batch and batch_size, records per batch: the
	// Kafka client allocates a batch_size-long slice per produce batch.
	maxRecords = 100_000
	// maxRetries bounds max_retries, at max_backoff apart at most.
	maxRetries = 10_000
)
