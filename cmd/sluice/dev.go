package main

import (
	"context"
	"log/slog"
	"slices"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/connectors/kafka"
	"github.com/sluicedev/sluice/flow"
)

// devBrokerAddr is where `run --dev` serves its embedded Kafka broker.
const devBrokerAddr = "127.0.0.1:9092"

// kafkaType is the type name of the Kafka source and sink, whose topics
// the dev broker creates.
const kafkaType = "kafka"

// startDevBroker starts the embedded broker of `run --dev` with topics
// created, and returns its stop function. A broker already listening on
// addr is used as it is.
func startDevBroker(ctx context.Context, addr string, topics []string, log *slog.Logger) (stop func(), err error) {
	stop, err = kafka.StartDevBroker(ctx, addr, topics)
	if err != nil {
		return nil, err
	}
	log.Info("dev broker ready (in memory: records are gone when sluice exits)", "addr", addr, "topics", topics)
	return stop, nil
}

// kafkaTopics lists the topics the Kafka nodes of f name, for the dev
// broker to create up front: each source's topics and each sink's topic,
// read from the checked config (a sink computing its topics with
// topic_expr names none; the dev broker creates those on first use).
func kafkaTopics(f *config.File) []string {
	var topics []string
	for _, n := range f.Nodes {
		if n.Type != kafkaType || n.Config == nil {
			continue
		}
		switch n.Kind {
		case flow.KindSource:
			topics = append(topics, n.Config.Strings("topics")...)
		case flow.KindSink:
			topics = append(topics, n.Config.String("topic"))
		}
	}
	slices.Sort(topics)
	return slices.Compact(slices.DeleteFunc(topics, func(s string) bool { return s == "" }))
}
