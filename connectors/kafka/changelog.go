package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/state"
)

// The Source keeps changelogs for the stateful stages downstream of it
// (package state): one compacted topic per stage and source topic, with
// one partition per source partition, in the source's own cluster.

var _ state.Provider = (*Source)(nil)

// changelogSuffix ends every changelog topic name.
const changelogSuffix = "-changelog"

// restoreFetchBytes is the size of one fetch while restoring: large, so a
// restore is a few round trips of streamed decoding rather than many
// small ones.
const restoreFetchBytes = 32 << 20

// restoreReadTimeout bounds one restore fetch on the socket: reading
// restoreFetchBytes from a live broker takes well under it.
const restoreReadTimeout = 30 * time.Second

// changelogReady bounds how long Changelog waits for a topic it created to
// have a leader on every partition.
const changelogReady = 30 * time.Second

// ChangelogTopic is the name of the changelog of spec for a source of
// consumer group group: the prefix (spec.Prefix, or "<group>-<stage>"),
// then "-<source topic>-changelog".
func ChangelogTopic(group string, spec state.Spec) string {
	prefix := spec.Prefix
	if prefix == "" {
		prefix = group + "-" + spec.Stage
	}
	return prefix + "-" + spec.Topic + changelogSuffix
}

// Changelog opens (creating it if missing) the changelog of spec: see
// state.Provider. The changelog topic has the source topic's partition
// count and cleanup.policy=compact; its replication factor is the
// brokers' default (or, from brokers older than Kafka 2.4, the smaller of
// 3 and the number of brokers). The Source closes every changelog it
// handed out when it is closed.
func (s *Source) Changelog(ctx context.Context, spec state.Spec) (state.Changelog, error) {
	if !slices.Contains(s.cfg.Topics, spec.Topic) {
		return nil, fmt.Errorf("changelog of stage %q: topic %q is not one of the source's topics (%s)",
			spec.Stage, spec.Topic, strings.Join(s.cfg.Topics, ","))
	}
	if spec.Prefix == "" && spec.Stage == "" {
		return nil, errors.New("changelog: the spec names no stage and no prefix")
	}
	name := ChangelogTopic(s.cfg.Group, spec)
	if err := checkTopicName(name); err != nil {
		return nil, fmt.Errorf("changelog topic of stage %q: %w; set the window's changelog_prefix to a shorter name of letters, digits, '.', '_' and '-'", spec.Stage, err)
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errors.New("kafka source is closed")
	}

	scfg := DefaultSinkConfig()
	scfg.Brokers, scfg.Topic, scfg.Acks = s.cfg.Brokers, name, AcksAll
	scfg.TLS, scfg.SASL, scfg.Logger = s.cfg.TLS, s.cfg.SASL, s.log
	scfg.pinned = true
	sink, err := NewSink(scfg)
	if err != nil {
		return nil, fmt.Errorf("changelog %s: %w", name, err)
	}
	c := &changelog{
		src:    s,
		name:   name,
		sink:   sink,
		client: &kafka.Client{Addr: sink.addr, Timeout: requestTimeout, Transport: sink.transport},
	}
	if err := c.open(ctx, spec.Topic); err != nil {
		_ = sink.Close(context.Background())
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = c.Close(context.Background())
		return nil, errors.New("kafka source is closed")
	}
	s.changelogs = append(s.changelogs, c)
	s.mu.Unlock()
	return c, nil
}

// closeChangelogs closes the changelogs handed out, within ctx.
func (s *Source) closeChangelogs(ctx context.Context) error {
	s.mu.Lock()
	cs := s.changelogs
	s.changelogs = nil
	s.mu.Unlock()
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close(ctx))
	}
	return errors.Join(errs...)
}

// changelog is a state.Changelog on a compacted topic: writes go through
// a Sink pinned to the entries' partitions, restores read straight from
// the partition leader.
type changelog struct {
	src    *Source
	name   string
	parts  int
	sink   *Sink
	client *kafka.Client

	closeOnce sync.Once
	closeErr  error
}

var _ state.Changelog = (*changelog)(nil)

func (c *changelog) Name() string { return c.name }

// open checks the changelog topic against the source topic, creating it
// when missing.
func (c *changelog) open(ctx context.Context, topic string) error {
	_, counts, err := c.src.lookup(ctx, []string{topic})
	if err != nil {
		return fmt.Errorf("changelog %s: partitions of source topic %s: %w", c.name, topic, err)
	}
	want := counts[topic]
	if want == 0 {
		return fmt.Errorf("changelog %s: source topic %s does not exist", c.name, topic)
	}
	c.parts = want
	md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.name}})
	if err != nil {
		return fmt.Errorf("changelog %s: metadata: %w", c.name, err)
	}
	var have int
	for _, t := range md.Topics {
		if t.Name == c.name && t.Error == nil {
			have = len(t.Partitions)
		}
	}
	if have == 0 {
		if err := c.create(ctx, want, len(md.Brokers)); err != nil {
			return err
		}
		if have, err = c.ready(ctx); err != nil {
			return err
		}
	}
	if have != want {
		return fmt.Errorf("changelog topic %s has %d partitions but source topic %s has %d: its partitions would not match the source's; delete the changelog (its state is lost) or set the window's changelog_prefix to start a new one",
			c.name, have, topic, want)
	}
	c.checkCompacted(ctx)
	return nil
}

