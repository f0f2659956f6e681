package host

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func ptr(f float64) *float64 { return &f }

func init() {
	registry.Register(registry.Spec{
		Kind:    flow.KindStage,
		Type:    "plugin",
		Summary: "run records through a plugin: a separate process built with sluice's plugin SDK, supervised and restarted by sluice",
		Fields: []registry.Field{
			{Name: "plugin", Type: registry.String, Required: true, Example: "enrich",
				Doc: "plugin name, looked up in --plugins-dir, $SLUICE_PLUGIN_DIR or ./plugins.d; or a path to its executable (relative to the pipeline file)"},
			{Name: "args", Type: registry.List, Elem: registry.String, Doc: "command-line arguments of the plugin"},
			{Name: "env", Type: registry.Map, Elem: registry.String,
				Doc: "the plugin's whole environment: sluice's own is not inherited, so secrets stay out unless listed here"},
			{Name: "config", Type: registry.Any, Doc: "the plugin's own settings, handed to it as JSON and validated by it (errors show as config.<field>)"},
			{Name: "sha256", Type: registry.String,
				Doc: "expected SHA-256 (hex) of the executable, checked before every start; a mismatch is refused"},
			{Name: "instances", Type: registry.Int, Default: 1, Min: ptr(1), Max: ptr(maxInstances), Doc: "plugin processes run in parallel; outputs keep input order"},
			{Name: "batch", Type: registry.Object, Doc: "how records are grouped into one message to the plugin", Fields: []registry.Field{
				{Name: "size", Type: registry.Int, Default: DefaultBatchSize, Min: ptr(1), Max: ptr(maxBatchSize), Doc: "records per plugin batch at most"},
				{Name: "bytes", Type: registry.Size, Default: "4MiB", Min: ptr(1), Max: ptr(maxBatchBytes), Doc: "payload bytes per plugin batch at most"},
				{Name: "linger", Type: registry.Duration, Default: "0s", MaxDuration: maxLinger, Doc: "how long a partial batch waits for more records; 0 sends what is there"},
			}},
			{Name: "window", Type: registry.Int, Default: DefaultWindow, Min: ptr(1), Max: ptr(maxWindow),
				Doc: "batches in flight per process: the credit window that carries backpressure into the plugin"},
			{Name: "timeout", Type: registry.Duration, Default: "30s", MinDuration: minTimeout, MaxDuration: maxTimeout,
				Doc: "a process with batches in flight and no reply for this long is killed and restarted"},
			{Name: "start_timeout", Type: registry.Duration, Default: "10s", MinDuration: minTimeout, MaxDuration: maxStartTimeout, Doc: "bound on a process's start-up: handshake, Info and Configure"},
		},
		Build: build,
	})
}

// build starts one plugin process to run Info and Configure (so `sluice
// validate` reports config errors); Close stops it.
func build(c *registry.Conf) (any, error) {
	ctx := context.Background()
	var dirs []string
	var base string
	if c.Env != nil {
		dirs, base = c.Env.PluginDirs, c.Env.BaseDir
		if c.Env.Context != nil {
			ctx = c.Env.Context
		}
	}
	path, err := Resolve(c.String("plugin"), dirs, base)
	if err != nil {
		return nil, registry.FieldErr("plugin", err)
	}
	if sum := c.String("sha256"); sum != "" {
		if err := checkSHA256(path, sum); err != nil {
			return nil, registry.FieldErr("sha256", err)
		}
	}
	env := map[string]string{}
	for k, v := range c.Map("env") {
		env[k] = fmt.Sprint(v)
	}
	batch := c.Object("batch")
	st, err := New(ctx, Config{
		Name:         c.ID,
		Path:         path,
		Args:         c.Strings("args"),
		Env:          env,
		Config:       c.Raw("config"),
		SHA256:       c.String("sha256"),
		Instances:    c.Int("instances"),
		BatchSize:    batch.Int("size"),
		BatchBytes:   int(batch.Size("bytes")),
		Linger:       batch.Duration("linger"),
		Window:       c.Int("window"),
		Timeout:      c.Duration("timeout"),
		StartTimeout: c.Duration("start_timeout"),
		Logger:       c.Logger(),
	})
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
