package stages

// Durable dedupe (state: changelog): the keys seen belong to the source
// partition their records came from; each batch's new keys (and the keys
// it forgot) are written to the stage's changelog partition of the same
// number, and the batch is acknowledged only once both its records were
// written downstream and its keys were written to the changelog. A key is
// stored with the offset of the record that first showed it: after a
// crash or a rebalance, the replay of that very record passes again (it
// may not have reached the sinks) and every other record with the key is
// a repeat.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	statelog "github.com/sluicedev/sluice/state"
)

const (
	dedupeKey      = 'k' // 'k' key: a key seen, [v1][expiry][offset]
	dedupeDef      = 'd' // the key expression's fingerprint
	dedupeV1       = 1
	dedupeMaxHeld  = 100_000
	dedupeValueLen = 1 + 16
)

type dedupeDurable struct {
	id, prefix string
	mu         sync.Mutex
	w          *statelog.Writer
	logs       map[any]map[string]statelog.Changelog
	parts      map[*dedupePart]struct{} // held now, for metrics
	descs      dedupeDescs
}

type dedupeDescs struct{ pending, keys, restore, restored *prometheus.Desc }

func newDedupeDescs(node string) dedupeDescs {
	node1 := prometheus.Labels{"node": node}
	part := []string{"topic", "partition"}
	return dedupeDescs{
		pending: prometheus.NewDesc("sluice_state_changelog_pending_entries",
			"State changes not yet acknowledged by the changelog (changelog lag); the records behind them wait to be acknowledged.", nil, node1),
		keys: prometheus.NewDesc("sluice_state_dedupe_keys",
			"Keys a dedupe stage remembers for a source partition (state size).", part, node1),
		restore: prometheus.NewDesc("sluice_state_restore_seconds",
			"How long the last restore of a partition's state from its changelog took.", part, node1),
		restored: prometheus.NewDesc("sluice_state_restored_entries",
			"Changelog entries read by the last restore of a partition's state.", part, node1),
	}
}

// Describe implements prometheus.Collector (durable state only).
func (d *Dedupe) Describe(ch chan<- *prometheus.Desc) {
	if d.dur == nil {
		return
	}
	ch <- d.dur.descs.pending
	ch <- d.dur.descs.keys
	ch <- d.dur.descs.restore
	ch <- d.dur.descs.restored
}

// Collect implements prometheus.Collector.
func (d *Dedupe) Collect(ch chan<- prometheus.Metric) {
	if d.dur == nil {
		return
	}
	ds := &d.dur.descs
	d.dur.mu.Lock()
	defer d.dur.mu.Unlock()
	var pending int64
	if d.dur.w != nil {
		pending = d.dur.w.Pending()
	}
	ch <- prometheus.MustNewConstMetric(ds.pending, prometheus.GaugeValue, float64(pending))
	for p := range d.dur.parts {
		labels := []string{p.topic, strconv.Itoa(int(p.sp.Partition))}
		ch <- prometheus.MustNewConstMetric(ds.keys, prometheus.GaugeValue, float64(p.size.Load()), labels...)
		ch <- prometheus.MustNewConstMetric(ds.restore, prometheus.GaugeValue, time.Duration(p.restoreNs.Load()).Seconds(), labels...)
		ch <- prometheus.MustNewConstMetric(ds.restored, prometheus.GaugeValue, float64(p.restored.Load()), labels...)
	}
}

// Durable makes d keep its keys in a changelog per source partition;
// id is its node id, prefix the changelog_prefix ("" for the default).
func (d *Dedupe) Durable(id, prefix string) {
	d.dur = &dedupeDurable{id: id, prefix: prefix, descs: newDedupeDescs(id)}
}

// Stateful says where d keeps its keys (the /graph page shows it).
func (d *Dedupe) Stateful() string {
	if d.dur != nil {
		return "changelog"
	}
	return "memory"
}

// Close implements flow.Closer: it writes what is queued and closes the
// changelogs.
func (d *Dedupe) Close(ctx context.Context) error {
	if d.dur == nil {
		return nil
	}
	d.dur.mu.Lock()
	w, logs := d.dur.w, d.dur.logs
	d.dur.w, d.dur.logs = nil, nil
	d.dur.mu.Unlock()
	if w != nil {
		// Records whose changes were not written were failed back to the
		// source (read again after a restart): nothing is lost, so the
		// shutdown itself does not fail. What may be left out is a mark
		// of windows closed, which makes the next owner emit them again.
		if werr := w.Close(ctx); werr != nil {
			d.log.Warn("dedupe: state writes not finished at close; the records behind them are read again after the restart", "err", werr)
		}
	}
	for _, byTopic := range logs {
		for _, cl := range byTopic {
			_ = cl.Close(ctx)
		}
	}
	return nil
}

func (d *Dedupe) writer() *statelog.Writer {
	d.dur.mu.Lock()
	defer d.dur.mu.Unlock()
	if d.dur.w == nil {
		d.dur.w = statelog.NewWriter(dedupeMaxHeld)
	}
	return d.dur.w
}

