// Package stages holds sluice's built-in stages and registers them with
// the registry: map and filter (flow.Processors, evaluated with package
// expr), batch, throttle and dedupe (stateful flow.Stages). The
// window stage lives in stages/window and the go-streams adapter in
// adapters/gostreams; importing this package registers window too.
//
// Stateful stages keep their state in Run's locals, so parallelism N runs
// N independent shards, and hold the acks of every input they keep until
// the output carrying it is emitted.
package stages
