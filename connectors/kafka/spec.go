package kafka

import (
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func ptr(f float64) *float64 { return &f }

func init() {
	registry.Register(registry.Spec{
		Kind:    flow.KindSource,
		Type:    "kafka",
		Summary: "consume topics as a consumer group; offsets committed only once records are acknowledged (at-least-once)",
		Fields: append([]registry.Field{
			brokersField,
			{Name: "topics", Type: registry.List, Elem: registry.String, Required: true, Example: []string{"orders"},
				Doc: "topics to consume; one that does not exist keeps the source not ready (/readyz, a warning every minute) while the others are consumed, and is read once it is created"},
			{Name: "group", Type: registry.String, Required: true, Example: "sluice-orders",
				Doc: "consumer group id; its committed offsets say where to resume"},
			{Name: "start", Type: registry.String, Enum: []string{StartEarliest, StartLatest}, Default: StartEarliest,
				Doc: "where to read a partition with no committed offset (or one outside the log); partitions and topics created after the source started are read from earliest either way"},
			{Name: "min_bytes", Type: registry.Size, Default: DefaultMinBytes, Min: ptr(1), Max: ptr(maxFetchBytes),
				Doc: "a fetch waits for this many bytes (or max_wait)"},
			{Name: "max_bytes", Type: registry.Size, Default: "1MiB", Min: ptr(1), Max: ptr(maxFetchBytes),
				Doc: "largest fetch per partition; bounds memory per partition"},
			{Name: "max_wait", Type: registry.Duration, Default: "500ms", MinDuration: minInterval, MaxDuration: maxFetchWait,
				Doc: "longest a fetch waits for min_bytes"},
			{Name: "batch", Type: registry.Int, Default: DefaultSourceBatch, Min: ptr(1), Max: ptr(maxRecords),
				Doc: "max records per emitted batch (one acknowledgement each)"},
			{Name: "commit_interval", Type: registry.Duration, Default: "1s", MinDuration: minInterval, MaxDuration: maxTimeout,
				Doc: "how often acknowledged offsets are committed (also on rebalance and shutdown)"},
			{Name: "session_timeout", Type: registry.Duration, Default: "30s", MinDuration: minGroupTimeout, MaxDuration: maxTimeout,
				Doc: "the group drops a member silent for this long"},
			{Name: "heartbeat_interval", Type: registry.Duration, Default: "3s", MinDuration: minInterval, MaxDuration: maxTimeout,
				Doc: "how often the member heartbeats; also how soon it notices a rebalance"},
			{Name: "rebalance_timeout", Type: registry.Duration, Default: "30s", MinDuration: minGroupTimeout, MaxDuration: maxTimeout,
				Doc: "how long the coordinator waits for members to rejoin during a rebalance"},
			{Name: "drain_timeout", Type: registry.Duration, Default: "10s", MinDuration: minInterval, MaxDuration: maxTimeout,
				Doc: "how long a revoked partition waits for its in-flight records before its last commit; below rebalance_timeout and session_timeout"},
			{Name: "partition_watch_interval", Type: registry.Duration, Default: "5s", MinDuration: MinPartitionWatchInterval, MaxDuration: maxTimeout,
				Doc: "how often the topics are checked (at least 100ms): added partitions and new topics are consumed within this plus a rebalance, from their earliest offset; missing topics keep the source not ready"},
		}, securityFields()...),
		Build: buildSource,
	})
	registry.Register(registry.Spec{
		Kind:    flow.KindSink,
		Type:    "kafka",
		Summary: "produce records to a topic; a write returns once the broker acknowledged it (at-least-once, no idempotent producer); a record the brokers refuse fails alone",
		Fields: append([]registry.Field{
			brokersField,
			{Name: "topic", Type: registry.String, Example: "orders-enriched", Doc: "topic to write to (or topic_expr)"},
			{Name: "topic_expr", Type: registry.Expr, Example: `"orders-" + value.region`,
				Doc: "expression computing each record's topic, instead of topic; a record it fails on fails alone"},
			{Name: "acks", Type: registry.String, Enum: []string{AcksAll, AcksOne}, Default: AcksAll,
				Doc: "replicas that must confirm a write before the record counts as written: all in-sync, or the leader only (lost if the leader fails before replicating); none is refused, as it would acknowledge unconfirmed writes"},
			{Name: "partitioner", Type: registry.String, Enum: []string{PartitionerMurmur2, PartitionerCRC32, PartitionerRoundRobin},
				Default: PartitionerMurmur2,
				Doc:     "murmur2 hashes keys like the Java client, crc32 like librdkafka; round_robin ignores keys"},
			{Name: "compression", Type: registry.String, Enum: []string{"none", "gzip", "snappy", "lz4", "zstd"}, Default: "none",
				Doc: "compression of produce requests"},
			{Name: "batch_size", Type: registry.Int, Default: DefaultSinkBatchSize, Min: ptr(1), Max: ptr(maxRecords),
				Doc: "max records per produce request per partition"},
			{Name: "batch_bytes", Type: registry.Size, Default: "1MiB", Min: ptr(1), Max: ptr(maxProduceBytes),
				Doc: "max bytes per produce request per partition; a larger record fails at once. One the topic's max.message.bytes refuses (or any record the brokers refuse) fails alone: its request is split and retried until only it fails"},
			{Name: "linger", Type: registry.Duration, Default: "1ms", MinDuration: minInterval, MaxDuration: maxFetchWait,
				Doc: "how long a partial batch waits for more records before it is sent (at least 1ms: kafka-go reads 0 as its own default of 1s)"},
			{Name: "max_retries", Type: registry.Int, Default: DefaultMaxRetries, Min: ptr(0), Max: ptr(maxRetries),
				Doc: "retries of a failed produce request, or of a topic the brokers do not know yet, before its records fail (then on_error applies); a topic unknown for a whole budget fails further writes at once for a minute"},
			{Name: "backoff", Type: registry.Duration, Default: "100ms", MinDuration: minInterval, MaxDuration: maxFetchWait, Doc: "first retry delay; doubles up to max_backoff"},
			{Name: "max_backoff", Type: registry.Duration, Default: "1s", MinDuration: minInterval, MaxDuration: maxTimeout, Doc: "cap on the retry delay"},
		}, securityFields()...),
		Build: buildSink,
	})
}

func buildSource(c *registry.Conf) (any, error) {
	brokers, t, s, err := commonConf(c)
	if err != nil {
		return nil, err
	}
	return NewSource(SourceConfig{
		ID:                     c.ID,
		Brokers:                brokers,
		Topics:                 c.Strings("topics"),
		Group:                  c.String("group"),
		Start:                  c.String("start"),
		MinBytes:               int(c.Size("min_bytes")),
		MaxBytes:               int(c.Size("max_bytes")),
		MaxWait:                c.Duration("max_wait"),
		Batch:                  c.Int("batch"),
		CommitInterval:         c.Duration("commit_interval"),
		SessionTimeout:         c.Duration("session_timeout"),
		HeartbeatInterval:      c.Duration("heartbeat_interval"),
		RebalanceTimeout:       c.Duration("rebalance_timeout"),
		DrainTimeout:           c.Duration("drain_timeout"),
		PartitionWatchInterval: c.Duration("partition_watch_interval"),
		TLS:                    t,
		SASL:                   s,
		Logger:                 c.Logger(),
	})
}

func buildSink(c *registry.Conf) (any, error) {
	brokers, t, s, err := commonConf(c)
	if err != nil {
		return nil, err
	}
	retries := c.Int("max_retries")
	if c.Has("max_retries") && retries == 0 {
		retries = -1 // SinkConfig's zero means the default
	}
	return NewSink(SinkConfig{
		Brokers:     brokers,
		Topic:       c.String("topic"),
		TopicExpr:   c.String("topic_expr"),
		Acks:        c.String("acks"),
		Partitioner: c.String("partitioner"),
		Compression: c.String("compression"),
		BatchSize:   c.Int("batch_size"),
		BatchBytes:  c.Size("batch_bytes"),
		Linger:      c.Duration("linger"),
		MaxRetries:  retries,
		Backoff:     c.Duration("backoff"),
		MaxBackoff:  c.Duration("max_backoff"),
		TLS:         t,
		SASL:        s,
		Logger:      c.Logger(),
	})
}
