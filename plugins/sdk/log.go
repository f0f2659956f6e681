package sdk

import (
	"log/slog"
	"os"
	"sync"
)

// stderr is the process's real standard error, captured before go-plugin
// redirects os.Stderr into its stdio stream: lines written here are parsed
// by the host as log entries and keep their level.
var stderr = os.Stderr

var logger = sync.OnceValue(func() *slog.Logger {
	return slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: hclogJSON,
	}))
})

// Logger returns a logger whose lines the host forwards into its own log,
// with their level and attributes, tagged with the node id.
func Logger() *slog.Logger { return logger() }

// hclogJSON renames slog's top-level keys to the ones go-plugin's host
// parses (hclog's JSON format).
func hclogJSON(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		return slog.String("@timestamp", a.Value.Time().Format("2006-01-02T15:04:05.000000Z07:00"))
	case slog.LevelKey:
		lvl, _ := a.Value.Any().(slog.Level)
		return slog.String("@level", hclogLevel(lvl))
	case slog.MessageKey:
		return slog.String("@message", a.Value.String())
	}
	return a
}

func hclogLevel(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	}
	return "error"
}
