package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
	_ "github.com/sluicedev/sluice/stages" // the map stage, from the registry
)

// Benchmarks against the Apache Kafka broker of scripts/kafka.sh:
//
//	go test ./connectors/kafka -run '^$' -bench Kafka -benchtime 1x
//
// Each op copies a freshly produced topic, so one op takes seconds and
// -benchtime 1x is enough.

// benchBroker is realBroker for benchmarks.
func benchBroker(b *testing.B) string {
	b.Helper()
	v := os.Getenv("SLUICE_KAFKA_BROKERS")
	if v == "" {
		b.Skip("SKIPPING: SLUICE_KAFKA_BROKERS is not set: this benchmark needs the real Kafka broker. " +
			"Run `scripts/kafka.sh start && eval \"$(scripts/kafka.sh env)\"` first")
	}
	return v
}

const (
	benchRecords    = 200_000
	benchPartitions = 6
	// benchMap is the map stage of the sluice pipeline; rawCopy does the
	// same by hand.
	benchMap = `{"v": value, "from": partition}`
)

// copier copies topic in to topic out as consumer group group until ctx
// ends.
type copier func(ctx context.Context, broker, in, out, group string) error

// BenchmarkKafkaPipeline copies benchRecords records from a 6-partition
// topic to another, Kafka -> map -> Kafka: through a sluice pipeline, and
// through a consume-transform-produce loop written directly on kafka-go
// with the same batch settings. rec/s is measured from the first record
// in the output topic to the last, so group joins do not count.
func BenchmarkKafkaPipeline(b *testing.B) {
	broker := benchBroker(b)
	b.Run("sluice", func(b *testing.B) { benchCopy(b, broker, sluiceCopy(flow.DefaultBuffer)) })
	b.Run("kafka-go", func(b *testing.B) { benchCopy(b, broker, rawCopy) })
	// The sink coalesces what queued on its input edge while it wrote, but
	// the edge's capacity (settings.buffer, 1024 records by default) bounds
	// that: writes stay near 1024 records. A bigger buffer lets them reach
	// flow.DefaultSinkBatch.
	b.Run("sluice-buffer-8192", func(b *testing.B) { benchCopy(b, broker, sluiceCopy(8192)) })
}

func benchCopy(b *testing.B, broker string, copyTopic copier) {
	cl, closeCl := newClient(broker)
	defer closeCl()
	var copied int64
	var busy time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		in, out, group := benchName(b, "in", i), benchName(b, "out", i), benchName(b, "g", i)
		benchTopic(b, broker, in, benchPartitions)
		benchTopic(b, broker, out, benchPartitions)
		if _, err := produceErr(broker, in, 0, benchRecords); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		ctx, cancel := context.WithCancel(context.Background())
		var copyErr error
		finished := make(chan struct{})
		go func() {
			defer close(finished)
			copyErr = copyTopic(ctx, broker, in, out, group)
		}()
		n, took, err := watchOutput(cl, out, benchRecords, 3*time.Minute, finished)
		cancel()
		<-finished
		if err != nil || copyErr != nil {
			b.Fatalf("%v (copy: %v)", err, copyErr)
		}
		copied += n
		busy += took
	}
	b.ReportMetric(float64(copied)/busy.Seconds(), "rec/s")
}

func benchName(b *testing.B, what string, i int) string {
	return fmt.Sprintf("sluice-bench-%s-%s-%d-%d", topicSafe(b.Name()), what, i, time.Now().UnixNano())
}

// benchTopic is createTopic for benchmarks. The topic is deleted when the
// benchmark ends, to keep the shared broker's disk small.
func benchTopic(b *testing.B, broker, topic string, partitions int) {
	b.Helper()
	c, err := kafka.Dial("tcp", broker)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctl, err := c.Controller()
	if err != nil {
		b.Fatal(err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctl.Host, strconv.Itoa(ctl.Port)))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if cc, err := kafka.Dial("tcp", net.JoinHostPort(ctl.Host, strconv.Itoa(ctl.Port))); err == nil {
			_ = cc.DeleteTopics(topic) // best effort: a leftover only costs disk
			_ = cc.Close()
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ps, err := c.ReadPartitions(topic)
		if err == nil && len(ps) == partitions && !slices.ContainsFunc(ps, func(p kafka.Partition) bool { return p.Leader.ID < 0 }) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("topic %s has no leaders after 30s", topic)
		}
	}
}

func topicSafe(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			out[i] = '_'
		}
	}
	return string(out)
}

