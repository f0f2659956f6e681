// Package flow is sluice's engine.
//
// Start here:
//   - Record is one message; Batch is what travels on an edge (records plus
//     the acknowledgements they carry back to their sources).
//   - Source, Stage and Sink are the interfaces nodes implement; Processor is
//     the per-batch function most stages are written as (see ProcessorStage).
//   - Pipeline is the builder: add nodes, wire inputs, Run(ctx).
//
// Delivery: every record a source emits belongs to an Ack. The Ack fires once
// every record derived from it was written by every sink it reached, filtered
// on purpose, or dead-lettered. Sources commit only on fired, successful Acks.
//
// The files, in the order a record meets them: record.go and ack.go (Record,
// Batch, Ack); component.go (what a node implements); pipeline.go, node.go
// and validate.go (building and checking the graph); execution.go (one Run:
// wiring, drain, close); edge.go (bounded queues between nodes); workers.go
// (dispatch, processor and sink workers, coalescing of sink writes);
// outlet.go (Emit and Reject, the error policy at work); middleware.go,
// policy.go and policy_use.go (retries, timeouts, error policies and where
// they apply); stats.go (live counters).
package flow
