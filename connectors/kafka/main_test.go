package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/flow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger keeps warnings visible and the rest quiet.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// sinkConfig is DefaultSinkConfig writing to topic at broker, changed by
// mod.
func sinkConfig(broker, topic string, mod ...func(*SinkConfig)) SinkConfig {
	cfg := DefaultSinkConfig()
	cfg.Brokers, cfg.Topic, cfg.Logger = []string{broker}, topic, testLogger()
	for _, m := range mod {
		m(&cfg)
	}
	return cfg
}

// realBroker returns the PLAINTEXT address of the broker started by
// scripts/kafka.sh. Without one, -short skips and a full run fails.
func realBroker(t *testing.T) string {
	t.Helper()
	return envOrSkip(t, "SLUICE_KAFKA_BROKERS")
}

func envOrSkip(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: this test needs the real Kafka broker. Run `scripts/kafka.sh start && eval \"$(scripts/kafka.sh env)\"` first", name)
	if testing.Short() {
		t.Skip("SKIPPING (-short): " + msg)
	}
	t.Fatal(msg)
	return ""
}

// fakeCluster starts an in-process kfake broker with topics seeded.
func fakeCluster(t *testing.T, partitions int32, topics ...string) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// uniqueName gives each test run fresh topics and groups on the shared
// real broker.
func uniqueName(t *testing.T, what string) string {
	return fmt.Sprintf("sluice-test-%s-%s-%d", t.Name(), what, time.Now().UnixNano())
}

// createTopic creates a topic through the controller, as kafka-go needs.
func createTopic(t *testing.T, broker, topic string, partitions int) {
	t.Helper()
	createTopicWith(t, broker, kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
}

// createTopicWith creates a topic as tc says, and waits until every
// partition has a leader.
func createTopicWith(t *testing.T, broker string, tc kafka.TopicConfig) {
	t.Helper()
	withController(t, broker, func(cc *kafka.Conn) error { return cc.CreateTopics(tc) })
	waitForLeaders(t, broker, tc.Topic, tc.NumPartitions)
}

// withController runs do on a connection to the cluster's controller.
func withController(t *testing.T, broker string, do func(*kafka.Conn) error) {
	t.Helper()
	c, err := kafka.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctl, err := c.Controller()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctl.Host, strconv.Itoa(ctl.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := do(cc); err != nil {
		t.Fatal(err)
	}
}

// waitForLeaders waits until the topic has its partitions, each with a
// leader: metadata propagates asynchronously, and the first produce may
// fail before.
func waitForLeaders(t *testing.T, broker, topic string, partitions int) {
	t.Helper()
	c, err := kafka.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, 30*time.Second, "topic "+topic+" to have leaders", func() bool {
		ps, err := c.ReadPartitions(topic)
		return err == nil && len(ps) == partitions && !slices.ContainsFunc(ps, func(p kafka.Partition) bool { return p.Leader.ID < 0 })
	})
}

// produce writes n records keyed "k<i>" with value "<i>" round-robin over
// the partitions, returning how long it took.
func produce(t *testing.T, broker, topic string, from, n int) time.Duration {
	t.Helper()
	took, err := produceErr(broker, topic, from, n)
	if err != nil {
		t.Fatal(err)
	}
	return took
}

func produceErr(broker, topic string, from, n int) (time.Duration, error) {
	tr := &kafka.Transport{MetadataTTL: time.Second}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, Balancer: &kafka.RoundRobin{}, BatchSize: 1000,
		BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: tr}
	defer w.Close()
	start := time.Now()
	const chunk = 4096
	msgs := make([]kafka.Message, 0, chunk)
	for i := from; i < from+n; i++ {
		v := strconv.Itoa(i)
		msgs = append(msgs, kafka.Message{Key: []byte("k" + v), Value: []byte(v),
			Headers: []kafka.Header{{Key: "seq", Value: []byte(v)}}})
		if len(msgs) == chunk || i == from+n-1 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := w.WriteMessages(ctx, msgs...)
			cancel()
			if err != nil {
				return 0, err
			}
			msgs = msgs[:0]
		}
	}
	return time.Since(start), nil
}