// watchOutput polls the output topic's end offsets until it holds want
// records. It returns how many records arrived after the first poll that
// saw any, and over how long: the steady-state copy.
func watchOutput(cl *kafka.Client, topic string, want int64, within time.Duration, copyDone <-chan struct{}) (int64, time.Duration, error) {
	deadline := time.Now().Add(within)
	var first time.Time
	var atFirst int64
	for {
		n, err := total(cl, topic)
		now := time.Now()
		if err == nil && n > 0 && first.IsZero() {
			first, atFirst = now, n
		}
		if err == nil && n >= want {
			if n > want {
				return 0, 0, fmt.Errorf("output holds %d records, more than the %d produced", n, want)
			}
			if n == atFirst {
				return 0, 0, errors.New("the whole output appeared between two polls: nothing to time")
			}
			return n - atFirst, now.Sub(first), nil
		}
		if now.After(deadline) {
			return 0, 0, fmt.Errorf("output holds %d of %d records after %s", n, want, within)
		}
		select {
		case <-copyDone:
			return 0, 0, fmt.Errorf("copy ended early, with %d of %d records in the output", n, want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func total(cl *kafka.Client, topic string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, err
	}
	var req []kafka.OffsetRequest
	for _, tp := range md.Topics {
		for _, p := range tp.Partitions {
			req = append(req, kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return 0, p.Error
		}
		n += p.LastOffset
	}
	return n, nil
}

// sluicePipeline is Kafka -> map -> Kafka with every connector default
// and edges of buffer records; the map runs like the e2e pipeline's (4
// workers, ordered by partition).
func sluicePipeline(broker, in, out, group string, buffer int) (*flow.Pipeline, error) {
	cfg := DefaultSourceConfig()
	cfg.ID, cfg.Brokers, cfg.Topics, cfg.Group, cfg.Logger = "in", []string{broker}, []string{in}, group, testLogger()
	src, err := NewSource(cfg)
	if err != nil {
		return nil, err
	}
	sink, err := NewSink(sinkConfig(broker, out))
	if err != nil {
		return nil, err
	}
	spec, ok := registry.Lookup(flow.KindStage, "map")
	if !ok {
		return nil, errors.New("no map stage registered")
	}
	m, err := spec.Build(&registry.Conf{ID: "tag", Kind: "stage", Type: "map", Values: map[string]any{"value": benchMap}})
	if err != nil {
		return nil, err
	}
	return flow.New("bench", flow.WithLogger(testLogger()), flow.WithDrainTimeout(30*time.Second), flow.WithBuffer(buffer)).
		Source("in", src).
		Stage("tag", flow.ProcessorStage(m.(flow.Processor)), flow.Inputs("in"), flow.Parallelism(4, flow.OrderPartition)).
		Sink("out", sink, flow.Inputs("tag")), nil
}

func sluiceCopy(buffer int) copier {
	return func(ctx context.Context, broker, in, out, group string) error {
		p, err := sluicePipeline(broker, in, out, group, buffer)
		if err != nil {
			return err
		}
		return p.Run(ctx)
	}
}

// rawCopy is the loop a kafka-go user would write, with sluice's batch
// settings: a group Reader fetching like the source (min 1 byte, max 1MiB,
// max wait 500ms, commits every second), messages gathered into writes of
// up to flow.DefaultSinkBatch (what the engine coalesces for a sink, with
// the sink's 5ms linger for a partial one), a Writer batching like the
// sink (1000 records, 5ms, acks all, murmur2), and each write's messages
// committed once written.
func rawCopy(ctx context.Context, broker, in, out, group string) error {
	src, sink := DefaultSourceConfig(), DefaultSinkConfig()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{broker}, GroupID: group, Topic: in,
		MinBytes: int(src.MinBytes), MaxBytes: int(src.MaxBytes), MaxWait: src.MaxWait,
		CommitInterval: src.CommitInterval, StartOffset: kafka.FirstOffset,
	})
	tr := &kafka.Transport{MetadataTTL: time.Second}
	w := &kafka.Writer{
		Addr: kafka.TCP(broker), Topic: out, Balancer: kafka.Murmur2Balancer{},
		BatchSize: sink.BatchSize, BatchBytes: int64(sink.BatchBytes), BatchTimeout: sink.Linger,
		RequiredAcks: kafka.RequireAll, Transport: tr,
	}
	defer func() {
		_ = w.Close()
		_ = r.Close() // flushes the pending commit
		tr.CloseIdleConnections()
	}()
	fetched := make([]kafka.Message, 0, flow.DefaultSinkBatch)
	batch := make([]kafka.Message, 0, flow.DefaultSinkBatch)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch: %w", err)
		}
		fetched = append(fetched[:0], m)
		linger, cancel := context.WithTimeout(ctx, sink.Linger)
		for len(fetched) < cap(fetched) {
			if m, err = r.FetchMessage(linger); err != nil {
				break
			}
			fetched = append(fetched, m)
		}
		cancel()
		batch = batch[:0]
		for _, m := range fetched {
			batch = append(batch, transform(m))
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := r.CommitMessages(ctx, fetched...); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// transform is benchMap by hand.
func transform(m kafka.Message) kafka.Message {
	v := make([]byte, 0, len(m.Value)+24)
	v = append(v, `{"v":`...)
	v = append(v, m.Value...)
	v = append(v, `,"from":`...)
	v = strconv.AppendInt(v, int64(m.Partition), 10)
	return kafka.Message{Key: m.Key, Value: append(v, '}'), Headers: m.Headers, Time: m.Time}
}

// BenchmarkKafkaLatency measures end-to-end latency through the sluice
// pipeline at a steady 10k records/s: a producer stamps each record with
// the time it hands it to the client (a header, which the map keeps), a
// consumer of the output topic takes now minus that stamp. p50 and p99 are
// over every record of every op; one op is latencyWindow of traffic.
//
// The sub-benchmark no-pipeline has the consumer read the input topic
// directly: the latency of the producer, broker and consumer alone, which
// the pipeline's figures include.
func BenchmarkKafkaLatency(b *testing.B) {
	broker := benchBroker(b)
	b.Run("sluice", func(b *testing.B) { benchLatency(b, broker, true) })
	b.Run("no-pipeline", func(b *testing.B) { benchLatency(b, broker, false) })
}

func benchLatency(b *testing.B, broker string, throughSluice bool) {
	const rate = 10_000
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		lat = append(lat, measureLatency(b, broker, i, rate, throughSluice)...)
	}
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat))/float64(b.N), "records/op")
}

