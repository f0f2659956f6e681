package kafka

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A generation that ended before Close (its partitions revoked, or lost to
// a broker restart) made its last commit then; a failure of that commit was
// logged then and its records are the next owner's to re-read. Close must
// not report it: a SIGTERM after a broker restart exited 1 with "commit
// offsets of group …: use of closed network connection" (found by the
// chaos test).
func TestCloseIgnoresAnEndedGenerationsCommit(t *testing.T) {
	cfg := DefaultSourceConfig()
	cfg.Brokers, cfg.Topics, cfg.Group = []string{"127.0.0.1:1"}, []string{"t"}, "g"
	src, err := NewSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.openGroup(); err != nil {
		t.Fatal(err)
	}
	old := &generation{src: src, done: make(chan struct{}),
		finalErr: errors.New("commit offsets of group g: write tcp: use of closed network connection")}
	close(old.done)
	src.mu.Lock()
	src.current = old
	src.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := src.Close(ctx); err != nil {
		t.Fatalf("Close = %v, want nil: that commit belonged to a generation that had ended before", err)
	}
}
