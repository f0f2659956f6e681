package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicedev/sluice/flow"
)

// produceCluster is a one-broker fake cluster whose produce requests the
// test can see and answer.
func produceCluster(t *testing.T, partitions int32, topic string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// refuse answers a produce request with code for every partition in it,
// writing nothing.
func refuse(req kmsg.Request, code int16) kmsg.Response {
	pr := req.(*kmsg.ProduceRequest)
	res := pr.ResponseKind().(*kmsg.ProduceResponse)
	for _, t := range pr.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		res.Topics = append(res.Topics, rt)
	}
	return res
}

const notLeader = 6 // NOT_LEADER_OR_FOLLOWER: retriable

func fakeSink(t *testing.T, c *kfake.Cluster, topic string, mod func(*SinkConfig)) *Sink {
	t.Helper()
	s, err := NewSink(sinkConfig(c.ListenAddrs()[0], topic, func(cfg *SinkConfig) {
		cfg.Backoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
		if mod != nil {
			mod(cfg)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// Writes from several goroutines, while a third of the produce requests
// are refused with a retriable error: every record is written once, and
// each writer's records are in the partition in the order it wrote them.
func TestFakeSinkRetriesKeepPartitionOrder(t *testing.T) {
	const topic, writers, writes, per = "ord", 4, 40, 10
	c := produceCluster(t, 1, topic)
	var requests atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if requests.Add(1)%3 == 1 {
			return refuse(req, notLeader), nil, true
		}
		return nil, nil, false
	})
	sink := fakeSink(t, c, topic, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				recs := make([]flow.Record, per)
				for j := range recs {
					recs[j] = flow.Record{Value: fmt.Appendf(nil, "%d/%d", w, i*per+j)}
				}
				if err := sink.Write(ctx, recs); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	msgs := readTopic(t, c.ListenAddrs()[0], topic)
	for _, m := range msgs {
		var w, n int
		if _, err := fmt.Sscanf(string(m.Value), "%d/%d", &w, &n); err != nil {
			t.Fatal(err)
		}
		if n != next[w] {
			t.Fatalf("writer %d: record %d follows %d in the partition", w, n, next[w]-1)
		}
		next[w]++
	}
	if len(msgs) != writers*writes*per {
		t.Fatalf("topic holds %d records, want %d", len(msgs), writers*writes*per)
	}
	if requests.Load() < 3 {
		t.Fatalf("only %d produce requests: no retry was tested", requests.Load())
	}
}

// While a partition's request is in flight, records written meanwhile
// queue up and go together in the next request the moment it is answered.
func TestFakeSinkBatchesWhileInFlight(t *testing.T) {
	const topic, waiting = "nat", 5
	c := produceCluster(t, 1, topic)
	release := make(chan struct{})
	var requests atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if requests.Add(1) == 1 {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	sink := fakeSink(t, c, topic, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, waiting+1)
	write := func(i int) {
		errs[i] = sink.Write(ctx, []flow.Record{{Value: fmt.Appendf(nil, "%d", i)}})
	}
	wg.Go(func() { write(0) })
	waitFor(t, 10*time.Second, "the first request in flight", func() bool { return requests.Load() == 1 })
	for i := 1; i <= waiting; i++ {
		wg.Go(func() { write(i) })
	}
	waitFor(t, 10*time.Second, "the other writes queued", func() bool {
		sink.prod.mu.Lock()
		defer sink.prod.mu.Unlock()
		return sink.prod.queued == waiting
	})
	close(release)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("%d produce requests for %d writes, want 2: the first, then everything that queued behind it", n, waiting+1)
	}
	if msgs := readTopic(t, c.ListenAddrs()[0], topic); len(msgs) != waiting+1 || string(msgs[0].Value) != "0" {
		t.Fatalf("topic holds %d records (first %q), want %d starting with 0", len(msgs), msgs[0].Value, waiting+1)
	}
}

// A request refused past max_retries fails its records, saying why; the
// next write goes through.
func TestFakeSinkRetriesExhausted(t *testing.T) {
	const topic = "ex"
	c := produceCluster(t, 1, topic)
	var refused atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Add(1) <= 3 {
			c.KeepControl()
			return refuse(req, notLeader), nil, true
		}
		c.DropControl()
		return nil, nil, false
	})
	sink := fakeSink(t, c, topic, func(cfg *SinkConfig) { cfg.MaxRetries = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs := []flow.Record{{Value: []byte("a")}, {Value: []byte("b")}}
	err := sink.Write(ctx, recs)
	var we *flow.WriteErrors
	if !errors.As(err, &we) || len(we.Failed) != 2 || !strings.Contains(we.Failed[0].Error(), "after 2 retries") ||
		!errors.Is(we.Failed[1], kafka.NotLeaderForPartition) {
		t.Fatalf("Write = %v; want both records failed after 2 retries, not leader", err)
	}
	if err := sink.Write(ctx, recs); err != nil {
		t.Fatalf("next write: %v", err)
	}
}

// A Write whose context ends returns; its records are not waited for, and
// Close still returns with nothing left running.
func TestFakeSinkWriteContextEnds(t *testing.T) {
	const topic = "cx"
	c := produceCluster(t, 1, topic)
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	defer close(release)
	sink := fakeSink(t, c, topic, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := sink.Write(ctx, []flow.Record{{Value: []byte("a")}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write = %v, want its context's error", err)
	}
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelClose()
	if err := sink.Close(closeCtx); err == nil {
		t.Fatal("Close with a request still in flight past its deadline returned nil")
	}
}

// A partition whose leader moves to another broker while records flow:
// requests to the old leader fail (not leader), the partition is retried
// in requests of its own, routed by the refreshed metadata, and every
// record is written, in order.
func TestFakeSinkLeaderMoves(t *testing.T) {
	const topic = "mv"
	c, err := kfake.NewCluster(kfake.NumBrokers(2), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Both partitions on one broker, so requests carry both.
	one := c.LeaderFor(topic, 1)
	if err := c.MoveTopicPartition(topic, 0, one); err != nil {
		t.Fatal(err)
	}
	sink := fakeSink(t, c, topic, func(cfg *SinkConfig) {
		cfg.Partitioner = PartitionerRoundRobin
		cfg.Backoff, cfg.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const writes, per = 60, 10
	for i := range writes {
		if i == writes/3 {
			if err := c.MoveTopicPartition(topic, 0, 1-one); err != nil {
				t.Fatal(err)
			}
		}
		recs := make([]flow.Record, per)
		for j := range recs {
			recs[j] = flow.Record{Value: fmt.Appendf(nil, "%d", i*per+j)}
		}
		if err := sink.Write(ctx, recs); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond) // spread over the metadata refreshes
	}
	msgs := readTopic(t, c.ListenAddrs()[0], topic)
	if len(msgs) != writes*per {
		t.Fatalf("topic holds %d records, want %d", len(msgs), writes*per)
	}
	last := map[int]int{0: -1, 1: -1}
	for _, m := range msgs {
		var n int
		if _, err := fmt.Sscanf(string(m.Value), "%d", &n); err != nil {
			t.Fatal(err)
		}
		if n <= last[m.Partition] {
			t.Fatalf("partition %d: record %d after %d", m.Partition, n, last[m.Partition])
		}
		last[m.Partition] = n
	}
}
