package file

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicedev/sluice/registry"
)

func ptr(f float64) *float64 { return &f }

// DefaultBatch is how many lines a source puts in one batch at most.
const DefaultBatch = 256

// Fields shared by the line sources.
var (
	maxLineField = registry.Field{Name: "max_line", Type: registry.Size, Default: "1MiB", Min: ptr(1), Max: ptr(1 << 30), Example: "4MiB",
		Doc: "longest line accepted; a longer line stops the pipeline with an error naming its line number"}
	batchField = registry.Field{Name: "batch", Type: registry.Int, Default: DefaultBatch, Min: ptr(1), Max: ptr(65536), Example: 1024,
		Doc: "most lines per emitted batch (one acknowledgement each)"}
)

// resolve makes a relative path relative to the pipeline file's directory.
func resolve(c *registry.Conf, path string) string {
	if path == "" || filepath.IsAbs(path) || c.Env == nil || c.Env.BaseDir == "" {
		return path
	}
	return filepath.Join(c.Env.BaseDir, path)
}

// size reads a size field, accepting both the loader's parsed int64 and a
// raw "1MiB" string (a default not yet parsed).
func size(c *registry.Conf, name string, def int) (int, error) {
	switch v := c.Raw(name).(type) {
	case nil:
		return def, nil
	case string:
		n, err := registry.ParseSize(v)
		if err != nil {
			return 0, registry.FieldErr(name, err)
		}
		return positive(name, n)
	default:
		n := int64(c.Int(name))
		if s := c.Size(name); s != 0 {
			n = s
		}
		return positive(name, n)
	}
}

func positive(name string, n int64) (int, error) {
	if n < 1 {
		return 0, registry.FieldErr(name, fmt.Errorf("must be at least 1 byte, got %d", n))
	}
	return int(n), nil
}

func batchSize(c *registry.Conf) (int, error) {
	if !c.Has("batch") {
		return DefaultBatch, nil
	}
	if n := c.Int("batch"); n >= 1 {
		return n, nil
	}
	return 0, registry.FieldErr("batch", fmt.Errorf("must be at least 1, got %v", c.Raw("batch")))
}

// readableFile checks at Build time that path names a regular file, so a
// typo is a config error rather than a failure after start.
func readableFile(path string) error {
	if path == "" {
		return registry.FieldErr("path", fmt.Errorf("is empty"))
	}
	st, err := os.Stat(path)
	if err != nil {
		return registry.FieldErr("path", err)
	}
	if !st.Mode().IsRegular() {
		return registry.FieldErr("path", fmt.Errorf("%s is not a regular file (%s); read pipes and terminals with the stdin source", path, st.Mode().Type()))
	}
	return nil
}

// writableFile checks at Build time that path can be created: its directory
// exists and path is not a directory. The file itself is opened at the
// first write, so `sluice validate` never creates or truncates it.
func writableFile(path string) error {
	if path == "" {
		return registry.FieldErr("path", fmt.Errorf("is empty"))
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return registry.FieldErr("path", fmt.Errorf("%s is a directory", path))
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return registry.FieldErr("path", fmt.Errorf("directory of %s: %w", path, err))
	}
	if !st.IsDir() {
		return registry.FieldErr("path", fmt.Errorf("%s: %s is not a directory", path, dir))
	}
	return nil
}
