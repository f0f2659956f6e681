package kafka

import (
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Each key of the source and the sink is declared once, here (brokers,
// tls and sasl in conn.go): its type, default, range, enum and doc, bound
// to the field of SourceConfig or SinkConfig it fills. Validation, the
// defaults (DefaultSourceConfig, DefaultSinkConfig), `sluice docs` and
// `sluice schema` all come from these declarations.
func init() {
	registry.Declare(registry.Component[SourceConfig]{
		Kind:    flow.KindSource,
		Type:    "kafka",
		Summary: "consume topics as a consumer group; offsets committed only once records are acknowledged (at-least-once)",
		Fields:  sourceFields,
		Build:   buildSource,
	})
	registry.Declare(registry.Component[SinkConfig]{
		Kind:    flow.KindSink,
		Type:    "kafka",
		Summary: "produce records to a topic; a write returns once the broker acknowledged it (at-least-once, no idempotent producer); a record the brokers refuse fails alone",
		Fields:  sinkFields,
		Build:   buildSink,
	})
}

func sourceFields(c *SourceConfig) []registry.Field {
	return connFields(&c.Brokers, &c.TLS, &c.SASL,
		registry.Bind(&c.Topics, "topics", "topics to consume; one that does not exist keeps the source not ready (/readyz, a warning every minute) while the others are consumed, and is read once it is created",
			registry.Required(), registry.Example([]string{"orders"})),
		registry.Bind(&c.Group, "group", "consumer group id; its committed offsets say where to resume",
			registry.Required(), registry.Example("sluice-orders")),
		registry.Bind(&c.Start, "start", "where to read a partition with no committed offset (or one outside the log); partitions and topics created after the source started are read from earliest either way",
			registry.OneOf(StartEarliest, StartLatest), registry.Default(StartEarliest)),
		registry.Bind(&c.MinBytes, "min_bytes", "a fetch waits for this many bytes (or max_wait)",
			registry.Default(registry.ByteSize(1)), registry.Range(registry.ByteSize(1), maxFetchBytes)),
		registry.Bind(&c.MaxBytes, "max_bytes", "largest fetch per partition; bounds memory per partition",
			registry.Default(registry.ByteSize(1<<20)), registry.Range(registry.ByteSize(1), maxFetchBytes)),
		registry.Bind(&c.MaxWait, "max_wait", "longest a fetch waits for min_bytes",
			registry.Default(500*time.Millisecond), registry.Range(minInterval, maxFetchWait)),
		registry.Bind(&c.Batch, "batch", "max records per emitted batch (one acknowledgement each)",
			registry.Default(500), registry.Range(1, maxRecords)),
		registry.Bind(&c.CommitInterval, "commit_interval", "how often acknowledged offsets are committed (also on rebalance and shutdown)",
			registry.Default(time.Second), registry.Range(minInterval, maxTimeout)),
		registry.Bind(&c.SessionTimeout, "session_timeout", "the group drops a member silent for this long",
			registry.Default(30*time.Second), registry.Range(minGroupTimeout, maxTimeout)),
		registry.Bind(&c.HeartbeatInterval, "heartbeat_interval", "how often the member heartbeats; also how soon it notices a rebalance",
			registry.Default(3*time.Second), registry.Range(minInterval, maxTimeout)),
		registry.Bind(&c.RebalanceTimeout, "rebalance_timeout", "how long the coordinator waits for members to rejoin during a rebalance",
			registry.Default(30*time.Second), registry.Range(minGroupTimeout, maxTimeout)),
		registry.Bind(&c.DrainTimeout, "drain_timeout", "how long a revoked partition waits for its in-flight records before its last commit; below rebalance_timeout and session_timeout",
			registry.Default(10*time.Second), registry.Range(minInterval, maxTimeout)),
		registry.Bind(&c.PartitionWatchInterval, "partition_watch_interval", "how often the topics are checked (at least 100ms): added partitions and new topics are consumed within this plus a rebalance, from their earliest offset; missing topics keep the source not ready",
			registry.Default(5*time.Second), registry.Range(minPartitionWatchInterval, maxTimeout)),
	)
}

func sinkFields(c *SinkConfig) []registry.Field {
	return connFields(&c.Brokers, &c.TLS, &c.SASL,
		registry.Bind(&c.Topic, "topic", "topic to write to (or topic_expr)", registry.Example("orders-enriched")),
		registry.Bind(&c.TopicExpr, "topic_expr", "expression computing each record's topic, instead of topic; a record it fails on fails alone",
			registry.AsExpr(), registry.Example(`"orders-" + value.region`)),
		registry.Bind(&c.Acks, "acks", "replicas that must confirm a write before the record counts as written: all in-sync, or the leader only (lost if the leader fails before replicating); none is refused, as it would acknowledge unconfirmed writes",
			registry.OneOf(AcksAll, AcksOne), registry.Default(AcksAll)),
		registry.Bind(&c.Partitioner, "partitioner", "murmur2 hashes keys like the Java client, crc32 like librdkafka; round_robin ignores keys",
			registry.OneOf(PartitionerMurmur2, PartitionerCRC32, PartitionerRoundRobin), registry.Default(PartitionerMurmur2)),
		registry.Bind(&c.Compression, "compression", "compression of produce requests",
			registry.OneOf("none", "gzip", "snappy", "lz4", "zstd"), registry.Default("none")),
		// A coalesced write of flow.DefaultSinkBatch records spread over a
		// few partitions is one produce request with a batch per partition.
		registry.Bind(&c.BatchSize, "batch_size", "max records per produce request per partition",
			registry.Default(1000), registry.Range(1, maxRecords)),
		// The default is the brokers' default message.max.bytes.
		registry.Bind(&c.BatchBytes, "batch_bytes", "max bytes per produce request per partition; a larger record fails at once. One the topic's max.message.bytes refuses (or any record the brokers refuse) fails alone: its request is split and retried until only it fails",
			registry.Default(registry.ByteSize(1<<20)), registry.Range(registry.ByteSize(1), maxProduceBytes)),
		// A partition's records go the moment it has no request in flight;
		// under load they gather while the previous one is in flight, so
		// waiting for more only adds latency.
		registry.Bind(&c.Linger, "linger", "how long a partition's partial batch may wait for more records before it is sent; 0 sends it as soon as the partition has no request in flight (under load, batches fill while the previous request is in flight)",
			registry.Default(time.Duration(0)), registry.Range(time.Duration(0), maxFetchWait)),
		// About two minutes of retries at the capped backoff: long enough
		// to ride out a broker restart (the Java producer's
		// delivery.timeout.ms is two minutes too).
		registry.Bind(&c.MaxRetries, "max_retries", "retries of a failed produce request, or of a topic the brokers do not know yet, before its records fail (then on_error applies); a topic unknown for a whole budget fails further writes at once for a minute",
			registry.Default(120), registry.Range(0, maxRetries)),
		registry.Bind(&c.Backoff, "backoff", "first retry delay; doubles up to max_backoff",
			registry.Default(100*time.Millisecond), registry.Range(minInterval, maxFetchWait)),
		registry.Bind(&c.MaxBackoff, "max_backoff", "cap on the retry delay",
			registry.Default(time.Second), registry.Range(minInterval, maxTimeout)),
	)
}

// DefaultSourceConfig returns a SourceConfig holding every declared
// default; set Brokers, Topics and Group (and ID, Logger) before NewSource.
func DefaultSourceConfig() SourceConfig { return registry.Defaults(sourceFields) }

// DefaultSinkConfig returns a SinkConfig holding every declared default;
// set Brokers and Topic or TopicExpr (and Logger) before NewSink.
func DefaultSinkConfig() SinkConfig { return registry.Defaults(sinkFields) }

func buildSource(c *SourceConfig, n *registry.Conf) (any, error) {
	if err := fromEnv(n, &c.Brokers, &c.TLS); err != nil {
		return nil, err
	}
	c.ID, c.Logger = n.ID, n.Logger()
	return NewSource(*c)
}

func buildSink(c *SinkConfig, n *registry.Conf) (any, error) {
	if err := fromEnv(n, &c.Brokers, &c.TLS); err != nil {
		return nil, err
	}
	c.Logger = n.Logger()
	return NewSink(*c)
}
