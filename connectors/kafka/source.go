package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Start policies: where a partition with no committed offset (or one
// outside the log) is read from.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// authAttempts is how many consecutive authentication or TLS failures Run
// tolerates before giving up: one could be a broker restarting with new
// credentials, a few in a row are a configuration mistake.
const authAttempts = 3

// joinBackoff paces retries of joining the group while brokers are down.
// Capped low so a member rejoins within seconds of the brokers' return.
var joinBackoff = flow.Backoff{Initial: 500 * time.Millisecond, Max: 5 * time.Second}

// SourceConfig configures a Source. Its keys, their defaults and ranges
// are declared once, in sourceFields (spec.go); Go code starts from
// DefaultSourceConfig.
type SourceConfig struct {
	ID      string // node id, written to each record's Origin.Source
	Brokers []string
	Topics  []string
	Group   string
	Start   string // StartEarliest or StartLatest

	MinBytes registry.ByteSize // per-partition fetch: wait for this many bytes...
	MaxWait  time.Duration     // ...or this long
	MaxBytes registry.ByteSize // per-partition fetch size cap

	Batch          int           // max records per emitted batch (one ack each)
	CommitInterval time.Duration // how often acknowledged offsets are committed

	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance; DrainTimeout (how long a revoked partition
	// waits for its in-flight batches before its last commit) must be
	// shorter, or this member misses the rejoin.
	RebalanceTimeout time.Duration
	DrainTimeout     time.Duration
	// PartitionWatchInterval is how often the subscribed topics are
	// checked: partitions added and topics created while running are
	// assigned after the next check (plus a rebalance); a topic that does
	// not exist keeps the source not ready.
	PartitionWatchInterval time.Duration

	TLS  TLS
	SASL SASL

	Logger *slog.Logger // nil logs to slog.Default()
}

// validate applies the declaration (registry.Check) and the rules tying
// keys together.
func (c *SourceConfig) validate() error {
	errs := []error{registry.Check(sourceFields, c), checkBrokers(c.Brokers)}
	bad := func(field, format string, args ...any) {
		errs = append(errs, registry.FieldErr(field, fmt.Errorf(format, args...)))
	}
	if len(c.Topics) == 0 {
		bad("topics", "list at least one topic")
	}
	for i, t := range c.Topics {
		field := fmt.Sprintf("topics[%d]", i)
		switch {
		case strings.TrimSpace(t) == "":
			bad(field, "empty topic name")
		case slices.Contains(c.Topics[:i], t):
			bad(field, "topic %q is listed twice", t)
		default:
			if err := checkTopicName(t); err != nil {
				bad(field, "%v", err)
			}
		}
	}
	if c.Group == "" {
		bad("group", "required: the consumer group whose committed offsets say where to resume")
	}
	if c.MinBytes > c.MaxBytes {
		bad("min_bytes", "%s is above max_bytes %s", registry.FormatSize(int64(c.MinBytes)), registry.FormatSize(int64(c.MaxBytes)))
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		bad("heartbeat_interval", "%s must be below session_timeout %s", c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.DrainTimeout >= c.RebalanceTimeout {
		bad("drain_timeout", "%s must be below rebalance_timeout %s: a revoked partition drains before this member rejoins", c.DrainTimeout, c.RebalanceTimeout)
	}
	// kafka-go stops heartbeating once a rebalance starts: a drain longer
	// than the session gets this member evicted and its last commit
	// refused, so the next owner repeats what the drain wrote.
	if c.DrainTimeout >= c.SessionTimeout {
		bad("drain_timeout", "%s must be below session_timeout %s: no heartbeats are sent while revoked partitions drain, so a longer drain gets this member evicted and its final commit refused", c.DrainTimeout, c.SessionTimeout)
	}
	return errors.Join(errs...)
}

// checkTopicName applies Kafka's rules for topic names: a name the
// brokers would refuse fails the whole group's join, every time.
func checkTopicName(t string) error {
	const maxLen = 249
	switch {
	case t == "." || t == "..":
		return fmt.Errorf("%q is not a valid topic name", t)
	case len(t) > maxLen:
		return fmt.Errorf("topic name of %d characters is longer than Kafka's %d", len(t), maxLen)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("topic name %q has %q: Kafka allows only letters, digits, '.', '_' and '-'", t, r)
		}
	}
	return nil
}

// Source consumes topics as a member of a consumer group. It implements
// flow.Source and flow.Closer.
//
// Each generation of the group gets one fetch loop per assigned partition
// and one committer; commits happen every CommitInterval, when a partition
// is revoked (after its in-flight batches settled or DrainTimeout passed)
// and at Close.
type Source struct {
	cfg    SourceConfig
	sec    security
	dialer *kafka.Dialer
	log    *slog.Logger

	// closeCtx ends when Close has waited for acks: revoke drains stop
	// waiting then and commit what they have.
	closeCtx context.Context
	closeNow context.CancelFunc

	assign *assigner

	mu      sync.Mutex
	group   *kafka.ConsumerGroup
	current *generation
	closed  bool
	// Topic checks (watch.go): missing lists subscribed topics that do not
	// exist; checked is set by the first check; known is the partition
	// count of each topic when this source first looked.
	missing       []string
	checked       bool
	known         topicCounts
	missingWarned time.Time
	checks        atomic.Int64 // completed topic checks, for tests
	// changelogs handed out by Changelog, closed by Close.
	changelogs []*changelog
}

// NewSource validates cfg, a complete config (see DefaultSourceConfig).
// It connects nowhere: Run does.
func NewSource(cfg SourceConfig) (*Source, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	sec, err := newSecurity(cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	s := &Source{
		cfg:    cfg,
		sec:    sec,
		dialer: sec.dialer("sluice"),
		log:    cfg.Logger,
	}
	s.closeCtx, s.closeNow = context.WithCancel(context.Background())
	s.assign = &assigner{src: s}
	return s, nil
}

func (s *Source) openGroup() (*kafka.ConsumerGroup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("kafka source is closed")
	}
	if s.group != nil {
		return nil, errors.New("kafka source: Run called twice")
	}
	start := kafka.FirstOffset
	if s.cfg.Start == StartLatest {
		start = kafka.LastOffset
	}
	g, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                s.cfg.Group,
		Brokers:           s.cfg.Brokers,
		Dialer:            s.dialer,
		Topics:            s.cfg.Topics,
		HeartbeatInterval: s.cfg.HeartbeatInterval,
		SessionTimeout:    s.cfg.SessionTimeout,
		RebalanceTimeout:  s.cfg.RebalanceTimeout,
		JoinGroupBackoff:  time.Second,
		// Every existing partition is assigned even when a topic is
		// missing; the generation's watch replaces WatchPartitionChanges.
		GroupBalancers: []kafka.GroupBalancer{s.assign},
		StartOffset:    start,
		Timeout:        requestTimeout,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			s.log.Debug("kafka-go: " + strings.TrimSpace(fmt.Sprintf(msg, args...)))
		}),
	})
	if err != nil {
		return nil, err
	}
	s.group = g
	return g, nil
}

