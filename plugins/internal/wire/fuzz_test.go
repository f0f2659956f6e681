package wire_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/sluicedev/sluice/plugins/internal/wire"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// A plugin's reply is untrusted input: whatever bytes arrive, decoding
// returns records or an error, never a panic, and never records pointing
// outside the message.
func FuzzDecode(f *testing.F) {
	var enc wire.Encoder
	enc.Reset(&pb.Records{}, true)
	recs := sample()
	for i := range recs {
		enc.Add(&recs[i])
	}
	good, err := proto.Marshal(enc.Records())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		var m pb.Records
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		out, err := wire.Decode(&m, nil)
		if err != nil {
			return
		}
		if len(out) != int(m.GetCount()) {
			t.Fatalf("decoded %d records, message says %d", len(out), m.GetCount())
		}
		for _, r := range out {
			_ = r.Size() // touches every slice: out-of-range aliasing would fault here
		}
	})
}
