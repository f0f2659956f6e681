package host

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// Config is a plugin stage's configuration. A pipeline file's `type:
// plugin` node fills it through the declaration in spec.go; Go code sets
// what it needs and leaves the rest zero (see withDefaults).
type Config struct {
	// Name labels logs and errors: the node id.
	Name string
	// Path is the plugin executable.
	Path string
	Args []string
	// Env is the plugin's whole environment: the host's is not inherited.
	Env map[string]string
	// Config is handed to the plugin's Configure, encoded as JSON.
	Config any
	// SHA256, when set, is the hex digest the executable must have; it is
	// checked before every start.
	SHA256 string
	// Instances is the number of plugin processes (parallelism).
	Instances int
	// BatchSize and BatchBytes cap one plugin batch; Linger is how long a
	// partial batch waits for more input (0: send what is there).
	BatchSize  int
	BatchBytes int
	Linger     time.Duration
	// Window is the credit window: batches in flight per process.
	Window int
	// Timeout: a process with batches in flight and no reply for this long
	// is killed and restarted.
	Timeout time.Duration
	// StartTimeout bounds start-up: handshake, Info and Configure.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// withDefaults returns c with the declared default in each field Go code
// left unset: a number not above zero (every declared default of a number
// here is of one that must be positive, or is zero itself), anything else
// left zero. Name defaults to the executable's name, Logger to
// slog.Default().
func (c Config) withDefaults() Config {
	def := reflect.ValueOf(defaultConfig())
	v := reflect.ValueOf(&c).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		unset := f.IsZero()
		if f.CanInt() {
			unset = f.Int() <= 0
		}
		if unset {
			f.Set(def.Field(i))
		}
	}
	if c.Name == "" {
		c.Name = filepath.Base(c.Path)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// maxMessage is the gRPC message limit both ends get: room for a full
// batch, for outputs larger than their inputs, and for the length arrays.
func (c *Config) maxMessage() int {
	return max(64<<20, 4*c.BatchBytes+1<<20)
}

// EnvPluginDir is searched for plugin names when the process gives no
// plugin directories.
const EnvPluginDir = "SLUICE_PLUGIN_DIR"

// DefaultPluginDir is searched last, relative to the working directory.
const DefaultPluginDir = "plugins.d"

// Resolve finds the executable of plugin: a path (it contains a slash;
// relative to baseDir), or a name looked up in dirs, else in
// $SLUICE_PLUGIN_DIR (a list), else in ./plugins.d.
func Resolve(plugin string, dirs []string, baseDir string) (string, error) {
	if plugin == "" {
		return "", errors.New("empty plugin name")
	}
	if strings.ContainsRune(plugin, '/') || strings.ContainsRune(plugin, filepath.Separator) {
		p := plugin
		if !filepath.IsAbs(p) && baseDir != "" {
			p = filepath.Join(baseDir, p)
		}
		return p, checkExecutable(p)
	}
	if len(dirs) == 0 {
		if env := os.Getenv(EnvPluginDir); env != "" {
			dirs = filepath.SplitList(env)
		} else {
			dirs = []string{DefaultPluginDir}
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, plugin)
		if _, err := os.Stat(p); err == nil {
			return p, checkExecutable(p)
		}
	}
	return "", fmt.Errorf("plugin %q not found in %s (give a path, or set --plugins-dir or $%s)",
		plugin, strings.Join(dirs, ", "), EnvPluginDir)
}

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	switch {
	case err != nil:
		return fmt.Errorf("plugin executable: %w", err)
	case st.IsDir():
		return fmt.Errorf("plugin executable %s is a directory", p)
	case st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("plugin executable %s is not executable (chmod +x)", p)
	}
	return checkInterpreter(p)
}

// ChecksumError is a plugin executable whose SHA-256 is not the one
// configured: it is not started.
type ChecksumError struct {
	Path             string
	Expected, Actual string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 mismatch for %s: expected %s, actual %s; refusing to start it", e.Path, e.Expected, e.Actual)
}

// checkSHA256 compares path's digest with want (hex, any case).
func checkSHA256(path, want string) error {
	want = strings.ToLower(strings.TrimSpace(want))
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
		return fmt.Errorf("sha256 %q is not a hex SHA-256 digest (64 hex digits)", want)
	}
	got, err := fileSHA256(path)
	if err != nil {
		return err
	}
	if got != want {
		return &ChecksumError{Path: path, Expected: want, Actual: got}
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