// endOffsets returns each partition's high watermark.
func endOffsets(t *testing.T, broker, topic string) map[int]int64 {
	t.Helper()
	cl := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	defer cl.Transport.(*kafka.Transport).CloseIdleConnections()
	md, err := cl.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	var req []kafka.OffsetRequest
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			req = append(req, kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := cl.ListOffsets(context.Background(), &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatal(p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	return out
}

// committed returns the group's committed offset per partition (-1: none).
func committed(ctx context.Context, cl *kafka.Client, group, topic string, partitions int) (map[int]int64, error) {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		return nil, err
	}
	if res.Error != nil {
		return nil, res.Error
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out, nil
}

func newClient(broker string) (*kafka.Client, func()) {
	tr := &kafka.Transport{MetadataTTL: time.Second}
	return &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second, Transport: tr}, tr.CloseIdleConnections
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a counting sink: it remembers every record's origin in
// arrival order.
type recorder struct {
	mu     sync.Mutex
	byPart map[int32][]int64 // offsets in arrival order
	values map[string]int    // value -> times seen
	n      atomic.Int64
	fail   func(flow.Record) bool
	delay  time.Duration // simulated work per Write, so batches are in flight at a rebalance
}

func newRecorder() *recorder {
	return &recorder{byPart: map[int32][]int64{}, values: map[string]int{}}
}

func (r *recorder) Write(_ context.Context, recs []flow.Record) error {
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var we *flow.WriteErrors
	for i, rec := range recs {
		if r.fail != nil && r.fail(rec) {
			if we == nil {
				we = &flow.WriteErrors{Failed: map[int]error{}}
			}
			we.Failed[i] = errors.New("refused by test")
			continue
		}
		r.byPart[rec.Origin.Partition] = append(r.byPart[rec.Origin.Partition], rec.Origin.Offset)
		r.values[string(rec.Value)]++
	}
	r.n.Add(int64(len(recs)))
	if we != nil {
		return we
	}
	return nil
}

// checkOrder fails if any partition's offsets arrived out of order.
func (r *recorder) checkOrder(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for p, offs := range r.byPart {
		for i := 1; i < len(offs); i++ {
			if offs[i] <= offs[i-1] {
				t.Fatalf("partition %d: offset %d arrived after %d", p, offs[i], offs[i-1])
			}
		}
	}
}

// missing lists the values from..from+n-1 never seen, and counts
// duplicates.
func (r *recorder) missing(from, n int) (missing []int, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := from; i < from+n; i++ {
		c := r.values[strconv.Itoa(i)]
		if c == 0 {
			missing = append(missing, i)
		}
		if c > 1 {
			dups += c - 1
		}
	}
	return missing, dups
}

// runPipeline runs src into sink until stop is called; stop returns Run's
// error.
func runPipeline(t *testing.T, src flow.Source, sink flow.Sink, opts ...flow.Option) (stop func() error) {
	t.Helper()
	opts = append([]flow.Option{flow.WithLogger(testLogger()), flow.WithDrainTimeout(20 * time.Second)}, opts...)
	p := flow.New(t.Name(), opts...).
		Source("src", src).
		Sink("sink", sink, flow.Inputs("src"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				err = errors.New("pipeline did not stop within 60s")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// readTopic reads every record of every partition up to its end.
func readTopic(t *testing.T, broker, topic string) []kafka.Message {
	t.Helper()
	var out []kafka.Message
	for p, end := range endOffsets(t, broker, topic) {
		if end == 0 {
			continue
		}
		c, err := kafka.DialLeader(context.Background(), "tcp", broker, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < end; {
			if _, err := c.Seek(off, kafka.SeekAbsolute); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := c.ReadBatch(1, 4<<20)
			for {
				m, err := b.ReadMessage()
				if errors.Is(err, io.EOF) || err != nil {
					break
				}
				out = append(out, m)
				off = m.Offset + 1
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
		_ = c.Close()
	}
	return out
}