// create creates the changelog topic. Another member creating it at the
// same time is fine.
func (c *changelog) create(ctx context.Context, partitions, brokers int) error {
	log := c.src.log.With("changelog", c.name)
	configs := []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
	// -1 is the brokers' default.replication.factor (KIP-464, Kafka 2.4).
	replicas := -1
	for attempt := 0; attempt < 3; attempt++ {
		res, err := c.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
			Topic: c.name, NumPartitions: partitions, ReplicationFactor: replicas, ConfigEntries: configs,
		}}})
		if err == nil {
			err = res.Errors[c.name]
		}
		switch {
		case err == nil:
			log.Info("kafka source: created changelog topic", "partitions", partitions, "replication_factor", replicas)
			return nil
		case errors.Is(err, kafka.TopicAlreadyExists):
			return nil
		case errors.Is(err, kafka.InvalidReplicationFactor) && replicas == -1:
			// Brokers before KIP-464 want a number.
			replicas = max(1, min(3, brokers))
			log.Debug("kafka source: brokers refused the default replication factor; using a number", "replication_factor", replicas, "err", err)
		case (errors.Is(err, kafka.InvalidConfiguration) || errors.Is(err, kafka.InvalidRequest)) && configs != nil:
			// The dev broker (kfake) may not know topic configs.
			configs = nil
			log.Debug("kafka source: brokers refused cleanup.policy=compact; creating the changelog without it", "err", err)
		default:
			return fmt.Errorf("create changelog topic %s: %w", c.name, err)
		}
	}
	return fmt.Errorf("create changelog topic %s: refused three times", c.name)
}

// ready waits until the changelog has partitions, each with a leader that
// answers for it (metadata names a leader a moment before the leader
// itself knows), and returns their count.
func (c *changelog) ready(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, changelogReady)
	defer cancel()
	backoff := flow.Backoff{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond}
	for attempt := 1; ; attempt++ {
		md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.name}})
		if err == nil {
			for _, t := range md.Topics {
				if t.Name == c.name && t.Error == nil && len(t.Partitions) > 0 &&
					!slices.ContainsFunc(t.Partitions, func(p kafka.Partition) bool { return p.Leader.ID < 0 || p.Error != nil }) {
					if err = c.serving(ctx, len(t.Partitions)); err == nil {
						return len(t.Partitions), nil
					}
				}
			}
		}
		if flow.Sleep(ctx, backoff.Delay(attempt)) != nil {
			if err == nil {
				err = ctx.Err()
			}
			return 0, fmt.Errorf("changelog topic %s was created but has no leader on every partition after %s: %w", c.name, changelogReady, err)
		}
	}
}

// serving asks every partition's leader for its end offset: nil once all
// of them answer.
func (c *changelog) serving(ctx context.Context, partitions int) error {
	req := make([]kafka.OffsetRequest, partitions)
	for i := range req {
		req[i] = kafka.LastOffsetOf(i)
	}
	res, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.name: req}})
	if err != nil {
		return err
	}
	ps := res.Topics[c.name]
	if len(ps) != partitions {
		return fmt.Errorf("end offsets of %d partitions of %d", len(ps), partitions)
	}
	for _, p := range ps {
		if p.Error != nil {
			return p.Error
		}
	}
	return nil
}

// checkCompacted warns when the changelog is not compacted: it then grows
// without end, or loses state to retention.
func (c *changelog) checkCompacted(ctx context.Context) {
	res, err := c.client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: c.name, ConfigNames: []string{"cleanup.policy"},
	}}})
	if err == nil && len(res.Resources) > 0 {
		err = res.Resources[0].Error
	}
	if err != nil {
		c.src.log.Debug("kafka source: cannot read the changelog's cleanup.policy", "changelog", c.name, "err", err)
		return
	}
	for _, e := range res.Resources[0].ConfigEntries {
		if e.ConfigName == "cleanup.policy" && !slices.Contains(strings.Split(e.ConfigValue, ","), "compact") {
			c.src.log.Warn("kafka source: changelog topic is not compacted: it keeps every change (or loses state to retention); set cleanup.policy=compact on it",
				"changelog", c.name, "cleanup.policy", e.ConfigValue)
		}
	}
}

