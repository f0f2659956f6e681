package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// Helpers for the tests against the Apache Kafka broker of scripts/kafka.sh.
//
// Every test copies an input topic to an output topic through `sluice run`.
// Input record s of input partition p has key "p-(s%keys)" and value
// {"p":p,"s":s}; the id "p-s" is unique. The pipeline's map stage writes
// {"p":p,"s":s,"from":<partition read from>,"at":<offset read from>} and
// keeps the key, so the sink's murmur2 partitioner puts each key on one
// output partition.

// kafkaEnv returns the value of an environment variable exported by
// `scripts/kafka.sh env`. Without it, -short skips and a full run fails.
func kafkaEnv(t *testing.T, name string) string {
	t.Helper()
	if v := os.Getenv(name); v != "" {
		return v
	}
	msg := fmt.Sprintf("KAFKA: %s is not set; this test needs the real broker: run `scripts/kafka.sh start && eval \"$(scripts/kafka.sh env)\"`", name)
	if testing.Short() {
		t.Skip(msg + " (SKIPPED under -short)")
	}
	t.Fatal(msg)
	return ""
}

// kafkaBroker returns the PLAINTEXT broker and checks kcat is installed.
func kafkaBroker(t *testing.T) string {
	t.Helper()
	b := kafkaEnv(t, "SLUICE_KAFKA_BROKERS")
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat not found: run scripts/deps.sh")
	}
	return b
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// kafkaName makes a topic or group name unique to this test run.
func kafkaName(t *testing.T, what string) string {
	return fmt.Sprintf("e2e-%s-%s-%d", unsafeName.ReplaceAllString(t.Name(), "_"), what, time.Now().UnixNano())
}

// kafkaClient returns a client for offset and metadata requests.
func kafkaClient(t *testing.T, broker string) *kafka.Client {
	tr := &kafka.Transport{MetadataTTL: time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second, Transport: tr}
}

// createTopic creates a topic through the controller and waits until every
// partition has a leader. The topic is deleted when the test ends, to keep
// the shared broker's disk small.
func createTopic(t *testing.T, broker, topic string, partitions int) {
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
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
	t.Cleanup(func() { deleteTopic(broker, topic) })
	eventually(t, 30*time.Second, "topic "+topic+" to have leaders", func() bool {
		ps, err := c.ReadPartitions(topic)
		return err == nil && len(ps) == partitions && !slices.ContainsFunc(ps, func(p kafka.Partition) bool { return p.Leader.ID < 0 })
	})
}

// deleteTopic deletes topic, best effort: a leftover topic only costs disk.
func deleteTopic(broker, topic string) {
	c, err := kafka.Dial("tcp", broker)
	if err != nil {
		return
	}
	defer c.Close()
	ctl, err := c.Controller()
	if err != nil {
		return
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctl.Host, strconv.Itoa(ctl.Port)))
	if err != nil {
		return
	}
	defer cc.Close()
	_ = cc.DeleteTopics(topic)
}

// workload describes an input topic: counts[p] records in partition p,
// keys distinct keys per partition.
type workload struct {
	broker string
	topic  string
	counts []int
	keys   int
}

func (w workload) total() int {
	n := 0
	for _, c := range w.counts {
		n += c
	}
	return n
}

func inputKey(p, s, keys int) string { return fmt.Sprintf("%d-%d", p, s%keys) }

