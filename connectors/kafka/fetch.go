package kafka

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/sluicedev/sluice/flow"
)

// fetchSlack is added to max_wait for the socket deadline of a fetch: the
// broker answers within max_wait, so only a dead connection hits it.
const fetchSlack = 15 * time.Second

// requestTimeout bounds metadata-style requests on a leader connection.
const requestTimeout = 10 * time.Second

// reconnectBackoff paces reconnects of one partition's fetch loop.
var reconnectBackoff = flow.Backoff{Initial: 250 * time.Millisecond, Max: 5 * time.Second}

// partitionReader is the fetch loop of one assigned partition for one
// generation. It talks to the partition leader over its own connection
// (Conn + ReadBatch, kafka-go's fastest read path: no per-message channel
// hop) and emits each fetch as batches of at most cfg.Batch records.
type partitionReader struct {
	src       *Source
	topic     string
	partition int
	assigned  int64 // from the assignment: committed offset, or FirstOffset/LastOffset
	track     *offsetTracker
	// committed is the last offset committed for this assignment, -1 if
	// none yet. Only the generation's committer touches it.
	committed int64
	// highWater is the partition's high watermark from the last fetch,
	// for the lag metric.
	highWater atomic.Int64
	stopped   chan struct{} // closed when run returns: no more Emit calls
	// lease is on every record this reader emits; the generation Ends it
	// when the partition is revoked and waits for its holders before the
	// last commit (see generation.finish).
	lease *flow.Lease

	failOnce sync.Once
}

func newPartitionReader(s *Source, topic string, pa kafka.PartitionAssignment) *partitionReader {
	committed := pa.Offset
	if committed < 0 {
		committed = -1 // no commit yet: commit the resolved start position
	}
	if pa.Offset == kafka.LastOffset && s.appeared(topic, pa.ID) {
		// No commit and start: latest, but the partition was created after
		// this source subscribed: every record in it is one the group
		// would otherwise never see.
		s.log.Info("kafka source: partition created after the source started; reading it from the earliest offset",
			"topic", topic, "partition", pa.ID)
		pa.Offset = kafka.FirstOffset
	}
	return &partitionReader{
		src:       s,
		topic:     topic,
		partition: pa.ID,
		assigned:  pa.Offset,
		track:     newOffsetTracker(),
		committed: committed,
		stopped:   make(chan struct{}),
		lease:     flow.NewLease(s),
	}
}

// run fetches and emits until ctx ends (drain or end of generation).
func (p *partitionReader) run(ctx context.Context, out flow.Emitter) {
	defer close(p.stopped)
	log := p.src.log.With("topic", p.topic, "partition", p.partition)

	var conn *kafka.Conn
	var unwatch func() bool
	drop := func() {
		if conn != nil {
			unwatch()
			_ = conn.Close()
			conn = nil
		}
	}
	defer drop()

	offset := p.assigned
	started := false
	failures := 0
	retry := func(what string, err error) bool {
		drop()
		failures++
		log.Warn("kafka source: "+what+", retrying", "attempt", failures, "err", err)
		return flow.Sleep(ctx, reconnectBackoff.Delay(failures)) == nil
	}
	for ctx.Err() == nil {
		if at, blocked := p.track.blocked(); blocked {
			// Emitting more would only produce records that can never be
			// committed; the pipeline is failing anyway.
			log.Warn("kafka source: partition stopped after a failed record; its commits stay below it", "offset", at)
			<-ctx.Done()
			return
		}
		if conn == nil {
			c, err := p.dial(ctx)
			if err != nil {
				if ctx.Err() != nil || !retry("cannot reach partition leader", err) {
					return
				}
				continue
			}
			conn = c
			unwatch = context.AfterFunc(ctx, func() { _ = c.Close() }) // unblocks a fetch in flight
			at, err := p.resolve(conn, offset, log)
			if err != nil {
				if ctx.Err() != nil || !retry("cannot read partition offsets", err) {
					return
				}
				continue
			}
			switch {
			case !started:
				p.track.start(at)
				started = true
			case at > offset:
				p.track.skip(at) // deleted by retention meanwhile: nothing to wait for
			}
			offset = at
		}
		recs, next, err := p.fetch(conn, offset)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, kafka.RequestTimedOut):
			case errors.Is(err, kafka.OffsetOutOfRange):
				at, rerr := p.resolve(conn, offset, log)
				if rerr != nil {
					if !retry("cannot read partition offsets", rerr) {
						return
					}
					continue
				}
				if at > offset {
					p.track.skip(at)
				}
				offset = at
			case failures == 0 && readGlitch(err):
				// kafka-go's batch reader now and then ends a healthy fetch
				// with one of these (segmentio/kafka-go#932). The
				// connection's read state is lost, so reconnect, but at
				// once: a backoff here stalled the partition for 250 ms,
				// which was the tail of the source's latency.
				drop()
				failures++
				log.Debug("kafka source: fetch read ended early; reconnecting", "err", err)
			default:
				if !retry("fetch failed", err) {
					return
				}
			}
			continue
		}
		failures = 0
		if len(recs) == 0 {
			if next > offset {
				p.track.skip(next)
				offset = next
			}
			continue
		}
		if p.emit(ctx, out, recs, next) != nil {
			return
		}
		offset = next
	}
}

