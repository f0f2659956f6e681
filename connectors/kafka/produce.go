package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/metadata"
	produceapi "github.com/segmentio/kafka-go/protocol/produce"

	"github.com/sluicedev/sluice/flow"
)

// producer is the sink's writer: a produce pipeline straight on kafka-go's
// Transport (its connections, TLS, SASL and metadata cache), without
// kafka-go's Writer and its per-partition linger timers.
//
// Records are queued per partition, in the order Write calls handed them
// over. A partition whose queue is not empty and which has no request in
// flight is sent at once: its queue's head, up to batch_size records and
// batch_bytes bytes, goes into one produce request per leader broker,
// together with every other partition of that broker ready at that moment.
// While a partition's request is in flight, what arrives for it queues up
// and goes as the next request the moment the answer comes: an idle sink
// sends a record at once, a loaded one sends batches that grew by
// themselves ("natural batching"). No timer runs on that path; one is armed
// only for a retry's backoff, or for linger when it is set.
//
// At most one request per partition is in flight, so records of a
// partition are written in order even through retries (Kafka reorders a
// retried batch after a later one that succeeded unless the producer is
// idempotent, which this one is not). Requests of different partitions,
// and so of different Writes, are in flight together.
//
// A Write returns once each of its records is settled: acknowledged by the
// brokers, or failed (after the retries, or for itself alone, see
// isolate). Only then does the engine settle the batches those records
// came from, and only then may their source offsets be committed: a
// record is never acknowledged before the brokers acknowledged it,
// whichever request carried it and whatever else was in that request.
type producer struct {
	s     *Sink
	tr    *kafka.Transport
	addr  net.Addr
	acks  int16
	attrs protocol.Attributes // compression
	// ctx ends at Close's deadline: requests and isolations still going
	// then are abandoned.
	ctx    context.Context
	cancel context.CancelFunc
	work   sync.WaitGroup // goroutines sending requests or isolating records

	mu     sync.Mutex
	parts  map[topicPartition]*partQueue
	queued int // entries in queues
	active int // requests in flight and isolations going
	closed bool
	// quiet, when set, is closed once nothing is queued or active: Close
	// waits on it.
	quiet chan struct{}
	// wake re-runs kick when a backoff or linger ends; wakeAt is when.
	wake   *time.Timer
	wakeAt time.Time
}

type topicPartition struct {
	topic     string
	partition int32
}

// partQueue is one partition's records waiting to be sent.
type partQueue struct {
	key    topicPartition
	leader int32    // broker id from the last metadata look-up; -1 unknown
	queue  []*entry // oldest first
	busy   bool     // a request (or isolation) of this partition is going
	// notBefore is the end of the backoff after a failed request.
	notBefore time.Time
	// stale: the last request failed, so leader may be out of date (a
	// partition that moved, or had none): the partition goes in a request
	// of its own, which the transport routes with its own, refreshed
	// metadata, until a Write looks its leader up again.
	stale bool
}

// entry is one record on its way.
type entry struct {
	msg   kafka.Message
	size  int64
	at    time.Time // queued, for linger
	tries int       // failed requests it was in
	w     *waiter
	i     int // index in the Write's records
}

// waiter is one Write waiting for its records. Its fields are guarded by
// producer.mu.
type waiter struct {
	left   int
	failed map[int]error
	done   chan struct{}
	// gone: the Write returned early (its context ended); its records
	// still queued were dropped, those in flight are not waited for.
	gone bool
}

// keptQueues is how many partition queues the producer keeps before it
// drops the empty ones: a topic_expr writing to ever new topics must not
// grow it without end, while steady traffic keeps reusing its queues.
const keptQueues = 1024

// produceTimeout bounds one produce request: how long the broker may wait
// for the replicas (acks=all), and the request's context.
const produceTimeout = 10 * time.Second

func newProducer(s *Sink, tr *kafka.Transport, addr net.Addr, acks kafka.RequiredAcks, codec kafka.Compression) *producer {
	ctx, cancel := context.WithCancel(context.Background())
	return &producer{
		s: s, tr: tr, addr: addr, acks: int16(acks), attrs: protocol.Attributes(codec) & 0x7,
		ctx: ctx, cancel: cancel, parts: map[topicPartition]*partQueue{},
	}
}

// layout is what a Write needs of a topic: its partition ids, sorted,
// and their leaders.
type layout struct {
	ids     []int
	leaders map[int32]int32
}

