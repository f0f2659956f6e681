package stagetest

import (
	"context"
	"errors"
	"sync"

	"github.com/sluicedev/sluice/state"
)

// Changelogs is an in-process state.Provider for stateful stage tests:
// one log per changelog name, kept across stage instances as a topic
// outlives a process. Put it as the Owner of the leases on test records.
type Changelogs struct {
	mu   sync.Mutex
	logs map[string]*Changelog
}

// Changelog implements state.Provider, naming logs as the Kafka source
// does with "g" as the consumer group.
func (c *Changelogs) Changelog(_ context.Context, spec state.Spec) (state.Changelog, error) {
	name := spec.Prefix
	if name == "" {
		name = "g-" + spec.Stage
	}
	name += "-" + spec.Topic + "-changelog"
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logs == nil {
		c.logs = map[string]*Changelog{}
	}
	if c.logs[name] == nil {
		c.logs[name] = &Changelog{name: name, parts: map[int32][]state.Entry{}}
	}
	return c.logs[name], nil
}

// Log returns the log named name, nil if none was opened.
func (c *Changelogs) Log(name string) *Changelog {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logs[name]
}

// Crash makes every log's next Write keep only its first keep() entries
// and fail, and every later Write fail: the process died mid-write.
func (c *Changelogs) Crash(keep func() int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.logs {
		l.mu.Lock()
		l.crash, l.keep = true, keep()
		l.mu.Unlock()
	}
}

// Revive lets writes succeed again: the next process runs.
func (c *Changelogs) Revive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.logs {
		l.mu.Lock()
		l.crash, l.down = false, false
		l.mu.Unlock()
	}
}

// Changelog is one in-process log (see Changelogs).
type Changelog struct {
	name        string
	mu          sync.Mutex
	parts       map[int32][]state.Entry
	crash, down bool
	keep        int
}

var errDied = errors.New("process died")

// Name implements state.Changelog.
func (l *Changelog) Name() string { return l.name }

// Write implements state.Changelog.
func (l *Changelog) Write(_ context.Context, es []state.Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return errDied
	}
	n := len(es)
	if l.crash {
		n, l.down = min(l.keep, n), true
	}
	for _, e := range es[:n] {
		l.parts[e.Partition] = append(l.parts[e.Partition], e)
	}
	if l.down {
		return errDied
	}
	return nil
}

// Restore implements state.Changelog.
func (l *Changelog) Restore(_ context.Context, p int32, fn func(k, v []byte) error) (int64, error) {
	es := l.Entries(p)
	for _, e := range es {
		if err := fn(e.Key, e.Value); err != nil {
			return 0, err
		}
	}
	return int64(len(es)), nil
}

// Entries returns what partition p holds, oldest first.
func (l *Changelog) Entries(p int32) []state.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]state.Entry(nil), l.parts[p]...)
}

// End implements state.Changelog.
func (l *Changelog) End(_ context.Context, p int32) (int64, error) {
	return int64(len(l.Entries(p))), nil
}

// Close implements state.Changelog.
func (l *Changelog) Close(context.Context) error { return nil }
