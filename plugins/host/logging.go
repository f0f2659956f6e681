package host

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// hclogSlog is go-plugin's logger, writing into the node's slog logger.
// Plugin log lines (hclog JSON on the plugin's stderr, see sdk.Logger)
// arrive here parsed, with their level and attributes.
type hclogSlog struct {
	log  *slog.Logger
	name string
	args []any
	// killing is set once the supervisor killed the process on purpose:
	// go-plugin's "failed to exit gracefully" is then expected, not news.
	// Shared by every logger derived with With or Named.
	killing *atomic.Bool
}

func newHclog(l *slog.Logger) *hclogSlog { return &hclogSlog{log: l, killing: new(atomic.Bool)} }

var _ hclog.Logger = (*hclogSlog)(nil)

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (h *hclogSlog) Log(level hclog.Level, msg string, args ...any) {
	lvl := slogLevel(level)
	// go-plugin logs every non-zero exit as an error, including the kills
	// the supervisor decided on; the supervisor logs why at warn itself.
	if msg == "plugin process exited" {
		lvl = slog.LevelInfo
	}
	if msg == "plugin failed to exit gracefully" && h.killing.Load() {
		lvl = slog.LevelDebug
	}
	ctx := context.Background()
	if !h.log.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]any, 0, len(args)+len(h.args))
	attrs = append(attrs, h.args...)
	for i := 0; i+1 < len(args); i += 2 {
		// go-plugin adds the plugin's own timestamp; slog has its own.
		if k, ok := args[i].(string); ok && k == "timestamp" {
			continue
		}
		attrs = append(attrs, args[i], args[i+1])
	}
	h.log.Log(ctx, lvl, msg, attrs...)
}

func (h *hclogSlog) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogSlog) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogSlog) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogSlog) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogSlog) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogSlog) enabled(l hclog.Level) bool {
	return h.log.Enabled(context.Background(), slogLevel(l))
}

func (h *hclogSlog) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hclogSlog) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogSlog) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogSlog) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogSlog) IsError() bool { return h.enabled(hclog.Error) }

func (h *hclogSlog) ImpliedArgs() []any { return h.args }

func (h *hclogSlog) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any(nil), h.args...), args...)
	return &c
}

func (h *hclogSlog) Name() string { return h.name }

func (h *hclogSlog) Named(name string) hclog.Logger {
	if h.name != "" {
		name = h.name + "." + name
	}
	return h.ResetNamed(name)
}

func (h *hclogSlog) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	c.log = h.log.With("logger", name)
	return &c
}

// SetLevel is a no-op: the slog handler decides.
func (h *hclogSlog) SetLevel(hclog.Level) {}

func (h *hclogSlog) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if h.enabled(l) {
			return l
		}
	}
	return hclog.Off
}

func (h *hclogSlog) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(nil), "", 0)
}

func (h *hclogSlog) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &lineLog{log: h.log, msg: "plugin log"}
}

// lineLog logs each line written to it: the plugin's stdout and stderr
// (go-plugin's SyncStdout/SyncStderr), which carry no level.
type lineLog struct {
	log *slog.Logger
	msg string

	mu  sync.Mutex
	buf []byte
}

// maxLine bounds a line held while waiting for its newline.
const maxLine = 64 << 10

func (w *lineLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) >= maxLine {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	if len(w.buf) == 0 {
		w.buf = nil // do not pin a large array
	}
	return len(p), nil
}

func (w *lineLog) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return
	}
	w.log.Info(w.msg, "line", string(line))
}
