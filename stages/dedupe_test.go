package stages

import (
	"fmt"
	"reflect"
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
	d := NewDedupe(expr.MustCompile(`value.id`), time.Minute, 100)
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
	d := NewDedupe(expr.MustCompile(`value.id`), time.Hour, 2)
	var tr stagetest.Tracker
	var em stagetest.Emitter
	// With room for 2 keys, 1 is forgotten once 3 arrives.
	if err := stagetest.Feed(d, &em, tr.Batch(idRecords(`1`, `2`, `3`, `1`, `3`)...), tr.Batch(stagetest.Records(9, `bad`)...)); err != nil {
		t.Fatal(err)
	}
	if got := em.Values(); !reflect.DeepEqual(got, []string{`{"id":1}`, `{"id":2}`, `{"id":3}`, `{"id":1}`}) {
		t.Fatalf("got %v", got)
	}
	if rej := em.Rejected(); len(rej) != 1 || string(rej[0].Record.Value) != "bad" {
		t.Fatalf("rejected %v", rej)
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
