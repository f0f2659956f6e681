// Package wire is what the plugin host and the plugin SDK must agree on:
// the go-plugin handshake, gRPC transport settings and the columnar record
// encoding of plugins/proto.
package wire

import (
	"context"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	pb "github.com/sluicedev/sluice/plugins/proto"
)

// ProtocolVersion is the version of plugins/proto. It is the go-plugin
// handshake's app protocol version too, so a plugin built for another
// version is refused at start with go-plugin's own message.
const ProtocolVersion = 1

// PluginName is the name the processor service is dispensed under.
const PluginName = "processor"

// Handshake is the go-plugin handshake. The cookie is not security: it
// only stops a plugin binary run by hand from waiting for a host forever.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "SLUICE_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "d5a1f3c8-sluice-plugin-v1",
}

// EnvMaxMessage names the variable through which the host tells the plugin
// the largest gRPC message either side may send, so both ends raise their
// limits together (gRPC servers default to 4 MiB).
const EnvMaxMessage = "SLUICE_PLUGIN_MAX_MESSAGE_BYTES"

// DefaultMaxMessage is the message limit when the host sets none.
const DefaultMaxMessage = 64 << 20

// StreamWindow is the static gRPC flow-control window, per stream and per
// connection, on both ends. A static window turns off gRPC's BDP
// estimation, which would otherwise buffer up to 16 MiB per stream behind
// the host's credit window and hide backpressure.
const StreamWindow = 1 << 20

// socketBuffer is gRPC's read and write buffer: a 1 MB batch crosses the
// socket in a few system calls rather than one per 32 KiB.
const socketBuffer = 256 << 10

// ServerOptions are the plugin's gRPC server options.
func ServerOptions(maxMessage int) []grpc.ServerOption {
	return []grpc.ServerOption{
		experimental.BufferPool(pool),
		grpc.ForceServerCodecV2(grpcCodec{}),
		grpc.MaxRecvMsgSize(maxMessage),
		grpc.MaxSendMsgSize(maxMessage),
		grpc.InitialWindowSize(StreamWindow),
		grpc.InitialConnWindowSize(StreamWindow),
		grpc.WriteBufferSize(socketBuffer),
		grpc.ReadBufferSize(socketBuffer),
	}
}

// DialOptions are the host's gRPC client options.
func DialOptions(maxMessage int) []grpc.DialOption {
	return []grpc.DialOption{
		experimental.WithBufferPool(pool),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage),
			grpc.ForceCodecV2(grpcCodec{})),
		grpc.WithInitialWindowSize(StreamWindow),
		grpc.WithInitialConnWindowSize(StreamWindow),
		grpc.WithWriteBufferSize(socketBuffer),
		grpc.WithReadBufferSize(socketBuffer),
		// An idle channel closes its connection, and a plugin takes a
		// closed host connection for a dead host and exits.
		grpc.WithIdleTimeout(0),
	}
}

// GRPCPlugin is the go-plugin glue: on the plugin side it registers Impl,
// on the host side it returns a pb.ProcessorClient.
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl pb.ProcessorServer
}

// GRPCServer implements goplugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterProcessorServer(s, p.Impl)
	return nil
}

// GRPCClient implements goplugin.GRPCPlugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewProcessorClient(c), nil
}
