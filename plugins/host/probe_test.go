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

func TestProbe(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	info, err := host.Probe(context.Background(), plugins["passthrough"], 10*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "passthrough" || info.Version != "1.0.0" || info.ProtocolVersion != 1 {
		t.Fatalf("Info = %+v", info)
	}

	script := filepath.Join(t.TempDir(), "hello.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Probe(context.Background(), script, 10*time.Second, log); err == nil || !strings.Contains(err.Error(), "hello") {
		t.Fatalf("Probe of a script = %v, want the handshake error quoting its output", err)
	}
}
