package main

// Every component that ships with sluice registers itself through this one
// import; see builtin to add one.
import _ "github.com/sluicedev/sluice/builtin"
