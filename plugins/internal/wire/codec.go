package wire

import (
	"fmt"
	"time"

	"github.com/sluicedev/sluice/flow"
	pb "github.com/sluicedev/sluice/plugins/proto"
)

// Encoder fills a pb.Records one record at a time, reusing the message's
// slices from batch to batch: a batch costs a few appends per record and
// one protobuf message, however many records it holds.
type Encoder struct {
	m       *pb.Records
	origins bool

	prevTS, prevOffset int64
	keys, headers, ts  bool // whether any record had one
	refs               bool // whether any origin ref is not 0
	prevRef            int
}

// Reset starts a new batch in m, truncating (not freeing) what m held.
// withOrigins sends each record's Origin; outputs never carry one.
func (e *Encoder) Reset(m *pb.Records, withOrigins bool) {
	*e = Encoder{m: m, origins: withOrigins}
	m.Count = 0
	m.Keys = m.Keys[:0]
	m.KeyLens = m.KeyLens[:0]
	m.Values = m.Values[:0]
	m.ValueLens = m.ValueLens[:0]
	m.HeaderCounts = m.HeaderCounts[:0]
	m.HeaderData = m.HeaderData[:0]
	m.HeaderLens = m.HeaderLens[:0]
	m.Timestamps = m.Timestamps[:0]
	m.Origins = m.Origins[:0]
	m.OriginRefs = m.OriginRefs[:0]
	m.Offsets = m.Offsets[:0]
}

// Records is the message being filled.
func (e *Encoder) Records() *pb.Records { return e.m }

// Len is the number of records added since Reset.
func (e *Encoder) Len() int { return int(e.m.Count) }

// Bytes is the payload added since Reset (keys, values, headers).
func (e *Encoder) Bytes() int { return len(e.m.Keys) + len(e.m.Values) + len(e.m.HeaderData) }

// Add appends one record.
func (e *Encoder) Add(r *flow.Record) {
	m := e.m
	m.Count++
	m.KeyLens = append(m.KeyLens, nullableLen(r.Key))
	if r.Key != nil {
		e.keys = true
		m.Keys = append(m.Keys, r.Key...)
	}
	m.ValueLens = append(m.ValueLens, nullableLen(r.Value))
	m.Values = append(m.Values, r.Value...)

	m.HeaderCounts = append(m.HeaderCounts, uint32(len(r.Headers)))
	for _, h := range r.Headers {
		e.headers = true
		m.HeaderData = append(m.HeaderData, h.Key...)
		m.HeaderData = append(m.HeaderData, h.Value...)
		m.HeaderLens = append(m.HeaderLens, uint32(len(h.Key)), uint32(len(h.Value)))
	}

	var ts int64
	if !r.Timestamp.IsZero() {
		ts = r.Timestamp.UnixNano()
		e.ts = true
	}
	m.Timestamps = append(m.Timestamps, ts-e.prevTS)
	e.prevTS = ts

	if e.origins {
		e.addOrigin(&r.Origin)
	}
}

func (e *Encoder) addOrigin(o *flow.Origin) {
	m := e.m
	ref := e.prevRef
	if !sameOrigin(m.Origins, ref, o) {
		ref = -1
		for i := range m.Origins {
			if sameOrigin(m.Origins, i, o) {
				ref = i
				break
			}
		}
		if ref < 0 {
			ref = len(m.Origins)
			m.Origins = append(m.Origins, &pb.Origin{Source: o.Source, Topic: o.Topic, Partition: o.Partition})
		}
	}
	if ref != 0 {
		e.refs = true
	}
	e.prevRef = ref
	m.OriginRefs = append(m.OriginRefs, uint32(ref))
	m.Offsets = append(m.Offsets, o.Offset-e.prevOffset)
	e.prevOffset = o.Offset
}

func sameOrigin(table []*pb.Origin, i int, o *flow.Origin) bool {
	if i >= len(table) {
		return false
	}
	t := table[i]
	return t.Partition == o.Partition && t.Source == o.Source && t.Topic == o.Topic
}

