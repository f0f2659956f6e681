package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// Tests against the Apache Kafka broker of scripts/kafka.sh.

func brokerSource(t *testing.T, brokers []string, topic, group string, mod ...func(*SourceConfig)) *Source {
	t.Helper()
	cfg := DefaultSourceConfig()
	cfg.ID, cfg.Brokers, cfg.Topics, cfg.Group = "src", brokers, []string{topic}, group
	cfg.CommitInterval, cfg.HeartbeatInterval = 200*time.Millisecond, 500*time.Millisecond
	cfg.SessionTimeout, cfg.RebalanceTimeout, cfg.DrainTimeout = 10*time.Second, 15*time.Second, 5*time.Second
	cfg.MaxWait, cfg.Logger = 200*time.Millisecond, testLogger()
	for _, m := range mod {
		m(&cfg)
	}
	s, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBrokerSource100k reads 100k records from 6 partitions: every record
// arrives once, in order per partition, offsets are committed exactly, and
// a restart with the same group re-delivers nothing.
func TestBrokerSource100k(t *testing.T) {
	broker := realBroker(t)
	const parts, n = 6, 100_000
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, broker, topic, parts)
	took := produce(t, broker, topic, 0, n)
	t.Logf("test producer: %d records in %s (%.0f rec/s)", n, took, float64(n)/took.Seconds())

	rec := newRecorder()
	start := time.Now()
	var first time.Time
	stop := runPipeline(t, brokerSource(t, []string{broker}, topic, group), rec)
	waitFor(t, 30*time.Second, "the first record", func() bool { return rec.n.Load() > 0 })
	first = time.Now()
	waitFor(t, 120*time.Second, "all records", func() bool { return rec.n.Load() >= n })
	all := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	t.Logf("source: %d records in %s after joining (%.0f rec/s); join+first fetch %s",
		n, all.Sub(first), float64(n)/all.Sub(first).Seconds(), first.Sub(start))
	rec.checkOrder(t)
	if miss, dups := rec.missing(0, n); len(miss) > 0 || dups > 0 {
		t.Fatalf("%d missing (e.g. %v), %d duplicates", len(miss), head(miss), dups)
	}
	if got := rec.n.Load(); got != n {
		t.Fatalf("got %d records, want %d", got, n)
	}

	cl, closeCl := newClient(broker)
	defer closeCl()
	ends := endOffsets(t, broker, topic)
	got, err := committed(context.Background(), cl, group, topic, parts)
	if err != nil {
		t.Fatal(err)
	}
	for p, end := range ends {
		if got[p] != end {
			t.Fatalf("partition %d: committed %d, want the end offset %d", p, got[p], end)
		}
	}

	rec2 := newRecorder()
	stop2 := runPipeline(t, brokerSource(t, []string{broker}, topic, group), rec2)
	produce(t, broker, topic, n, parts) // one per partition: re-deliveries would precede them
	waitFor(t, 60*time.Second, "the new records", func() bool { return rec2.n.Load() >= parts })
	if err := stop2(); err != nil {
		t.Fatalf("second pipeline: %v", err)
	}
	if got := rec2.n.Load(); got != parts {
		t.Fatalf("restart got %d records, want exactly the %d new ones", got, parts)
	}
}

