package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// missingWarnEvery paces the warning repeated while subscribed topics do
// not exist (readiness says it all along).
const missingWarnEvery = time.Minute

// topicCounts is the number of partitions of each topic; 0 when the
// cluster does not know the topic.
type topicCounts map[string]int

// differs reports whether any topic of want has another count in got.
func (want topicCounts) differs(got topicCounts) bool {
	for t, n := range want {
		if m, ok := got[t]; ok && m != n {
			return true
		}
	}
	return false
}

// dialAny connects to the first broker that answers.
func (s *Source) dialAny(ctx context.Context) (*kafka.Conn, error) {
	var err error
	for _, b := range s.cfg.Brokers {
		var c *kafka.Conn
		if c, err = s.dialer.DialContext(ctx, "tcp", b); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// lookup reads the partitions of topics over a connection of its own.
func (s *Source) lookup(ctx context.Context, topics []string) ([]kafka.Partition, topicCounts, error) {
	conn, err := s.dialAny(ctx)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer func() {
		if stop() {
			_ = conn.Close()
		}
	}()
	return readTopics(conn, topics)
}

// readTopics reads the partitions of topics. A topic the cluster does not
// know has none and counts 0.
//
// kafka-go's Conn.ReadPartitions fails the whole answer when one topic has
// an error, so after an error the topics are asked one by one. (kafka-go's
// consumer group does the former when it assigns partitions: one unknown
// topic and it assigns nothing at all.)
func readTopics(conn *kafka.Conn, topics []string) ([]kafka.Partition, topicCounts, error) {
	read := func(ts ...string) ([]kafka.Partition, error) {
		_ = conn.SetDeadline(time.Now().Add(requestTimeout))
		defer func() { _ = conn.SetDeadline(time.Time{}) }()
		return conn.ReadPartitions(ts...)
	}
	parts, err := read(topics...)
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		parts = nil
		for _, t := range topics {
			ps, err := read(t)
			if errors.Is(err, kafka.UnknownTopicOrPartition) {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("topic %s: %w", t, err)
			}
			parts = append(parts, ps...)
		}
	} else if err != nil {
		return nil, nil, err
	}
	counts := make(topicCounts, len(topics))
	for _, t := range topics {
		counts[t] = 0
	}
	for _, p := range parts {
		if _, asked := counts[p.Topic]; asked {
			counts[p.Topic]++
		}
	}
	slices.SortFunc(parts, func(a, b kafka.Partition) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.ID, b.ID))
	})
	return parts, counts, nil
}

// assigner is the group's partition assignor when this member leads the
// group: kafka-go's range assignment over every existing partition of the
// members' topics. It speaks the "range" protocol, so members of older
// versions join the same groups.
//
// kafka-go hands it nothing when one subscribed topic does not exist
// (see readTopics); it then reads the topics one by one itself, so the
// topics that exist are assigned. It remembers what it saw: the
// generation it leads watches for changes against exactly that.
type assigner struct {
	src *Source

	mu   sync.Mutex
	view topicCounts // of the last assignment; taken by the next generation
}

func (a *assigner) ProtocolName() string      { return "range" }
func (a *assigner) UserData() ([]byte, error) { return nil, nil }

func (a *assigner) AssignGroups(members []kafka.GroupMember, partitions []kafka.Partition) kafka.GroupMemberAssignments {
	var topics []string
	for _, m := range members {
		for _, t := range m.Topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
	}
	slices.Sort(topics)
	view := make(topicCounts, len(topics))
	for _, t := range topics {
		view[t] = 0
	}
	for _, p := range partitions {
		if _, ok := view[p.Topic]; ok {
			view[p.Topic]++
		}
	}
	if slices.ContainsFunc(topics, func(t string) bool { return view[t] == 0 }) {
		ctx, cancel := context.WithTimeout(a.src.closeCtx, requestTimeout)
		ps, counts, err := a.src.lookup(ctx, topics)
		cancel()
		if err != nil {
			// Assign what kafka-go saw; the watcher sees the difference
			// and asks for another rebalance.
			a.src.log.Debug("kafka source: cannot read topic metadata to assign partitions", "err", err)
		} else {
			partitions, view = ps, counts
		}
	}
	a.mu.Lock()
	a.view = view
	a.mu.Unlock()
	return kafka.RangeGroupBalancer{}.AssignGroups(members, partitions)
}