// write queues the messages of one topic and waits until each is settled.
// Per-message failures go to fail. An error failing every message (the
// topic's metadata could not be had) is returned instead.
func (p *producer) write(ctx context.Context, g *topicGroup, fail func(int, error)) error {
	lay, err := p.topicLayout(ctx, g.topic)
	if err != nil {
		return err
	}
	es := make([]entry, len(g.msgs))
	w := &waiter{left: len(es), done: make(chan struct{})}
	now := time.Now()
	for j := range g.msgs {
		m := &g.msgs[j]
		es[j] = entry{msg: *m, size: messageSize(m), at: now, w: w, i: g.idx[j]}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("kafka sink is closed")
	}
	for j := range es {
		e := &es[j]
		pid := int32(p.s.bal.Balance(e.msg, lay.ids...))
		key := topicPartition{g.topic, pid}
		q := p.parts[key]
		if q == nil {
			q = &partQueue{key: key}
			p.parts[key] = q
		}
		q.leader, q.stale = lay.leaders[pid], false
		q.queue = append(q.queue, e)
	}
	p.queued += len(es)
	p.kick()
	p.mu.Unlock()

	select {
	case <-w.done:
	case <-ctx.Done():
		p.abandon(w)
		return ctx.Err()
	}
	for i, err := range w.failed {
		fail(i, err)
	}
	return nil
}

// abandon drops the still queued records of a Write that returned early.
func (p *producer) abandon(w *waiter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.gone = true
	for _, q := range p.parts {
		kept := q.queue[:0]
		for _, e := range q.queue {
			if e.w != w {
				kept = append(kept, e)
			}
		}
		clear(q.queue[len(kept):])
		p.queued -= len(q.queue) - len(kept)
		q.queue = kept
	}
	p.checkQuiet()
}

// settle records the outcome of one entry. Called with p.mu held.
func (p *producer) settle(e *entry, err error) {
	w := e.w
	if err != nil {
		if w.failed == nil {
			w.failed = map[int]error{}
		}
		w.failed[e.i] = err
	}
	w.left--
	if w.left == 0 && !w.gone {
		close(w.done)
	}
}

// request is one produce request: the next batch of each of its
// partitions, all led by one broker.
type request struct {
	batches []*sending
}

type sending struct {
	q  *partQueue
	es []*entry
}

// kick sends every partition that is ready: records queued, no request in
// flight, no backoff (or linger) running. Called with p.mu held.
func (p *producer) kick() {
	if p.ctx.Err() != nil {
		return // closed: close settles what is queued
	}
	now := time.Now()
	var next time.Time
	later := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var reqs map[int64]*request
	alone := int64(0) // keys of requests of a partition of its own: -1, -2...
	for key, q := range p.parts {
		if q.busy || len(q.queue) == 0 {
			if !q.busy && len(p.parts) > keptQueues {
				delete(p.parts, key) // many topics (topic_expr): keep only live queues
			}
			continue
		}
		if now.Before(q.notBefore) {
			later(q.notBefore)
			continue
		}
		n, full := p.cut(q)
		if !full && p.s.cfg.Linger > 0 && !p.closed {
			if until := q.queue[0].at.Add(p.s.cfg.Linger); now.Before(until) {
				later(until)
				continue
			}
		}
		es := slices.Clone(q.queue[:n])
		clear(q.queue[:n])
		q.queue = q.queue[n:]
		if len(q.queue) == 0 {
			q.queue = nil // let the array go
		}
		p.queued -= n
		q.busy = true
		if reqs == nil {
			reqs = map[int64]*request{}
		}
		key := int64(q.leader)
		if q.stale || q.leader < 0 {
			alone--
			key = alone
		}
		r := reqs[key]
		if r == nil {
			r = &request{}
			reqs[key] = r
		}
		r.batches = append(r.batches, &sending{q: q, es: es})
	}
	for _, r := range reqs {
		p.active++
		p.work.Add(1)
		go p.send(r)
	}
	if !next.IsZero() {
		p.wakeUp(next)
	}
}

// cut is how many records of q's head go in its next request, and
// whether that is a full batch (batch_size records, or batch_bytes).
func (p *producer) cut(q *partQueue) (n int, full bool) {
	var size int64
	for n < len(q.queue) {
		if n == p.s.cfg.BatchSize {
			return n, true
		}
		e := q.queue[n]
		if n > 0 && size+e.size > int64(p.s.cfg.BatchBytes) {
			return n, true
		}
		size += e.size
		n++
	}
	return n, n == p.s.cfg.BatchSize
}

