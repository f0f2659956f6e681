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
func sluicePipeline(broker, in, out, group string, buffer int, timed *ages) (*flow.Pipeline, error) {
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
	proc, snk := m.(flow.Processor), flow.Sink(sink)
	if timed != nil {
		inner := proc
		proc = flow.ProcessFunc(func(ctx context.Context, in []flow.Record, out *flow.Output) error {
			timed.observe(atMap, in)
			return inner.Process(ctx, in, out)
		})
		snk = timedSink{sink, timed}
	}
	return flow.New("bench", flow.WithLogger(testLogger()), flow.WithDrainTimeout(30*time.Second), flow.WithBuffer(buffer)).
		Source("in", src).
		Stage("tag", flow.ProcessorStage(proc), flow.Inputs("in"), flow.Parallelism(4, flow.OrderPartition)).
		Sink("out", snk, flow.Inputs("tag")), nil
}

func sluiceCopy(buffer int) copier {
	return func(ctx context.Context, broker, in, out, group string) error {
		p, err := sluicePipeline(broker, in, out, group, buffer, nil)
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
// rawLinger for a partial one), a Writer batching like the sink (1000
// records or 1MiB per partition, acks all, murmur2; kafka-go's shortest
// useful linger, as its 0 means 1s), and each write's messages committed
// once written.
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
		BatchSize: sink.BatchSize, BatchBytes: int64(sink.BatchBytes), BatchTimeout: rawLinger,
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
		linger, cancel := context.WithTimeout(ctx, rawLinger)
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

const rawLinger = time.Millisecond

// transform is benchMap by hand.
func transform(m kafka.Message) kafka.Message {
	v := make([]byte, 0, len(m.Value)+24)
	v = append(v, `{"v":`...)
	v = append(v, m.Value...)
	v = append(v, `,"from":`...)
	v = strconv.AppendInt(v, int64(m.Partition), 10)
	return kafka.Message{Key: m.Key, Value: append(v, '}'), Headers: m.Headers, Time: m.Time}
}

// BenchmarkKafkaLatency measures end-to-end latency at steady rates: a
// producer stamps each record with the time it hands it to its client (a
// header, which the map keeps), a consumer takes now minus that stamp. p50
// and p99 are over every record of every op; one op is latencyWarmUp of
// unmeasured traffic, then latencyWindow of measured traffic.
//
// For each rate two sub-benchmarks run side by side:
//
//   - sluice: producer -> topic in -> Kafka source -> map -> Kafka sink ->
//     topic out -> consumer, every connector default. It also reports the
//     age of records where the map got them (fetch, source edge, dispatch),
//     where the sink's Write began (map, sink edge, coalescing) and where
//     it returned (the produce request acknowledged): where the time goes.
//   - kafka-go: the same producer and consumer with no pipeline (the
//     consumer reads topic in): the baseline. The sluice path has one more
//     consume and produce hop than it, through the same broker.
//
// The producer and consumer are kafka-go tuned for latency as a user would
// tune them; latencyClients says how, and the benchmark prints it.
func BenchmarkKafkaLatency(b *testing.B) {
	broker := benchBroker(b)
	b.Logf("producer and consumer (both sub-benchmarks): %s", latencyClients)
	for _, rate := range latencyRates {
		b.Run(fmt.Sprintf("%dk", rate/1000), func(b *testing.B) {
			b.Run("sluice", func(b *testing.B) { benchLatency(b, broker, rate, true) })
			b.Run("kafka-go", func(b *testing.B) { benchLatency(b, broker, rate, false) })
		})
	}
}

// latencyRates are the records per second BenchmarkKafkaLatency produces.
var latencyRates = []int{10_000, 50_000}

const (
	// latencyWindow is how long each op produces measured records.
	latencyWindow = 10 * time.Second
	// latencyWarmUp is unmeasured traffic at the same rate before it: the
	// connections to every partition are open and the clients settled.
	latencyWarmUp = time.Second
)

const stampHeader = "bench-sent"

// Where the ages of records are taken on their way (atConsumer only for
// the baseline).
const (
	atMap      = iota // the map stage got the record
	atWrite           // the sink's Write began
	atAcked           // the sink's Write returned: the broker acknowledged
	atConsumer        // the consumer of the output topic read it
	points
)

var pointNames = [points]string{"map", "write", "acked", ""}

// ages collects record ages at each point.
type ages struct {
	mu sync.Mutex
	at [points][]time.Duration
}

// observe takes the age of every stamped record of recs at point.
func (a *ages) observe(point int, recs []flow.Record) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range recs {
		for _, h := range recs[i].Headers {
			if h.Key == stampHeader {
				a.at[point] = append(a.at[point], now.Sub(stampTime(h.Value)))
			}
		}
	}
}

func (a *ages) count(point int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.at[point])
}

func stampTime(v []byte) time.Time {
	ns, _ := strconv.ParseInt(string(v), 10, 64)
	return time.Unix(0, ns)
}

// timedSink takes ages around the sink's Write.
type timedSink struct {
	*Sink
	ages *ages
}

func (s timedSink) Write(ctx context.Context, recs []flow.Record) error {
	s.ages.observe(atWrite, recs)
	err := s.Sink.Write(ctx, recs)
	s.ages.observe(atAcked, recs)
	return err
}

