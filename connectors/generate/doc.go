// Package generate is the `generate` source: synthetic JSON records at a
// chosen rate, for trying pipelines out and for load tests.
//
// Each value is {"seq":N,...template fields}, N counting from 0, so a test
// can tell exactly which records arrived. The source tracks, like a Kafka
// consumer's committed offset, the highest seq below which every record was
// acknowledged, and logs it at Close.
package generate
