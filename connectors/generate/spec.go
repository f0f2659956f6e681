package generate

import (
	"fmt"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// config is the generate source's config.
type config struct {
	Count    int
	Rate     float64
	Batch    int
	Key      string
	Template any // a mapping of any values: newEncoder checks it
}

func fields(c *config) []registry.Field {
	template := registry.Bind(&c.Template, "template", `fields added to every value after "seq" (JSON object, keys sorted); "seq" itself is reserved`,
		registry.Example(map[string]any{"source": "demo", "amount": 42}))
	template.Type = registry.Map // of any values, which Bind has no Go type for
	return []registry.Field{
		registry.Bind(&c.Count, "count", "records to generate; 0 generates until the pipeline is stopped",
			registry.Default(0), registry.Range(0, int(1e12)), registry.Example(1000000)),
		registry.Bind(&c.Rate, "rate", "records per second; 0 generates as fast as downstream takes them",
			registry.Default(0.0), registry.Range(0.0, 1e9), registry.Example(5000)),
		registry.Bind(&c.Batch, "batch", "records per emitted batch (one acknowledgement each); smaller at low rates so records are not held back",
			registry.Default(256), registry.Range(1, 65536), registry.Example(1024)),
		registry.Bind(&c.Key, "key", "record key; {seq} is replaced by the record's sequence number; empty means no key",
			registry.Default(""), registry.Example("user-{seq}")),
		template,
	}
}

func init() {
	registry.Declare(registry.Component[config]{
		Kind:    flow.KindSource,
		Type:    "generate",
		Summary: `synthetic JSON records {"seq":N,...} at a chosen rate`,
		Fields:  fields,
		Build:   build,
	})
}

func build(c *config, n *registry.Conf) (any, error) {
	template, _ := c.Template.(map[string]any)
	enc, err := newEncoder(c.Key, template)
	if err != nil {
		return nil, registry.FieldErr("template", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Source{
		id:    n.ID,
		count: int64(c.Count),
		rate:  c.Rate,
		batch: c.Batch,
		enc:   enc,
		log:   n.Logger(),
	}, nil
}

// validate refuses what the declared ranges refuse too, for a Build that
// did not go through the config loader (a Go caller, a test): a negative
// count or rate would generate nothing, silently.
func (c *config) validate() error {
	switch {
	case c.Count < 0:
		return registry.FieldErr("count", fmt.Errorf("must be >= 0, got %d", c.Count))
	case c.Rate < 0:
		return registry.FieldErr("rate", fmt.Errorf("must be >= 0, got %g", c.Rate))
	}
	return nil
}