func benchLatency(b *testing.B, broker string, rate int, throughSluice bool) {
	var all ages
	for i := 0; i < b.N; i++ {
		measureLatency(b, broker, i, rate, throughSluice, &all)
	}
	pct := func(lat []time.Duration, q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	for p := range points {
		lat := all.at[p]
		if len(lat) == 0 {
			continue
		}
		slices.Sort(lat)
		prefix := pointNames[p]
		if prefix != "" {
			prefix += "-"
		}
		b.ReportMetric(pct(lat, 0.50), prefix+"p50-ms")
		b.ReportMetric(pct(lat, 0.99), prefix+"p99-ms")
	}
	b.ReportMetric(float64(len(all.at[atConsumer]))/float64(b.N), "records/op")
}

// The clients of the latency benchmark: kafka-go tuned for latency, as a
// user would. The producer writes synchronously, each write returning once
// acknowledged with acks=all, like the sink's; its BatchTimeout (linger) is
// as short as kafka-go allows (0 means 1s), which measured best: p50/p99
// at 10k rec/s on scripts/kafka.sh's broker were 1.8/8.8 ms with 10µs,
// 2.2/17 with 100µs, 3.9/18 with 1ms, 3.6/25 async with 1ms. BatchSize
// stays kafka-go's default 100, above what a write holds per partition
// here: kafka-go allocates a BatchSize-long slice per batch, and 1000 cost
// the benchmark process a tenth of its CPU in allocation and GC. The
// consumer's fetches return as soon as one byte is there (MinBytes 1);
// MaxWait only bounds an empty fetch (kafka-go uses it as the socket
// deadline too, so a few ms would turn a slow answer into a reconnect).
const (
	latencyLinger  = 10 * time.Microsecond
	latencyBatch   = 100
	latencyMaxWait = 100 * time.Millisecond
)

var latencyClients = fmt.Sprintf("kafka-go Writer{Async: false, BatchTimeout: %s, BatchSize: %d, RequiredAcks: all, Balancer: round robin}; "+
	"kafka-go group Reader{MinBytes: 1, MaxBytes: 1MiB, MaxWait: %s}", latencyLinger, latencyBatch, latencyMaxWait)

func latencyWriter(broker, topic string, tr *kafka.Transport) *kafka.Writer {
	return &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, Balancer: &kafka.RoundRobin{},
		BatchSize: latencyBatch, BatchTimeout: latencyLinger, RequiredAcks: kafka.RequireAll, Transport: tr}
}

func latencyReader(broker, topic, group string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: latencyMaxWait, StartOffset: kafka.FirstOffset})
}

func measureLatency(b *testing.B, broker string, i, rate int, throughSluice bool, all *ages) {
	b.StopTimer()
	in, out := benchName(b, "in", i), benchName(b, "out", i)
	benchTopic(b, broker, in, benchPartitions)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var runErr error
	var op ages
	if throughSluice {
		benchTopic(b, broker, out, benchPartitions)
		p, err := sluicePipeline(broker, in, out, benchName(b, "g", i), flow.DefaultBuffer, &op)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { runErr = p.Run(ctx) })
	} else {
		out = in
	}

	tr := &kafka.Transport{MetadataTTL: time.Second}
	defer tr.CloseIdleConnections()
	w := latencyWriter(broker, in, tr)
	defer w.Close()
	r := latencyReader(broker, out, benchName(b, "reader", i))
	defer r.Close()

	// The consumer: ages of stamped records; warm-up records (no stamp)
	// only say the path is open.
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
					op.mu.Lock()
					op.at[atConsumer] = append(op.at[atConsumer], now.Sub(stampTime(h.Value)))
					op.mu.Unlock()
				}
			}
		}
	})

	// Until a record made it through: both groups joined.
	warmUntil := time.Now().Add(2 * time.Minute)
	for warmed := false; !warmed; {
		if time.Now().After(warmUntil) {
			b.Fatal("no record came through within 2 minutes")
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

	// The producer: every tick, write what the rate says is due; stamped
	// after the warm-up.
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	sent, stamped := 0, 0
	var msgs []kafka.Message
	for now := range tick.C {
		elapsed := now.Sub(start)
		if elapsed >= latencyWarmUp+latencyWindow {
			break
		}
		due := int(elapsed.Seconds()*float64(rate)) - sent
		if due <= 0 {
			continue
		}
		measured := elapsed >= latencyWarmUp
		if measured && stamped == 0 {
			b.StartTimer()
		}
		msgs = msgs[:0]
		stamp := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
		for range due {
			m := kafka.Message{Value: []byte("1")}
			if measured {
				m.Headers = []kafka.Header{{Key: stampHeader, Value: stamp}}
			}
			msgs = append(msgs, m)
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
		sent += due
		if measured {
			stamped += due
		}
	}
	tick.Stop()
	for waitUntil := time.Now().Add(time.Minute); op.count(atConsumer) < stamped && time.Now().Before(waitUntil); {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	if runErr != nil {
		b.Fatal(runErr)
	}
	if got := op.count(atConsumer); got != stamped {
		b.Fatalf("consumer saw %d stamped records, %d were sent", got, stamped)
	}
	if achieved := float64(sent) / (latencyWarmUp + latencyWindow).Seconds(); achieved < 0.95*float64(rate) {
		b.Fatalf("the producer reached %.0f records/s, below the %d wanted", achieved, rate)
	}
	for p := range points {
		all.at[p] = append(all.at[p], op.at[p]...)
	}
}
