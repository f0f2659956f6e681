package kafka

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/state"
)

// changelogSource is a source of topic (not run) able to hand out
// changelogs; it is closed at the end of the test.
func changelogSource(t testing.TB, broker, topic, group string) *Source {
	t.Helper()
	cfg := DefaultSourceConfig()
	cfg.ID, cfg.Brokers, cfg.Topics, cfg.Group, cfg.Logger = "src", []string{broker}, []string{topic}, group, testLogger()
	s, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close source: %v", err)
		}
	})
	return s
}

func openChangelog(t testing.TB, s *Source, spec state.Spec) state.Changelog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := s.Changelog(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

type kv struct{ key, value string }

// restoreAll restores partition p into a list; a nil value shows as "<nil>".
func restoreAll(t *testing.T, cl state.Changelog, p int32) []kv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got []kv
	n, err := cl.Restore(ctx, p, func(k, v []byte) error {
		val := string(v)
		if v == nil {
			val = "<nil>"
		}
		got = append(got, kv{string(k), val})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(got)) {
		t.Fatalf("Restore returned %d, called fn %d times", n, len(got))
	}
	return got
}

func entriesOf(p int32, kvs ...kv) []state.Entry {
	es := make([]state.Entry, len(kvs))
	for i, e := range kvs {
		es[i] = state.Entry{Partition: p, Key: []byte(e.key)}
		if e.value != "<nil>" {
			es[i].Value = []byte(e.value)
		}
	}
	return es
}

func checkKVs(t *testing.T, what string, got, want []kv) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// TestBrokerChangelogCreated: the changelog gets its name from the group
// and stage, the source topic's partition count, and cleanup.policy=compact.
func TestBrokerChangelogCreated(t *testing.T) {
	broker := realBroker(t)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, broker, topic, 3)
	s := changelogSource(t, broker, topic, group)
	cl := openChangelog(t, s, state.Spec{Stage: "win", Topic: topic})
	if want := group + "-win-" + topic + "-changelog"; cl.Name() != want {
		t.Fatalf("name %q, want %q", cl.Name(), want)
	}
	parts := endOffsets(t, broker, cl.Name())
	if len(parts) != 3 {
		t.Fatalf("changelog has %d partitions, want 3", len(parts))
	}
	c, closeC := newClient(broker)
	defer closeC()
	res, err := c.DescribeConfigs(context.Background(), &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: cl.Name(), ConfigNames: []string{"cleanup.policy"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var policy string
	for _, e := range res.Resources[0].ConfigEntries {
		if e.ConfigName == "cleanup.policy" {
			policy = e.ConfigValue
		}
	}
	if policy != "compact" {
		t.Fatalf("cleanup.policy %q, want compact", policy)
	}
	// Opening it again (another member, a restart) finds it.
	again := openChangelog(t, changelogSource(t, broker, topic, group), state.Spec{Stage: "win", Topic: topic})
	if again.Name() != cl.Name() {
		t.Fatalf("reopened %q, want %q", again.Name(), cl.Name())
	}
	// A prefix replaces "<group>-<stage>".
	pre := openChangelog(t, s, state.Spec{Stage: "win", Topic: topic, Prefix: uniqueName(t, "p")})
	if !strings.HasSuffix(pre.Name(), "-"+topic+"-changelog") || strings.HasPrefix(pre.Name(), group) {
		t.Fatalf("prefixed name %q", pre.Name())
	}
}

// TestBrokerChangelogWriteRestore: entries come back per partition in the
// order written, tombstones as nil values, a second Write after the first;
// an empty partition restores nothing; End is the count written.
func TestBrokerChangelogWriteRestore(t *testing.T) {
	broker := realBroker(t)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, broker, topic, 3)
	s := changelogSource(t, broker, topic, group)
	testWriteRestore(t, openChangelog(t, s, state.Spec{Stage: "dedupe", Topic: topic}))
}

// TestFakeChangelogWriteRestore is the same against the dev broker (kfake).
func TestFakeChangelogWriteRestore(t *testing.T) {
	topic := "in"
	broker := fakeCluster(t, 3, topic)
	s := changelogSource(t, broker, topic, "g")
	testWriteRestore(t, openChangelog(t, s, state.Spec{Stage: "dedupe", Topic: topic}))
}

func testWriteRestore(t *testing.T, cl state.Changelog) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p0 := []kv{{"a", "1"}, {"b", "1"}, {"a", "2"}, {"b", "<nil>"}, {"c", "1"}}
	p2 := []kv{{"x", "1"}, {"x", "<nil>"}, {"y", "9"}}
	// The partitions interleaved: order holds per partition.
	first := append(entriesOf(0, p0[0]), append(entriesOf(2, p2[0]), append(entriesOf(0, p0[1:]...), entriesOf(2, p2[1:]...)...)...)...)
	if err := cl.Write(ctx, first); err != nil {
		t.Fatal(err)
	}
	checkKVs(t, "partition 0", restoreAll(t, cl, 0), p0)
	checkKVs(t, "partition 2", restoreAll(t, cl, 2), p2)
	if got := restoreAll(t, cl, 1); len(got) != 0 {
		t.Fatalf("empty partition restored %v", got)
	}

	more := []kv{{"c", "<nil>"}, {"a", "3"}}
	if err := cl.Write(ctx, entriesOf(0, more...)); err != nil {
		t.Fatal(err)
	}
	checkKVs(t, "partition 0 after a second write", restoreAll(t, cl, 0), append(p0, more...))
	for p, want := range map[int32]int64{0: int64(len(p0) + len(more)), 1: 0, 2: int64(len(p2))} {
		end, err := cl.End(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if end != want {
			t.Fatalf("partition %d: end %d, want %d", p, end, want)
		}
	}
	if err := cl.Write(ctx, entriesOf(3, kv{"k", "v"})); err == nil {
		t.Fatal("a write to partition 3 of 3 succeeded")
	}
	// A cancelled restore stops.
	done, stop := context.WithCancel(ctx)
	stop()
	if _, err := cl.Restore(done, 0, func(_, _ []byte) error { return nil }); err == nil {
		t.Fatal("Restore with a cancelled context succeeded")
	}
	if err := cl.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestBrokerChangelogPartitionsDiffer: an existing changelog with another
// partition count than the source topic is refused, naming both.
func TestBrokerChangelogPartitionsDiffer(t *testing.T) {
	broker := realBroker(t)
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, broker, topic, 3)
	name := ChangelogTopic(group, state.Spec{Stage: "win", Topic: topic})
	createTopic(t, broker, name, 2)
	s := changelogSource(t, broker, topic, group)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := s.Changelog(ctx, state.Spec{Stage: "win", Topic: topic})
	if err == nil {
		t.Fatal("a changelog of 2 partitions for a topic of 3 was accepted")
	}
	for _, want := range []string{name, "has 2 partitions", "has 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
}

// TestChangelogInvalidName: a changelog name Kafka would refuse is an
// error pointing at changelog_prefix, before anything is asked of the
// brokers.
func TestChangelogInvalidName(t *testing.T) {
	s := changelogSource(t, "127.0.0.1:1", "in", strings.Repeat("g", 240))
	for _, spec := range []state.Spec{{Stage: "win", Topic: "in"}, {Stage: "win", Topic: "in", Prefix: "bad prefix"}} {
		_, err := s.Changelog(context.Background(), spec)
		if err == nil || !strings.Contains(err.Error(), "changelog_prefix") {
			t.Fatalf("spec %+v: error %v, want one naming changelog_prefix", spec, err)
		}
	}
	if _, err := s.Changelog(context.Background(), state.Spec{Stage: "win", Topic: "other"}); err == nil {
		t.Fatal("a changelog for a topic the source does not read was accepted")
	}
}

// BenchmarkChangelogRestore restores one partition of 1M entries (keys of
// 10 bytes, values of 50) written through the changelog.
func BenchmarkChangelogRestore(b *testing.B) {
	broker := benchBroker(b)
	const n = 1_000_000
	topic := benchName(b, "t", 0)
	benchTopic(b, broker, topic, 1)
	s := changelogSource(b, broker, topic, benchName(b, "g", 0))
	cl := openChangelog(b, s, state.Spec{Stage: "win", Topic: topic})
	b.Cleanup(func() {
		c, closeC := newClient(broker)
		defer closeC()
		_, _ = c.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{cl.Name()}}) // best effort
	})
	ctx := context.Background()
	value := bytes.Repeat([]byte("v"), 50)
	start := time.Now()
	const chunk = 10_000
	for i := 0; i < n; i += chunk {
		es := make([]state.Entry, chunk)
		for j := range es {
			es[j] = state.Entry{Key: fmt.Appendf(nil, "key%07d", i+j), Value: value}
		}
		if err := cl.Write(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("wrote %d entries in %s (%.0f entries/s)", n, time.Since(start).Round(time.Millisecond), n/time.Since(start).Seconds())
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		var bytes int64
		got, err := cl.Restore(ctx, 0, func(k, v []byte) error {
			bytes += int64(len(k) + len(v))
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("restored %d entries, want %d", got, n)
		}
		took := time.Since(start)
		b.ReportMetric(float64(n)/took.Seconds(), "entries/s")
		b.Logf("restored %d entries (%d bytes of keys and values) in %s: %.0f entries/s", got, bytes, took.Round(time.Millisecond), float64(n)/took.Seconds())
	}
}
