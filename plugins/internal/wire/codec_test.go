package wire_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sample() []flow.Record {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return []flow.Record{
		{Key: []byte("k1"), Value: []byte("v1"), Timestamp: t0, Origin: flow.Origin{Source: "s", Topic: "t", Partition: 1, Offset: 10}},
		{Key: nil, Value: nil, Origin: flow.Origin{Source: "s", Topic: "t", Partition: 1, Offset: 11}},                                         // null key, tombstone
		{Key: []byte{}, Value: []byte{}, Timestamp: t0.Add(-time.Hour), Origin: flow.Origin{Source: "s", Topic: "t", Partition: 2, Offset: 3}}, // empty, not null
		{Value: []byte("with headers"), Headers: []flow.Header{{Key: "a", Value: []byte("1")}, {Key: "a", Value: nil}, {Key: "", Value: []byte("x")}},
			Origin: flow.Origin{Source: "s", Topic: "t", Partition: 1, Offset: 12}},
		{Value: []byte("other source"), Origin: flow.Origin{Source: "gen", Offset: -5}},
	}
}

// roundTrip encodes, marshals, unmarshals and decodes, as the wire does.
func roundTrip(t *testing.T, recs []flow.Record, origins bool) []flow.Record {
	t.Helper()
	var m pb.Records
	var enc wire.Encoder
	enc.Reset(&m, origins)
	for i := range recs {
		enc.Add(&recs[i])
	}
	enc.Finish()
	b, err := proto.Marshal(&m)
	if err != nil {
		t.Fatal(err)
	}
	var back pb.Records
	if err := proto.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	out, err := wire.Decode(&back, nil)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return out
}

func TestRoundTripKeepsEveryField(t *testing.T) {
	in := sample()
	out := roundTrip(t, in, true)
	if len(out) != len(in) {
		t.Fatalf("got %d records, want %d", len(out), len(in))
	}
	for i := range in {
		want, got := in[i], out[i]
		if (want.Key == nil) != (got.Key == nil) || !bytes.Equal(want.Key, got.Key) {
			t.Errorf("record %d key = %q (nil %v), want %q (nil %v)", i, got.Key, got.Key == nil, want.Key, want.Key == nil)
		}
		if (want.Value == nil) != (got.Value == nil) || !bytes.Equal(want.Value, got.Value) {
			t.Errorf("record %d value = %q (nil %v), want %q (nil %v)", i, got.Value, got.Value == nil, want.Value, want.Value == nil)
		}
		if !want.Timestamp.Equal(got.Timestamp) {
			t.Errorf("record %d timestamp = %v, want %v", i, got.Timestamp, want.Timestamp)
		}
		if want.Origin != got.Origin {
			t.Errorf("record %d origin = %+v, want %+v", i, got.Origin, want.Origin)
		}
		if len(want.Headers) != len(got.Headers) {
			t.Fatalf("record %d has %d headers, want %d", i, len(got.Headers), len(want.Headers))
		}
		for j := range want.Headers {
			if want.Headers[j].Key != got.Headers[j].Key || !bytes.Equal(want.Headers[j].Value, got.Headers[j].Value) {
				t.Errorf("record %d header %d = %+v, want %+v", i, j, got.Headers[j], want.Headers[j])
			}
		}
	}
}

func TestWithoutOriginsOutputsCarryNone(t *testing.T) {
	out := roundTrip(t, sample(), false)
	for i, r := range out {
		if r.Origin != (flow.Origin{}) {
			t.Errorf("record %d origin = %+v, want none", i, r.Origin)
		}
	}
}

func TestDecodedValuesCannotOverwriteNeighbours(t *testing.T) {
	out := roundTrip(t, []flow.Record{{Value: []byte("ab")}, {Value: []byte("cd")}}, false)
	_ = append(out[0].Value, 'X')
	if string(out[1].Value) != "cd" {
		t.Fatalf("appending to value 0 changed value 1 to %q", out[1].Value)
	}
}

func TestOptionalArraysAreOmitted(t *testing.T) {
	var m pb.Records
	var enc wire.Encoder
	enc.Reset(&m, true)
	for i := range 3 {
		enc.Add(&flow.Record{Value: []byte("v"), Origin: flow.Origin{Source: "s", Offset: int64(i)}})
	}
	enc.Finish()
	if len(m.KeyLens)+len(m.HeaderCounts)+len(m.Timestamps)+len(m.OriginRefs) != 0 {
		t.Fatalf("unused arrays sent: key_lens %d header_counts %d timestamps %d origin_refs %d",
			len(m.KeyLens), len(m.HeaderCounts), len(m.Timestamps), len(m.OriginRefs))
	}
	if len(m.Origins) != 1 || !reflect.DeepEqual(m.Offsets, []int64{0, 1, 1}) {
		t.Fatalf("origins %v offsets %v, want one origin and delta offsets 0,1,1", m.Origins, m.Offsets)
	}
}

func TestRewindDropsRecords(t *testing.T) {
	var m pb.Records
	var enc wire.Encoder
	enc.Reset(&m, false)
	enc.Add(&flow.Record{Value: []byte("keep"), Timestamp: time.Unix(5, 0)})
	k := enc.Mark()
	enc.Add(&flow.Record{Key: []byte("k"), Value: []byte("drop"), Headers: []flow.Header{{Key: "h"}}, Timestamp: time.Unix(9, 0)})
	enc.Rewind(k)
	enc.Add(&flow.Record{Value: []byte("next"), Timestamp: time.Unix(7, 0)})
	enc.Finish()
	out, err := wire.Decode(&m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || string(out[0].Value) != "keep" || string(out[1].Value) != "next" || out[1].Key != nil || out[1].Headers != nil {
		t.Fatalf("after rewind got %+v", out)
	}
	if !out[1].Timestamp.Equal(time.Unix(7, 0)) {
		t.Fatalf("timestamp after rewind = %v, want 7s", out[1].Timestamp)
	}
}

// Corrupting any length or count must give an error, never a panic or
// records that read past the message.
func TestMalformedMessagesAreErrors(t *testing.T) {
	var good pb.Records
	var enc wire.Encoder
	enc.Reset(&good, true)
	in := sample()
	for i := range in {
		enc.Add(&in[i])
	}
	enc.Finish()
	rng := rand.New(rand.NewPCG(1, 2))
	mutations := []func(m *pb.Records){
		func(m *pb.Records) { m.Count++ },
		func(m *pb.Records) { m.ValueLens[rng.IntN(len(m.ValueLens))] += uint32(rng.IntN(100) + 1) },
		func(m *pb.Records) { m.KeyLens[rng.IntN(len(m.KeyLens))] += 7 },
		func(m *pb.Records) { m.Values = m.Values[:len(m.Values)-1] },
		func(m *pb.Records) { m.HeaderLens[rng.IntN(len(m.HeaderLens))] += 50 },
		func(m *pb.Records) { m.HeaderCounts[3]++ },
		func(m *pb.Records) { m.OriginRefs[0] = 99 },
		func(m *pb.Records) { m.Offsets = m.Offsets[:2] },
		func(m *pb.Records) { m.Origins = nil },
		func(m *pb.Records) { m.Timestamps = append(m.Timestamps, 1) },
		func(m *pb.Records) { m.ValueLens[0] = ^uint32(0) },
	}
	for i, mutate := range mutations {
		m := proto.Clone(&good).(*pb.Records)
		mutate(m)
		if _, err := wire.Decode(m, nil); err == nil {
			t.Errorf("mutation %d: decode accepted a malformed message", i)
		}
	}
}
