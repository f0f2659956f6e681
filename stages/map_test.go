package stages

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
)

func TestMapRewritesValueKeyHeaders(t *testing.T) {
	m := mustBuild(t, "map", map[string]any{
		"value":   `{"seq": value.seq, "double": value.seq * 2, "name": value.name}`,
		"key":     `value.name + "-" + string(value.seq)`,
		"headers": map[string]any{"h1": `topic`, "old": `nil`, "n": `value.seq`},
	}).(*Map)
	in := []flow.Record{{
		Value:   []byte(`{"seq": 3, "name": "a"}`),
		Headers: []flow.Header{{Key: "old", Value: []byte("x")}, {Key: "keep", Value: []byte("y")}},
		Origin:  flow.Origin{Topic: "t"},
	}}
	var out flow.Output
	if err := m.Process(context.Background(), in, &out); err != nil || len(out.Errors) > 0 {
		t.Fatal(err, out.Errors)
	}
	r := out.Records[0]
	if got := string(r.Value); got != `{"seq":3,"double":6,"name":"a"}` {
		t.Errorf("value = %s", got)
	}
	if got := string(r.Key); got != "a-3" {
		t.Errorf("key = %s", got)
	}
	want := []flow.Header{{Key: "keep", Value: []byte("y")}, {Key: "h1", Value: []byte("t")}, {Key: "n", Value: []byte("3")}}
	if !reflect.DeepEqual(r.Headers, want) {
		t.Errorf("headers = %q, want %q", r.Headers, want)
	}
}

func TestMapNilAndStrings(t *testing.T) {
	cases := map[string]struct {
		value string
		want  []byte
	}{
		"string as is":  {`value.s`, []byte("plain")},
		"nil is null":   {`value.none`, nil},
		"number JSON":   {`value.n + 1`, []byte("8")},
		"object":        {`value.o`, []byte(`{"a":[1,2]}`)},
		"empty string":  {`""`, []byte{}},
		"whole value":   {`value`, []byte(`{"n":7,"o":{"a":[1,2]},"s":"plain"}`)},
		"raw unchanged": {`raw`, []byte(`{"s": "plain", "n": 7, "o": {"a": [1, 2]}}`)},
	}
	for name, c := range cases {
		m, err := NewMap(expr.MustCompile(c.value), nil)
		if err != nil {
			t.Fatal(err)
		}
		var out flow.Output
		in := []flow.Record{{Value: []byte(`{"s": "plain", "n": 7, "o": {"a": [1, 2]}}`), Key: []byte("k")}}
		if err := m.Process(context.Background(), in, &out); err != nil || len(out.Errors) > 0 {
			t.Fatalf("%s: %v %v", name, err, out.Errors)
		}
		if got := out.Records[0].Value; !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: value %q, want %q", name, got, c.want)
		}
		if string(out.Records[0].Key) != "k" {
			t.Errorf("%s: key changed to %q", name, out.Records[0].Key)
		}
	}
}

// A record whose value is not JSON fails alone, reported with the record
// as it was before processing; its neighbours are mapped.
func TestMapBadJSONFailsOnlyThatRecord(t *testing.T) {
	m, _ := NewMap(expr.MustCompile(`{"d": value.seq * 2}`), expr.MustCompile(`"k" + string(value.seq)`))
	in := stagetest.Records(0, `{"seq":1}`, `not json`, `{"seq":3}`, `[1]`)
	orig := append([]flow.Record(nil), in...)
	var out flow.Output
	if err := m.Process(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	if got := []string{string(out.Records[0].Value), string(out.Records[1].Value)}; !reflect.DeepEqual(got, []string{`{"d":2}`, `{"d":6}`}) {
		t.Errorf("outputs %q", got)
	}
	if len(out.Errors) != 2 {
		t.Fatalf("%d errors, want 2", len(out.Errors))
	}
	for i, e := range out.Errors {
		if w := orig[2*i+1]; !reflect.DeepEqual(e.Record, w) {
			t.Errorf("error %d carries %q, want the original %q", i, e.Record.Value, w.Value)
		}
	}
	var se *expr.SyntaxError
	if !errors.As(out.Errors[0].Err, &se) {
		t.Errorf("error = %v, want a JSON syntax error", out.Errors[0].Err)
	}
}

// With parallel workers sharded by partition, each partition's records
// come out in order, and every ack fires once.
func TestMapParallelKeepsPartitionOrder(t *testing.T) {
	const parts, perBatch, batches = 4, 50, 40
	next := make([]int, parts)
	var in [][]flow.Record
	for b := 0; b < batches; b++ {
		recs := make([]flow.Record, perBatch)
		for i := range recs {
			p := (b + i) % parts // batches mix partitions
			recs[i] = flow.Record{
				Value:  []byte(fmt.Sprintf(`{"seq":%d}`, next[p])),
				Origin: flow.Origin{Source: "src", Topic: "t", Partition: int32(p), Offset: int64(next[p])},
			}
			next[p]++
		}
		in = append(in, recs)
	}
	m, _ := NewMap(expr.MustCompile(`{"seq": value.seq, "double": value.seq * 2}`), nil)
	p := stagetest.New(stagetest.NewSource(in...), m, flow.Parallelism(2, flow.OrderPartition))
	p.Run(t)
	p.Source.CheckAcks(t)
	recs := p.Sink.Records()
	if len(recs) != batches*perBatch {
		t.Fatalf("%d records, want %d", len(recs), batches*perBatch)
	}
	seen := make([]int, parts)
	for _, r := range recs {
		part := r.Origin.Partition
		if want := fmt.Sprintf(`{"seq":%d,"double":%d}`, seen[part], 2*seen[part]); string(r.Value) != want {
			t.Fatalf("partition %d: got %s, want %s (order lost or wrong value)", part, r.Value, want)
		}
		seen[part]++
	}
}

// The arena shared by a batch's values must not let one record's bytes
// change another's.
func TestMapValuesDoNotAlias(t *testing.T) {
	m, _ := NewMap(expr.MustCompile(`value.s + "!"`), nil)
	in := stagetest.Records(0, `{"s":"a"}`, `{"s":"bb"}`, `{"s":"ccc"}`)
	var out flow.Output
	_ = m.Process(context.Background(), in, &out)
	first := out.Records[0].Value
	_ = append(first, 'X')
	if got := string(out.Records[1].Value); got != "bb!" {
		t.Fatalf("second value became %q after appending to the first", got)
	}
}

// `value` alone keeps a value already in the encoder's form as it is (the
// same bytes, not a copy) and rewrites any other, batch after batch.
func TestMapKeepsAValueAlreadyInForm(t *testing.T) {
	m, _ := NewMap(expr.MustCompile(`value`), nil)
	for round := range 3 {
		in := stagetest.Records(0, `{"a":1,"b":"x"}`, `{"b": 1, "a": 2}`, `[1,2]`)
		kept := in[0].Value
		var out flow.Output
		if err := m.Process(context.Background(), in, &out); err != nil || len(out.Errors) > 0 {
			t.Fatal(err, out.Errors)
		}
		if got := out.Records[0].Value; &got[0] != &kept[0] || len(got) != len(kept) {
			t.Errorf("round %d: a canonical value was copied", round)
		}
		for i, want := range []string{`{"a":1,"b":"x"}`, `{"a":2,"b":1}`, `[1,2]`} {
			if got := string(out.Records[i].Value); got != want {
				t.Errorf("round %d: value %d = %s, want %s", round, i, got, want)
			}
		}
	}
}
