package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func fakeSource(t *testing.T, broker, topic, group string, mod ...func(*SourceConfig)) *Source {
	t.Helper()
	cfg := DefaultSourceConfig()
	cfg.ID, cfg.Brokers, cfg.Topics, cfg.Group = "src", []string{broker}, []string{topic}, group
	cfg.CommitInterval, cfg.HeartbeatInterval = 100*time.Millisecond, 300*time.Millisecond
	cfg.SessionTimeout, cfg.RebalanceTimeout, cfg.DrainTimeout = 6*time.Second, 10*time.Second, 3*time.Second
	cfg.MaxWait, cfg.Logger = 100*time.Millisecond, testLogger()
	for _, m := range mod {
		m(&cfg)
	}
	s, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFakeSourceRoundTripAndRestart reads a topic through a pipeline, then
// restarts with the same group and checks nothing is read twice: the
// commits at shutdown were exact.
func TestFakeSourceRoundTripAndRestart(t *testing.T) {
	const topic, parts, n = "orders", 3, 20000
	broker := fakeCluster(t, parts, topic)
	produce(t, broker, topic, 0, n)

	rec := newRecorder()
	stop := runPipeline(t, fakeSource(t, broker, topic, "g1"), rec)
	waitFor(t, 60*time.Second, "all records", func() bool { return rec.n.Load() >= n })
	if err := stop(); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	rec.checkOrder(t)
	if miss, dups := rec.missing(0, n); len(miss) > 0 || dups > 0 {
		t.Fatalf("first run: %d missing (e.g. %v), %d duplicates", len(miss), head(miss), dups)
	}

	cl, closeCl := newClient(broker)
	defer closeCl()
	ends := endOffsets(t, broker, topic)
	got, err := committed(context.Background(), cl, "g1", topic, parts)
	if err != nil {
		t.Fatal(err)
	}
	for p, end := range ends {
		if got[p] != end {
			t.Fatalf("partition %d: committed %d, want end offset %d", p, got[p], end)
		}
	}

	// Restart: only records produced afterwards may arrive.
	rec2 := newRecorder()
	stop2 := runPipeline(t, fakeSource(t, broker, topic, "g1"), rec2)
	produce(t, broker, topic, n, parts)
	waitFor(t, 60*time.Second, "the new records", func() bool { return rec2.n.Load() >= parts })
	if err := stop2(); err != nil {
		t.Fatalf("second pipeline: %v", err)
	}
	if got := rec2.n.Load(); got != parts {
		t.Fatalf("second run got %d records, want exactly the %d new ones (re-delivery means inexact commits)", got, parts)
	}
	if miss, _ := rec2.missing(n, parts); len(miss) > 0 {
		t.Fatalf("second run missed %v", miss)
	}
}

func head(xs []int) []int { return xs[:min(len(xs), 5)] }

// shapeSink checks key, headers, timestamp and origin of every record.
type shapeSink struct {
	mu   sync.Mutex
	n    int
	errs []string
}

func (s *shapeSink) Write(_ context.Context, recs []flow.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.n++
		v := string(r.Value)
		hv, ok := r.Header("seq")
		switch {
		case string(r.Key) != "k"+v:
			s.errs = append(s.errs, "key "+string(r.Key)+" for value "+v)
		case !ok || string(hv) != v:
			s.errs = append(s.errs, "header seq missing or wrong for value "+v)
		case r.Timestamp.IsZero() || time.Since(r.Timestamp) > time.Hour:
			s.errs = append(s.errs, "timestamp "+r.Timestamp.String())
		case r.Origin.Source != "src" || r.Origin.Topic != "shape":
			s.errs = append(s.errs, "origin "+r.Origin.Source+"/"+r.Origin.Topic)
		}
	}
	return nil
}