// Run joins the group and emits records until ctx ends. Brokers being
// unreachable is retried with backoff for as long as it lasts; rejected
// credentials or TLS failures end Run with an error after a few attempts.
func (s *Source) Run(ctx context.Context, out flow.Emitter) error {
	s.firstLook(ctx)
	group, err := s.openGroup()
	if err != nil {
		return err
	}
	var attempt, authFails int
	for {
		gen, err := group.Next(ctx)
		if err != nil {
			switch {
			case ctx.Err() != nil, errors.Is(err, kafka.ErrGroupClosed):
				return nil
			case errors.Is(err, kafka.RebalanceInProgress):
				// The coordinator paces these; nothing is wrong.
				s.log.Debug("kafka source: rebalance in progress", "group", s.cfg.Group)
				continue
			case isAuthError(err):
				authFails++
				if authFails >= authAttempts {
					return authHint(err, s.cfg.Brokers, s.sec)
				}
			default:
				authFails = 0
			}
			attempt++
			s.log.Warn("kafka source: cannot join consumer group, retrying",
				"group", s.cfg.Group, "brokers", strings.Join(s.cfg.Brokers, ","), "attempt", attempt, "err", err)
			if flow.Sleep(ctx, joinBackoff.Delay(attempt)) != nil {
				return nil
			}
			continue
		}
		attempt, authFails = 0, 0
		g := s.startGeneration(ctx, gen, out)
		select {
		case <-g.done:
		case <-ctx.Done():
			// Once Run returns the engine closes out: wait until no fetch
			// loop can call Emit. The generation lives on until Close so
			// its committer can commit what the drain acknowledges.
			g.waitStopped()
			return nil
		}
	}
}

