// Package pipelinetest runs unit tests of a pipeline, what `sluice test`
// does. A test file names a pipeline file and lists cases; each case feeds
// records to the pipeline's sources and lists the records its sinks must
// receive:
//
//	pipeline: ../even-doubled.yaml      # relative to the test file
//	env: {COUNT: "10"}                  # the pipeline's only environment
//	set: {settings.buffer: 10}          # like --set, for every case
//	timeout: 10s                        # per case (default 10s)
//	cases:
//	  - name: keeps even numbers doubled
//	    inputs:                         # by source id
//	      gen:
//	        - value: {seq: 1}
//	        - {value: {seq: 2}, key: k2, headers: {h: v}, timestamp: 2024-05-01T10:00:00Z}
//	    expect:                         # by sink id, in order
//	      out:
//	        - value: {seq: 2, double: 4}
//
// Every case builds the pipeline afresh with every source replaced by an
// in-memory one emitting the case's inputs (a source not listed emits
// nothing) and every sink by one collecting what it is given; stages run
// exactly as configured, plugins included. Values are compared as JSON when
// both sides parse as JSON, else as bytes; key and headers only when the
// expectation gives them (headers as a subset). A sink not listed in
// expect is not checked; "out: []" checks that it got nothing. A
// dead-letter sink is a sink like any other. A case with expect_error
// passes only if the run fails with an error containing that text; one
// with unordered: true compares each sink's records as a multiset.
//
// The pipeline sees only the environment the test file gives, so a test
// passes or fails the same on every machine.
package pipelinetest
