package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// Acks settings: how many replicas confirm a write before Write returns.
// There is no "none": a write nobody confirmed would be acknowledged to
// the source, whose offset would then be committed even if the record
// never arrived.
const (
	AcksAll = "all"
	AcksOne = "one"
)

// Partitioners: how a record's partition is chosen.
const (
	// PartitionerMurmur2 hashes the key like the Java client, so keyed
	// records land where Java producers would put them; records without a
	// key go to a random partition.
	PartitionerMurmur2 = "murmur2"
	// PartitionerCRC32 hashes the key like librdkafka's default.
	PartitionerCRC32 = "crc32"
	// PartitionerRoundRobin ignores keys.
	PartitionerRoundRobin = "round_robin"
)

// SinkConfig configures a Sink. Its keys, their defaults and ranges are
// declared once, in sinkFields (spec.go); Go code starts from
// DefaultSinkConfig.
type SinkConfig struct {
	Brokers []string
	// Topic is where records go; or TopicExpr, an expression (package
	// expr) computing each record's topic. Exactly one is set.
	Topic       string
	TopicExpr   string
	Acks        string // AcksAll or AcksOne
	Partitioner string // PartitionerMurmur2, PartitionerCRC32, PartitionerRoundRobin
	Compression string // none, gzip, snappy, lz4, zstd

	BatchSize  int               // records per produce request per partition, at most
	BatchBytes registry.ByteSize // bytes per produce request per partition, at most; also the largest record accepted
	Linger     time.Duration     // how long a partial batch may wait for more records; 0 sends it at once

	MaxRetries int // retries of a failed produce request; 0 for none
	Backoff    time.Duration
	MaxBackoff time.Duration

	TLS  TLS
	SASL SASL

	Logger *slog.Logger // nil logs to slog.Default()

	// pinned sends each record to the partition its Origin.Partition
	// names, instead of the partitioner's choice: a changelog's entries go
	// to the partition of the state they belong to (changelog.go).
	pinned bool
}

// validate applies the declaration (registry.Check) and the rules tying
// keys together.
func (c *SinkConfig) validate() error {
	errs := []error{registry.Check(sinkFields, c), checkBrokers(c.Brokers)}
	bad := func(field, format string, args ...any) {
		errs = append(errs, registry.FieldErr(field, fmt.Errorf(format, args...)))
	}
	switch {
	case c.TopicExpr != "" && c.Topic != "":
		bad("topic", "set topic or topic_expr, not both")
	case c.TopicExpr == "" && strings.TrimSpace(c.Topic) == "":
		bad("topic", "required (or topic_expr): the topic records are written to")
	}
	if c.Acks == "none" {
		bad("acks", "none is refused: records no broker confirmed would be acknowledged and their source offsets committed, so a lost write would go unnoticed; use one or all")
	}
	if c.Backoff > c.MaxBackoff {
		bad("backoff", "%s is above max_backoff %s", c.Backoff, c.MaxBackoff)
	}
	return errors.Join(errs...)
}

// Sink produces records to one topic. It implements flow.Sink and
// flow.Closer. Write is safe for concurrent use: concurrent writes share
// the same per-partition batches (see producer, produce.go).
type Sink struct {
	cfg       SinkConfig
	sec       security
	prod      *producer
	addr      net.Addr
	transport *kafka.Transport
	codec     kafka.Compression
	bal       kafka.Balancer
	acks      kafka.RequiredAcks

	topicExpr *expr.Program
	envs      sync.Pool // of *expr.Env: one per concurrent Write

	// unknown holds topics that stayed unknown for a whole retry budget,
	// with when: for unknownMemory, writes to them are not retried, so a
	// topic that does not exist (a topic_expr result, say) fails its
	// records at once instead of holding every Write for the budget.
	unknownMu sync.Mutex
	unknown   map[string]time.Time
}

const unknownMemory = time.Minute

