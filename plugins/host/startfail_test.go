//go:build unix

package host_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicedev/sluice/plugins/host"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugin.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func startErr(t *testing.T, path string) error {
	t.Helper()
	st, err := host.New(context.Background(), host.Config{Path: path, StartTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = st.Close(ctx)
		t.Fatal("host.New started a plugin that exits before its handshake")
	}
	return err
}

// A plugin that exits before its handshake: the error says how it ended
// and what it wrote to stderr, not only that stdout was empty.
func TestStartFailureShowsExitStatusAndStderr(t *testing.T) {
	err := startErr(t, script(t, "echo 'boom: missing module foo' >&2\nexit 3\n"))
	msg := err.Error()
	for _, want := range []string{"exit status 3", "boom: missing module foo", "exited before its handshake"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	// Probe (`sluice plugins list`) starts plugins the same way.
	_, err = host.Probe(context.Background(), script(t, "echo 'probe: no such flag' >&2\nexit 2\n"), 5*time.Second, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "probe: no such flag") {
		t.Errorf("Probe: %v", err)
	}
}

// Only the end of a long stderr is kept, but a Go panic's first line stays.
func TestStartFailureKeepsTheEndOfStderr(t *testing.T) {
	err := startErr(t, script(t, `echo 'panic: runtime error: index out of range' >&2
i=1
while [ $i -le 100 ]; do echo "frame $i" >&2; i=$((i+1)); done
echo 'last words' >&2
exit 2
`))
	msg := err.Error()
	for _, want := range []string{"exit status 2", "panic: runtime error: index out of range", "last words", "frame 100", "The last lines of its stderr"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, gone := range []string{"frame 1\n", "frame 50\n"} {
		if strings.Contains(msg, gone) {
			t.Errorf("error keeps %q, past the last lines:\n%s", gone, msg)
		}
	}
	if n := strings.Count(msg, "\n    "); n > 22 {
		t.Errorf("error quotes %d lines:\n%s", n, msg)
	}
}

// A plugin that never answers is killed at its start timeout; what it
// wrote to stderr meanwhile is in the error.
func TestStartTimeoutShowsStderr(t *testing.T) {
	path := script(t, "echo 'waiting for a licence server' >&2\nexec sleep 60\n")
	_, err := host.New(context.Background(), host.Config{Path: path, StartTimeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		t.Fatal("host.New started a plugin that never shakes hands")
	}
	msg := err.Error()
	for _, want := range []string{"killed", "waiting for a licence server", "timeout"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// Exiting 0 without a handshake is a failure too, and says so plainly.
func TestStartFailureOnCleanExit(t *testing.T) {
	msg := startErr(t, script(t, "exit 0\n")).Error()
	if !strings.Contains(msg, "exited before its handshake: exit status 0.") || !strings.Contains(msg, "It wrote nothing to stderr") {
		t.Errorf("error:\n%s", msg)
	}
}