// firstLook records the partitions the topics have before the group is
// joined: partitions beyond them appeared while the source ran, and are
// read from the earliest offset (see appeared). Best effort: if the
// brokers do not answer, the first check after joining stands in.
func (s *Source) firstLook(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	stop := context.AfterFunc(s.closeCtx, cancel)
	defer stop()
	if _, counts, err := s.lookup(ctx, s.cfg.Topics); err == nil {
		s.noteTopics(counts)
	}
}

// Close waits (within ctx) for emitted batches to settle, commits every
// acknowledged offset through the generation that owns it, and leaves the
// group. It returns an error if that final commit failed or could not be
// made within ctx: the records after the last commit will then be read
// again.
//
// Leaving is bounded by ctx too. Between generations kafka-go's Close
// first waits for the pending JoinGroup, which the coordinator holds until
// every member rejoined (other members may be draining revoked partitions
// for their whole drain_timeout). By then there is nothing left to commit,
// so that wait must not hold the shutdown past its deadline; if it would,
// Close returns and the coordinator drops this member after
// session_timeout.
func (s *Source) Close(ctx context.Context) (err error) {
	// Last: stages flushing their state at shutdown write to them until
	// the drain ends.
	defer func() { err = errors.Join(err, s.closeChangelogs(ctx)) }()
	s.mu.Lock()
	s.closed = true
	group, g := s.group, s.current
	s.mu.Unlock()
	if group == nil {
		s.closeNow()
		return nil
	}
	if g != nil {
		if err := g.waitIdle(ctx); err != nil {
			s.log.Warn("kafka source: closing with batches still in flight; they will be re-read on restart",
				"in_flight", g.inFlight())
		}
	}
	s.closeNow()
	// A generation that already ended (a rebalance, a broker restart) made
	// its last commit then, and a failure was logged then: its partitions
	// went to the next owner, which re-reads what was not committed. That
	// is not this Close's failure.
	if g != nil {
		select {
		case <-g.done:
			g = nil
		default:
		}
	}
	// Ending the group ends the generation: its committer makes the final
	// commit before kafka-go sends LeaveGroup. The goroutine ends when
	// kafka-go's Close returns, at the latest after rebalance_timeout.
	left := make(chan struct{})
	go func() {
		defer close(left)
		_ = group.Close()
	}()
	if g != nil {
		select {
		case <-g.done:
			err = g.finalErr
		case <-ctx.Done():
			return fmt.Errorf("kafka source: final commit of group %s not done before the drain deadline (waiting for the group coordinator); records since the last commit will be read again", s.cfg.Group)
		}
	}
	select {
	case <-left:
	case <-ctx.Done():
		s.log.Warn("kafka source: could not leave the consumer group before the drain deadline: a rebalance is in progress and the coordinator holds this member's JoinGroup until the others rejoin; offsets were committed, the coordinator drops this member after session_timeout",
			"group", s.cfg.Group, "session_timeout", s.cfg.SessionTimeout)
	}
	return err
}

// generation is this member's share of one consumer-group generation.
type generation struct {
	src   *Source
	gen   *kafka.Generation
	parts []*partitionReader
	done  chan struct{} // closed after the committer's final commit

	finalErr error // set before done is closed
}

func (s *Source) startGeneration(ctx context.Context, gen *kafka.Generation, out flow.Emitter) *generation {
	g := &generation{src: s, gen: gen, done: make(chan struct{})}
	// Set when this member led the assignment: what it assigned from.
	view := s.assign.take()
	if view != nil {
		s.noteTopics(view)
	}
	var assigned []string
	for _, topic := range s.cfg.Topics {
		for _, pa := range gen.Assignments[topic] {
			g.parts = append(g.parts, newPartitionReader(s, topic, pa))
			assigned = append(assigned, fmt.Sprintf("%s/%d", topic, pa.ID))
		}
	}
	s.log.Info("kafka source: joined group", "group", s.cfg.Group, "generation", gen.ID, "member", gen.MemberID,
		"partitions", strings.Join(assigned, ","))
	if len(assigned) == 0 {
		s.log.Warn("kafka source: no partitions assigned: the group has more members than partitions, or the topics do not exist yet (checked every partition_watch_interval)",
			"group", s.cfg.Group, "topics", strings.Join(s.cfg.Topics, ","), "partition_watch_interval", s.cfg.PartitionWatchInterval)
	}
	s.mu.Lock()
	s.current = g
	s.mu.Unlock()

	for _, p := range g.parts {
		gen.Start(func(genCtx context.Context) {
			fetchCtx, cancel := context.WithCancel(ctx)
			stop := context.AfterFunc(genCtx, cancel)
			p.run(fetchCtx, out)
			stop()
			cancel()
			// Returning ends the whole generation (kafka-go's rule), so a
			// loop stopped by the drain waits for the generation to end.
			<-genCtx.Done()
		})
	}
	gen.Start(g.commitLoop)
	gen.Start(func(genCtx context.Context) { g.watch(genCtx, view) })
	return g
}

