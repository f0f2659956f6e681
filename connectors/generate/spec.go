package generate

import (
	"fmt"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func ptr(f float64) *float64 { return &f }

// DefaultBatch is how many records one emitted batch holds by default.
const DefaultBatch = 256

func init() {
	registry.Register(registry.Spec{
		Kind:    flow.KindSource,
		Type:    "generate",
		Summary: `synthetic JSON records {"seq":N,...} at a chosen rate`,
		Fields: []registry.Field{
			{Name: "count", Type: registry.Int, Default: 0, Min: ptr(0), Max: ptr(1e12), Example: 1000000,
				Doc: "records to generate; 0 generates until the pipeline is stopped"},
			{Name: "rate", Type: registry.Float, Default: 0.0, Min: ptr(0), Max: ptr(1e9), Example: 5000,
				Doc: "records per second; 0 generates as fast as downstream takes them"},
			{Name: "batch", Type: registry.Int, Default: DefaultBatch, Min: ptr(1), Max: ptr(65536), Example: 1024,
				Doc: "records per emitted batch (one acknowledgement each); smaller at low rates so records are not held back"},
			{Name: "key", Type: registry.String, Default: "", Example: "user-{seq}",
				Doc: "record key; {seq} is replaced by the record's sequence number; empty means no key"},
			{Name: "template", Type: registry.Map, Example: map[string]any{"source": "demo", "amount": 42},
				Doc: `fields added to every value after "seq" (JSON object, keys sorted); "seq" itself is reserved`},
		},
		Build: build,
	})
}

func build(c *registry.Conf) (any, error) {
	enc, err := newEncoder(c.String("key"), c.Map("template"))
	if err != nil {
		return nil, registry.FieldErr("template", err)
	}
	count, batch, rate := c.Int("count"), c.Int("batch"), c.Float("rate")
	switch {
	case count < 0:
		return nil, registry.FieldErr("count", fmt.Errorf("must be >= 0, got %d", count))
	case rate < 0:
		return nil, registry.FieldErr("rate", fmt.Errorf("must be >= 0, got %g", rate))
	}
	if batch < 1 {
		batch = DefaultBatch
	}
	return &Source{
		id:    c.ID,
		count: int64(count),
		rate:  rate,
		batch: batch,
		enc:   enc,
		log:   c.Logger(),
	}, nil
}
