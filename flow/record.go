package flow

import "time"

// Header is one record header. Kafka allows repeated keys, so headers are a
// list, not a map.
type Header struct {
	Key   string
	Value []byte
}

// Origin says where a record came from. Sources fill it; it rides along
// unchanged so dead letters and failure messages can name the input.
type Origin struct {
	Source    string // id of the source node
	Topic     string
	Partition int32
	Offset    int64
	// Lease is the source's hold on the partition the record came from,
	// nil for sources without partitions. Stateful stages use it (lease.go).
	Lease *Lease
}

// Record is the unit of data. Byte slices are treated as immutable once
// emitted: stages replace Key/Value/Headers, they never write into them,
// which is what lets fan-out share them between branches without copying.
type Record struct {
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
	Origin    Origin
}

// Header returns the value of the last header named key.
func (r *Record) Header(key string) ([]byte, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return r.Headers[i].Value, true
		}
	}
	return nil, false
}

// SetHeader replaces every header named key with one holding value. The
// header slice is copied so a record shared by a fan-out is never changed
// under another branch.
func (r *Record) SetHeader(key string, value []byte) {
	hs := make([]Header, 0, len(r.Headers)+1)
	for _, h := range r.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	r.Headers = append(hs, Header{Key: key, Value: value})
}

// Size is the approximate number of bytes a record occupies on the wire,
// used to cap batches by bytes.
func (r *Record) Size() int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
