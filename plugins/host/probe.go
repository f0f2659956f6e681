package host

import (
	"context"
	"log/slog"
	"time"
)

// Info is what a plugin says about itself at start.
type Info struct {
	Name, Version   string
	SDK             string // the SDK it was built with, if it says
	ProtocolVersion uint32
}

// Probe starts the plugin executable at path as a stage would (handshake,
// no inherited environment, its own process group), asks for its Info and
// stops it. It is not configured and sees no record. An executable that
// is not a sluice plugin fails the handshake (or start within timeout).
func Probe(ctx context.Context, path string, timeout time.Duration, log *slog.Logger) (Info, error) {
	cfg := Config{Path: path, StartTimeout: timeout, Logger: log}.withDefaults()
	l, err := newLauncher(&cfg)
	if err != nil {
		return Info{}, err
	}
	p, err := l.spawn(ctx)
	if err != nil {
		return Info{}, err
	}
	defer p.kill() // no drain: it never had work
	return Info{
		Name:            p.info.GetName(),
		Version:         p.info.GetVersion(),
		SDK:             p.info.GetSdk(),
		ProtocolVersion: p.info.GetProtocolVersion(),
	}, nil
}