// produceWorkload creates a topic of parts partitions and fills it with n
// records by running one kcat producer per partition, then checks each
// partition holds exactly its share. The producers are idempotent: a
// plain librdkafka producer retries a batch the new topic refused after
// later batches succeeded, which reorders the input (seen here).
func produceWorkload(t *testing.T, broker string, parts, n, keys int) workload {
	t.Helper()
	w := workload{broker: broker, topic: kafkaName(t, "in"), counts: make([]int, parts), keys: keys}
	for p := range w.counts {
		w.counts[p] = n / parts
		if p < n%parts {
			w.counts[p]++
		}
	}
	createTopic(t, broker, w.topic, parts)
	dir := t.TempDir()
	start := time.Now()
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p, count := range w.counts {
		file := filepath.Join(dir, fmt.Sprintf("p%d.txt", p))
		if err := writeInput(file, p, count, keys); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			cmd := exec.Command("kcat", "-F", "/dev/null", "-q", "-X", "enable.idempotence=true", "-b", broker, "-P", "-t", w.topic,
				"-p", strconv.Itoa(p), "-K", "|", "-l", file)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[p] = fmt.Errorf("kcat producing partition %d: %v: %s", p, err, clip(out))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ends, err := endOffsets(context.Background(), kafkaClient(t, broker), w.topic)
	if err != nil {
		t.Fatal(err)
	}
	for p, c := range w.counts {
		if ends[p] != int64(c) {
			t.Fatalf("input partition %d holds %d records after kcat, want %d", p, ends[p], c)
		}
	}
	t.Logf("kcat produced %d records into %d partitions in %s", n, parts, time.Since(start).Round(time.Millisecond))
	return w
}

func writeInput(file string, p, count, keys int) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	for s := range count {
		fmt.Fprintf(bw, "%s|{\"p\":%d,\"s\":%d}\n", inputKey(p, s, keys), p, s)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func clip(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// endOffsets returns each partition's high watermark.
func endOffsets(ctx context.Context, cl *kafka.Client, topic string) (map[int]int64, error) {
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, err
	}
	var req []kafka.OffsetRequest
	for _, tp := range md.Topics {
		if tp.Error != nil {
			return nil, tp.Error
		}
		for _, p := range tp.Partitions {
			req = append(req, kafka.LastOffsetOf(p.ID))
		}
	}
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, p.Error
		}
		out[p.Partition] = p.LastOffset
	}
	return out, nil
}

// written is how many records a topic holds (0 while it cannot be read).
func written(cl *kafka.Client, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := endOffsets(ctx, cl, topic)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ends {
		n += e
	}
	return n
}

// committed returns the group's committed offset per partition (-1: none).
func committed(ctx context.Context, cl *kafka.Client, group, topic string, partitions int) (map[int]int64, error) {
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: seq(partitions)}})
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

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// committedTotal sums the group's committed offsets (0 while unknown).
func committedTotal(cl *kafka.Client, group string, w workload) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := committed(ctx, cl, group, w.topic, len(w.counts))
	if err != nil {
		return 0
	}
	var n int64
	for _, off := range got {
		n += max(off, 0)
	}
	return n
}

// waitCopied waits until the group committed the end of every input
// partition: the source acknowledges a record only once the sink wrote
// it, so then the whole input is in the output topic. It fails early if
// one of procs exits.
func waitCopied(t *testing.T, cl *kafka.Client, group string, w workload, within time.Duration, procs ...*proc) {
	t.Helper()
	want := int64(w.total())
	waitRunning(t, within, fmt.Sprintf("group %s to commit all %d input records", group, want), func() bool {
		return committedTotal(cl, group, w) == want
	}, procs...)
}

// stop sends SIGTERM and expects a clean drain: exit 0 within timeout.
func (p *proc) stop(timeout time.Duration) {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if code := p.wait(timeout); code != 0 {
		p.t.Fatalf("exit %d after SIGTERM, want 0; stderr:\n%s", code, p.stderr.String())
	}
}

// outRecord is one record of the output topic.
type outRecord struct {
	partition int // output partition
	key       string
	P, S      int // input partition and sequence
	From      int // partition the source read it from
	At        int // offset the source read it from
}

// readOutput reads the whole output topic with kcat.
func readOutput(t *testing.T, broker, topic string) []outRecord {
	t.Helper()
	start := time.Now()
	cmd := exec.Command("kcat", "-F", "/dev/null", "-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
		"-f", "%p|%k|%s\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var recs []outRecord
	var bad string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if bad != "" {
			continue // keep draining so kcat can exit
		}
		line := sc.Text()
		part, rest, ok1 := strings.Cut(line, "|")
		key, value, ok2 := strings.Cut(rest, "|")
		var r outRecord
		p, err := strconv.Atoi(part)
		if !ok1 || !ok2 || err != nil || json.Unmarshal([]byte(value), &r) != nil {
			bad = line
			continue
		}
		r.partition, r.key = p, key
		recs = append(recs, r)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("kcat reading %s: %v: %s", topic, err, clip(stderr.Bytes()))
	}
	if bad != "" {
		t.Fatalf("output record %q is not partition|key|{\"p\":..,\"s\":..,\"from\":..,\"at\":..}", bad)
	}
	t.Logf("kcat read %d output records in %s", len(recs), time.Since(start).Round(time.Millisecond))
	return recs
}

