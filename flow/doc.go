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
package flow
