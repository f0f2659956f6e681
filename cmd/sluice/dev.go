package main

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	"github.com/sluicedev/sluice/config"
	"github.com/sluicedev/sluice/connectors/kafka"
)

// devBrokerAddr is where `run --dev` serves its embedded Kafka broker.
const devBrokerAddr = "127.0.0.1:9092"

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

// kafkaTopics lists the topics Kafka nodes name, for the dev broker to
// create up front.
func kafkaTopics(f *config.File) []string {
	var topics []string
	for _, n := range f.Nodes {
		if !strings.HasPrefix(n.Type, "kafka") {
			continue
		}
		switch v := n.Values["topic"].(type) {
		case string:
			topics = append(topics, v)
		}
		switch v := n.Values["topics"].(type) {
		case []string:
			topics = append(topics, v...)
		case []any:
			for _, t := range v {
				if s, ok := t.(string); ok {
					topics = append(topics, s)
				}
			}
		}
	}
	slices.Sort(topics)
	return slices.Compact(slices.DeleteFunc(topics, func(s string) bool { return s == "" }))
}