// copyReport is what checkCopy found.
type copyReport struct {
	unique, dups int
}

// checkCopy compares the output with the workload. It fails the test on a
// lost record, a record that is not one of the input's, a key on the
// wrong output partition (murmur2 of the key, as the Java client computes
// it), a record read from another partition or offset than it was
// produced to (the producer writes sequence s at offset s), or a
// key whose records appear out of order: a record may only appear once
// every earlier record of its key has (replays after a crash repeat a
// suffix, they never skip ahead). With exact, duplicates fail too, and
// within each output partition the records of each input partition must
// appear in strictly increasing sequence.
func checkCopy(t *testing.T, w workload, outParts int, recs []outRecord, exact bool) copyReport {
	t.Helper()
	parts := len(w.counts)
	seen := make([][]uint8, parts)
	for p, c := range w.counts {
		seen[p] = make([]uint8, c)
	}
	partOf := make([]int, parts*w.keys) // output partition of each key
	for p := range parts {
		for k := range w.keys {
			partOf[p*w.keys+k] = kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(inputKey(p, k, w.keys))}, seq(outParts)...)
		}
	}
	nextOfKey := make([]int, parts*w.keys) // index (s / keys) of the key's next new record
	lastIn := map[[2]int]int{}             // (output partition, input partition) -> last sequence
	var rep copyReport
	for i, r := range recs {
		if r.P < 0 || r.P >= parts || r.S < 0 || r.S >= w.counts[r.P] {
			t.Fatalf("output record %d (%+v) is not in the input", i, r)
		}
		if want := inputKey(r.P, r.S, w.keys); r.key != want {
			t.Fatalf("output record %d (%+v) has key %q, want %q: the key was not kept", i, r, r.key, want)
		}
		if r.From != r.P {
			t.Fatalf("output record %d (%+v) was read from partition %d but produced to %d", i, r, r.From, r.P)
		}
		if r.At != r.S {
			// Sequences stand for offsets in the order checks below.
			t.Fatalf("output record %d (%+v) was read from offset %d: the input producer did not keep the file's order", i, r, r.At)
		}
		k := r.P*w.keys + r.S%w.keys
		if partOf[k] != r.partition {
			t.Fatalf("key %q is on output partition %d, want %d (murmur2)", r.key, r.partition, partOf[k])
		}
		switch j := r.S / w.keys; {
		case j == nextOfKey[k]:
			nextOfKey[k]++
		case j > nextOfKey[k]:
			t.Fatalf("key %q: sequence %d appeared before %d (output record %d)", r.key, r.S, nextOfKey[k]*w.keys+r.S%w.keys, i)
		}
		if seen[r.P][r.S] == 0 {
			rep.unique++
		} else {
			rep.dups++
			if exact {
				t.Fatalf("record %d-%d is in the output twice", r.P, r.S)
			}
		}
		seen[r.P][r.S] = min(seen[r.P][r.S]+1, 255)
		if exact {
			pair := [2]int{r.partition, r.P}
			if last, ok := lastIn[pair]; ok && r.S <= last {
				t.Fatalf("output partition %d: record %d-%d after %d-%d: input partition order lost", r.partition, r.P, r.S, r.P, last)
			}
			lastIn[pair] = r.S
		}
	}
	var missing []string
	lost := 0
	for p := range seen {
		for s, c := range seen[p] {
			if c == 0 {
				lost++
				if len(missing) < 10 {
					missing = append(missing, fmt.Sprintf("%d-%d", p, s))
				}
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d input records are not in the output (e.g. %s); %d duplicates", lost, w.total(), strings.Join(missing, ", "), rep.dups)
	}
	return rep
}
