package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/flow/registry"
	"github.com/sluicedev/sluice/stages/expr"
)

// Acks settings: how many replicas confirm a write before Write returns.
const (
	AcksAll  = "all"
	AcksOne  = "one"
	AcksNone = "none"
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

// Sink defaults. A coalesced write of flow.DefaultSinkBatch records spread
// over a few partitions is one produce request per partition. BatchSize is
// not larger because kafka-go allocates a BatchSize-long slice per batch:
// a 4096-record write to one partition took 17 ms at 10000, 11 ms at 1000.
// BatchBytes matches the broker's default message.max.bytes.
const (
	DefaultSinkBatchSize  = 1000
	DefaultSinkBatchBytes = 1 << 20
	// Write is synchronous and the engine hands it everything queued on
	// the edge at once, so waiting for more only adds latency; 0 would
	// mean kafka-go's 1 s.
	DefaultLinger = time.Millisecond
	// About two minutes of retries at the capped backoff: long enough to
	// ride out a broker restart (the Java producer's delivery.timeout.ms
	// is two minutes too).
	DefaultMaxRetries = 120
	DefaultBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff = time.Second
)

// SinkConfig configures a Sink. Zero values take the defaults above.
type SinkConfig struct {
	Brokers []string
	// Topic is where records go; or TopicExpr, an expression (package
	// stages/expr) computing each record's topic. Exactly one is set.
	Topic       string
	TopicExpr   string
	Acks        string // AcksAll (default), AcksOne, AcksNone
	Partitioner string // PartitionerMurmur2 (default), PartitionerCRC32, PartitionerRoundRobin
	Compression string // none (default), gzip, snappy, lz4, zstd

	BatchSize  int           // records per produce request per partition, at most
	BatchBytes int64         // bytes per produce request per partition, at most; also the largest record accepted
	Linger     time.Duration // how long a partial batch waits for more records

	MaxRetries int // retries of a failed produce request; negative for none
	Backoff    time.Duration
	MaxBackoff time.Duration

	TLS  TLS
	SASL SASL

	Logger *slog.Logger
}

func (c *SinkConfig) setDefaults() {
	if c.Acks == "" {
		c.Acks = AcksAll
	}
	if c.Partitioner == "" {
		c.Partitioner = PartitionerMurmur2
	}
	if c.Compression == "" {
		c.Compression = "none"
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultSinkBatchSize
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultSinkBatchBytes
	}
	if c.Linger <= 0 {
		c.Linger = DefaultLinger
	}
	switch {
	case c.MaxRetries == 0:
		c.MaxRetries = DefaultMaxRetries
	case c.MaxRetries < 0:
		c.MaxRetries = 0
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

var compressions = map[string]kafka.Compression{
	"none":   0,
	"gzip":   kafka.Gzip,
	"snappy": kafka.Snappy,
	"lz4":    kafka.Lz4,
	"zstd":   kafka.Zstd,
}

func (c *SinkConfig) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, registry.FieldErr(field, fmt.Errorf(format, args...)))
	}
	if err := checkBrokers(c.Brokers); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.TopicExpr != "" && c.Topic != "":
		bad("topic", "set topic or topic_expr, not both")
	case c.TopicExpr == "" && strings.TrimSpace(c.Topic) == "":
		bad("topic", "required (or topic_expr): the topic records are written to")
	}
	switch c.Acks {
	case AcksAll, AcksOne, AcksNone:
	default:
		bad("acks", "%q is not all, one or none", c.Acks)
	}
	switch c.Partitioner {
	case PartitionerMurmur2, PartitionerCRC32, PartitionerRoundRobin:
	default:
		bad("partitioner", "%q is not murmur2, crc32 or round_robin", c.Partitioner)
	}
	if _, ok := compressions[c.Compression]; !ok {
		bad("compression", "%q is not none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	if c.Backoff > c.MaxBackoff {
		bad("backoff", "%s is above max_backoff %s", c.Backoff, c.MaxBackoff)
	}
	return errors.Join(errs...)
}

// Sink produces records to one topic. It implements flow.Sink and
// flow.Closer. Write is safe for concurrent use: concurrent writes share
// the same per-partition batches.
type Sink struct {
	cfg       SinkConfig
	sec       security
	w         *kafka.Writer
	transport *kafka.Transport

	topicExpr *expr.Program
	envs      sync.Pool // of *expr.Env: one per concurrent Write
}

