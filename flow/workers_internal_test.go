package flow

import (
	"context"
	"testing"
)

// sliceFeed hands out its batches in order.
type sliceFeed []*Batch

func (f *sliceFeed) next(context.Context) *Batch { return f.ready() }

func (f *sliceFeed) ready() *Batch {
	if len(*f) == 0 {
		return nil
	}
	b := (*f)[0]
	*f = (*f)[1:]
	return b
}

func batchOf(n int, value string) *Batch {
	recs := make([]Record, n)
	for i := range recs {
		recs[i].Value = []byte(value)
	}
	return NewBatch(recs, NewAck(nil))
}

// A sink's merges reuse one array: a second merge writes over the first
// (whose batch was settled), and what the first left past the second's
// end is cleared, so it holds no record's bytes alive.
func TestMergerReusesItsArray(t *testing.T) {
	var m merger
	in := sliceFeed{batchOf(3, "b"), batchOf(3, "c")}
	big := m.coalesce(batchOf(4, "a"), &in, 100)
	if len(big.Records) != 10 || len(big.acks) != 3 {
		t.Fatalf("first merge: %d records, %d acks, want 10 and 3", len(big.Records), len(big.acks))
	}
	array := &big.Records[0]
	big.Settle(nil)

	in = sliceFeed{batchOf(2, "e")}
	small := m.coalesce(batchOf(1, "d"), &in, 100)
	if len(small.Records) != 3 || &small.Records[0] != array {
		t.Fatalf("second merge: %d records, new array %v, want 3 in the first's array", len(small.Records), &small.Records[0] != array)
	}
	for i, want := range []string{"d", "e", "e"} {
		if string(small.Records[i].Value) != want {
			t.Fatalf("record %d = %q, want %q", i, small.Records[i].Value, want)
		}
	}
	for i, r := range small.Records[3:10:10] {
		if r.Value != nil {
			t.Fatalf("position %d past the merge still holds %q", 3+i, r.Value)
		}
	}

	// A batch alone is passed as it is, in its own array.
	in = nil
	alone := batchOf(5, "f")
	if got := m.coalesce(alone, &in, 100); got != alone || &got.Records[0] == array {
		t.Fatal("a batch with nothing to merge was copied")
	}
}
