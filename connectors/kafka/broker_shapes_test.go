package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/flow"
)

// Topic shapes that used to stall the source or fail innocent records,
// against the Apache Kafka broker of scripts/kafka.sh.

// collidingTopic returns a topic name that stays missing on a broker that
// creates topics on first use (as scripts/kafka.sh's does): Kafka refuses
// to create a topic whose name differs from an existing one only by '.'
// against '_'. unblock deletes the existing one so the name can be
// created.
func collidingTopic(t *testing.T, broker string) (name string, unblock func()) {
	t.Helper()
	base := uniqueName(t, "gone")
	createTopic(t, broker, base+"_x", 1)
	return base + ".x", func() {
		withController(t, broker, func(cc *kafka.Conn) error { return cc.DeleteTopics(base + "_x") })
	}
}

// position is where the source's tracker of a partition stands, if that
// partition is being read.
func position(s *Source, topic string, partition int) (int64, bool) {
	s.mu.Lock()
	g := s.current
	s.mu.Unlock()
	if g == nil {
		return 0, false
	}
	for _, p := range g.parts {
		if p.topic == topic && p.partition == partition {
			return p.track.position()
		}
	}
	return 0, false
}

// produceTo writes values from..from+n-1 to one partition, retrying while
// the partition is too new for the metadata to know it.
func produceTo(t *testing.T, broker, topic string, partition, from, n int) {
	t.Helper()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		v := strconv.Itoa(from + i)
		msgs[i] = kafka.Message{Key: []byte("k" + v), Value: []byte(v)}
	}
	var last error
	waitFor(t, 30*time.Second, "a write to "+topic+"/"+strconv.Itoa(partition), func() bool {
		tr := &kafka.Transport{MetadataTTL: time.Second}
		defer tr.CloseIdleConnections()
		w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll, Transport: tr,
			BatchTimeout: time.Millisecond, MaxAttempts: 1,
			Balancer: kafka.BalancerFunc(func(_ kafka.Message, ps ...int) int { return partition })}
		defer w.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		last = w.WriteMessages(ctx, msgs...)
		return last == nil
	})
}

// TestBrokerSourceMissingTopic subscribes to an existing topic and one
// that does not exist. The existing one is consumed at once; the source
// stays not ready, check after check, naming the missing topic, and
// warns; once the topic is created its records are read too and the
// source becomes ready.
//
// Before: kafka-go's group leader read both topics' partitions in one
// metadata request, got UNKNOWN_TOPIC_OR_PARTITION for the whole answer
// and assigned no partition at all, while the source said it was ready.
func TestBrokerSourceMissingTopic(t *testing.T) {
	broker := realBroker(t)
	p := uniqueName(t, "p")
	createTopic(t, broker, p, 2)
	produce(t, broker, p, 0, 200)
	missing, unblock := collidingTopic(t, broker)

	var warns atomic.Int64
	log := slog.New(countingHandler{Handler: slog.DiscardHandler, match: "do not exist", n: &warns})
	src := brokerSource(t, []string{broker}, p, uniqueName(t, "g"), func(c *SourceConfig) {
		c.Topics = []string{p, missing}
		c.PartitionWatchInterval = 200 * time.Millisecond
		c.Logger = log
	})
	rec := newRecorder()
	stop := runPipeline(t, src, rec)
	waitFor(t, 30*time.Second, "the existing topic's records", func() bool { return rec.n.Load() >= 200 })
	rec.checkOrder(t) // now: the recorder keys by partition number only

	checks := src.checks.Load()
	waitFor(t, 30*time.Second, "five more topic checks", func() bool { return src.checks.Load() >= checks+5 })
	if err := src.Ready(); err == nil || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), p) {
		t.Fatalf("Ready() = %v five checks later; want not ready naming only %s", err, missing)
	}
	if warns.Load() == 0 {
		t.Fatal("no warning about the missing topic")
	}

	// The topic is created while the source runs: read from its start.
	unblock()
	created := time.Now()
	waitFor(t, 30*time.Second, "the missing topic to be created", func() bool {
		c, err := kafka.Dial("tcp", broker)
		if err != nil {
			return false
		}
		defer c.Close()
		// The source may create it first: its metadata requests allow it.
		_ = c.CreateTopics(kafka.TopicConfig{Topic: missing, NumPartitions: 1, ReplicationFactor: 1})
		ps, err := c.ReadPartitions(missing)
		return err == nil && len(ps) == 1 && ps[0].Leader.ID >= 0
	})
	produceTo(t, broker, missing, 0, 1000, 50)
	waitFor(t, 30*time.Second, "the new topic's records", func() bool { return rec.n.Load() >= 250 })
	t.Logf("records of the topic created while running arrived %s after it was created", time.Since(created).Round(time.Millisecond))
	waitFor(t, 10*time.Second, "ready once every topic exists", func() bool { return src.Ready() == nil })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if miss, dups := rec.missing(0, 200); len(miss) > 0 || dups > 0 {
		t.Fatalf("existing topic: %d missing (e.g. %v), %d duplicates", len(miss), head(miss), dups)
	}
	if miss, _ := rec.missing(1000, 50); len(miss) > 0 {
		t.Fatalf("created topic: %d missing (e.g. %v)", len(miss), head(miss))
	}
}