func TestFakeSourceRecordShape(t *testing.T) {
	broker := fakeCluster(t, 2, "shape")
	produce(t, broker, "shape", 0, 100)
	sink := &shapeSink{}
	stop := runPipeline(t, fakeSource(t, broker, "shape", "g"), sink)
	waitFor(t, 30*time.Second, "100 records", func() bool { sink.mu.Lock(); defer sink.mu.Unlock(); return sink.n >= 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(sink.errs) > 0 {
		t.Fatalf("%d bad records, e.g. %s", len(sink.errs), sink.errs[0])
	}
}

// TestFakeFailedRecordIsNeverCommitted fails one record in the sink (policy
// fail): the pipeline ends with an error naming it, and the committed
// offset of its partition stays at or below it.
func TestFakeFailedRecordIsNeverCommitted(t *testing.T) {
	const topic = "poison"
	broker := fakeCluster(t, 1, topic)
	produce(t, broker, topic, 0, 1000)
	rec := newRecorder()
	rec.fail = func(r flow.Record) bool { return r.Origin.Offset == 600 }
	stop := runPipeline(t, fakeSource(t, broker, topic, "gp", func(c *SourceConfig) { c.Batch = 50 }), rec)
	waitFor(t, 30*time.Second, "records past the poison one", func() bool { return rec.n.Load() >= 650 })
	err := stop()
	var rf *flow.RecordFailure
	if !errors.As(err, &rf) || rf.Origin.Offset != 600 || rf.Origin.Topic != topic {
		t.Fatalf("pipeline error = %v, want a RecordFailure at %s offset 600", err, topic)
	}
	cl, closeCl := newClient(broker)
	defer closeCl()
	got, err := committed(context.Background(), cl, "gp", topic, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] > 600 || got[0] < 0 {
		t.Fatalf("committed %d: must be at most 600 (the failed record) and set", got[0])
	}
}

func TestFakeSinkRoundTrip(t *testing.T) {
	const topic, n = "out", 10000
	broker := fakeCluster(t, 4, topic)
	sink, err := NewSink(sinkConfig(broker, topic))
	if err != nil {
		t.Fatal(err)
	}
	src := &seqSource{n: n, batch: 500}
	stop := runPipeline(t, src, sink)
	waitFor(t, 60*time.Second, "all writes acknowledged", func() bool { return src.acked.Load() >= n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if f := src.failed.Load(); f > 0 {
		t.Fatalf("%d records failed", f)
	}
	msgs := readTopic(t, broker, topic)
	if len(msgs) != n {
		t.Fatalf("topic holds %d records, want %d", len(msgs), n)
	}
	seen := map[string]bool{}
	parts := map[string]int{} // key -> partition: equal keys share one
	for _, m := range msgs {
		v := string(m.Value)
		if seen[v] {
			t.Fatalf("value %s written twice", v)
		}
		seen[v] = true
		if string(m.Key) != "k"+strconv.Itoa(atoi(t, v)%100) {
			t.Fatalf("record %s has key %q", v, m.Key)
		}
		if p, ok := parts[string(m.Key)]; ok && p != m.Partition {
			t.Fatalf("key %s in partitions %d and %d", m.Key, p, m.Partition)
		}
		parts[string(m.Key)] = m.Partition
		if len(m.Headers) != 1 || m.Headers[0].Key != "h" || !bytes.Equal(m.Headers[0].Value, m.Value) {
			t.Fatalf("record %s headers %v", v, m.Headers)
		}
		if want := time.UnixMilli(1_700_000_000_000 + int64(atoi(t, v))); !m.Time.Equal(want) {
			t.Fatalf("record %s time %v, want %v", v, m.Time, want)
		}
	}
}

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFakeSinkOversizedRecordFailsAlone(t *testing.T) {
	broker := fakeCluster(t, 1, "big")
	sink, err := NewSink(sinkConfig(broker, "big", func(c *SinkConfig) { c.BatchBytes = 1000 }))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	recs := []flow.Record{{Value: []byte("a")}, {Value: bytes.Repeat([]byte("x"), 2000)}, {Value: []byte("c")}}
	err = sink.Write(context.Background(), recs)
	var we *flow.WriteErrors
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[1] == nil || !strings.Contains(we.Failed[1].Error(), "batch_bytes") {
		t.Fatalf("Write = %v, want only record 1 failed for batch_bytes", err)
	}
	if msgs := readTopic(t, broker, "big"); len(msgs) != 2 {
		t.Fatalf("topic holds %d records, want the 2 small ones", len(msgs))
	}
}

// seqSource emits values 0..n-1 keyed k<i%100> with header h=value and
// timestamp i ms, counting acks.
type seqSource struct {
	n, batch      int
	acked, failed atomic.Int64
}

func (s *seqSource) Run(ctx context.Context, out flow.Emitter) error {
	for i := 0; i < s.n; {
		recs := make([]flow.Record, 0, s.batch)
		for ; len(recs) < s.batch && i < s.n; i++ {
			v := []byte(strconv.Itoa(i))
			recs = append(recs, flow.Record{Key: []byte("k" + strconv.Itoa(i%100)), Value: v,
				Headers: []flow.Header{{Key: "h", Value: v}}, Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i)),
				Origin: flow.Origin{Source: "seq", Offset: int64(i)}})
		}
		cnt := int64(len(recs))
		ack := flow.NewAck(func(err error) {
			if err != nil {
				s.failed.Add(cnt)
				return
			}
			s.acked.Add(cnt)
		})
		if err := out.Emit(ctx, flow.NewBatch(recs, ack)); err != nil {
			return nil
		}
	}
	return nil
}

func TestBuildFromRegistry(t *testing.T) {
	spec, ok := registry.Lookup(flow.KindSource, "kafka")
	if !ok {
		t.Fatal("kafka source not registered")
	}
	conf := func(kind string, v map[string]any, env *registry.Env) *registry.Conf {
		return &registry.Conf{ID: "k", Kind: kind, Type: "kafka", Values: v, Env: env}
	}
	// Brokers fall back to the dev broker.
	got, err := spec.Build(conf("source", map[string]any{"topics": []any{"t"}, "group": "g"}, &registry.Env{DevBrokers: []string{"127.0.0.1:1"}}))
	if err != nil {
		t.Fatalf("build with dev brokers: %v", err)
	}
	if _, ok := got.(flow.Closer); !ok {
		t.Fatal("source must implement flow.Closer")
	}
	cases := []struct {
		kind  string
		v     map[string]any
		field string
		msg   string
	}{
		{"source", map[string]any{"topics": []any{"t"}, "group": "g"}, "brokers", "no brokers"},
		{"source", map[string]any{"brokers": []any{"h:1"}, "group": "g"}, "topics", "at least one topic"},
		{"source", map[string]any{"brokers": []any{"h:1"}, "topics": []any{"t"}}, "group", "required"},
		{"source", map[string]any{"brokers": []any{"nohost"}, "topics": []any{"t"}, "group": "g"}, "brokers[0]", "host:port"},
		{"source", map[string]any{"brokers": []any{"h:1"}, "topics": []any{"t"}, "group": "g", "drain_timeout": 40 * time.Second}, "drain_timeout", "below rebalance_timeout"},
		{"source", map[string]any{"brokers": []any{"h:1"}, "topics": []any{"t"}, "group": "g", "session_timeout": 6 * time.Second, "drain_timeout": 6 * time.Second}, "drain_timeout", "below session_timeout"},
		{"source", map[string]any{"brokers": []any{"h:1"}, "topics": []any{"t"}, "group": "g", "sasl": map[string]any{"mechanism": "scram-sha-1", "user": "u"}}, "sasl.mechanism", "unknown mechanism"},
		{"source", map[string]any{"brokers": []any{"h:1"}, "topics": []any{"t"}, "group": "g", "tls": map[string]any{"ca": "x.pem"}}, "tls.enabled", "enabled is false"},
		{"source", map[string]any{"brokers": []any{"h:1"}, "topics": []any{"t"}, "group": "g", "tls": map[string]any{"enabled": true, "ca": "/nonexistent/ca.pem"}}, "tls.ca", "no such file"},
		{"sink", map[string]any{"brokers": []any{"h:1"}}, "topic", "required"},
		{"sink", map[string]any{"brokers": []any{"h:1"}, "topic": "t", "acks": "none"}, "acks", "none is refused"},
		{"sink", map[string]any{"brokers": []any{"h:1"}, "topic_expr": "nosuchvar + 1"}, "topic_expr", "nosuchvar"},
		{"sink", map[string]any{"brokers": []any{"h:1"}, "topic": "t", "topic_expr": "key"}, "topic", "not both"},
		{"sink", map[string]any{"brokers": []any{"h:1"}, "topic": "t", "compression": "brotli"}, "compression", "brotli"},
		{"sink", map[string]any{"brokers": []any{"h:1"}, "topic": "t", "sasl": map[string]any{"mechanism": "plain"}}, "sasl.user", "required"},
	}
	for _, c := range cases {
		kind := flow.KindSource
		if c.kind == "sink" {
			kind = flow.KindSink
		}
		sp, _ := registry.Lookup(kind, "kafka")
		_, err := sp.Build(conf(c.kind, c.v, nil))
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %v: error %v; want field %s mentioning %q", c.kind, c.v, err, c.field, c.msg)
		}
	}
}

func TestStartDevBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// Something listens: the dev broker must step aside.
	stop, err := StartDevBroker(context.Background(), addr, []string{"x"})
	if err != nil {
		t.Fatalf("with a listener present: %v", err)
	}
	stop()
	_ = ln.Close()

	stop, err = StartDevBroker(context.Background(), addr, []string{"dev-in"})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if ends := endOffsets(t, addr, "dev-in"); len(ends) != DevPartitions {
		t.Fatalf("seeded topic has %d partitions, want %d", len(ends), DevPartitions)
	}
	// A topic nobody listed is created on first use.
	sink, err := NewSink(sinkConfig(addr, "dev-auto"))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sink.Write(ctx, []flow.Record{{Value: []byte("v")}}); err != nil {
		t.Fatalf("write to an unlisted topic: %v", err)
	}
}