// TestBrokerGroupChurn runs two members of one group while records keep
// arriving, has them join and leave, and polls the committed offsets the
// whole time: they never move backwards, nothing is lost, and because
// revoked partitions drain before they move, nothing is read twice.
func TestBrokerGroupChurn(t *testing.T) {
	broker := realBroker(t)
	const parts = 6
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, broker, topic, parts)

	cl, closeCl := newClient(broker)
	defer closeCl()
	pollCtx, stopPoll := context.WithCancel(context.Background())
	var regress []string
	var polls int
	var pollWG sync.WaitGroup
	pollWG.Go(func() {
		high := map[int]int64{}
		for pollCtx.Err() == nil {
			got, err := committed(pollCtx, cl, group, topic, parts)
			if err == nil {
				polls++
				for p, off := range got {
					if h, seen := high[p]; seen && off < h {
						regress = append(regress, fmt.Sprintf("partition %d from %d to %d", p, h, off))
					}
					if h, seen := high[p]; !seen || off > h {
						high[p] = off
					}
				}
			}
			select {
			case <-pollCtx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	})

	// Records keep arriving at ~20k/s for the whole churn.
	prodCtx, stopProd := context.WithCancel(context.Background())
	var prodWG sync.WaitGroup
	var produced int
	var prodErr error
	prodWG.Go(func() {
		const chunk = 500
		tick := time.NewTicker(25 * time.Millisecond)
		defer tick.Stop()
		for prodErr == nil {
			_, prodErr = produceErr(broker, topic, produced, chunk)
			produced += chunk
			select {
			case <-prodCtx.Done():
				return
			case <-tick.C:
			}
		}
	})
	defer stopProd()

	a, b, a2 := newRecorder(), newRecorder(), newRecorder()
	for _, r := range []*recorder{a, b, a2} {
		r.delay = 30 * time.Millisecond // slower than the producer: edges stay full
	}
	stopA := runPipeline(t, brokerSource(t, []string{broker}, topic, group), a)
	waitFor(t, 60*time.Second, "member A to read", func() bool { return a.n.Load() >= 5000 })
	stopB := runPipeline(t, brokerSource(t, []string{broker}, topic, group), b)
	waitFor(t, 60*time.Second, "member B to get partitions", func() bool { return b.n.Load() >= 2000 })
	if err := stopA(); err != nil {
		t.Fatalf("member A: %v", err)
	}
	mark := b.n.Load()
	waitFor(t, 60*time.Second, "member B to take over", func() bool { return b.n.Load() >= mark+5000 })
	stopA2 := runPipeline(t, brokerSource(t, []string{broker}, topic, group), a2)
	waitFor(t, 60*time.Second, "member A to rejoin and read", func() bool { return a2.n.Load() >= 2000 })
	stopProd()
	prodWG.Wait()
	if prodErr != nil {
		t.Fatalf("background producer: %v", prodErr)
	}
	n := produced
	total := func() int64 { return a.n.Load() + b.n.Load() + a2.n.Load() }
	waitFor(t, 120*time.Second, "every record", func() bool { return total() >= int64(n) })
	ends := endOffsets(t, broker, topic)
	waitFor(t, 30*time.Second, "commits to reach the end offsets", func() bool {
		got, err := committed(context.Background(), cl, group, topic, parts)
		if err != nil {
			return false
		}
		for p, end := range ends {
			if got[p] != end {
				return false
			}
		}
		return true
	})
	if err := stopB(); err != nil {
		t.Fatalf("member B: %v", err)
	}
	if err := stopA2(); err != nil {
		t.Fatalf("member A again: %v", err)
	}
	stopPoll()
	pollWG.Wait()

	if len(regress) > 0 {
		t.Fatalf("committed offsets moved backwards %d times, e.g. %s", len(regress), regress[0])
	}
	if polls < 10 {
		t.Fatalf("only %d offset polls succeeded: the check saw too little", polls)
	}
	union := newRecorder()
	for _, r := range []*recorder{a, b, a2} {
		r.checkOrder(t)
		r.mu.Lock()
		for v, c := range r.values {
			union.values[v] += c
		}
		r.mu.Unlock()
	}
	miss, dups := union.missing(0, n)
	t.Logf("%d records; member A read %d, B %d, A again %d; %d offset polls; %d duplicates",
		n, a.n.Load(), b.n.Load(), a2.n.Load(), polls, dups)
	if len(miss) > 0 {
		t.Fatalf("%d records lost, e.g. %v", len(miss), head(miss))
	}
	if dups > 0 {
		t.Fatalf("%d records read twice: a revoked partition was committed short of what was acknowledged", dups)
	}
}

// TestBrokerSASL round-trips through the SCRAM listener, and checks that a
// wrong password ends the source with an error naming the listener and the
// sink's writes fail the same way.
func TestBrokerSASL(t *testing.T) {
	broker := realBroker(t)
	saslBroker := envOrSkip(t, "SLUICE_KAFKA_SASL_BROKERS")
	user, pass := os.Getenv("SLUICE_KAFKA_SASL_USER"), os.Getenv("SLUICE_KAFKA_SASL_PASSWORD")
	topic := uniqueName(t, "t")
	createTopic(t, broker, topic, 2)

	sink, err := NewSink(sinkConfig(saslBroker, topic, func(c *SinkConfig) {
		c.SASL = SASL{Mechanism: MechanismSCRAMSHA512, User: user, Password: pass}
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := make([]flow.Record, 100)
	for i := range recs {
		recs[i] = flow.Record{Value: []byte(strconv.Itoa(i))}
	}
	if err := sink.Write(ctx, recs); err != nil {
		t.Fatalf("write with the right password: %v", err)
	}
	_ = sink.Close(ctx)

	rec := newRecorder()
	stop := runPipeline(t, brokerSource(t, []string{saslBroker}, topic, uniqueName(t, "g"), func(c *SourceConfig) {
		c.SASL = SASL{Mechanism: MechanismSCRAMSHA256, User: user, Password: pass}
	}), rec)
	waitFor(t, 60*time.Second, "records over SASL", func() bool { return rec.n.Load() >= 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if miss, _ := rec.missing(0, 100); len(miss) > 0 {
		t.Fatalf("missing %v", miss)
	}

	bad := SASL{Mechanism: MechanismSCRAMSHA256, User: user, Password: "wrong-" + pass}
	src := brokerSource(t, []string{saslBroker}, topic, uniqueName(t, "g"), func(c *SourceConfig) { c.SASL = bad })
	err = runUntilError(t, src, 60*time.Second)
	if err == nil || !strings.Contains(err.Error(), "cannot authenticate") || !strings.Contains(err.Error(), saslBroker) {
		t.Fatalf("source with a wrong password: %v; want an authentication error naming %s", err, saslBroker)
	}
	t.Logf("wrong password, source: %v", err)

	sink, err = NewSink(sinkConfig(saslBroker, topic, func(c *SinkConfig) { c.MaxRetries, c.SASL = 0, bad }))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	err = sink.Write(ctx, recs[:1])
	if err == nil || !strings.Contains(err.Error(), "cannot authenticate") {
		t.Fatalf("sink with a wrong password: %v; want an authentication error", err)
	}
	t.Logf("wrong password, sink: %v", err)
}

// TestBrokerTLS round-trips through the SSL listener with the script's CA,
// and checks an untrusted certificate is a clear, final error.
func TestBrokerTLS(t *testing.T) {
	broker := realBroker(t)
	tlsBroker := envOrSkip(t, "SLUICE_KAFKA_TLS_BROKERS")
	ca := envOrSkip(t, "SLUICE_KAFKA_TLS_CA")
	topic := uniqueName(t, "t")
	createTopic(t, broker, topic, 2)
	good := TLS{Enabled: true, CA: ca}

	sink, err := NewSink(sinkConfig(tlsBroker, topic, func(c *SinkConfig) { c.TLS = good }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := make([]flow.Record, 50)
	for i := range recs {
		recs[i] = flow.Record{Value: []byte(strconv.Itoa(i))}
	}
	if err := sink.Write(ctx, recs); err != nil {
		t.Fatalf("write over TLS: %v", err)
	}
	_ = sink.Close(ctx)

	rec := newRecorder()
	stop := runPipeline(t, brokerSource(t, []string{tlsBroker}, topic, uniqueName(t, "g"), func(c *SourceConfig) { c.TLS = good }), rec)
	waitFor(t, 60*time.Second, "records over TLS", func() bool { return rec.n.Load() >= 50 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	src := brokerSource(t, []string{tlsBroker}, topic, uniqueName(t, "g"), func(c *SourceConfig) { c.TLS = TLS{Enabled: true} })
	err = runUntilError(t, src, 60*time.Second)
	if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), tlsBroker) {
		t.Fatalf("source trusting the wrong CA: %v; want a certificate error naming %s", err, tlsBroker)
	}
}

// runUntilError runs a source that is expected to fail by itself.
func runUntilError(t *testing.T, src flow.Source, within time.Duration) error {
	t.Helper()
	p := flow.New(t.Name(), flow.WithLogger(testLogger())).Source("src", src).Sink("sink", newRecorder(), flow.Inputs("src"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		cancel()
		<-done
		return errors.New("source kept retrying instead of failing")
	}
}

// TestBrokerSinkThroughput writes 200k records through the engine into a
// 6-partition topic and checks the topic holds them all.
func TestBrokerSinkThroughput(t *testing.T) {
	broker := realBroker(t)
	const parts, n = 6, 200_000
	topic := uniqueName(t, "t")
	createTopic(t, broker, topic, parts)
	sink, err := NewSink(sinkConfig(broker, topic))
	if err != nil {
		t.Fatal(err)
	}
	src := &seqSource{n: n, batch: 500}
	start := time.Now()
	stop := runPipeline(t, src, sink)
	waitFor(t, 120*time.Second, "every write acknowledged", func() bool { return src.acked.Load()+src.failed.Load() >= n })
	took := time.Since(start)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if f := src.failed.Load(); f > 0 {
		t.Fatalf("%d records failed", f)
	}
	t.Logf("sink: %d records in %s (%.0f rec/s)", n, took, float64(n)/took.Seconds())
	var sum int64
	for _, end := range endOffsets(t, broker, topic) {
		sum += end
	}
	if sum != n {
		t.Fatalf("topic holds %d records, want %d", sum, n)
	}
}

// counter is the cheapest sink: it only counts.
type counter struct{ n atomic.Int64 }

func (c *counter) Write(_ context.Context, recs []flow.Record) error {
	c.n.Add(int64(len(recs)))
	return nil
}

// TestBrokerSourceThroughput reads 300k records from 6 partitions into a
// counting sink and logs the rate from the first record on.
func TestBrokerSourceThroughput(t *testing.T) {
	broker := realBroker(t)
	const parts, n = 6, 300_000
	topic := uniqueName(t, "t")
	createTopic(t, broker, topic, parts)
	produce(t, broker, topic, 0, n)
	c := &counter{}
	stop := runPipeline(t, brokerSource(t, []string{broker}, topic, uniqueName(t, "g")), c)
	waitFor(t, 30*time.Second, "the first records", func() bool { return c.n.Load() > 0 })
	start, from := time.Now(), c.n.Load()
	waitFor(t, 120*time.Second, "every record", func() bool { return c.n.Load() >= n })
	took := time.Since(start)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := c.n.Load(); got != n {
		t.Fatalf("counted %d records, want %d", got, n)
	}
	t.Logf("source: %d records in %s (%.0f rec/s)", n-from, took, float64(n-from)/took.Seconds())
}
