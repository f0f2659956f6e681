package main

import (
	"context"
	"log/slog"
	"math"
	"sync"
)

// allLevels passes every held record on release.
const allLevels = slog.Level(math.MinInt)

// maxHeld bounds what a logHold keeps: past it, the hold lets go of
// everything, since a build that logs this much is worth watching live.
const maxHeld = 1000

// logHold holds log records back until the pipeline is built. A run that
// stops at a config error then prints only the errors, as validate does,
// and not the lines of what was started, built and closed on the way (the
// HTTP listener, a generate source's "acknowledged 0 records").
type logHold struct {
	mu   sync.Mutex
	held []heldRecord
	open bool
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

// handler returns h with its records held by g until release.
func (g *logHold) handler(h slog.Handler) slog.Handler { return &holdHandler{g: g, h: h} }

// release writes the held records at level min or above, in order, then
// lets every record through. Only the first call counts.
func (g *logHold) release(min slog.Level) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return
	}
	for _, hr := range g.held {
		if hr.r.Level >= min {
			_ = hr.h.Handle(context.Background(), hr.r)
		}
	}
	g.held, g.open = nil, true
}

type holdHandler struct {
	g *logHold
	h slog.Handler
}

func (h *holdHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h *holdHandler) Handle(ctx context.Context, r slog.Record) error {
	g := h.g
	g.mu.Lock()
	if !g.open && len(g.held) < maxHeld {
		g.held = append(g.held, heldRecord{h: h.h, r: r.Clone()})
		g.mu.Unlock()
		return nil
	}
	open := g.open
	g.mu.Unlock()
	if !open {
		g.release(allLevels)
	}
	return h.h.Handle(ctx, r)
}

func (h *holdHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &holdHandler{g: h.g, h: h.h.WithAttrs(attrs)}
}

func (h *holdHandler) WithGroup(name string) slog.Handler {
	return &holdHandler{g: h.g, h: h.h.WithGroup(name)}
}