// Finish drops the side arrays no record needed, as the protocol allows.
func (e *Encoder) Finish() {
	m := e.m
	if !e.keys {
		m.KeyLens = m.KeyLens[:0]
	}
	if !e.headers {
		m.HeaderCounts = m.HeaderCounts[:0]
	}
	if !e.ts {
		m.Timestamps = m.Timestamps[:0]
	}
	if !e.refs {
		m.OriginRefs = m.OriginRefs[:0]
	}
}

func nullableLen(b []byte) uint32 {
	if b == nil {
		return 0
	}
	return uint32(len(b)) + 1
}

// empty is the value of a present but empty key or value: non-nil, so it
// stays distinct from null, and with no capacity, so appending copies.
var empty = []byte{}

// Decode appends the records of m to dst[:0] and returns it. Keys, values
// and header values alias m's blobs (capacity-limited, so a plugin that
// appends to a value cannot overwrite the next one). A malformed message
// is an error naming the broken field, never a panic.
func Decode(m *pb.Records, dst []flow.Record) ([]flow.Record, error) {
	n := int(m.GetCount())
	if err := checkLens(m, n); err != nil {
		return dst[:0], err
	}
	out := dst[:0]
	if cap(out) < n {
		out = make([]flow.Record, 0, n)
	}
	out = out[:n]

	keyOff, valOff := 0, 0
	var err error
	for i := range out {
		r := &out[i]
		*r = flow.Record{}
		if len(m.KeyLens) > 0 {
			if r.Key, keyOff, err = slice(m.Keys, keyOff, m.KeyLens[i], "keys"); err != nil {
				return dst[:0], err
			}
		}
		if r.Value, valOff, err = slice(m.Values, valOff, m.ValueLens[i], "values"); err != nil {
			return dst[:0], err
		}
	}
	if keyOff != len(m.Keys) || valOff != len(m.Values) {
		return dst[:0], fmt.Errorf("records: key/value lengths cover %d/%d bytes of %d/%d", keyOff, valOff, len(m.Keys), len(m.Values))
	}
	if err := decodeHeaders(m, out); err != nil {
		return dst[:0], err
	}
	if len(m.Timestamps) > 0 {
		var ts int64
		for i := range out {
			ts += m.Timestamps[i]
			if ts != 0 {
				out[i].Timestamp = time.Unix(0, ts)
			}
		}
	}
	if err := decodeOrigins(m, out); err != nil {
		return dst[:0], err
	}
	return out, nil
}

func checkLens(m *pb.Records, n int) error {
	check := func(name string, got int, optional bool) error {
		if got == n || optional && got == 0 {
			return nil
		}
		return fmt.Errorf("records: count is %d but %s has %d entries", n, name, got)
	}
	hasOrigins := len(m.Origins) > 0
	for _, c := range []struct {
		name     string
		got      int
		optional bool
	}{
		{"value_lens", len(m.ValueLens), false},
		{"key_lens", len(m.KeyLens), true},
		{"header_counts", len(m.HeaderCounts), true},
		{"timestamps", len(m.Timestamps), true},
		{"origin_refs", len(m.OriginRefs), true},
		{"offsets", len(m.Offsets), !hasOrigins},
	} {
		if err := check(c.name, c.got, c.optional); err != nil {
			return err
		}
	}
	if !hasOrigins && (len(m.OriginRefs) > 0 || len(m.Offsets) > 0) {
		return fmt.Errorf("records: origin_refs/offsets set without origins")
	}
	return nil
}

// slice cuts the next nullable field (length+1 encoded) out of blob.
func slice(blob []byte, off int, lenPlus1 uint32, field string) ([]byte, int, error) {
	if lenPlus1 == 0 {
		return nil, off, nil
	}
	l := int(lenPlus1 - 1)
	if l == 0 {
		return empty, off, nil
	}
	end := off + l
	if end > len(blob) || end < off {
		return nil, off, fmt.Errorf("records: %s lengths exceed the %d bytes sent", field, len(blob))
	}
	return blob[off:end:end], end, nil
}