// NewSink validates cfg. It connects nowhere until the first Write.
func NewSink(cfg SinkConfig) (*Sink, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
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
	acks := map[string]kafka.RequiredAcks{AcksAll: kafka.RequireAll, AcksOne: kafka.RequireOne, AcksNone: kafka.RequireNone}[cfg.Acks]
	var bal kafka.Balancer
	switch cfg.Partitioner {
	case PartitionerCRC32:
		bal = kafka.CRC32Balancer{}
	case PartitionerRoundRobin:
		bal = &kafka.RoundRobin{}
	default:
		bal = kafka.Murmur2Balancer{}
	}
	w := &kafka.Writer{
		Addr:            kafka.TCP(cfg.Brokers...),
		Topic:           cfg.Topic,
		Balancer:        bal,
		MaxAttempts:     cfg.MaxRetries + 1,
		WriteBackoffMin: cfg.Backoff,
		WriteBackoffMax: cfg.MaxBackoff,
		BatchSize:       cfg.BatchSize,
		BatchBytes:      cfg.BatchBytes,
		BatchTimeout:    cfg.Linger,
		RequiredAcks:    acks,
		Compression:     compressions[cfg.Compression],
		Transport:       tr,
		// As the Java producer does: the broker's auto.create.topics.enable
		// decides (the dev broker allows it).
		AllowAutoTopicCreation: true,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			cfg.Logger.Debug("kafka-go: " + strings.TrimSpace(fmt.Sprintf(msg, args...)))
		}),
	}
	s := &Sink{cfg: cfg, sec: sec, w: w, transport: tr, topicExpr: prog}
	s.envs.New = func() any { return expr.NewEnv(prog) }
	return s, nil
}

// Write produces records and returns once the broker acknowledged all of
// them (per acks). Records that cannot be written (too large, topic_expr
// failed, topic unknown) or whose produce request failed after the retries
// come back in a *flow.WriteErrors; the others were written.
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
		if err := s.produce(ctx, groups[order[0]], fail); err != nil {
			return err
		}
	} else {
		// kafka-go fails a whole call for one unknown topic: one call per
		// topic keeps failures to the records that caused them.
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, topic := range order {
			wg.Go(func() {
				err := s.produce(ctx, groups[topic], func(i int, err error) {
					mu.Lock()
					fail(i, err)
					mu.Unlock()
				})
				if err != nil {
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
	msgs []kafka.Message
	idx  []int // msgs[j] is records[idx[j]]
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
		if n := messageSize(&m); n > s.cfg.BatchBytes {
			fail(i, fmt.Errorf("record of %d bytes is larger than batch_bytes (%d)", n, s.cfg.BatchBytes))
			continue
		}
		g := groups[topic]
		if g == nil {
			size := len(records)
			if env != nil {
				size = 0 // many topics: grow as needed
			}
			g = &topicGroup{msgs: make([]kafka.Message, 0, size), idx: make([]int, 0, size)}
			groups[topic] = g
			order = append(order, topic)
		}
		g.msgs = append(g.msgs, m)
		g.idx = append(g.idx, i)
	}
	return groups, order
}

// produce writes one topic's messages. Per-message failures go to fail; an
// error failing the whole call is returned.
func (s *Sink) produce(ctx context.Context, g *topicGroup, fail func(int, error)) error {
	err := s.w.WriteMessages(ctx, g.msgs...)
	var werrs kafka.WriteErrors
	switch {
	case err == nil:
		return nil
	case errors.As(err, &werrs) && len(werrs) == len(g.msgs):
		for j, e := range werrs {
			if e != nil {
				fail(g.idx[j], s.explain(e))
			}
		}
		return nil
	}
	return s.explain(err)
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

// Close waits for produce requests in flight and releases connections.
func (s *Sink) Close(context.Context) error {
	err := s.w.Close()
	s.transport.CloseIdleConnections()
	return err
}

// messageSize is kafka-go's own size of m (Message.totalSize, unexported):
// WriteMessages rejects the whole call if any message exceeds BatchBytes,
// so oversized records are failed one by one before calling it.
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