// Write appends entries through the pinned sink, acks=all. The sink keeps
// one request in flight per partition, so entries of a partition are
// written in the order given and after those of earlier Writes.
func (c *changelog) Write(ctx context.Context, entries []state.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	recs := make([]flow.Record, len(entries))
	for i, e := range entries {
		if e.Partition < 0 || int(e.Partition) >= c.parts {
			return fmt.Errorf("changelog %s: entry for partition %d, which it does not have (0..%d)", c.name, e.Partition, c.parts-1)
		}
		if e.Key == nil {
			return fmt.Errorf("changelog %s: entry without a key (partition %d): a compacted topic refuses it", c.name, e.Partition)
		}
		recs[i] = flow.Record{Key: e.Key, Value: e.Value, Origin: flow.Origin{Partition: e.Partition}}
	}
	err := c.sink.Write(ctx, recs)
	var we *flow.WriteErrors
	if errors.As(err, &we) {
		first := -1
		for i := range we.Failed {
			if first < 0 || i < first {
				first = i
			}
		}
		return fmt.Errorf("changelog %s: %d of %d entries not written, the first (partition %d): %w",
			c.name, len(we.Failed), len(entries), entries[first].Partition, we.Failed[first])
	}
	if err != nil {
		return fmt.Errorf("changelog %s: %w", c.name, err)
	}
	return nil
}

// Restore reads partition from its first offset to the end offset it has
// when Restore starts, in fetches of restoreFetchBytes over a connection
// of its own to the partition leader.
func (c *changelog) Restore(ctx context.Context, partition int32, fn func(key, value []byte) error) (int64, error) {
	conn, err := c.dialLeader(ctx, partition)
	if err != nil {
		return 0, fmt.Errorf("changelog %s/%d: restore: %w", c.name, partition, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer func() {
		if stop() {
			_ = conn.Close()
		}
	}()
	fail := func(err error) (int64, error) {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, fmt.Errorf("changelog %s/%d: restore: %w", c.name, partition, err)
	}
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	first, end, err := conn.ReadOffsets()
	_ = conn.SetDeadline(time.Time{})
	if err != nil {
		return fail(err)
	}
	var n int64
	for offset := first; offset < end; {
		if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
			return fail(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(restoreReadTimeout))
		b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: restoreFetchBytes, MaxWait: time.Second})
		var ferr error
		for {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			if m.Offset >= end {
				break
			}
			if err := fn(m.Key, m.Value); err != nil {
				ferr = err
				break
			}
			n++
			offset = m.Offset + 1
		}
		next := b.Offset()
		if err := b.Close(); err != nil && ferr == nil {
			if errors.Is(err, kafka.OffsetOutOfRange) {
				// Compaction or retention moved the log start past offset.
				_ = conn.SetDeadline(time.Now().Add(requestTimeout))
				f, err := conn.ReadFirstOffset()
				_ = conn.SetDeadline(time.Time{})
				if err != nil {
					return fail(err)
				}
				offset = max(offset, f)
				continue
			}
			return fail(err)
		}
		if ferr != nil {
			return n, fmt.Errorf("changelog %s/%d: restore: %w", c.name, partition, ferr)
		}
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		// Past compacted-away offsets and control records.
		offset = max(offset, next)
	}
	return n, nil
}

// dialLeader connects to partition's leader through the first broker that
// answers.
func (c *changelog) dialLeader(ctx context.Context, partition int32) (*kafka.Conn, error) {
	var err error
	for _, b := range c.src.cfg.Brokers {
		var conn *kafka.Conn
		if conn, err = c.src.dialer.DialLeader(ctx, "tcp", b, c.name, int(partition)); err == nil {
			return conn, nil
		}
	}
	return nil, err
}

// End is partition's end offset. Errors a moment fixes (a leader moving)
// are retried a few times.
func (c *changelog) End(ctx context.Context, partition int32) (int64, error) {
	backoff := flow.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}
	for attempt := 1; ; attempt++ {
		end, err := c.end(ctx, partition)
		if err == nil || attempt >= endAttempts || ctx.Err() != nil || !retriable(err) {
			return end, err
		}
		if flow.Sleep(ctx, backoff.Delay(attempt)) != nil {
			return end, err
		}
	}
}

// endAttempts is how many times End asks before giving up.
const endAttempts = 5

func (c *changelog) end(ctx context.Context, partition int32) (int64, error) {
	res, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{c.name: {kafka.LastOffsetOf(int(partition))}},
	})
	if err != nil {
		return 0, fmt.Errorf("changelog %s/%d: end offset: %w", c.name, partition, err)
	}
	for _, p := range res.Topics[c.name] {
		if p.Partition != int(partition) {
			continue
		}
		if p.Error != nil {
			return 0, fmt.Errorf("changelog %s/%d: end offset: %w", c.name, partition, p.Error)
		}
		return p.LastOffset, nil
	}
	return 0, fmt.Errorf("changelog %s/%d: end offset: the brokers did not answer for the partition", c.name, partition)
}

// Close waits (within ctx) for writes in flight and releases the
// changelog's connections. Later calls return the first one's result.
func (c *changelog) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.closeErr = c.sink.Close(ctx)
		if c.closeErr != nil {
			c.closeErr = fmt.Errorf("changelog %s: %w", c.name, c.closeErr)
		}
	})
	return c.closeErr
}

// pinnedBalancer sends each message to the partition it names: the
// changelog's entries go to the partition of the state they belong to.
type pinnedBalancer struct{}

func (pinnedBalancer) Balance(m kafka.Message, _ ...int) int { return m.Partition }