// NewSink validates cfg, a complete config (see DefaultSinkConfig). It
// connects nowhere until the first Write.
func NewSink(cfg SinkConfig) (*Sink, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var codec kafka.Compression
	if err := codec.UnmarshalText([]byte(cfg.Compression)); err != nil {
		return nil, registry.FieldErr("compression", err)
	}
	sec, err := newSecurity(cfg.TLS, cfg.SASL)
	if err != nil {
		return nil, err
	}
	var prog *expr.Program
	metaTopics := []string{cfg.Topic}
	if cfg.TopicExpr != "" {
		if prog, err = expr.Compile(cfg.TopicExpr, expr.Expect(expr.String)); err != nil {
			return nil, registry.FieldErr("topic_expr", err)
		}
		metaTopics = nil // any topic: metadata of all
	}
	tr := sec.transport("sluice", metaTopics)
	acks := map[string]kafka.RequiredAcks{AcksAll: kafka.RequireAll, AcksOne: kafka.RequireOne}[cfg.Acks]
	var bal kafka.Balancer
	switch cfg.Partitioner {
	case PartitionerCRC32:
		bal = kafka.CRC32Balancer{}
	case PartitionerRoundRobin:
		bal = &kafka.RoundRobin{}
	default:
		bal = kafka.Murmur2Balancer{}
	}
	if cfg.pinned {
		bal = pinnedBalancer{}
	}
	s := &Sink{cfg: cfg, sec: sec, addr: kafka.TCP(cfg.Brokers...), transport: tr, codec: codec, bal: bal, acks: acks, topicExpr: prog}
	s.prod = newProducer(s, tr, s.addr, acks, codec)
	s.envs.New = func() any { return expr.NewEnv(prog) }
	return s, nil
}

