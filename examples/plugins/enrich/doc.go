// Command enrich is a sluice plugin adding data from a lookup table to JSON
// records: the value of one field is looked up in a table given in the
// node's config, and the entry found is added under another field.
//
//	stages:
//	  enrich:
//	    type: plugin
//	    plugin: enrich
//	    inputs: [orders]
//	    config:
//	      field: customer          # required: top-level field holding the lookup key
//	      target: customer_info    # default: <field>_info
//	      on_missing: skip         # skip (default) | null | error
//	      table:                   # required, non-empty
//	        c1: {tier: gold}
//	        c2: {tier: silver}
//
// The key is the field's string, or its number as written (42, not 42.0).
// A record whose field is absent, null or not in the table is passed on
// unchanged (skip), gets `target: null` (null) or fails (error: it goes to
// the node's on_error). A value that is not a JSON object, or a field that
// is an object, array or boolean, fails the record. The record's other
// members keep their order and bytes; an existing target is replaced.
package main