func decodeHeaders(m *pb.Records, out []flow.Record) error {
	if len(m.HeaderCounts) == 0 {
		if len(m.HeaderLens) > 0 || len(m.HeaderData) > 0 {
			return fmt.Errorf("records: header data without header_counts")
		}
		return nil
	}
	total := 0
	for _, c := range m.HeaderCounts {
		total += int(c)
	}
	if len(m.HeaderLens) != 2*total {
		return fmt.Errorf("records: header_counts add up to %d headers but header_lens has %d entries (want 2 per header)", total, len(m.HeaderLens))
	}
	// One allocation for every header of the batch; each record gets a
	// capacity-limited window so appending to one cannot touch another.
	all := make([]flow.Header, total)
	h, off := 0, 0
	data := m.HeaderData
	for i := range out {
		c := int(m.HeaderCounts[i])
		if c == 0 {
			continue
		}
		hs := all[h : h+c : h+c]
		for j := range hs {
			kl, vl := int(m.HeaderLens[2*(h+j)]), int(m.HeaderLens[2*(h+j)+1])
			if off+kl+vl > len(data) {
				return fmt.Errorf("records: header_lens exceed the %d bytes of header_data", len(data))
			}
			hs[j].Key = string(data[off : off+kl])
			off += kl
			hs[j].Value = data[off : off+vl : off+vl]
			off += vl
		}
		out[i].Headers = hs
		h += c
	}
	if off != len(data) {
		return fmt.Errorf("records: header_lens cover %d of the %d bytes of header_data", off, len(data))
	}
	return nil
}

func decodeOrigins(m *pb.Records, out []flow.Record) error {
	if len(m.Origins) == 0 {
		return nil
	}
	var off int64
	for i := range out {
		ref := 0
		if len(m.OriginRefs) > 0 {
			ref = int(m.OriginRefs[i])
			if ref >= len(m.Origins) {
				return fmt.Errorf("records: origin_refs[%d] = %d but there are %d origins", i, ref, len(m.Origins))
			}
		}
		o := m.Origins[ref]
		off += m.Offsets[i]
		out[i].Origin = flow.Origin{Source: o.GetSource(), Topic: o.GetTopic(), Partition: o.GetPartition(), Offset: off}
	}
	return nil
}

// Mark is a point in an Encoder's batch to Rewind to.
type Mark struct {
	count                                    uint32
	keys, keyLens, values, valueLens         int
	headerCounts, headerData, headerLens     int
	timestamps, origins, originRefs, offsets int
	prevTS, prevOffset                       int64
	prevRef                                  int
	hasKeys, hasHeaders, hasTS, hasRefs      bool
}

// Mark records the encoder's position.
func (e *Encoder) Mark() Mark {
	m := e.m
	return Mark{
		count: m.Count, keys: len(m.Keys), keyLens: len(m.KeyLens), values: len(m.Values), valueLens: len(m.ValueLens),
		headerCounts: len(m.HeaderCounts), headerData: len(m.HeaderData), headerLens: len(m.HeaderLens),
		timestamps: len(m.Timestamps), origins: len(m.Origins), originRefs: len(m.OriginRefs), offsets: len(m.Offsets),
		prevTS: e.prevTS, prevOffset: e.prevOffset, prevRef: e.prevRef,
		hasKeys: e.keys, hasHeaders: e.headers, hasTS: e.ts, hasRefs: e.refs,
	}
}

// Rewind drops every record added since k was taken.
func (e *Encoder) Rewind(k Mark) {
	m := e.m
	m.Count = k.count
	m.Keys, m.KeyLens, m.Values, m.ValueLens = m.Keys[:k.keys], m.KeyLens[:k.keyLens], m.Values[:k.values], m.ValueLens[:k.valueLens]
	m.HeaderCounts, m.HeaderData, m.HeaderLens = m.HeaderCounts[:k.headerCounts], m.HeaderData[:k.headerData], m.HeaderLens[:k.headerLens]
	m.Timestamps, m.Origins, m.OriginRefs, m.Offsets = m.Timestamps[:k.timestamps], m.Origins[:k.origins], m.OriginRefs[:k.originRefs], m.Offsets[:k.offsets]
	e.prevTS, e.prevOffset, e.prevRef = k.prevTS, k.prevOffset, k.prevRef
	e.keys, e.headers, e.ts, e.refs = k.hasKeys, k.hasHeaders, k.hasTS, k.hasRefs
}
