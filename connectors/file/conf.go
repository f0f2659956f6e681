package file

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicedev/sluice/registry"
)

// lineConfig holds the keys both line sources (file and stdin) take.
type lineConfig struct {
	MaxLine registry.ByteSize
	Batch   int
}

func (c *lineConfig) fields() []registry.Field {
	return []registry.Field{
		registry.Bind(&c.MaxLine, "max_line", "longest line accepted; a longer line stops the pipeline with an error naming its line number",
			registry.Default(registry.ByteSize(1<<20)), registry.Range(registry.ByteSize(1), registry.ByteSize(1<<30)), registry.Example("4MiB")),
		registry.Bind(&c.Batch, "batch", "most lines per emitted batch (one acknowledgement each)",
			registry.Default(256), registry.Range(1, 65536), registry.Example(1024)),
	}
}

// resolve makes a relative path relative to the pipeline file's directory.
func resolve(n *registry.Conf, path string) string {
	if path == "" || filepath.IsAbs(path) || n.Env == nil || n.Env.BaseDir == "" {
		return path
	}
	return filepath.Join(n.Env.BaseDir, path)
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