// take returns the view of the last assignment this member made, once.
// nil: this member did not lead the generation being started.
func (a *assigner) take() topicCounts {
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.view
	a.view = nil
	return v
}

// noteTopics records which subscribed topics exist, for Ready and the
// logs, and the first partition counts seen (see appeared).
func (s *Source) noteTopics(counts topicCounts) {
	var missing []string
	for _, t := range s.cfg.Topics {
		if n, ok := counts[t]; ok && n == 0 {
			missing = append(missing, t)
		}
	}
	now := time.Now()
	s.mu.Lock()
	if s.known == nil {
		s.known = maps.Clone(counts)
	}
	prev := s.missing
	s.missing, s.checked = missing, true
	warn := len(missing) > 0 && (!slices.Equal(prev, missing) || now.Sub(s.missingWarned) >= missingWarnEvery)
	if warn {
		s.missingWarned = now
	}
	s.mu.Unlock()
	s.checks.Add(1)
	switch {
	case warn:
		s.log.Warn("kafka source: subscribed topics do not exist; consuming the others, not ready until they exist",
			"group", s.cfg.Group, "missing", strings.Join(missing, ","), "checked_every", s.cfg.PartitionWatchInterval)
	case len(missing) == 0 && len(prev) > 0:
		s.log.Info("kafka source: subscribed topics now exist", "group", s.cfg.Group, "topics", strings.Join(prev, ","))
	}
}

// appeared reports whether a partition did not exist when this source
// first looked at its topics: it was added, or its topic created, while
// the source ran. Its records all came after the group subscribed, so it
// is read from the earliest offset whatever the start policy says.
func (s *Source) appeared(topic string, id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.known[topic]
	return ok && id >= n
}

// watch checks the subscribed topics every partition_watch_interval for
// the generation's life: missing topics make the source not ready, and
// the member that led the assignment ends the generation when a topic's
// partition count changed (partitions added, a topic created), so the
// group rebalances and the new partitions get an owner. Other members
// only note missing topics: a rejoin of theirs alone does not rebalance.
//
// kafka-go's WatchPartitionChanges is not used: its watcher ends the
// generation at once when a topic does not exist, so a missing topic
// would rebalance the group without pause.
func (g *generation) watch(genCtx context.Context, view topicCounts) {
	s := g.src
	topics := slices.Clone(s.cfg.Topics)
	for t := range view {
		if !slices.Contains(topics, t) {
			topics = append(topics, t) // another member's topic
		}
	}
	var conn *kafka.Conn
	var unwatch func() bool
	drop := func() {
		if conn != nil {
			unwatch()
			_ = conn.Close()
			conn = nil
		}
	}
	defer drop()
	tick := time.NewTicker(s.cfg.PartitionWatchInterval)
	defer tick.Stop()
	for {
		if conn == nil {
			c, err := s.dialAny(genCtx)
			if err != nil {
				s.log.Debug("kafka source: cannot connect to check topics", "err", err)
			} else {
				conn = c
				unwatch = context.AfterFunc(genCtx, func() { _ = c.Close() })
			}
		}
		if conn != nil {
			_, counts, err := readTopics(conn, topics)
			switch {
			case genCtx.Err() != nil:
				return
			case err != nil:
				s.log.Debug("kafka source: cannot check topics", "err", err)
				drop()
			default:
				s.noteTopics(counts)
				if view.differs(counts) {
					s.log.Info("kafka source: partitions of subscribed topics changed; rebalancing the group",
						"group", s.cfg.Group, "was", describeCounts(view), "now", describeCounts(counts))
					return
				}
			}
		}
		select {
		case <-genCtx.Done():
			return
		case <-tick.C:
		}
	}
}

func describeCounts(c topicCounts) string {
	ts := slices.Sorted(maps.Keys(c))
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s:%d", t, c[t])
	}
	return strings.Join(parts, ",")
}