// commitLoop is the generation's only committer: periodic commits, then on
// the generation's end (rebalance, Close) the revoke drain and last commit.
func (g *generation) commitLoop(genCtx context.Context) {
	defer close(g.done)
	t := time.NewTicker(g.src.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = g.commit()
		case <-genCtx.Done():
			g.finish()
			return
		}
	}
}

func (g *generation) finish() {
	g.waitStopped()
	ctx, cancel := context.WithTimeout(g.src.closeCtx, g.src.cfg.DrainTimeout)
	defer cancel()
	if err := g.waitIdle(ctx); err != nil && g.src.closeCtx.Err() == nil {
		g.src.log.Warn("kafka source: partitions revoked with batches still in flight after drain_timeout; they will be re-read by the next owner",
			"in_flight", g.inFlight(), "drain_timeout", g.src.cfg.DrainTimeout)
	}
	g.release(ctx)
	g.finalErr = g.commit()
	g.src.log.Info("kafka source: generation ended", "group", g.src.cfg.Group, "generation", g.gen.ID)
}

// release Ends the lease of every partition of the generation and waits,
// within ctx (what is left of drain_timeout), for the stages holding them
// to let go: they flush the state they keep per partition then. kafka-go
// rejoins the group only once the generation's functions returned, so the
// next owner of a partition gets it after its holders released it (or
// after drain_timeout, with a warning).
func (g *generation) release(ctx context.Context) {
	for _, p := range g.parts {
		p.lease.End()
	}
	var held []string
	for _, p := range g.parts {
		if !waitLease(ctx, p.lease) {
			held = append(held, fmt.Sprintf("%s/%d", p.topic, p.partition))
		}
	}
	if len(held) > 0 && g.src.closeCtx.Err() == nil {
		g.src.log.Warn("kafka source: partitions revoked while stages still hold their state after drain_timeout; the next owner may restore it without their last changes",
			"partitions", strings.Join(held, ","), "drain_timeout", g.src.cfg.DrainTimeout)
	}
}

// waitLease waits for l's holders within ctx and reports whether they all
// released it. Lease.Wait picks either way when the lease is free and ctx
// is done too (waitIdle may have used up the drain): a lease that ctx
// reported held is asked again with an ended context, which only a free
// lease can beat, until one answer says free or the odds of a free lease
// losing every draw are negligible.
func waitLease(ctx context.Context, l *flow.Lease) bool {
	if l.Wait(ctx) == nil {
		return true
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for range 20 {
		if l.Wait(ended) == nil {
			return true
		}
	}
	return false
}

func (g *generation) waitStopped() {
	for _, p := range g.parts {
		<-p.stopped
	}
}

func (g *generation) waitIdle(ctx context.Context) error {
	for _, p := range g.parts {
		if err := p.track.waitIdle(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (g *generation) inFlight() int {
	n := 0
	for _, p := range g.parts {
		n += p.track.inFlight()
	}
	return n
}

// commit commits every partition whose acknowledged position moved.
func (g *generation) commit() error {
	offsets := map[string]map[int]int64{}
	type moved struct {
		p   *partitionReader
		pos int64
	}
	var ms []moved
	for _, p := range g.parts {
		pos, ok := p.track.position()
		if !ok || pos <= p.committed {
			continue
		}
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int]int64{}
		}
		offsets[p.topic][p.partition] = pos
		ms = append(ms, moved{p, pos})
	}
	if len(ms) == 0 {
		return nil
	}
	if err := g.gen.CommitOffsets(offsets); err != nil {
		g.src.log.Warn("kafka source: commit failed; acknowledged records since the last commit may be read again",
			"group", g.src.cfg.Group, "generation", g.gen.ID, "err", err)
		return fmt.Errorf("commit offsets of group %s: %w", g.src.cfg.Group, err)
	}
	for _, m := range ms {
		m.p.committed = m.pos
	}
	return nil
}
