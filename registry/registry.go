// Package registry is where every source, stage and sink type registers.
// One declaration per type feeds config validation, `sluice graph`, docs
// and the JSON schema, so they cannot drift apart.
//
// A component declares its typed config in an init func (see Declare and
// Bind in declare.go):
//
//	func init() { registry.Declare(registry.Component[Config]{Kind: flow.KindSink, Type: "file", ...}) }
//
// and is compiled in by a blank import in package builtin.
package registry

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// FieldType is the YAML shape a field accepts.
type FieldType string

// Field types.
const (
	String   FieldType = "string"
	Int      FieldType = "int"
	Float    FieldType = "float"
	Bool     FieldType = "bool"
	Duration FieldType = "duration" // "250ms", "1m30s"
	Size     FieldType = "size"     // 1048576, "64KiB", "1MB"
	Expr     FieldType = "expr"     // an expr-lang expression (string)
	List     FieldType = "list"     // of Elem
	Map      FieldType = "map"      // string keys, Elem values ("" = any)
	Object   FieldType = "object"   // fixed Fields
	Any      FieldType = "any"      // free-form, checked by Build (plugin config)
)

// Field declares one config key.
type Field struct {
	Name     string
	Type     FieldType
	Doc      string
	Required bool
	Default  any
	Enum     []string  // allowed values of a String field
	Elem     FieldType // element type of List and Map
	Fields   []Field   // keys of an Object (or of each List element of Elem Object)
	Example  any       // shown in docs and schema

	// Every numeric field declares the range validation accepts, shown in
	// docs/components.md and the JSON schema: a value outside it is
	// refused at its line before anything is built or run.
	Min *float64 // inclusive lower bound of an Int, Float or Size (bytes)
	Max *float64 // inclusive upper bound of an Int, Float or Size (bytes)
	// MinDuration and MaxDuration bound a Duration, inclusively. Negative
	// durations are always refused; a zero MaxDuration means no bound,
	// which only test fields may leave.
	MinDuration time.Duration
	MaxDuration time.Duration

	// Set by Bind: what fills the bound Go field and what reads it back
	// (as the config loader holds values), the default as that field
	// holds it, and the typed bounds before they become Min/Max.
	bind               func(v any)
	get                func() any
	defaultValue       any
	rangeMin, rangeMax any
}

// Spec declares a component type.
type Spec struct {
	Kind    flow.Kind
	Type    string
	Summary string
	Fields  []Field
	// Build makes the component from validated config. It returns a
	// flow.Source, flow.Stage or flow.Sink matching Kind. A problem with
	// one field should be returned as FieldErr so it points at that field.
	// Build must not connect anywhere or start anything that needs
	// stopping unless the result implements flow.Closer.
	Build func(c *Conf) (any, error)
}

var (
	mu    sync.RWMutex
	specs = map[flow.Kind]map[string]Spec{}
)

// Register adds a spec; registering a (kind, type) twice panics at init, a
// programming error.
func Register(s Spec) {
	mu.Lock()
	defer mu.Unlock()
	if specs[s.Kind] == nil {
		specs[s.Kind] = map[string]Spec{}
	}
	if _, dup := specs[s.Kind][s.Type]; dup {
		panic(fmt.Sprintf("registry: %s type %q registered twice", s.Kind, s.Type))
	}
	specs[s.Kind][s.Type] = s
}

// Lookup finds a spec.
func Lookup(kind flow.Kind, typ string) (Spec, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := specs[kind][typ]
	return s, ok
}

// Types lists the registered type names of a kind, sorted.
func Types(kind flow.Kind) []string {
	mu.RLock()
	defer mu.RUnlock()
	var ts []string
	for t := range specs[kind] {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// All lists every spec, sorted by kind then type.
func All() []Spec {
	mu.RLock()
	defer mu.RUnlock()
	var out []Spec
	for _, k := range []flow.Kind{flow.KindSource, flow.KindStage, flow.KindSink} {
		var ts []string
		for t := range specs[k] {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		for _, t := range ts {
			out = append(out, specs[k][t])
		}
	}
	return out
}

// Env is what the process offers every Build: logging, where plugins live,
// the dev broker.
type Env struct {
	Context    context.Context
	Logger     *slog.Logger
	PluginDirs []string
	// DevBrokers, when set (sluice run --dev), is used by Kafka connectors
	// that name no brokers.
	DevBrokers []string
	// BaseDir is the directory of the pipeline file; relative paths in
	// config resolve against it.
	BaseDir string
}

// FieldError points a Build error at one field (a dotted path below the
// node, e.g. "expr" or "tls.ca").
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErr wraps err as a problem with field.
func FieldErr(field string, err error) error { return &FieldError{Field: field, Err: err} }
