package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// Helpers for the durable window state tests (state_test.go): an input
// of keyed records with increasing Kafka timestamps, produced with
// kafka-go straight from the test, the count each (key, window) must end
// with, and a reader that tails the window's output topic.

// windowPipeline is the pipeline every state test runs.
const windowPipeline = "e2e/testdata/window-state.yaml"

// windowID names one window of one key: the key and the window's start
// (Unix milliseconds).
type windowID struct {
	key   string
	start int64
}

func (id windowID) String() string {
	return fmt.Sprintf("%s@%s", id.key, time.UnixMilli(id.start).UTC().Format(time.RFC3339))
}

// windowInput is an input topic for a window stage: n records, record j
// with a key drawn from keys and the timestamp base + j*span/n, so that
// timestamps increase in every partition (a key's murmur2 hash decides
// its partition, as the Java client's) and cover span = windows*size.
// After them, one marker record per partition, far later, closes every
// data window of that partition.
type windowInput struct {
	t       *testing.T
	broker  string
	topic   string
	parts   int
	size    time.Duration
	n       int
	keys    []string
	recKeys []int32 // key index of each record
	base    time.Time
	span    time.Duration
	markers []string // the marker key of each partition
	counts  []int    // records produced so far per partition
	expect  map[windowID]int
	w       *kafka.Writer
}

// newWindowInput creates the topic and plans the records; nothing is
// produced yet.
func newWindowInput(t *testing.T, broker string, rng *rand.Rand, parts, n, keys int, size, span time.Duration, base time.Time) *windowInput {
	t.Helper()
	in := &windowInput{
		t: t, broker: broker, topic: kafkaName(t, "in"), parts: parts, size: size, n: n,
		base: base, span: span, counts: make([]int, parts), expect: map[windowID]int{},
	}
	for k := range keys {
		in.keys = append(in.keys, fmt.Sprintf("k%05d", k))
	}
	in.recKeys = make([]int32, n)
	for j := range in.recKeys {
		k := rng.IntN(keys)
		in.recKeys[j] = int32(k)
		in.expect[windowID{in.keys[k], in.windowStart(in.stamp(j))}]++
	}
	for p := range parts {
		for i := 0; ; i++ {
			key := fmt.Sprintf("end-%d", i)
			if in.partitionOf(key) == p {
				in.markers = append(in.markers, key)
				break
			}
		}
	}
	createTopic(t, broker, in.topic, parts)
	// A transport of its own: kafka-go's default one shares metadata
	// across the tests, cached for seconds, which does not know a topic
	// this new yet ("Unknown Topic Or Partition").
	tr := &kafka.Transport{MetadataTTL: time.Second}
	in.w = &kafka.Writer{
		Transport:    tr,
		Addr:         kafka.TCP(broker),
		Topic:        in.topic,
		Balancer:     kafka.Murmur2Balancer{},
		BatchSize:    5000,
		BatchBytes:   1 << 20,
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
		MaxAttempts:  10,
	}
	t.Cleanup(func() {
		in.w.Close()
		tr.CloseIdleConnections()
	})
	return in
}

// pastBase is a base for records of windows of size: well in the past
// (brokers may refuse timestamps from the future; the markers come an
// hour after the data), aligned to size as windows are to the Unix epoch.
func pastBase(size time.Duration) time.Time {
	return time.Now().Add(-3 * time.Hour).Truncate(size)
}

// partitionOf is the partition of key (murmur2, as the Writer's balancer).
func (in *windowInput) partitionOf(key string) int {
	return kafka.Murmur2Balancer{}.Balance(kafka.Message{Key: []byte(key)}, seq(in.parts)...)
}

func (in *windowInput) stamp(j int) time.Time {
	return in.base.Add(time.Duration(int64(in.span) * int64(j) / int64(in.n))).Truncate(time.Millisecond)
}

func (in *windowInput) windowStart(ts time.Time) int64 {
	ms, size := ts.UnixMilli(), in.size.Milliseconds()
	return ms - ms%size
}

// markerTime is the markers' timestamp: an hour past the last data
// window, so that it closes them all (and still in the past).
func (in *windowInput) markerTime() time.Time { return in.base.Add(in.span + time.Hour) }

// isMarker reports whether key is one of the markers'.
func (in *windowInput) isMarker(key string) bool { return slices.Contains(in.markers, key) }

// produce writes records [from, to) in order.
func (in *windowInput) produce(from, to int) {
	in.t.Helper()
	const chunk = 20_000
	for i := from; i < to; i += chunk {
		if err := in.write(i, min(i+chunk, to)); err != nil {
			in.t.Fatal(err)
		}
	}
}

