// Command aggregate is a stateful sluice plugin: per key, running count,
// sum, min, max and average of a numeric field of JSON records.
//
//	stages:
//	  totals:
//	    type: plugin
//	    plugin: aggregate
//	    inputs: [orders]
//	    instances: 1            # keep it at 1: see "State" below
//	    config:
//	      field: amount         # required: top-level numeric field
//	      key_field: customer   # default: group by the record key
//	      target: totals        # default "aggregate"
//	      emit: attach          # attach (default) | update | passthrough
//
// Each record updates its key's aggregate, then leaves as:
//
//   - attach: its value with the aggregate added under target,
//     {"amount":5,"totals":{"count":2,"sum":8,"min":3,"max":5,"avg":4}};
//   - update: the aggregate alone, with its key:
//     {"key":"c1","count":2,"sum":8,"min":3,"max":5,"avg":4};
//   - passthrough: unchanged, the aggregate (as in attach) in a header
//     named target.
//
// The key is the record key (a null key is the key ""), or with key_field
// that field's string or number as written. A record that is not a JSON
// object, lacks the field or holds a non-number there fails (to the node's
// on_error) without touching the aggregates.
//
// # State
//
// The aggregates live in the plugin process's memory, and sluice spreads
// batches over a node's `instances` without regard to keys: with
// instances > 1 every process keeps its own partial aggregates of whatever
// keys it happened to see. Run it with instances: 1 (the default) for
// per-key totals. The node's `parallelism` is fine with `ordering: key` (or
// `partition` when a key stays in one partition): its workers share the
// same processes and each key's records keep their order. The aggregates
// restart from zero whenever the process does (a crash, a hang past
// `timeout`, a new run): they are running values since the process
// started, not durable state. Memory grows with the number of distinct
// keys.
package main
