package host_test

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// vectorsFile holds batches encoded by the Go codec (plugins/internal/wire);
// plugins/python/tests/test_vectors.py checks that the Python SDK encodes
// the same records to the same bytes and decodes the bytes to the same
// records.
const vectorsFile = "../python/tests/vectors.json"

var updateVectors = flag.Bool("update-vectors", false, "rewrite "+vectorsFile)

type vecOrigin struct {
	Source    string `json:"source"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type vecRecord struct {
	Key       []byte      `json:"key"` // base64; null for a null key
	Value     []byte      `json:"value"`
	Headers   [][2]string `json:"headers"` // key, base64 value
	Timestamp int64       `json:"timestamp"`
	Origin    *vecOrigin  `json:"origin,omitempty"`
}

type vector struct {
	Name        string      `json:"name"`
	WithOrigins bool        `json:"with_origins"`
	Records     []vecRecord `json:"records"`
	Hex         string      `json:"hex"` // the marshalled pb.Records
}

func vectorCases() []vector {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()
	o := func(topic string, p int32, off int64) *vecOrigin {
		return &vecOrigin{Source: "kafka", Topic: topic, Partition: p, Offset: off}
	}
	return []vector{
		{Name: "values only", Records: []vecRecord{{Value: []byte("ab")}, {Value: nil}, {Value: []byte{}}}},
		{Name: "keys, null and empty", Records: []vecRecord{{Key: []byte("k"), Value: []byte("v")}, {Key: nil, Value: []byte("w")}, {Key: []byte{}, Value: nil}}},
		{Name: "headers, repeated keys", Records: []vecRecord{
			{Value: []byte("a"), Headers: [][2]string{{"h", "MQ=="}, {"h", "Mg=="}, {"", ""}}},
			{Value: []byte("b")},
			{Value: []byte("c"), Headers: [][2]string{{"trace-id", "/wA="}}},
		}},
		{Name: "timestamps, some unset", Records: []vecRecord{{Value: []byte("a"), Timestamp: ts}, {Value: []byte("b")}, {Value: []byte("c"), Timestamp: ts + 1000}}},
		{Name: "origins", WithOrigins: true, Records: []vecRecord{
			{Value: []byte("a"), Origin: o("t", 0, 100)},
			{Value: []byte("b"), Origin: o("t", 0, 101)},
			{Value: []byte("c"), Origin: o("u", 3, 7)},
			{Value: []byte("d"), Origin: o("t", 0, 102)},
		}},
		{Name: "origins, one partition", WithOrigins: true, Records: []vecRecord{
			{Value: []byte("a"), Origin: o("t", 1, 5)}, {Value: []byte("b"), Origin: o("t", 1, 9)},
		}},
		{Name: "empty batch"},
	}
}

func (v *vecRecord) flow(t *testing.T) flow.Record {
	r := flow.Record{Key: v.Key, Value: v.Value}
	for _, h := range v.Headers {
		val, err := jsonBytes(h[1])
		if err != nil {
			t.Fatal(err)
		}
		r.Headers = append(r.Headers, flow.Header{Key: h[0], Value: val})
	}
	if v.Timestamp != 0 {
		r.Timestamp = time.Unix(0, v.Timestamp)
	}
	if v.Origin != nil {
		r.Origin = flow.Origin{Source: v.Origin.Source, Topic: v.Origin.Topic, Partition: v.Origin.Partition, Offset: v.Origin.Offset}
	}
	return r
}

func jsonBytes(b64 string) ([]byte, error) {
	var b []byte
	err := json.Unmarshal([]byte(`"`+b64+`"`), &b)
	return b, err
}

func TestWireVectorsForPython(t *testing.T) {
	cases := vectorCases()
	for i := range cases {
		v := &cases[i]
		var m pb.Records
		var enc wire.Encoder
		enc.Reset(&m, v.WithOrigins)
		for j := range v.Records {
			r := v.Records[j].flow(t)
			enc.Add(&r)
		}
		enc.Finish()
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		v.Hex = hex.EncodeToString(b)
		// The Go decoder reads its own bytes back.
		var back pb.Records
		if err := proto.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if got, err := wire.Decode(&back, nil); err != nil || len(got) != len(v.Records) {
			t.Fatalf("%s: decoded %d records (%v)", v.Name, len(got), err)
		}
	}
	js, err := json.MarshalIndent(cases, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	js = append(js, '\n')
	if *updateVectors {
		if err := os.WriteFile(vectorsFile, js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (run: go test ./plugins/host -run WireVectors -update-vectors)", err)
	}
	if string(old) != string(js) {
		t.Fatalf("%s is stale: the Go encoding changed; run go test ./plugins/host -run WireVectors -update-vectors, "+
			"then make the Python SDK pass plugins/python/tests/test_vectors.py", vectorsFile)
	}
}
