package stages

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
)

func idRecords(ids ...string) []flow.Record {
	vs := make([]string, len(ids))
	for i, id := range ids {
		vs[i] = fmt.Sprintf(`{"id":%s}`, id)
	}
	return stagetest.Records(0, vs...)
}

func TestDedupeDropsRepeatsWithinWindow(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	d := NewDedupe(expr.MustCompile(`value.id`), time.Minute, 100, DedupeForget, quiet)
	d.now = clock.now
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(t.Context(), d, &em)
	in <- tr.Batch(idRecords(`1`, `2`, `1`, `"1"`, `3`)...)
	in <- tr.Batch(idRecords(`2`, `2`)...) // all repeats: acked as filtered
	stagetest.Eventually(t, "second batch handled", func() bool { return tr.Fired() == 1 })
	clock.sleep(t.Context(), 61*time.Second) // 1, 2, 3 expire
	in <- tr.Batch(idRecords(`3`, `4`, `4`)...)
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	want := []string{`{"id":1}`, `{"id":2}`, `{"id":3}`, `{"id":3}`, `{"id":4}`}
	// `"1"` and 1 have the same string form, so the string "1" is a repeat.
	if got := em.Values(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	em.Settle()
	tr.Check(t)
}

func TestDedupeKeyErrorsAndMaxKeys(t *testing.T) {
	d := NewDedupe(expr.MustCompile(`value.id`), time.Hour, 2, "", quiet)
	var tr stagetest.Tracker
	var em stagetest.Emitter
	// With room for 2 keys, 1 is forgotten once 3 arrives (on_limit:
	// forget, the default), and 2 once 1 comes back.
	if err := stagetest.Feed(d, &em, tr.Batch(idRecords(`1`, `2`, `3`, `1`, `3`)...), tr.Batch(stagetest.Records(9, `bad`)...)); err != nil {
		t.Fatal(err)
	}
	if got := em.Values(); !reflect.DeepEqual(got, []string{`{"id":1}`, `{"id":2}`, `{"id":3}`, `{"id":1}`}) {
		t.Fatalf("got %v", got)
	}
	if rej := em.Rejected(); len(rej) != 1 || string(rej[0].Record.Value) != "bad" {
		t.Fatalf("rejected %v", rej)
	}
	if d.Forgotten() != 2 || d.LimitFailed() != 0 {
		t.Fatalf("forgotten %d, failed %d; want 2 and 0", d.Forgotten(), d.LimitFailed())
	}
	em.Settle()
	tr.Check(t)
}

var quiet = slog.New(slog.DiscardHandler)

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// With on_limit: fail, a new key past max_keys fails its record, naming
// the limit; remembered keys still drop their repeats, and a key that
// expired makes room again. The warning is rate-limited.
func TestDedupeOnLimitFail(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var logs lockedBuffer
	d := NewDedupe(expr.MustCompile(`value.id`), time.Minute, 2, DedupeFail, slog.New(slog.NewTextHandler(&logs, nil)))
	d.now = clock.now
	var tr stagetest.Tracker
	var em stagetest.Emitter
	in, wait := stagetest.Start(t.Context(), d, &em)
	in <- tr.Batch(idRecords(`1`, `2`, `3`, `1`, `2`, `4`)...)
	in <- tr.Batch(idRecords(`5`)...) // fails whole: settled at once
	stagetest.Eventually(t, "the failed batch settled", func() bool { return tr.Fired() == 1 })
	clock.sleep(t.Context(), 61*time.Second) // 1 and 2 expire
	in <- tr.Batch(idRecords(`3`, `1`, `6`)...)
	close(in)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got, want := em.Values(), []string{`{"id":1}`, `{"id":2}`, `{"id":3}`, `{"id":1}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	var failed []string
	for _, r := range em.Rejected() {
		failed = append(failed, string(r.Record.Value))
		const msg = "max_keys (2) reached: 2 keys are remembered on this worker and this one is new; raise max_keys, shorten window or set on_limit: forget"
		if r.Err.Error() != msg {
			t.Errorf("error %q, want %q", r.Err, msg)
		}
	}
	if want := []string{`{"id":3}`, `{"id":4}`, `{"id":5}`, `{"id":6}`}; !reflect.DeepEqual(failed, want) {
		t.Fatalf("failed %v, want %v", failed, want)
	}
	if d.LimitFailed() != 4 || d.Forgotten() != 0 {
		t.Fatalf("failed %d, forgotten %d; want 4 and 0", d.LimitFailed(), d.Forgotten())
	}
	// 3, 4 and 5 within one instant, 6 a minute later: two warnings.
	if n := strings.Count(logs.String(), "dedupe max_keys reached"); n != 2 {
		t.Fatalf("%d warnings, want 2:\n%s", n, logs.String())
	}
	em.Settle()
	tr.Check(t)
}

// on_limit: forget warns too, at most once per limitLogEvery.
func TestDedupeForgetWarns(t *testing.T) {
	var logs lockedBuffer
	d := NewDedupe(expr.MustCompile(`value.id`), time.Hour, 1, DedupeForget, slog.New(slog.NewTextHandler(&logs, nil)))
	var tr stagetest.Tracker
	var em stagetest.Emitter
	if err := stagetest.Feed(d, &em, tr.Batch(idRecords(`1`, `2`, `3`, `4`)...)); err != nil {
		t.Fatal(err)
	}
	if d.Forgotten() != 3 {
		t.Fatalf("forgotten %d, want 3", d.Forgotten())
	}
	if n := strings.Count(logs.String(), "dedupe max_keys reached: the oldest keys are forgotten early"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
	em.Settle()
	tr.Check(t)
}

func TestSeenKeysBounded(t *testing.T) {
	s := seenKeys{expiry: map[string]int64{}}
	for i := 0; i < 100000; i++ {
		now := int64(i)
		s.expire(now)
		s.add(fmt.Sprint(i%5000), now+1000, 1e9)
	}
	if s.Len() > 1000 {
		t.Fatalf("%d keys remembered with a 1000-tick window", s.Len())
	}
	if len(s.queue)-s.head > 2000 || cap(s.queue) > 1<<16 {
		t.Fatalf("queue holds %d entries (cap %d): expired entries are not released", len(s.queue)-s.head, cap(s.queue))
	}
}
