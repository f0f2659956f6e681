// Command naive is the baseline of the plugin benchmark: a go-plugin gRPC
// service streaming one protobuf message per record, the way a plugin
// protocol looks before anyone measures it, and the same stream carrying
// a whole batch per message, the way it looks once someone batches.
package main

import (
	"context"
	"io"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/sluicedev/sluice/plugins/internal/naivepb"
	"github.com/sluicedev/sluice/plugins/internal/wire"
)

type server struct {
	naivepb.UnimplementedNaiveServer
}

// Stream echoes every record.
func (server) Stream(s naivepb.Naive_StreamServer) error {
	for {
		r, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(r); err != nil {
			return err
		}
	}
}

// StreamBatch echoes every message of many records.
func (server) StreamBatch(s naivepb.Naive_StreamBatchServer) error {
	for {
		rs, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(rs); err != nil {
			return err
		}
	}
}

type naivePlugin struct {
	goplugin.NetRPCUnsupportedPlugin
}

func (naivePlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	naivepb.RegisterNaiveServer(s, server{})
	return nil
}

func (naivePlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

func main() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: wire.Handshake,
		Plugins:         goplugin.PluginSet{"naive": naivePlugin{}},
		GRPCServer:      goplugin.DefaultGRPCServer,
	})
}
