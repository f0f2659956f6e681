package host

import (
	"context"
	"errors"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// node is what a plugin node's keys fill: its Config, with the plugin key
// (a name or a path, resolved into Config.Path by build) and batch.bytes
// (Bind reads a size into a ByteSize, Config.BatchBytes is an int) beside.
type node struct {
	Config
	plugin     string
	batchBytes registry.ByteSize
}

func fields(c *node) []registry.Field {
	return []registry.Field{
		registry.Bind(&c.plugin, "plugin", "plugin name, looked up in --plugins-dir, $SLUICE_PLUGIN_DIR or ./plugins.d; or a path to its executable (relative to the pipeline file)",
			registry.Required(), registry.Example("enrich")),
		registry.Bind(&c.Args, "args", "command-line arguments of the plugin"),
		registry.Bind(&c.Env, "env", "the plugin's whole environment: sluice's own is not inherited, so secrets stay out unless listed here"),
		registry.Bind(&c.Config.Config, "config", "the plugin's own settings, handed to it as JSON and validated by it (errors show as config.<field>)"),
		registry.Bind(&c.SHA256, "sha256", "expected SHA-256 (hex) of the executable, checked before every start; a mismatch is refused"),
		registry.Bind(&c.Instances, "instances", "plugin processes run in parallel; outputs keep input order",
			registry.Default(1), registry.Range(1, maxInstances)),
		registry.Section("batch", "how records are grouped into one message to the plugin",
			registry.Bind(&c.BatchSize, "size", "records per plugin batch at most",
				registry.Default(1000), registry.Range(1, maxBatchSize)),
			registry.Bind(&c.batchBytes, "bytes", "payload bytes per plugin batch at most",
				registry.Default(registry.ByteSize(4<<20)), registry.Range(registry.ByteSize(1), registry.ByteSize(maxBatchBytes))),
			registry.Bind(&c.Linger, "linger", "how long a partial batch waits for more records; 0 sends what is there",
				registry.Default(time.Duration(0)), registry.Range(time.Duration(0), maxLinger)),
		),
		registry.Bind(&c.Window, "window", "batches in flight per process: the credit window that carries backpressure into the plugin",
			registry.Default(4), registry.Range(1, maxWindow)),
		registry.Bind(&c.Timeout, "timeout", "a process with batches in flight and no reply for this long is killed and restarted",
			registry.Default(30*time.Second), registry.Range(minTimeout, maxTimeout)),
		registry.Bind(&c.StartTimeout, "start_timeout", "bound on a process's start-up: handshake, Info and Configure",
			registry.Default(10*time.Second), registry.Range(minTimeout, maxStartTimeout)),
	}
}

// config is the Config c describes, but for what build adds (Name, Path,
// Logger).
func (c *node) config() Config {
	cfg := c.Config
	cfg.BatchBytes = int(c.batchBytes)
	return cfg
}

// defaultConfig holds every declared default.
func defaultConfig() Config {
	n := registry.Defaults(fields)
	return n.config()
}

func init() {
	registry.Declare(registry.Component[node]{
		Kind:    flow.KindStage,
		Type:    "plugin",
		Summary: "run records through a plugin: a separate process built with sluice's plugin SDK, supervised and restarted by sluice",
		Fields:  fields,
		Build:   build,
	})
}

// build starts one plugin process to run Info and Configure (so `sluice
// validate` reports config errors); Close stops it.
func build(c *node, n *registry.Conf) (any, error) {
	ctx := context.Background()
	var dirs []string
	var base string
	if n.Env != nil {
		dirs, base = n.Env.PluginDirs, n.Env.BaseDir
		if n.Env.Context != nil {
			ctx = n.Env.Context
		}
	}
	path, err := Resolve(c.plugin, dirs, base)
	if err != nil {
		return nil, registry.FieldErr("plugin", err)
	}
	if c.SHA256 != "" {
		if err := checkSHA256(path, c.SHA256); err != nil {
			return nil, registry.FieldErr("sha256", err)
		}
	}
	cfg := c.config()
	cfg.Name, cfg.Path, cfg.Logger = n.ID, path, n.Logger()
	st, err := New(ctx, cfg)
	if err != nil {
		return nil, buildError(err)
	}
	return st, nil
}

// buildError points New's errors at the field to blame.
func buildError(err error) error {
	var ce *ConfigError
	var sum *ChecksumError
	var enc *configEncodingError
	switch {
	case errors.As(err, &ce):
		errs := make([]error, len(ce.Errors))
		for i, fe := range ce.Errors {
			field := "config"
			if fe.GetField() != "" {
				field += "." + fe.GetField()
			}
			errs[i] = registry.FieldErr(field, errors.New(fe.GetMessage()))
		}
		return errors.Join(errs...)
	case errors.As(err, &sum):
		return registry.FieldErr("sha256", err)
	case errors.As(err, &enc):
		return registry.FieldErr("config", err)
	}
	return registry.FieldErr("plugin", err)
}
