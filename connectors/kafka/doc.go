// Package kafka is sluice's Kafka source and sink (type: kafka), built on
// segmentio/kafka-go, plus an embedded broker for `sluice run --dev`.
//
// Delivery guarantee: at-least-once, end to end.
//
//   - The source reads each assigned partition with its own fetch loop and
//     emits batches; each batch carries one flow.Ack. Offsets are committed
//     only up to the highest offset below which every batch was
//     acknowledged (acks may complete out of order; a failed ack pins the
//     partition's commit before the failed record for good). Commits go
//     through the consumer-group generation that owns the partition, so a
//     member never moves another member's offset, and a revoked partition
//     waits for its in-flight batches (drain_timeout) before its last
//     commit. Whatever was emitted but not committed when the process stops
//     or the partition moves is read again: duplicates, never gaps.
//   - The sink returns from Write only after the broker acknowledged every
//     record (acks: all by default). kafka-go has no idempotent or
//     transactional producer, so a retried produce request can write a
//     record twice; there is no exactly-once mode.
//
// Topic shapes:
//
//   - A subscribed topic that does not exist does not stop the others: the
//     group's assignor (watch.go) assigns every partition that exists, and
//     the source is not ready until the topic is created.
//   - Every partition_watch_interval the source checks its topics; the
//     member that led the assignment makes the group rebalance when
//     partitions were added or a topic created. Partitions that did not
//     exist when the source started are read from the earliest offset,
//     whatever start says.
//   - A record the brokers refuse (too large for the topic, invalid) fails
//     its whole produce request; the sink writes that request's records
//     again in smaller requests until only the offending ones fail. An
//     unknown topic is retried within the retry budget.
//
// Record order is kept per partition: the source emits a partition's
// records in offset order, and the sink's default partitioner sends records
// with equal keys to the same partition. One exception: the records of a
// produce request that a refused record failed are written again after
// the rest of their Write, so they may follow later records of it.
package kafka
