package main

// Every component that ships with sluice registers itself through this one
// import; see flow/builtin to add one.
import _ "github.com/sluicedev/sluice/flow/builtin"
