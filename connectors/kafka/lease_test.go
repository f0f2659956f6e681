package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// events is an ordered log of what happened, from the test and from the
// sources' logs.
type events struct {
	mu  sync.Mutex
	evs []string
	at  []time.Time
}

func (e *events) add(ev string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
	e.at = append(e.at, time.Now())
}

// index is the position of the first event starting with prefix, -1 if
// none.
func (e *events) index(prefix string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, ev := range e.evs {
		if strings.HasPrefix(ev, prefix) {
			return i
		}
	}
	return -1
}

func (e *events) time(i int) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.at[i]
}

func (e *events) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.evs, "; ")
}

// eventHandler turns a source's log lines into events named "<who>:
// <message> <attrs>", and passes warnings on to the test log.
type eventHandler struct {
	who  string
	evs  *events
	next slog.Handler
}

func (h eventHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h eventHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h eventHandler) WithGroup(string) slog.Handler            { return h }
func (h eventHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		return nil
	}
	var b strings.Builder
	b.WriteString(h.who + ": " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.evs.add(b.String())
	if r.Level >= slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// holder is a sink standing for a stateful stage: it Holds the lease of
// each partition the first time it sees it, and acknowledges every record.
type holder struct {
	mu     sync.Mutex
	leases map[*flow.Lease]int32
}

func (h *holder) Write(_ context.Context, recs []flow.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range recs {
		l := r.Origin.Lease
		if l == nil {
			return fmt.Errorf("record %s/%d@%d without a lease", r.Origin.Topic, r.Origin.Partition, r.Origin.Offset)
		}
		if _, ok := h.leases[l]; !ok && l.Hold() {
			h.leases[l] = r.Origin.Partition
		}
	}
	return nil
}

func (h *holder) held() map[*flow.Lease]int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[*flow.Lease]int32, len(h.leases))
	for l, p := range h.leases {
		out[l] = p
	}
	return out
}

// leaseHandover runs member A (holding its partitions' leases) until a
// second member B joins the group. It returns once every lease A held
// ended, with what A held.
func leaseHandover(t *testing.T, drain time.Duration) (evs *events, leases map[*flow.Lease]int32) {
	broker := realBroker(t)
	const parts = 2
	topic, group := uniqueName(t, "t"), uniqueName(t, "g")
	createTopic(t, broker, topic, parts)
	produce(t, broker, topic, 0, 100)
	evs = &events{}
	member := func(who string) *Source {
		return brokerSource(t, []string{broker}, topic, group, func(c *SourceConfig) {
			c.Logger = slog.New(eventHandler{who: who, evs: evs, next: testLogger().Handler()})
			c.DrainTimeout = drain
		})
	}
	h := &holder{leases: map[*flow.Lease]int32{}}
	runPipeline(t, member("A"), h)
	waitFor(t, 30*time.Second, "A to hold both partitions' leases", func() bool { return len(h.held()) == parts })
	leases = h.held()
	for l := range leases {
		if l.Owner == nil {
			t.Fatal("lease without an owner")
		}
		if l.Ended() {
			t.Fatal("lease ended before any rebalance")
		}
	}

	runPipeline(t, member("B"), newRecorder())
	for l, p := range leases {
		select {
		case <-l.Done():
		case <-time.After(60 * time.Second):
			t.Fatalf("partition %d: lease not ended within 60s of B starting; events: %s", p, evs)
		}
	}
	evs.add("test: leases done")
	return evs, leases
}

// TestBrokerLeaseDelaysHandover: when a second member joins, the first
// Ends its leases and neither commits nor gives the partitions up (B's
// join completes only after A's generation ended) until the holder
// Released them.
func TestBrokerLeaseDelaysHandover(t *testing.T) {
	evs, leases := leaseHandover(t, 5*time.Second)
	// Hold on for a while: nothing may move meanwhile.
	hold := time.NewTimer(time.Second)
	<-hold.C
	if i := evs.index("A: kafka source: generation ended"); i >= 0 {
		t.Fatalf("A's generation ended while its leases were held; events: %s", evs)
	}
	evs.add("test: released")
	for l := range leases {
		l.Release()
	}
	waitFor(t, 60*time.Second, "B to join with partitions", func() bool { return joinedWithPartitions(evs, "B") })
	done, released := evs.index("test: leases done"), evs.index("test: released")
	ended := evs.index("A: kafka source: generation ended")
	joined := joinedIndex(evs, "B")
	if !(done < released && released < ended && ended < joined) {
		t.Fatalf("want leases done < released < A's generation ended (its last commit) < B joined with partitions; got %d, %d, %d, %d: %s",
			done, released, ended, joined, evs)
	}
}

// TestBrokerLeaseNotReleased: a holder that never releases delays the
// handover by drain_timeout at most, with a warning naming the partitions.
func TestBrokerLeaseNotReleased(t *testing.T) {
	const drain = 2 * time.Second
	evs, _ := leaseHandover(t, drain)
	waitFor(t, 30*time.Second, "A's generation to end", func() bool { return evs.index("A: kafka source: generation ended") >= 0 })
	done, ended := evs.index("test: leases done"), evs.index("A: kafka source: generation ended")
	if took := evs.time(ended).Sub(evs.time(done)); took > drain+2*time.Second {
		t.Fatalf("A's generation ended %s after its leases ended; drain_timeout is %s", took, drain)
	}
	warned := evs.index("A: kafka source: partitions revoked while stages still hold their state")
	if warned < 0 || warned > ended {
		t.Fatalf("no warning about held leases before the generation ended: %s", evs)
	}
	if w := evs.evs[warned]; !strings.Contains(w, "/0") || !strings.Contains(w, "/1") {
		t.Fatalf("the warning does not name both partitions: %s", w)
	}
	waitFor(t, 60*time.Second, "B to join with partitions", func() bool { return joinedWithPartitions(evs, "B") })
}

// joinedIndex is the first "joined group" event of who with partitions.
func joinedIndex(evs *events, who string) int {
	evs.mu.Lock()
	defer evs.mu.Unlock()
	for i, ev := range evs.evs {
		if strings.HasPrefix(ev, who+": kafka source: joined group") && !strings.HasSuffix(ev, "partitions=") {
			return i
		}
	}
	return -1
}

func joinedWithPartitions(evs *events, who string) bool { return joinedIndex(evs, who) >= 0 }