// Write produces records and returns once the broker acknowledged all of
// them (per acks). Records that cannot be written (larger than
// batch_bytes, refused by the brokers when sent alone, topic_expr failed)
// or whose produce request failed after the retries come back in a
// *flow.WriteErrors; the others were written. One record the brokers
// refuse never fails the others of its produce request (see isolate). An
// unknown topic is retried within the retry budget, then fails the Write.
func (s *Sink) Write(ctx context.Context, records []flow.Record) error {
	if len(records) == 0 {
		return nil
	}
	var failed map[int]error
	fail := func(i int, err error) {
		if failed == nil {
			failed = map[int]error{}
		}
		failed[i] = err
	}
	groups, order := s.messages(records, fail)
	if len(order) == 1 && failed == nil {
		// The common case: one topic, nothing rejected up front.
		if err := s.prod.write(ctx, groups[order[0]], fail); err != nil {
			return s.explain(err)
		}
	} else {
		// One call per topic: a topic that stays unknown fails only its
		// own records, and the others are not held by its retries.
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, topic := range order {
			wg.Go(func() {
				err := s.prod.write(ctx, groups[topic], func(i int, err error) {
					mu.Lock()
					fail(i, err)
					mu.Unlock()
				})
				if err != nil {
					err = s.explain(err)
					mu.Lock()
					for _, i := range groups[topic].idx {
						fail(i, err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	if failed != nil {
		return &flow.WriteErrors{Failed: failed}
	}
	return nil
}

// topicGroup is the messages of one Write bound for one topic.
type topicGroup struct {
	topic string
	msgs  []kafka.Message
	idx   []int // msgs[j] is records[idx[j]]
}

// messages converts records, grouped by topic in first-seen order.
// Records that cannot be sent are passed to fail instead.
func (s *Sink) messages(records []flow.Record, fail func(int, error)) (map[string]*topicGroup, []string) {
	var env *expr.Env
	if s.topicExpr != nil {
		env = s.envs.Get().(*expr.Env)
		defer func() { env.Bind(nil); s.envs.Put(env) }()
	}
	groups := map[string]*topicGroup{}
	var order []string
	now := time.Now()
	for i := range records {
		r := &records[i]
		m := kafka.Message{Key: r.Key, Value: r.Value, Time: r.Timestamp}
		if s.cfg.pinned {
			m.Partition = int(r.Origin.Partition)
		}
		topic := s.cfg.Topic
		if env != nil {
			env.Bind(r)
			t, err := env.EvalString(s.topicExpr)
			if err == nil && t == "" {
				err = errors.New("empty topic")
			}
			if err != nil {
				fail(i, fmt.Errorf("topic_expr %s: %w", s.cfg.TopicExpr, err))
				continue
			}
			topic, m.Topic = t, t
		}
		if m.Time.IsZero() {
			m.Time = now // kafka-go would send 0 (1970)
		}
		if len(r.Headers) > 0 {
			m.Headers = make([]kafka.Header, len(r.Headers))
			for j, h := range r.Headers {
				m.Headers[j] = kafka.Header{Key: h.Key, Value: h.Value}
			}
		}
		if n := messageSize(&m); n > int64(s.cfg.BatchBytes) {
			fail(i, fmt.Errorf("record of %d bytes is larger than batch_bytes (%d)", n, s.cfg.BatchBytes))
			continue
		}
		g := groups[topic]
		if g == nil {
			size := len(records)
			if env != nil {
				size = 0 // many topics: grow as needed
			}
			g = &topicGroup{topic: topic, msgs: make([]kafka.Message, 0, size), idx: make([]int, 0, size)}
			groups[topic] = g
			order = append(order, topic)
		}
		g.msgs = append(g.msgs, m)
		g.idx = append(g.idx, i)
	}
	return groups, order
}

// recentlyUnknown reports whether topic stayed unknown for a whole retry
// budget less than unknownMemory ago.
func (s *Sink) recentlyUnknown(topic string) bool {
	s.unknownMu.Lock()
	defer s.unknownMu.Unlock()
	at, ok := s.unknown[topic]
	if ok && time.Since(at) >= unknownMemory {
		delete(s.unknown, topic)
		ok = false
	}
	return ok
}

func (s *Sink) setUnknown(topic string, unknown bool) {
	s.unknownMu.Lock()
	defer s.unknownMu.Unlock()
	switch {
	case !unknown:
		delete(s.unknown, topic)
	case s.unknown == nil:
		s.unknown = map[string]time.Time{topic: time.Now()}
	default:
		s.unknown[topic] = time.Now()
	}
}

// retriable reports errors another try may not get: a retriable Kafka
// error, or a lost or timed-out connection. A produce request that failed
// so may have been written: its retry can write records twice, which
// at-least-once allows.
func retriable(err error) bool {
	if isAuthError(err) {
		return false
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	var nerr net.Error
	return errors.As(err, &nerr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// recordCaused reports produce errors one record can cause for the whole
// request it is in: larger than the topic's max.message.bytes (which
// also bounds a whole batch), a batch larger than a log segment, a record
// the broker refuses (a keyless record on a compacted topic), a timestamp
// out of the allowed range.
func recordCaused(err error) bool {
	for _, code := range []kafka.Error{kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidRecord, kafka.InvalidTimestamp} {
		if errors.Is(err, code) {
			return true
		}
	}
	return false
}

// isolateTimeout bounds one produce request of isolate, as produceTimeout
// does the others.
const isolateTimeout = 10 * time.Second

// tryAlone writes the messages at positions set to partition p as one
// request; if it fails for a reason one record can cause, the failed
// records are narrowed down: the ones the broker named, or else the two
// halves are tried apart. A record that fails alone is the culprit.
func (s *Sink) tryAlone(ctx context.Context, cl *kafka.Client, g *topicGroup, p int, set []int, fail func(int, error)) {
	named, err := s.produceDirect(ctx, cl, g, p, set)
	switch {
	case err == nil:
		return
	case !recordCaused(err):
		for _, j := range set {
			fail(g.idx[j], s.explain(err))
		}
		return
	}
	var rest []int
	for k, j := range set {
		if e, ok := named[k]; ok {
			// The broker named the records it refused (KIP-467).
			fail(g.idx[j], s.explainRecord(g.msgs[j], g.topic, err, e))
		} else {
			rest = append(rest, j)
		}
	}
	switch {
	case len(rest) < len(set):
		if len(rest) > 0 {
			s.tryAlone(ctx, cl, g, p, rest, fail)
		}
	case len(set) == 1:
		fail(g.idx[set[0]], s.explainRecord(g.msgs[set[0]], g.topic, err, nil))
	default:
		mid := len(set) / 2
		s.tryAlone(ctx, cl, g, p, set[:mid], fail)
		s.tryAlone(ctx, cl, g, p, set[mid:], fail)
	}
}

// produceDirect sends the messages at positions set as one produce
// request to partition p, retrying retriable errors within the retry
// budget as kafka-go's Writer does. named holds the errors the broker
// gave for single records, by position in set.
func (s *Sink) produceDirect(ctx context.Context, cl *kafka.Client, g *topicGroup, p int, set []int) (named map[int]error, err error) {
	backoff := flow.Backoff{Initial: s.cfg.Backoff, Max: s.cfg.MaxBackoff}
	for retry := 0; ; retry++ {
		if retry > 0 {
			if e := flow.Sleep(ctx, backoff.Delay(retry)); e != nil {
				return nil, err
			}
		}
		recs := make([]kafka.Record, len(set))
		for k, j := range set {
			m := &g.msgs[j]
			recs[k] = kafka.Record{Time: m.Time, Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers}
		}
		var res *kafka.ProduceResponse
		res, err = cl.Produce(ctx, &kafka.ProduceRequest{
			Topic:        g.topic,
			Partition:    p,
			RequiredAcks: s.acks,
			Compression:  s.codec,
			Records:      kafka.NewRecordReader(recs...),
		})
		if err == nil && res != nil {
			err, named = res.Error, res.RecordErrors
		}
		if err == nil || ctx.Err() != nil || retry >= s.cfg.MaxRetries || !retriable(err) {
			return named, err
		}
	}
}

// explainRecord explains why the broker refused one record: err is the
// request's error, detail what the broker said of this record, if it did.
func (s *Sink) explainRecord(m kafka.Message, topic string, err, detail error) error {
	if errors.Is(err, kafka.MessageSizeTooLarge) {
		return fmt.Errorf("record of %d bytes refused by the brokers as too large for topic %s (its max.message.bytes, or the brokers' message.max.bytes; batch_bytes is %d): %w",
			messageSize(&m), topic, s.cfg.BatchBytes, err)
	}
	var code kafka.Error
	if detail != nil && errors.As(err, &code) {
		return fmt.Errorf("record refused by the brokers for topic %s: %v: %w", topic, detail, code)
	}
	return fmt.Errorf("record refused by the brokers for topic %s: %w", topic, err)
}

// explain names the topic and brokers, and the config keys to check when
// the brokers refused our credentials.
func (s *Sink) explain(err error) error {
	if isAuthError(err) {
		return authHint(err, s.cfg.Brokers, s.sec)
	}
	where := "topic " + s.cfg.Topic
	if s.topicExpr != nil {
		where = "topic_expr " + s.cfg.TopicExpr
	}
	return fmt.Errorf("produce (%s) at %s: %w", where, strings.Join(s.cfg.Brokers, ","), err)
}

// Close waits (within ctx) for produce requests in flight and releases
// connections.
func (s *Sink) Close(ctx context.Context) error {
	err := s.prod.close(ctx)
	s.transport.CloseIdleConnections()
	return err
}

// messageSize is kafka-go's own size of m (Message.totalSize, unexported),
// what batch_bytes is counted in: a record above it fails alone before
// anything is sent.
func messageSize(m *kafka.Message) int64 {
	n := int64(4+1+1) + bytesSize(m.Key) + bytesSize(m.Value) + 8
	n += varintSize(int64(len(m.Headers)))
	for _, h := range m.Headers {
		n += varintSize(int64(len(h.Key))) + int64(len(h.Key))
		n += varintSize(int64(len(h.Value))) + int64(len(h.Value))
	}
	return n
}

func bytesSize(b []byte) int64 { return 4 + int64(len(b)) }

// varintSize is the length of v as a zig-zag varint.
func varintSize(v int64) int64 {
	u := uint64((v << 1) ^ (v >> 63))
	n := int64(1)
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