// latencyWindow is how long each op produces at the fixed rate.
const latencyWindow = 10 * time.Second

const stampHeader = "bench-sent"

func measureLatency(b *testing.B, broker string, i, rate int, throughSluice bool) []time.Duration {
	b.StopTimer()
	in, out := benchName(b, "in", i), benchName(b, "out", i)
	benchTopic(b, broker, in, benchPartitions)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var runErr error
	if throughSluice {
		benchTopic(b, broker, out, benchPartitions)
		p, err := sluicePipeline(broker, in, out, benchName(b, "g", i), flow.DefaultBuffer)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { runErr = p.Run(ctx) })
	} else {
		out = in
	}

	tr := &kafka.Transport{MetadataTTL: time.Second}
	defer tr.CloseIdleConnections()
	// Batches flush at once: the producer's own wait is part of what a
	// user would see, but a 1s default linger is not.
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: in, Balancer: &kafka.RoundRobin{},
		BatchSize: 1000, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll, Transport: tr}
	defer w.Close()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, GroupID: benchName(b, "reader", i), Topic: out,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()

	// The consumer: latencies of stamped records; warm-up records (no
	// stamp) only say the path is open.
	var mu sync.Mutex
	var lat []time.Duration
	warm := make(chan struct{})
	var warmOnce sync.Once
	wg.Go(func() {
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				return
			}
			now := time.Now()
			warmOnce.Do(func() { close(warm) })
			for _, h := range m.Headers {
				if h.Key == stampHeader {
					ns, _ := strconv.ParseInt(string(h.Value), 10, 64)
					mu.Lock()
					lat = append(lat, now.Sub(time.Unix(0, ns)))
					mu.Unlock()
				}
			}
		}
	})

	// Warm up until a record made it through: both groups joined.
	warmUntil := time.Now().Add(2 * time.Minute)
	for warmed := false; !warmed; {
		if time.Now().After(warmUntil) {
			b.Fatal("no record came through the pipeline within 2 minutes")
		}
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.WriteMessages(wctx, kafka.Message{Value: []byte("0")})
		wcancel()
		if err != nil {
			b.Fatal(err)
		}
		select {
		case <-warm:
			warmed = true
		case <-time.After(200 * time.Millisecond):
		}
	}

	// The producer: every tick, write what the rate says is due.
	b.StartTimer()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent := 0
	var msgs []kafka.Message
	for now := range tick.C {
		elapsed := now.Sub(start)
		if elapsed >= latencyWindow {
			break
		}
		due := int(elapsed.Seconds()*float64(rate)) - sent
		if due <= 0 {
			continue
		}
		msgs = msgs[:0]
		stamp := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
		for range due {
			msgs = append(msgs, kafka.Message{Value: []byte("1"), Headers: []kafka.Header{{Key: stampHeader, Value: stamp}}})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
		sent += due
	}
	tick.Stop()
	got := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(lat)
	}
	for waitUntil := time.Now().Add(time.Minute); got() < sent && time.Now().Before(waitUntil); {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	if runErr != nil {
		b.Fatal(runErr)
	}
	if got() != sent {
		b.Fatalf("consumer saw %d stamped records, %d were sent", got(), sent)
	}
	if achieved := float64(sent) / latencyWindow.Seconds(); achieved < 0.95*float64(rate) {
		b.Fatalf("the producer reached %.0f records/s, below the %d wanted", achieved, rate)
	}
	return lat
}