func (d *Dedupe) changelog(ctx context.Context, lease *flow.Lease, topic string) (statelog.Changelog, error) {
	prov, ok := statelog.ProviderOf(lease.Owner)
	if !ok {
		return nil, statelog.ErrNoProvider
	}
	d.dur.mu.Lock()
	defer d.dur.mu.Unlock()
	if cl := d.dur.logs[lease.Owner][topic]; cl != nil {
		return cl, nil
	}
	cl, err := prov.Changelog(ctx, statelog.Spec{Stage: d.dur.id, Topic: topic, Prefix: d.dur.prefix})
	if err != nil {
		return nil, err
	}
	if d.dur.logs == nil {
		d.dur.logs = map[any]map[string]statelog.Changelog{}
	}
	if d.dur.logs[lease.Owner] == nil {
		d.dur.logs[lease.Owner] = map[string]statelog.Changelog{}
	}
	d.dur.logs[lease.Owner][topic] = cl
	return cl, nil
}

// dedupePart is one source partition's keys on one worker.
type dedupePart struct {
	topic string
	sp    *statelog.Part
	// for metrics
	size, restoreNs, restored atomic.Int64
	seen                      seenKeys
	gone                      []string // keys forgotten since the last batch was queued
	// wroteDef: the key expression's fingerprint was queued.
	wroteDef bool
}

func (d *Dedupe) fingerprint() []byte {
	sum := sha256.Sum256([]byte(d.key.Source()))
	return append([]byte{dedupeV1}, sum[:]...)
}

func dedupeEntryKey(k string) []byte { return append([]byte{dedupeKey}, k...) }

// restore reads p's keys from its changelog, dropping the expired.
func (d *Dedupe) restore(ctx context.Context, p *dedupePart, topic string) error {
	type kept struct {
		key         string
		expiry, off int64
	}
	keys := map[string]kept{}
	fp := d.fingerprint()
	began := time.Now()
	n, err := p.sp.Log.Restore(ctx, p.sp.Partition, func(k, v []byte) error {
		switch {
		case len(k) == 0:
		case k[0] == dedupeDef:
			if string(v) != string(fp) {
				return fmt.Errorf("the changelog holds keys of another key expression than this stage's (%s): "+
					"they are never mixed; give the changed stage a new changelog_prefix (or a new id), or delete topic %s to start with no keys remembered",
					d.key.Source(), p.sp.Log.Name())
			}
		case k[0] == dedupeKey && v == nil:
			delete(keys, string(k[1:]))
		case k[0] == dedupeKey:
			if len(v) != dedupeValueLen || v[0] != dedupeV1 {
				return fmt.Errorf("dedupe entry %q: not written by this version of sluice", k)
			}
			keys[string(k[1:])] = kept{string(k[1:]), int64(binary.BigEndian.Uint64(v[1:])), int64(binary.BigEndian.Uint64(v[9:]))}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore dedupe keys of %s/%d from %s: %w", topic, p.sp.Partition, p.sp.Log.Name(), err)
	}
	now := d.now().UnixNano()
	list := make([]kept, 0, len(keys))
	for _, k := range keys {
		if k.expiry > now {
			list = append(list, k)
		}
	}
	// The queue expires keys in order: every key lives for the same window.
	slices.SortFunc(list, func(a, b kept) int { return cmpInt64(a.expiry, b.expiry) })
	for _, k := range list {
		p.seen.add(k.key, k.expiry, len(list)+1)
		p.seen.offs[k.key] = k.off
	}
	p.restoreNs.Store(int64(time.Since(began)))
	p.restored.Store(n)
	p.size.Store(int64(len(list)))
	d.log.Info("dedupe: restored partition keys", "partition", fmt.Sprintf("%s/%d", topic, p.sp.Partition),
		"entries", n, "keys", len(list), "took", time.Since(began).Round(time.Millisecond))
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type dedupePartKey struct {
	owner any // the source: two may read equally named topics
	topic string
	part  int32
}

// runDurable is Run with state: changelog.
func (d *Dedupe) runDurable(ctx context.Context, in <-chan *flow.Batch, out flow.Emitter) error {
	w := d.writer()
	parts := map[dedupePartKey]*dedupePart{}
	revoked := make(chan *dedupePart)
	stop := make(chan struct{})
	var watchers sync.WaitGroup
	drop := func(k dedupePartKey) {
		d.dur.mu.Lock()
		delete(d.dur.parts, parts[k])
		d.dur.mu.Unlock()
		w.Retire(parts[k].sp)
		delete(parts, k)
	}
	defer func() {
		close(stop)
		watchers.Wait()
		for k := range parts {
			drop(k)
		}
	}()
	env := expr.NewEnv(d.key)
	defer env.Bind(nil)
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return nil
			}
			if err := w.Err(); err != nil {
				b.Settle(err)
				return err
			}
			for _, pb := range statelog.SplitByPartition(b) {
				if pb.Len() == 0 {
					pb.Settle(nil)
					continue
				}
				o := pb.Records[0].Origin
				if o.Lease == nil {
					err := fmt.Errorf("dedupe %s: %w", d.dur.id, statelog.ErrNoProvider)
					pb.Settle(err)
					return err
				}
				k := dedupePartKey{o.Lease.Owner, o.Topic, o.Partition}
				if p := parts[k]; p != nil && p.sp.Lease != o.Lease {
					drop(k) // assigned again: what others wrote since is in the changelog
				}
				p := parts[k]
				if p == nil {
					if !o.Lease.Hold() {
						pb.Settle(errRevokedDedupe)
						continue
					}
					var err error
					if p, err = d.openPart(ctx, o); err != nil {
						o.Lease.Release()
						pb.Settle(err)
						return err
					}
					parts[k] = p
					d.dur.mu.Lock()
					if d.dur.parts == nil {
						d.dur.parts = map[*dedupePart]struct{}{}
					}
					d.dur.parts[p] = struct{}{}
					d.dur.mu.Unlock()
					watchers.Go(func() {
						select {
						case <-p.sp.Lease.Done():
							select {
							case revoked <- p:
							case <-stop:
							}
						case <-stop:
						}
					})
				}
				if err := d.dedupeBatch(ctx, out, w, p, env, pb); err != nil {
					return nil // the pipeline is failing
				}
			}
		case p := <-revoked:
			for k, q := range parts {
				if q == p {
					drop(k)
				}
			}
		}
	}
}

