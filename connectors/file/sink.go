package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// sinkConfig is the file sink's config.
type sinkConfig struct {
	Path  string
	Mode  string
	Fsync bool
}

func init() {
	registry.Declare(registry.Component[sinkConfig]{
		Kind:    flow.KindSink,
		Type:    "file",
		Summary: "appends each record's value and a newline to a file; durable before acknowledging",
		Fields: func(c *sinkConfig) []registry.Field {
			return []registry.Field{
				registry.Bind(&c.Path, "path", "file to write; its directory must exist. A relative path resolves against the pipeline file's directory. The file is opened at the first write",
					registry.Required(), registry.Example("out/events.jsonl")),
				registry.Bind(&c.Mode, "mode", "truncate empties the file when it is opened; append keeps what is there",
					registry.OneOf("truncate", "append"), registry.Default("truncate"), registry.Example("append")),
				registry.Bind(&c.Fsync, "fsync", "fsync before acknowledging (survives a machine crash); false only flushes to the operating system",
					registry.Default(true), registry.Example(false)),
			}
		},
		Build: buildSink,
	})
}

func buildSink(c *sinkConfig, n *registry.Conf) (any, error) {
	path := resolve(n, c.Path)
	if err := writableFile(path); err != nil {
		return nil, err
	}
	return &Sink{path: path, appendMode: c.Mode == "append", fsync: c.Fsync, lock: make(chan struct{}, 1)}, nil
}

// Sink is the file sink. Write may be called from several workers; writes
// are serialised so lines never interleave.
type Sink struct {
	path       string
	appendMode bool
	fsync      bool

	// lock (capacity 1) serialises writes; a channel rather than a mutex
	// so Close can give up when a write is stuck (a full disk, a FIFO
	// nobody reads) instead of hanging the shutdown.
	lock    chan struct{}
	f       *os.File
	w       *bufio.Writer
	written atomic.Int64
}

// Write appends recs and returns once they are flushed (and fsynced unless
// fsync is off): the engine acknowledges them only then. After a failed
// write the file may hold part of recs; a retry writes all of them again
// (at-least-once).
func (s *Sink) Write(ctx context.Context, recs []flow.Record) error {
	if err := acquire(ctx, s.lock); err != nil {
		return err
	}
	defer release(s.lock)
	if s.f == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	if err := writeLines(s.w, recs); err != nil {
		s.w.Reset(s.f) // drop the rest: the whole Write failed
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if s.fsync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", s.path, err)
		}
	}
	s.written.Add(int64(len(recs)))
	return nil
}

func (s *Sink) open() error {
	flags := os.O_WRONLY | os.O_CREATE
	if s.appendMode {
		flags |= os.O_APPEND
	} else {
		flags |= os.O_TRUNC
	}
	_, statErr := os.Stat(s.path)
	f, err := os.OpenFile(s.path, flags, 0o644)
	if err != nil {
		return err // *PathError: names the op and the path
	}
	if s.fsync && errors.Is(statErr, os.ErrNotExist) {
		// A new file's directory entry is durable only once the directory
		// is synced.
		if err := syncDir(filepath.Dir(s.path)); err != nil {
			f.Close()
			return err
		}
	}
	s.f, s.w = f, bufio.NewWriterSize(f, writeBuffer)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// Written is the number of records written so far.
func (s *Sink) Written() int64 { return s.written.Load() }

// Close closes the file. Every Write already flushed; nothing is pending.
func (s *Sink) Close(ctx context.Context) error {
	if err := acquire(ctx, s.lock); err != nil {
		return fmt.Errorf("close %s: a write is still in progress: %w", s.path, err)
	}
	defer release(s.lock)
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f, s.w = nil, nil
	if err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}