// countingHandler counts log records at warn and above whose message
// contains a string.
type countingHandler struct {
	slog.Handler
	match string
	n     *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && strings.Contains(r.Message, h.match) {
		h.n.Add(1)
	}
	return nil
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h countingHandler) WithGroup(string) slog.Handler            { return h }

// TestFakeBrokerDownThenUp starts the source with no broker listening: it
// must keep retrying (warning) instead of failing the pipeline, and read
// once the broker appears.
func TestFakeBrokerDownThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	addr := ln.Addr().String()
	_ = ln.Close()

	var warns atomic.Int64
	log := slog.New(countingHandler{Handler: slog.DiscardHandler, match: "cannot join consumer group", n: &warns})
	rec := newRecorder()
	stop := runPipeline(t, fakeSource(t, addr, "late", "g", func(c *SourceConfig) { c.Logger = log }), rec)
	waitFor(t, 30*time.Second, "retry warnings while the broker is down", func() bool { return warns.Load() >= 2 })

	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(2, "late"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	produce(t, addr, "late", 0, 500)
	waitFor(t, 60*time.Second, "records once the broker is up", func() bool { return rec.n.Load() >= 500 })
	if err := stop(); err != nil {
		t.Fatalf("pipeline: %v", err)
	}
}

// TestFakeSinkTopicExpr routes records by expression; a record the
// expression fails on fails alone.
func TestFakeSinkTopicExpr(t *testing.T) {
	broker := fakeCluster(t, 1, "out-a", "out-b")
	// Record 3 goes to topic "out-", which does not exist: it fails once
	// the (here short) retry budget for unknown topics is spent.
	sink, err := NewSink(sinkConfig(broker, "", func(c *SinkConfig) {
		c.TopicExpr, c.MaxRetries, c.Backoff, c.MaxBackoff = `"out-" + headers["t"]`, 2, 10*time.Millisecond, 20*time.Millisecond
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close(context.Background())
	h := func(v string) []flow.Header { return []flow.Header{{Key: "t", Value: []byte(v)}} }
	recs := []flow.Record{
		{Value: []byte("1"), Headers: h("a")},
		{Value: []byte("2"), Headers: h("b")},
		{Value: []byte("3")}, // no header: the expression has no string
		{Value: []byte("4"), Headers: h("a")},
	}
	err = sink.Write(context.Background(), recs)
	var we *flow.WriteErrors
	if !errors.As(err, &we) || len(we.Failed) != 1 || we.Failed[2] == nil || !strings.Contains(we.Failed[2].Error(), "topic_expr") {
		t.Fatalf("Write = %v, want only record 2 failed by topic_expr", err)
	}
	vals := func(topic string) (out []string) {
		for _, m := range readTopic(t, broker, topic) {
			out = append(out, string(m.Value))
		}
		return out
	}
	if a, b := vals("out-a"), vals("out-b"); strings.Join(a, ",") != "1,4" || strings.Join(b, ",") != "2" {
		t.Fatalf("out-a holds %v, out-b %v; want [1 4] and [2]", a, b)
	}
}
