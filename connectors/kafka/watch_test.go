package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// TestFakeSourceMissingTopicThenCreated is TestBrokerSourceMissingTopic on
// the in-process broker, which never creates topics by itself: the
// existing topic is read, the source is not ready while the other topic
// is missing, and reads it once it is created.
func TestFakeSourceMissingTopicThenCreated(t *testing.T) {
	broker := fakeCluster(t, 2, "have")
	produce(t, broker, "have", 0, 100)
	src := fakeSource(t, broker, "have", "g-missing", func(c *SourceConfig) {
		c.Topics = []string{"have", "later"}
		c.Start = StartLatest // the created topic is read from its start all the same
		c.PartitionWatchInterval = 100 * time.Millisecond
	})
	rec := newRecorder()
	stop := runPipeline(t, src, rec)
	// start: latest skips the 100 records already there; new ones arrive.
	waitFor(t, 30*time.Second, "partitions of the existing topic to be read", func() bool {
		_, ok0 := position(src, "have", 0)
		_, ok1 := position(src, "have", 1)
		return ok0 && ok1
	})
	produce(t, broker, "have", 100, 20)
	waitFor(t, 30*time.Second, "records of the existing topic", func() bool { return rec.n.Load() >= 20 })
	checks := src.checks.Load()
	waitFor(t, 30*time.Second, "three more topic checks", func() bool { return src.checks.Load() >= checks+3 })
	if err := src.Ready(); err == nil || !strings.Contains(err.Error(), "topic later does not exist") {
		t.Fatalf("Ready() = %v; want not ready because topic later does not exist", err)
	}

	cl, closeCl := newClient(broker)
	defer closeCl()
	res, err := cl.CreateTopics(context.Background(), &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: "later", NumPartitions: 3, ReplicationFactor: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors["later"]; err != nil {
		t.Fatal(err)
	}
	produce(t, broker, "later", 1000, 30)
	waitFor(t, 30*time.Second, "records of the created topic", func() bool { return rec.n.Load() >= 50 })
	waitFor(t, 10*time.Second, "ready once both topics exist", func() bool { return src.Ready() == nil })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if miss, _ := rec.missing(1000, 30); len(miss) > 0 {
		t.Fatalf("created topic: missing %v", miss)
	}
	if miss, _ := rec.missing(0, 100); len(miss) != 100 {
		t.Fatalf("start: latest read %d records written before the start", 100-len(miss))
	}
}

func TestSourceConfigTopicsAndWatch(t *testing.T) {
	spec, _ := registry.Lookup(flow.KindSource, "kafka")
	cases := []struct {
		v     map[string]any
		field string
		msg   string
	}{
		{map[string]any{"topics": []any{"a", "a"}}, "topics[1]", "listed twice"},
		{map[string]any{"topics": []any{"orders", "no such"}}, "topics[1]", "Kafka allows only"},
		{map[string]any{"topics": []any{".."}}, "topics[0]", "not a valid topic name"},
		{map[string]any{"topics": []any{strings.Repeat("t", 250)}}, "topics[0]", "longer than"},
		{map[string]any{"topics": []any{"t"}, "partition_watch_interval": 10 * time.Millisecond}, "partition_watch_interval", "below 100ms"},
	}
	for _, c := range cases {
		c.v["brokers"] = []any{"h:1"}
		c.v["group"] = "g"
		_, err := spec.Build(&registry.Conf{ID: "k", Kind: "source", Type: "kafka", Values: c.v})
		var fe *registry.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: error %v; want field %s mentioning %q", c.v, err, c.field, c.msg)
		}
	}
	if _, err := spec.Build(&registry.Conf{ID: "k", Kind: "source", Type: "kafka", Values: map[string]any{
		"brokers": []any{"h:1"}, "group": "g", "topics": []any{"Orders.v2_eu-1"}, "partition_watch_interval": time.Second}}); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}