// wakeUp arms the timer to kick at t, unless it fires earlier already.
// Called with p.mu held.
func (p *producer) wakeUp(t time.Time) {
	if !p.wakeAt.IsZero() && !t.Before(p.wakeAt) {
		return
	}
	if p.wake != nil {
		p.wake.Stop()
	}
	p.wakeAt = t
	p.wake = time.AfterFunc(time.Until(t), func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.wakeAt.Equal(t) {
			p.wakeAt = time.Time{}
		}
		p.kick()
	})
}

// send makes one produce request and settles what it carried.
func (p *producer) send(r *request) {
	defer p.work.Done()
	res, err := p.roundTrip(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.active--
	for _, b := range r.batches {
		berr := err
		if berr == nil {
			berr = partitionError(res, b.q.key)
		}
		p.finish(b, berr, res)
	}
	p.kick()
	p.checkQuiet()
}

func (p *producer) roundTrip(r *request) (*produceapi.Response, error) {
	req := &produceapi.Request{Acks: p.acks, Timeout: int32(produceTimeout / time.Millisecond)}
	for _, b := range r.batches {
		var t *produceapi.RequestTopic
		for i := range req.Topics {
			if req.Topics[i].Topic == b.q.key.topic {
				t = &req.Topics[i]
			}
		}
		if t == nil {
			req.Topics = append(req.Topics, produceapi.RequestTopic{Topic: b.q.key.topic})
			t = &req.Topics[len(req.Topics)-1]
		}
		t.Partitions = append(t.Partitions, produceapi.RequestPartition{
			Partition: b.q.key.partition,
			RecordSet: protocol.RecordSet{Attributes: p.attrs, Records: &entryRecords{es: b.es}},
		})
	}
	ctx, cancel := context.WithTimeout(p.ctx, produceTimeout+time.Second)
	defer cancel()
	m, err := p.tr.RoundTrip(ctx, p.addr, req)
	if err != nil {
		return nil, err
	}
	res, ok := m.(*produceapi.Response)
	if !ok {
		return nil, fmt.Errorf("produce: unexpected response %T", m)
	}
	return res, nil
}

// partitionError is the broker's answer for one partition of a request.
// The records it named (KIP-467) are in the response too; see isolate.
func partitionError(res *produceapi.Response, key topicPartition) error {
	for _, t := range res.Topics {
		if t.Topic != key.topic {
			continue
		}
		for _, rp := range t.Partitions {
			if rp.Partition != key.partition {
				continue
			}
			if rp.ErrorCode == 0 {
				return nil
			}
			if rp.ErrorMessage != "" {
				return fmt.Errorf("%w: %s", kafka.Error(rp.ErrorCode), rp.ErrorMessage)
			}
			return kafka.Error(rp.ErrorCode)
		}
	}
	return fmt.Errorf("produce response has no answer for %s/%d: %w", key.topic, key.partition, io.ErrUnexpectedEOF)
}

// namedRecords is what the broker said of single records of one partition
// (KIP-467), by position in the request's batch.
func namedRecords(res *produceapi.Response, key topicPartition) map[int]error {
	if res == nil {
		return nil
	}
	var named map[int]error
	for _, t := range res.Topics {
		for _, rp := range t.Partitions {
			if t.Topic != key.topic || rp.Partition != key.partition {
				continue
			}
			for _, re := range rp.RecordErrors {
				if named == nil {
					named = map[int]error{}
				}
				named[int(re.BatchIndex)] = errors.New(re.BatchIndexErrorMessage)
			}
		}
	}
	return named
}

// finish settles one partition's batch after its request: written,
// retried, isolated or failed. Called with p.mu held.
func (p *producer) finish(b *sending, err error, res *produceapi.Response) {
	q := b.q
	switch {
	case err == nil:
		for _, e := range b.es {
			p.settle(e, nil)
		}
		q.busy = false
	case recordCaused(err) && p.ctx.Err() == nil:
		// q stays busy: nothing of this partition overtakes the records
		// being isolated.
		p.active++
		p.work.Add(1)
		named := namedRecords(res, q.key)
		go p.isolate(b, err, named)
	case p.ctx.Err() == nil && requestRetriable(err):
		q.busy, q.stale = false, true
		var again []*entry
		tries := 0
		for _, e := range b.es {
			e.tries++
			switch {
			case e.w.gone:
			case e.tries > p.s.cfg.MaxRetries:
				p.settle(e, p.s.explain(fmt.Errorf("still failing after %d retries: %w", e.tries-1, err)))
			default:
				again = append(again, e)
				tries = max(tries, e.tries)
			}
		}
		if len(again) == 0 {
			return
		}
		// Back at the head, in their order: nothing written after them.
		q.queue = append(again, q.queue...)
		p.queued += len(again)
		backoff := flow.Backoff{Initial: p.s.cfg.Backoff, Max: p.s.cfg.MaxBackoff}
		q.notBefore = time.Now().Add(backoff.Delay(tries))
		lvl := slog.LevelDebug
		if tries%20 == 3 {
			lvl = slog.LevelWarn
		}
		p.s.cfg.Logger.Log(p.ctx, lvl, "kafka sink: produce request failed; retrying",
			"topic", q.key.topic, "partition", q.key.partition, "records", len(again), "retry", tries,
			"max_retries", p.s.cfg.MaxRetries, "err", err)
	default:
		for _, e := range b.es {
			p.settle(e, p.s.explain(err))
		}
		q.busy = false
	}
}

// requestRetriable reports failures of a produce request another try may
// not get: a retriable Kafka error, a lost connection or a request that
// timed out (its records may have been written: a retry may write them
// twice, as at-least-once allows), or a request routed with metadata
// that changed meanwhile.
func requestRetriable(err error) bool {
	var routing *produceapi.Error
	return errors.As(err, &routing) || retriable(err)
}

// isolate writes again, in requests of their own, the records of a batch
// the broker refused for a reason one record can cause (too large for the
// topic, invalid), halving until the failure is pinned on records that
// fail alone: only those fail. The others are written in their order.
// The partition stays busy meanwhile, so nothing overtakes them.
func (p *producer) isolate(b *sending, err error, named map[int]error) {
	defer p.work.Done()
	s := p.s
	topic, part := b.q.key.topic, int(b.q.key.partition)
	g := &topicGroup{topic: topic, msgs: make([]kafka.Message, len(b.es)), idx: make([]int, len(b.es))}
	for j, e := range b.es {
		g.msgs[j], g.idx[j] = e.msg, j
	}
	failed := map[int]error{}
	fail := func(j int, err error) { failed[j] = err }
	s.cfg.Logger.Info("kafka sink: a produce request failed for a reason one record can cause; writing its records again in smaller requests to fail only the offending ones",
		"topic", topic, "partition", part, "records", len(b.es), "err", err)
	cl := &kafka.Client{Addr: p.addr, Transport: p.tr, Timeout: isolateTimeout}
	var rest []int
	for j := range b.es {
		if e, ok := named[j]; ok {
			fail(j, s.explainRecord(g.msgs[j], topic, err, e))
		} else {
			rest = append(rest, j)
		}
	}
	switch {
	case len(rest) == 0:
	case len(rest) < len(b.es) || len(rest) == 1:
		s.tryAlone(p.ctx, cl, g, part, rest, fail)
	default:
		mid := len(rest) / 2
		s.tryAlone(p.ctx, cl, g, part, rest[:mid], fail)
		s.tryAlone(p.ctx, cl, g, part, rest[mid:], fail)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for j, e := range b.es {
		p.settle(e, failed[j])
	}
	b.q.busy = false
	p.active--
	p.kick()
	p.checkQuiet()
}

// checkQuiet wakes Close once nothing is queued or active. Called with
// p.mu held.
func (p *producer) checkQuiet() {
	if p.quiet != nil && p.queued == 0 && p.active == 0 {
		close(p.quiet)
		p.quiet = nil
	}
}

// close waits (within ctx) for queued records and requests in flight,
// then abandons what is left: its Writes fail.
func (p *producer) close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	var quiet chan struct{}
	if p.queued > 0 || p.active > 0 {
		quiet = make(chan struct{})
		p.quiet = quiet
		p.kick() // linger no longer holds anything
	}
	p.mu.Unlock()
	var err error
	if quiet != nil {
		select {
		case <-quiet:
		case <-ctx.Done():
			err = fmt.Errorf("kafka sink: closing with produce requests still in flight: %w", ctx.Err())
		}
	}
	// Under p.mu: a kick after this sees the context ended and starts
	// nothing, so no goroutine is added to p.work while it is waited for.
	p.mu.Lock()
	p.cancel()
	p.mu.Unlock()
	p.work.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wake != nil {
		p.wake.Stop()
	}
	for _, q := range p.parts {
		for _, e := range q.queue {
			p.settle(e, errors.New("kafka sink closed before the record was written"))
		}
		q.queue = nil
	}
	p.queued = 0
	return err
}

// topicLayout reads topic's partitions and leaders from the transport's
// metadata cache, retried within the retry budget while the topic is
// unknown or its metadata cannot be had: the usual cause is a topic
// created a moment ago (or being created by the brokers'
// auto.create.topics.enable) whose metadata has not reached every broker
// yet; Kafka calls that retriable.
func (p *producer) topicLayout(ctx context.Context, topic string) (layout, error) {
	s := p.s
	start := time.Now()
	backoff := flow.Backoff{Initial: s.cfg.Backoff, Max: s.cfg.MaxBackoff}
	budget, remembered := s.cfg.MaxRetries, s.recentlyUnknown(topic)
	if remembered {
		budget = 0
	}
	for retry := 1; ; retry++ {
		lay, err := p.lookup(ctx, topic)
		if err == nil && remembered {
			s.setUnknown(topic, false)
		}
		if err == nil || ctx.Err() != nil || !retriable(err) {
			return lay, err
		}
		if retry > budget {
			took := time.Since(start).Round(time.Millisecond)
			switch {
			case !errors.Is(err, kafka.UnknownTopicOrPartition):
				return lay, fmt.Errorf("metadata of topic %q: still failing after %d retries over %s: %w", topic, retry-1, took, err)
			case remembered:
				return lay, fmt.Errorf("topic %q does not exist (it stayed unknown for a whole retry budget less than %s ago, so it is not retried now): %w",
					topic, unknownMemory, err)
			}
			s.setUnknown(topic, true)
			return lay, fmt.Errorf("topic %q does not exist: still unknown after %d retries over %s; create it, or let the brokers create it (auto.create.topics.enable): %w",
				topic, retry-1, took, err)
		}
		// A topic the brokers are creating is known a moment later: warn
		// only when it lasts.
		lvl := slog.LevelDebug
		if retry%20 == 3 {
			lvl = slog.LevelWarn
		}
		s.cfg.Logger.Log(ctx, lvl, "kafka sink: cannot get the topic's metadata (a topic created a moment ago takes a moment to reach every broker); retrying",
			"topic", topic, "retry", retry, "max_retries", budget, "err", err)
		if flow.Sleep(ctx, backoff.Delay(retry)) != nil {
			return lay, err
		}
	}
}

// lookup is one metadata look-up, served by the transport's cache (or
// sent to the brokers for a topic not in it, which lets them create it).
func (p *producer) lookup(ctx context.Context, topic string) (layout, error) {
	m, err := p.tr.RoundTrip(ctx, p.addr, &metadata.Request{TopicNames: []string{topic}, AllowAutoTopicCreation: true})
	if err != nil {
		return layout{}, err
	}
	res, ok := m.(*metadata.Response)
	if !ok {
		return layout{}, fmt.Errorf("metadata: unexpected response %T", m)
	}
	for _, t := range res.Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != 0 {
			return layout{}, kafka.Error(t.ErrorCode)
		}
		if len(t.Partitions) == 0 {
			return layout{}, kafka.UnknownTopicOrPartition
		}
		lay := layout{ids: make([]int, len(t.Partitions)), leaders: make(map[int32]int32, len(t.Partitions))}
		for i, tp := range t.Partitions {
			lay.ids[i] = int(tp.PartitionIndex)
			lay.leaders[tp.PartitionIndex] = tp.LeaderID
		}
		slices.Sort(lay.ids)
		return lay, nil
	}
	return layout{}, kafka.UnknownTopicOrPartition
}

// entryRecords reads a batch's entries as the records of a produce
// request. The record it returns is reused by the next call, as the
// request's encoder expects.
type entryRecords struct {
	es         []*entry
	i          int
	rec        kafka.Record
	key, value bytesReader
}

func (r *entryRecords) ReadRecord() (*kafka.Record, error) {
	if r.i >= len(r.es) {
		return nil, io.EOF
	}
	m := &r.es[r.i].msg
	r.i++
	r.rec = kafka.Record{Time: m.Time, Headers: m.Headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.rec.Key = &r.key
	}
	if m.Value != nil {
		r.value.Reset(m.Value)
		r.rec.Value = &r.value
	}
	return &r.rec, nil
}

type bytesReader struct{ bytes.Reader }

func (*bytesReader) Close() error { return nil }
