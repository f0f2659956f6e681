package kafka

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DevPartitions is the partition count of topics the dev broker creates.
const DevPartitions = 4

// StartDevBroker runs an in-process Kafka-protocol broker (franz-go's
// kfake, in memory) on addr for `sluice run --dev`, with topics created up
// front and auto-creation on for any other. If something already listens
// on addr (a real broker, or another sluice), it is used instead: stop is
// then a no-op. stop shuts the broker down and forgets every record.
func StartDevBroker(ctx context.Context, addr string, topics []string) (stop func(), err error) {
	probe := net.Dialer{Timeout: 500 * time.Millisecond}
	if c, err := probe.DialContext(ctx, "tcp", addr); err == nil {
		_ = c.Close()
		return func() {}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, addr) }),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(DevPartitions),
		kfake.ClusterID("sluice-dev"),
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(DevPartitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start dev broker on %s: %w", addr, err)
	}
	return c.Close, nil
}