// TestBrokerSourceAddedPartitions adds partitions to a topic the source
// reads with start: latest and writes to them at once: the new partitions
// are read within a bounded time and from their first record (start:
// latest applies to the partitions there were at the start, not to ones
// created later, whose records would otherwise be skipped).
//
// Before: new partitions were never read until a restart.
func TestBrokerSourceAddedPartitions(t *testing.T) {
	broker := realBroker(t)
	topic := uniqueName(t, "t")
	createTopic(t, broker, topic, 1)
	produce(t, broker, topic, 0, 50) // before the start: latest skips them
	src := brokerSource(t, []string{broker}, topic, uniqueName(t, "g"), func(c *SourceConfig) {
		c.Start = StartLatest
		c.PartitionWatchInterval = 200 * time.Millisecond
	})
	rec := newRecorder()
	stop := runPipeline(t, src, rec)
	waitFor(t, 30*time.Second, "partition 0 to be read", func() bool { _, ok := position(src, topic, 0); return ok })
	produceTo(t, broker, topic, 0, 100, 10)
	waitFor(t, 30*time.Second, "records of partition 0", func() bool { return rec.n.Load() >= 10 })

	cl, closeCl := newClient(broker)
	defer closeCl()
	added := time.Now()
	res, err := cl.CreatePartitions(context.Background(), &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatal(err)
	}
	produceTo(t, broker, topic, 1, 200, 20)
	produceTo(t, broker, topic, 2, 300, 20)
	waitFor(t, 30*time.Second, "records of the added partitions", func() bool { return rec.n.Load() >= 50 })
	took := time.Since(added)
	t.Logf("added partitions read %s after they were created (partition_watch_interval 200ms)", took.Round(time.Millisecond))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rec.checkOrder(t)
	for _, r := range [][2]int{{100, 10}, {200, 20}, {300, 20}} {
		if miss, _ := rec.missing(r[0], r[1]); len(miss) > 0 {
			t.Fatalf("values %d..%d: %d missing (e.g. %v)", r[0], r[0]+r[1]-1, len(miss), head(miss))
		}
	}
	if miss, _ := rec.missing(0, 50); len(miss) != 50 {
		t.Fatalf("%d records written before the start were read; start: latest skips them", 50-len(miss))
	}
	if took > 20*time.Second {
		t.Fatalf("added partitions took %s to be read", took)
	}
}

