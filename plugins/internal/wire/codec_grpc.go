package wire

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// grpcCodec is gRPC's proto codec with two changes for multi-megabyte
// batches: buffers come from this package's pool (gRPC's codec always uses
// the global default pool), and a message that arrived in one buffer is
// unmarshalled in place instead of being copied into another first.
type grpcCodec struct{}

func (grpcCodec) Name() string { return "proto" }

func (grpcCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("wire codec: %T is not a proto.Message", v)
	}
	size := proto.Size(m)
	buf := pool.Get(size)
	// UseCachedSize reuses the Size just computed; the message is not
	// changed concurrently (senders own their messages until Send returns).
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend((*buf)[:0], m)
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	*buf = out
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (grpcCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("wire codec: %T is not a proto.Message", v)
	}
	// Unmarshal copies bytes fields, so the buffers may be freed after.
	if len(data) == 1 {
		return proto.Unmarshal(data[0].ReadOnlyData(), m)
	}
	buf := data.MaterializeToBuffer(pool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}