var errRevokedDedupe = fmt.Errorf("partition revoked before its dedupe keys were written; the next owner reads these records again")

func (d *Dedupe) openPart(ctx context.Context, o flow.Origin) (*dedupePart, error) {
	cl, err := d.changelog(ctx, o.Lease, o.Topic)
	if err != nil {
		return nil, fmt.Errorf("dedupe %s: changelog for topic %s: %w", d.dur.id, o.Topic, err)
	}
	p := &dedupePart{topic: o.Topic, sp: &statelog.Part{Log: cl, Partition: o.Partition, Lease: o.Lease}}
	p.seen = seenKeys{expiry: map[string]int64{}, offs: map[string]int64{}, forgot: func(k string) { p.gone = append(p.gone, k) }}
	if err := d.restore(ctx, p, o.Topic); err != nil {
		return nil, err
	}
	return p, nil
}

// dedupeBatch passes b's first sightings on; b's acks wait for its keys
// to be written as well.
func (d *Dedupe) dedupeBatch(ctx context.Context, out flow.Emitter, w *statelog.Writer, p *dedupePart, env *expr.Env, b *flow.Batch) error {
	now := d.now().UnixNano()
	p.seen.expire(now)
	kept := b.Records[:0]
	var failed []flow.RecordError
	type added struct {
		key         string
		expiry, off int64
	}
	var news []added
	for i := range b.Records {
		r := &b.Records[i]
		env.Bind(r)
		k, err := env.EvalString(d.key)
		off := r.Origin.Offset
		switch {
		case err != nil:
			failed = append(failed, flow.RecordError{Record: *r, Err: err})
		case p.seen.has(k, now):
			if p.seen.offs[k] == off {
				kept = append(kept, *r) // the first sighting, read again
			}
		case d.onLimit == DedupeFail && p.seen.Len() >= d.maxKeys:
			d.limitFailed.Add(1)
			d.limitReached(now)
			failed = append(failed, flow.RecordError{Record: *r, Err: fmt.Errorf(
				"max_keys (%d) reached: %d keys are remembered for this partition and this one is new; raise max_keys, shorten window or set on_limit: forget",
				d.maxKeys, p.seen.Len())})
		default:
			exp := now + int64(d.window)
			if n := p.seen.add(k, exp, d.maxKeys); n > 0 {
				d.forgotten.Add(int64(n))
				d.limitReached(now)
			}
			p.seen.offs[k] = off
			news = append(news, added{k, exp, off})
			kept = append(kept, *r)
		}
	}
	if err := out.Reject(ctx, b, failed); err != nil {
		b.Settle(err)
		return err
	}
	gone := p.gone
	p.gone = nil
	fp := d.fingerprint()
	first := !p.wroteDef
	p.wroteDef = true
	if err := w.Batch(ctx, p.sp, b.Derive(nil), func(put statelog.Put) {
		if first {
			put([]byte{dedupeDef}, fp)
		}
		for _, k := range gone {
			put(dedupeEntryKey(k), nil)
		}
		for _, a := range news {
			if _, still := p.seen.offs[a.key]; !still {
				continue // forgotten within the batch: its deletion is queued
			}
			v := make([]byte, dedupeValueLen)
			v[0] = dedupeV1
			binary.BigEndian.PutUint64(v[1:], uint64(a.expiry))
			binary.BigEndian.PutUint64(v[9:], uint64(a.off))
			put(dedupeEntryKey(a.key), v)
		}
	}); err != nil {
		b.Settle(err)
		return err
	}
	p.size.Store(int64(p.seen.Len()))
	if len(kept) == 0 {
		b.Settle(nil)
		return nil
	}
	b.Records = kept
	return out.Emit(ctx, b)
}