// TestBrokerSinkRecordTooLargeFailsAlone writes to a topic whose
// max.message.bytes is 4 KiB, below the sink's batch_bytes: a record
// above it fails alone, with an error saying why; records whose batch
// together is above it are all written; concurrent writes sharing a
// produce request with the large record are all written.
//
// Before: MESSAGE_TOO_LARGE failed every record of the produce request.
func TestBrokerSinkRecordTooLargeFailsAlone(t *testing.T) {
	broker := realBroker(t)
	topic := uniqueName(t, "t")
	createTopicWith(t, broker, kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "4096"}}})
	sink, err := NewSink(sinkConfig(broker, topic, func(c *SinkConfig) { c.Linger = 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	value := func(tag string, i, size int) []byte {
		v := []byte(tag + strconv.Itoa(i) + ".")
		return append(v, bytes.Repeat([]byte("x"), size-len(v))...)
	}
	var want []string

	// One record of 10000 bytes among 40 small ones.
	recs := make([]flow.Record, 40)
	for i := range recs {
		recs[i] = flow.Record{Value: value("a", i, 50)}
	}
	recs[17].Value = value("a", 17, 10000)
	err = sink.Write(ctx, recs)
	var we *flow.WriteErrors
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[17] == nil {
		t.Fatalf("Write = %v; want only record 17 failed", err)
	}
	if msg := we.Failed[17].Error(); !strings.Contains(msg, "too large") || !strings.Contains(msg, "max.message.bytes") {
		t.Fatalf("record 17 failed with %q; want it to say it is too large for max.message.bytes", msg)
	}
	for i, r := range recs {
		if i != 17 {
			want = append(want, string(r.Value))
		}
	}

	// 30 records of 400 bytes: together above max.message.bytes, each below.
	recs = make([]flow.Record, 30)
	for i := range recs {
		recs[i] = flow.Record{Value: value("b", i, 400)}
		want = append(want, string(recs[i].Value))
	}
	if err := sink.Write(ctx, recs); err != nil {
		t.Fatalf("Write of records each below max.message.bytes: %v", err)
	}

	// Concurrent writes share produce requests (linger 20ms): only the
	// large record fails.
	const writers = 4
	errs := make([]error, writers)
	var wg sync.WaitGroup
	var concurrent []string
	for w := range writers {
		recs := make([]flow.Record, 25)
		for i := range recs {
			recs[i] = flow.Record{Value: value("c"+strconv.Itoa(w)+"-", i, 60)}
		}
		if w == 0 {
			recs[3].Value = value("c0-", 3, 8000)
		}
		for i, r := range recs {
			if w != 0 || i != 3 {
				concurrent = append(concurrent, string(r.Value))
			}
		}
		wg.Go(func() { errs[w] = sink.Write(ctx, recs) })
	}
	wg.Wait()
	if !errors.As(errs[0], &we) || len(we.Failed) != 1 || we.Failed[3] == nil {
		t.Fatalf("writer 0: %v; want only its record 3 failed", errs[0])
	}
	for w := 1; w < writers; w++ {
		if errs[w] != nil {
			t.Fatalf("writer %d, which had no large record: %v", w, errs[w])
		}
	}

	var got []string
	for _, m := range readTopic(t, broker, topic) {
		got = append(got, string(m.Value))
	}
	if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("topic holds %d records; want the %d small ones of the first two writes in order first", len(got), len(want))
	}
	rest := slices.Sorted(slices.Values(got[len(want):]))
	slices.Sort(concurrent)
	if !slices.Equal(rest, concurrent) {
		t.Fatalf("concurrent writes: topic holds %d of their records, want exactly the %d small ones", len(rest), len(concurrent))
	}
}

// TestBrokerSinkInvalidRecordFailsAlone writes a record without a key to
// a compacted topic, which the broker refuses (INVALID_RECORD) with the
// rest of its produce request: only that record fails.
func TestBrokerSinkInvalidRecordFailsAlone(t *testing.T) {
	broker := realBroker(t)
	topic := uniqueName(t, "t")
	createTopicWith(t, broker, kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}})
	sink, err := NewSink(sinkConfig(broker, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	recs := make([]flow.Record, 20)
	var want []string
	for i := range recs {
		v := strconv.Itoa(i)
		recs[i] = flow.Record{Key: []byte("k" + v), Value: []byte(v)}
		if i != 11 {
			want = append(want, v)
		}
	}
	recs[11].Key = nil
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = sink.Write(ctx, recs)
	var we *flow.WriteErrors
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[11] == nil || !errors.Is(we.Failed[11], kafka.InvalidRecord) {
		t.Fatalf("Write = %v; want only record 11 (no key) failed as invalid", err)
	}
	var got []string
	for _, m := range readTopic(t, broker, topic) {
		got = append(got, string(m.Value))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("topic holds %v; want %v", got, want)
	}
}

// TestBrokerSinkUnknownTopicRetried writes to a topic the brokers do not
// know yet: one the write itself creates (auto.create.topics.enable) and
// one created a moment before, without waiting for its metadata. Both
// are written. A topic that never appears fails after the retry budget,
// saying so.
//
// Before: the first write failed at once with [3] Unknown Topic Or
// Partition.
func TestBrokerSinkUnknownTopicRetried(t *testing.T) {
	broker := realBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newSink := func(topic string, retries int) *Sink {
		sink, err := NewSink(sinkConfig(broker, topic, func(c *SinkConfig) {
			c.MaxRetries, c.Backoff, c.MaxBackoff = retries, 50*time.Millisecond, 200*time.Millisecond
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sink.Close(context.Background()) })
		return sink
	}
	one := []flow.Record{{Key: []byte("k"), Value: []byte("v")}}
	write := func(topic string, retries int) error { return newSink(topic, retries).Write(ctx, one) }

	budget := DefaultSinkConfig().MaxRetries
	auto := uniqueName(t, "auto")
	if err := write(auto, budget); err != nil {
		t.Fatalf("write to a topic the brokers create on first use: %v", err)
	}

	fresh := uniqueName(t, "fresh")
	withController(t, broker, func(cc *kafka.Conn) error {
		return cc.CreateTopics(kafka.TopicConfig{Topic: fresh, NumPartitions: 3, ReplicationFactor: 1})
	})
	if err := write(fresh, budget); err != nil {
		t.Fatalf("write to a topic created a moment ago: %v", err)
	}
	for _, topic := range []string{auto, fresh} {
		if msgs := readTopic(t, broker, topic); len(msgs) != 1 {
			t.Fatalf("%s holds %d records, want 1", topic, len(msgs))
		}
	}

	never, _ := collidingTopic(t, broker)
	sink := newSink(never, 3)
	start := time.Now()
	err := sink.Write(ctx, one)
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), never) ||
		!strings.Contains(err.Error(), "3 retries") {
		t.Fatalf("write to a topic that never appears: %v; want an error saying it does not exist after 3 retries", err)
	}
	t.Logf("never-created topic failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	// Having spent a whole budget on it, the sink does not hold the next
	// writes to it for another.
	if err := sink.Write(ctx, one); err == nil || !strings.Contains(err.Error(), "not retried") {
		t.Fatalf("second write to the topic that never appears: %v; want it failed at once", err)
	}
}

// TestBrokerSourceAddedPartitionsTwoMembers adds partitions to a topic two
// members of one group read: the member that led the assignment notices,
// the group rebalances, and every record of the new partitions is read
// once by one of them.
func TestBrokerSourceAddedPartitionsTwoMembers(t *testing.T) {
	broker := realBroker(t)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, broker, topic, 2)
	mod := func(c *SourceConfig) { c.PartitionWatchInterval = 200 * time.Millisecond }
	a, b := newRecorder(), newRecorder()
	srcA, srcB := brokerSource(t, []string{broker}, topic, group, mod), brokerSource(t, []string{broker}, topic, group, mod)
	stopA := runPipeline(t, srcA, a)
	stopB := runPipeline(t, srcB, b)
	owns := func(s *Source, p int) bool { _, ok := position(s, topic, p); return ok }
	waitFor(t, 60*time.Second, "each member to read one partition", func() bool {
		return owns(srcA, 0) != owns(srcB, 0) && owns(srcA, 1) != owns(srcB, 1) && owns(srcA, 0) != owns(srcA, 1)
	})

	cl, closeCl := newClient(broker)
	defer closeCl()
	added := time.Now()
	res, err := cl.CreatePartitions(context.Background(), &kafka.CreatePartitionsRequest{
		Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatal(err)
	}
	for p := range 4 {
		produceTo(t, broker, topic, p, 100*p, 25)
	}
	total := func() int64 { return a.n.Load() + b.n.Load() }
	waitFor(t, 60*time.Second, "every record", func() bool { return total() >= 100 })
	t.Logf("added partitions read %s after they were created", time.Since(added).Round(time.Millisecond))
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	union := newRecorder()
	for _, r := range []*recorder{a, b} {
		r.mu.Lock()
		for v, c := range r.values {
			union.values[v] += c
		}
		r.mu.Unlock()
	}
	for p := range 4 {
		if miss, dups := union.missing(100*p, 25); len(miss) > 0 || dups > 0 {
			t.Fatalf("partition %d: %d missing (e.g. %v), %d duplicates", p, len(miss), head(miss), dups)
		}
	}
}
