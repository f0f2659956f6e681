package registry

import (
	"time"

	"github.com/sluicedev/sluice/flow"
)

func ptr(f float64) *float64 { return &f }

// Bounds of the engine's own settings.
const (
	// MaxRetries bounds on_error.retries: with max_backoff at its own
	// maximum that is weeks of retrying one batch.
	MaxRetries = 1000
	// MaxBackoff bounds on_error.backoff and max_backoff.
	MaxBackoff = time.Hour
	// MaxTimeout bounds on_error.timeout, one processing call or write.
	MaxTimeout = 24 * time.Hour
	// MinDrainTimeout and MaxDrainTimeout bound settings.drain_timeout.
	MinDrainTimeout = 100 * time.Millisecond
	MaxDrainTimeout = time.Hour
)

// OnErrorFields declare a node's on_error block.
var OnErrorFields = []Field{
	{Name: "action", Type: String, Enum: []string{"fail", "skip", "dead_letter", "retry"}, Default: "fail",
		Doc: "what happens to a record still failing after its retries: fail drains and exits 1, skip drops it, dead_letter writes it to the dead_letter sink, retry is fail after retries (so it needs retries). A stage that never fails a record (batch, throttle) refuses on_error"},
	{Name: "retries", Type: Int, Default: 0, Min: ptr(0), Max: ptr(MaxRetries), Doc: "retries before the action applies; always bounded. Acts on processor stages (filter, map) and sinks only; set on another stage, it is refused"},
	{Name: "backoff", Type: Duration, Default: "100ms", MaxDuration: MaxBackoff, Doc: "first retry delay; doubles each attempt, with jitter. Needs retries"},
	{Name: "max_backoff", Type: Duration, Default: "10s", MaxDuration: MaxBackoff, Doc: "cap on the retry delay. Needs retries"},
	{Name: "timeout", Type: Duration, MaxDuration: MaxTimeout, Doc: "bound on one processing call or write (0: none). Acts on processor stages (filter, map) and sinks only; set on another stage, it is refused (a plugin stage has a timeout of its own)"},
	{Name: "dead_letter", Type: String, Doc: "id of the sink receiving dead-lettered records. Needs action dead_letter"},
}

// CommonFields are the keys every node of a kind accepts besides its
// type's own; the config loader handles them, not Build.
func CommonFields(kind flow.Kind) []Field {
	fs := []Field{{Name: "type", Type: String, Required: true, Doc: "the component type"}}
	if kind == flow.KindSource {
		return fs
	}
	fs = append(fs,
		Field{Name: "inputs", Type: List, Elem: String, Required: kind == flow.KindStage,
			Doc: "ids of the sources or stages feeding this node (a sink that only receives dead letters needs none)"},
		Field{Name: "buffer", Type: Int, Min: ptr(1), Max: ptr(flow.MaxBuffer),
			Doc: "capacity of this node's input edge, in records (default settings.buffer); memory is taken as records queue, not up front"},
		Field{Name: "parallelism", Type: Int, Default: 1, Min: ptr(1), Max: ptr(flow.MaxParallelism),
			Doc: "number of parallel workers; each starts with the first batch it is given"},
		Field{Name: "ordering", Type: String, Enum: []string{"partition", "key", "none"}, Default: "partition",
			Doc: "with parallelism > 1 (refused without it): keep order per source partition, per key, or not at all"},
		Field{Name: "on_error", Type: Object, Fields: OnErrorFields, Doc: "error policy"},
	)
	return fs
}

// SettingsFields declare the pipeline's settings block.
var SettingsFields = []Field{
	{Name: "buffer", Type: Int, Default: flow.DefaultBuffer, Min: ptr(1), Max: ptr(flow.MaxBuffer),
		Doc: "default edge capacity, in records; memory is taken as records queue, not up front"},
	{Name: "drain_timeout", Type: Duration, Default: "30s", MinDuration: MinDrainTimeout, MaxDuration: MaxDrainTimeout, Doc: "how long a drain may take after SIGINT/SIGTERM"},
	{Name: "on_error", Type: Object, Fields: OnErrorFields, Doc: "default error policy of every stage and sink"},
	{Name: "http", Type: Object, Fields: []Field{
		{Name: "listen", Type: String, Default: "127.0.0.1:9464", Doc: `address of the metrics/health listener; "" turns it off`},
		{Name: "token", Type: String, Doc: "bearer token required on every endpoint but /healthz (refused when listen is empty)"},
		{Name: "pprof", Type: Bool, Default: false, Doc: "serve /debug/pprof (refused when listen is empty)"},
	}, Doc: "HTTP listener for /metrics, /healthz, /readyz, /graph"},
}
