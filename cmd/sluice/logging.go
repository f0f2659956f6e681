package main

import (
	"io"
	"log/slog"
	"strings"
)

// logFlags are the logging options shared by the commands that build
// pipelines.
type logFlags struct {
	format string
	level  string
}

// newLogger returns the process logger: text (for people) or JSON (for log
// collectors) on w.
func newLogger(w io.Writer, f logFlags) (*slog.Logger, error) {
	var level slog.Level
	switch strings.ToLower(f.level) {
	case "debug":
		level = slog.LevelDebug
	case "info", "":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", f.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, usageErrorf("--log-format %q: want text or json", f.format)
	}
}