// write writes records [from, to) in one call and counts them per
// partition. It does not touch the test: it may run on another goroutine
// (and then the test reads counts only once it returned).
func (in *windowInput) write(from, to int) error {
	msgs := make([]kafka.Message, 0, to-from)
	for j := from; j < to; j++ {
		key := in.keys[in.recKeys[j]]
		msgs = append(msgs, kafka.Message{Key: []byte(key), Value: fmt.Appendf(nil, `{"j":%d}`, j), Time: in.stamp(j)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := in.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("producing to %s: %v", in.topic, err)
	}
	for _, m := range msgs {
		in.counts[in.partitionOf(string(m.Key))]++
	}
	return nil
}

// produceMarkers writes one marker per partition, far later.
func (in *windowInput) produceMarkers() { in.markersAt(in.markerTime()) }

// markersAt writes one marker per partition, stamped ts.
func (in *windowInput) markersAt(ts time.Time) {
	in.t.Helper()
	msgs := make([]kafka.Message, in.parts)
	for p, key := range in.markers {
		msgs[p] = kafka.Message{Key: []byte(key), Value: []byte(`{"end":true}`), Time: ts}
		in.counts[p]++
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := in.w.WriteMessages(ctx, msgs...); err != nil {
		in.t.Fatalf("producing the markers to %s: %v", in.topic, err)
	}
}

// checkProduced fails unless every partition holds exactly what was
// produced to it: a producer retry that wrote a batch twice would make
// the expected counts wrong.
func (in *windowInput) checkProduced() {
	in.t.Helper()
	ends, err := endOffsets(context.Background(), kafkaClient(in.t, in.broker), in.topic)
	if err != nil {
		in.t.Fatal(err)
	}
	for p, c := range in.counts {
		if ends[p] != int64(c) {
			in.t.Fatalf("input partition %d holds %d records, want the %d produced", p, ends[p], c)
		}
	}
}

// workload views the input as the Kafka helpers' workload, for
// committedTotal and waitCopied.
func (in *windowInput) workload() workload {
	return workload{broker: in.broker, topic: in.topic, counts: slices.Clone(in.counts)}
}

// produced is the number of records produced so far.
func (in *windowInput) produced() int64 {
	var n int64
	for _, c := range in.counts {
		n += int64(c)
	}
	return n
}

// windowJob is a window pipeline over an input: its output topic, group
// and environment.
type windowJob struct {
	out, group string
	env        []string
}

// newWindowJob creates the output topic and names a fresh group; the
// changelog topic the group's window stage creates is deleted when the
// test ends.
func newWindowJob(t *testing.T, broker, inTopic string, outParts int, env ...string) *windowJob {
	t.Helper()
	j := &windowJob{out: kafkaName(t, "out"), group: kafkaName(t, "g")}
	createTopic(t, broker, j.out, outParts)
	t.Cleanup(func() { deleteTopic(broker, j.changelog(inTopic)) })
	j.env = append([]string{"BROKERS=" + broker, "IN_TOPIC=" + inTopic, "OUT_TOPIC=" + j.out, "GROUP=" + j.group}, env...)
	return j
}

// changelog is the changelog topic of the window stage for topic, by the
// default prefix "<group>-<stage id>".
func (j *windowJob) changelog(topic string) string {
	return j.group + "-counts-" + topic + "-changelog"
}

func (j *windowJob) start(t *testing.T) *proc {
	t.Helper()
	return start(t, j.env, "run", "--progress", "never", windowPipeline)
}

// emit is one output record of the window stage.
type emit struct {
	Key   any       `json:"key"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Count int       `json:"count"`
	Early bool      `json:"early"`
}

// emitTail reads an output topic from its start, one reader per
// partition, for as long as the test runs, and keeps the last count
// emitted for each (key, window start): the emits of one key are on one
// output partition, in the order they were written.
type emitTail struct {
	size   time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	last  map[windowID]int
	times map[windowID]int // emits per window
	total int
	pos   map[int]int64 // next offset to read per partition
	bad   []string      // malformed records (the first few)
	nbad  int
	errs  int
}

func tailEmits(t *testing.T, broker, topic string, parts int, size time.Duration) *emitTail {
	ctx, cancel := context.WithCancel(context.Background())
	et := &emitTail{size: size, cancel: cancel, last: map[windowID]int{}, times: map[windowID]int{}, pos: map[int]int64{}}
	for p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{broker}, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond,
		})
		if err := r.SetOffset(kafka.FirstOffset); err != nil {
			t.Fatal(err)
		}
		et.wg.Go(func() {
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					et.mu.Lock()
					et.errs++
					et.mu.Unlock()
					time.Sleep(100 * time.Millisecond) // back off a failing fetch
					continue
				}
				et.add(m)
			}
		})
	}
	t.Cleanup(et.stop)
	return et
}

func (et *emitTail) stop() {
	et.cancel()
	et.wg.Wait()
}

func (et *emitTail) add(m kafka.Message) {
	et.mu.Lock()
	defer et.mu.Unlock()
	et.pos[m.Partition] = m.Offset + 1
	var e emit
	err := json.Unmarshal(m.Value, &e)
	key, isString := e.Key.(string)
	switch {
	case err != nil:
	case !isString || key != string(m.Key):
		err = fmt.Errorf("value key %v, record key %q: want the record key as a string", e.Key, m.Key)
	case e.End.Sub(e.Start) != et.size:
		err = fmt.Errorf("window [%s, %s) is not %s long", e.Start, e.End, et.size)
	case e.Early:
		err = fmt.Errorf("emitted early: a limit was reached")
	}
	if err != nil {
		et.nbad++
		if len(et.bad) < 5 {
			et.bad = append(et.bad, fmt.Sprintf("partition %d offset %d %q: %v", m.Partition, m.Offset, m.Value, err))
		}
		return
	}
	id := windowID{key, e.Start.UnixMilli()}
	et.last[id] = e.Count
	et.times[id]++
	et.total++
}

// missing counts the windows of expect with no emit yet.
func (et *emitTail) missing(expect map[windowID]int) int {
	et.mu.Lock()
	defer et.mu.Unlock()
	n := 0
	for id := range expect {
		if _, ok := et.last[id]; !ok {
			n++
		}
	}
	return n
}

// emitted is the number of well-formed emits read so far.
func (et *emitTail) emitted() int {
	et.mu.Lock()
	defer et.mu.Unlock()
	return et.total
}

// caughtUp reports whether the readers reached ends.
func (et *emitTail) caughtUp(ends map[int]int64) bool {
	et.mu.Lock()
	defer et.mu.Unlock()
	for p, end := range ends {
		if et.pos[p] < end {
			return false
		}
	}
	return true
}

// readAll waits until the tail read the whole output topic as it is now.
func (et *emitTail) readAll(t *testing.T, broker, topic string) {
	t.Helper()
	ends, err := endOffsets(context.Background(), kafkaClient(t, broker), topic)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the output reader to reach the end of "+topic, func() bool { return et.caughtUp(ends) })
}

// windowReport is what checkEmits found.
type windowReport struct {
	emits, windows, repeats, maxTimes, markers int
}

// checkEmits fails the test unless the last count emitted for every
// expected window is the expected count, and no other window was emitted
// but those of the markers' keys. It reports the repeats.
func checkEmits(t *testing.T, et *emitTail, expect map[windowID]int, isMarker func(string) bool) windowReport {
	t.Helper()
	et.mu.Lock()
	defer et.mu.Unlock()
	if et.nbad > 0 {
		t.Errorf("%d malformed output records, e.g.:\n  %s", et.nbad, strings.Join(et.bad, "\n  "))
	}
	rep := windowReport{emits: et.total}
	var wrong, missing, extra []string
	nWrong, nMissing, nExtra := 0, 0, 0
	for id, want := range expect {
		got, ok := et.last[id]
		switch {
		case !ok:
			if nMissing++; len(missing) < 10 {
				missing = append(missing, id.String())
			}
		case got != want:
			if nWrong++; len(wrong) < 10 {
				wrong = append(wrong, fmt.Sprintf("%s: last count %d, want %d (emitted %d times)", id, got, want, et.times[id]))
			}
		}
	}
	for id, n := range et.times {
		if _, ok := expect[id]; ok {
			rep.windows++
			rep.repeats += n - 1
			rep.maxTimes = max(rep.maxTimes, n)
			continue
		}
		if isMarker(id.key) {
			rep.markers += n
			continue
		}
		if nExtra++; len(extra) < 10 {
			extra = append(extra, fmt.Sprintf("%s (count %d, emitted %d times)", id, et.last[id], n))
		}
	}
	if nMissing > 0 {
		t.Errorf("%d of %d expected windows were never emitted, e.g.:\n  %s", nMissing, len(expect), strings.Join(missing, "\n  "))
	}
	if nWrong > 0 {
		t.Errorf("%d of %d windows end with a wrong count, e.g.:\n  %s", nWrong, len(expect), strings.Join(wrong, "\n  "))
	}
	if nExtra > 0 {
		t.Errorf("%d windows emitted that the input does not have, e.g.:\n  %s", nExtra, strings.Join(extra, "\n  "))
	}
	return rep
}

// stateSeed is SLUICE_STATE_SEED when set (to replay a run), else the
// clock.
func stateSeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv("SLUICE_STATE_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_STATE_SEED=%q is not an unsigned integer: %v", s, err)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// envInt is the integer in environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q is not a positive integer", name, s)
	}
	return v
}

// httpAddrRe matches the address sluice serves /metrics on.
var httpAddrRe = regexp.MustCompile(`msg="http listening" addr=(\S+)`)

// nodeIn reads sluice_node_records_in_total of node from p's /metrics
// (-1 while it cannot).
func nodeIn(p *proc, node string) int64 {
	m := httpAddrRe.FindStringSubmatch(p.stderr.String())
	if m == nil {
		return -1
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + m[1] + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if !strings.HasPrefix(line, "sluice_node_records_in_total{") || !strings.Contains(line, `node="`+node+`"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return -1
		}
		return int64(v)
	}
	return -1
}

// partitionCount is how many partitions topic has (0 if it cannot tell).
func partitionCount(t *testing.T, broker, topic string) int {
	t.Helper()
	c, err := kafka.Dial("tcp", broker)
	if err != nil {
		return 0
	}
	defer c.Close()
	ps, err := c.ReadPartitions(topic)
	if err != nil {
		return 0
	}
	return len(ps)
}
