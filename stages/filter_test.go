package stages

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/stagetest"
)

func TestFilterKeepsMatchesAndAcksDropped(t *testing.T) {
	var batches [][]flow.Record
	for b := 0; b < 10; b++ {
		var vals []string
		for i := 0; i < 10; i++ {
			vals = append(vals, `{"seq":`+strconv.Itoa(b*10+i)+`}`)
		}
		batches = append(batches, stagetest.Records(b*10, vals...))
	}
	batches = append(batches, stagetest.Records(100, `{"seq":1}`, `{"seq":3}`)) // all dropped
	p := stagetest.New(stagetest.NewSource(batches...), NewFilter(expr.MustCompile(`value.seq % 2 == 0`)))
	p.Run(t)
	p.Source.CheckAcks(t)
	got := p.Sink.Values()
	if len(got) != 50 {
		t.Fatalf("%d records kept, want 50", len(got))
	}
	for i, v := range got {
		if v != `{"seq":`+strconv.Itoa(2*i)+`}` {
			t.Fatalf("record %d = %s", i, v)
		}
	}
}

func TestFilterRecordErrors(t *testing.T) {
	f := NewFilter(expr.MustCompile(`value.flag`))
	in := stagetest.Records(0, `{"flag": true}`, `{"flag": 1}`, `{"flag`, `{"flag": false}`)
	orig := append([]flow.Record(nil), in...)
	var out flow.Output
	if err := f.Process(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 1 || string(out.Records[0].Value) != `{"flag": true}` {
		t.Errorf("kept %v", out.Records)
	}
	if len(out.Errors) != 2 || !reflect.DeepEqual(out.Errors[0].Record, orig[1]) || !reflect.DeepEqual(out.Errors[1].Record, orig[2]) {
		t.Fatalf("errors %+v", out.Errors)
	}
	var te *expr.TypeError
	if !errors.As(out.Errors[0].Err, &te) {
		t.Errorf("non-bool result: %v, want a TypeError", out.Errors[0].Err)
	}
}

// Under on_error skip a bad record is acked as handled; under fail the run
// fails naming the record's origin.
func TestFilterErrorPolicies(t *testing.T) {
	src := stagetest.NewSource(stagetest.Records(0, `{"a":1}`, `oops`, `{"a":2}`))
	p := stagetest.New(src, NewFilter(expr.MustCompile(`value.a > 0`)), flow.OnError(flow.ErrorPolicy{Action: flow.ActionSkip}))
	p.Run(t)
	src.CheckAcks(t)
	if p.Sink.Len() != 2 {
		t.Errorf("sink got %d, want 2", p.Sink.Len())
	}

	src = stagetest.NewSource(stagetest.Records(0, `{"a":1}`, `oops`))
	p = stagetest.New(src, NewFilter(expr.MustCompile(`value.a > 0`)))
	err := p.P.Run(context.Background())
	var rf *flow.RecordFailure
	if !errors.As(err, &rf) || rf.Origin.Offset != 1 {
		t.Fatalf("err = %v, want a RecordFailure at offset 1", err)
	}
}