// dial connects to the partition's leader through the first broker that
// answers.
func (p *partitionReader) dial(ctx context.Context) (*kafka.Conn, error) {
	var err error
	for _, b := range p.src.cfg.Brokers {
		var c *kafka.Conn
		if c, err = p.src.dialer.DialLeader(ctx, "tcp", b, p.topic, p.partition); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// resolve turns offset (absolute, FirstOffset or LastOffset) into where to
// read now, applying the start policy to offsets outside the log.
func (p *partitionReader) resolve(conn *kafka.Conn, offset int64, log *slog.Logger) (int64, error) {
	_ = conn.SetDeadline(time.Now().Add(requestTimeout))
	first, last, err := conn.ReadOffsets()
	_ = conn.SetDeadline(time.Time{})
	if err != nil {
		return 0, err
	}
	switch {
	case offset == kafka.FirstOffset:
		return first, nil
	case offset == kafka.LastOffset:
		return last, nil
	case offset < first:
		log.Warn("kafka source: offsets were deleted by retention before being read; skipping them",
			"from", offset, "to", first)
		return first, nil
	case offset > last:
		to := first
		if p.src.cfg.Start == StartLatest {
			to = last
		}
		log.Warn("kafka source: offset is past the end of the partition (log truncated?); restarting per start policy",
			"offset", offset, "end", last, "start", p.src.cfg.Start, "to", to)
		return to, nil
	}
	return offset, nil
}

// fetch reads one fetch response from offset. It returns the records and
// the offset to fetch next (past compacted tails and control records).
// On error nothing is returned: the caller fetches again from offset.
func (p *partitionReader) fetch(conn *kafka.Conn, offset int64) ([]flow.Record, int64, error) {
	cfg := &p.src.cfg
	if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return nil, 0, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(cfg.MaxWait + fetchSlack))
	b := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: int(cfg.MinBytes), MaxBytes: int(cfg.MaxBytes), MaxWait: cfg.MaxWait})
	p.highWater.Store(b.HighWaterMark())
	var recs []flow.Record
	origin := flow.Origin{Source: cfg.ID, Topic: p.topic, Partition: int32(p.partition), Lease: p.lease}
	for {
		m, err := b.ReadMessage()
		if err != nil {
			break
		}
		if recs == nil {
			recs = make([]flow.Record, 0, 256)
		}
		origin.Offset = m.Offset
		r := flow.Record{Key: m.Key, Value: m.Value, Timestamp: m.Time, Origin: origin}
		if len(m.Headers) > 0 {
			r.Headers = make([]flow.Header, len(m.Headers))
			for i, h := range m.Headers {
				r.Headers[i] = flow.Header{Key: h.Key, Value: h.Value}
			}
		}
		recs = append(recs, r)
	}
	if err := b.Close(); err != nil {
		return nil, 0, err
	}
	return recs, b.Offset(), nil
}

// emit sends recs downstream in batches of at most cfg.Batch records, one
// ack each. next is where the fetch ended; the last batch's span reaches
// it so offsets the fetch skipped are covered.
func (p *partitionReader) emit(ctx context.Context, out flow.Emitter, recs []flow.Record, next int64) error {
	size := p.src.cfg.Batch
	for len(recs) > 0 {
		n := min(len(recs), size)
		// Cap the chunk: a stage may append to its batch's records and must
		// not overwrite the next chunk sharing the array.
		chunk := recs[:n:n]
		recs = recs[n:]
		end := chunk[n-1].Origin.Offset + 1
		if len(recs) == 0 {
			end = max(end, next)
		}
		seq := p.track.add(end)
		first := chunk[0].Origin.Offset
		ack := flow.NewAck(func(err error) { p.settle(seq, first, err) })
		if err := out.Emit(ctx, flow.NewBatch(chunk, ack)); err != nil {
			return err
		}
	}
	return nil
}

// settle runs on whichever goroutine released the batch's last reference.
func (p *partitionReader) settle(seq uint64, first int64, err error) {
	p.track.done(seq, err)
	if err != nil && !errors.Is(err, context.Canceled) {
		p.failOnce.Do(func() {
			p.src.log.Error("kafka source: records failed downstream; this partition's commits stop before them and they will be re-read on restart",
				"topic", p.topic, "partition", p.partition, "offset", first, "err", err)
		})
	}
}

// readGlitch reports the errors kafka-go's batch reader returns for a
// fetch cut short on a healthy connection (it is re-sent at once).
func readGlitch(err error) bool {
	return errors.Is(err, io.ErrNoProgress) || errors.Is(err, io.ErrUnexpectedEOF)
}
