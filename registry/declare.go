package registry

import (
	"fmt"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// Component declares a source, stage or sink type whose config is the
// struct T. Each key is declared once, in Fields, bound to the field of T
// it fills: its name, type (from the Go type), default, enum, range and
// doc. From that one declaration come validation with positions, the
// defaults, `sluice docs`, `sluice schema` and the typed T that Build
// receives. Adding a key to a component is one line in Fields.
//
//	registry.Declare(registry.Component[Config]{
//		Kind: flow.KindSink, Type: "file", Summary: "...",
//		Fields: func(c *Config) []registry.Field {
//			return []registry.Field{
//				registry.Bind(&c.Path, "path", "file to write", registry.Required()),
//				registry.Bind(&c.Sync, "sync", "fsync after each write", registry.Default(false)),
//			}
//		},
//		Build: func(c *Config, n *registry.Conf) (any, error) { return NewSink(*c) },
//	})
type Component[T any] struct {
	Kind    flow.Kind
	Type    string
	Summary string
	// Fields binds each key to a field of c. It is called once with a
	// scratch T to learn the declaration, and once per built node.
	Fields func(c *T) []Field
	// Build makes the component from a T holding the node's validated
	// values, declared defaults filled in. n carries the node's id,
	// logger and environment. Rules that tie several keys together are
	// checked here (return FieldErr to point at one key).
	Build func(c *T, n *Conf) (any, error)
}

// Declare registers a Component.
func Declare[T any](c Component[T]) {
	fields := c.Fields(new(T))
	Register(Spec{
		Kind: c.Kind, Type: c.Type, Summary: c.Summary, Fields: fields,
		Build: func(n *Conf) (any, error) {
			cfg := new(T)
			bindAll(c.Fields(cfg), n.Values)
			return c.Build(cfg, n)
		},
	})
}

// Defaults returns a T holding every declared default: the starting point
// for Go code that builds a component without a pipeline file.
func Defaults[T any](fields func(c *T) []Field) T {
	cfg := new(T)
	for _, f := range fields(cfg) {
		setDefaults(f)
	}
	return *cfg
}

func setDefaults(f Field) {
	switch {
	case f.Default != nil && f.bind != nil:
		f.bind(f.defaultValue)
	case f.Type == Object:
		for _, sub := range f.Fields {
			setDefaults(sub)
		}
	}
}

// bindAll copies checked values (as the config loader produces them) into
// the fields they are bound to.
func bindAll(fields []Field, values map[string]any) {
	for _, f := range fields {
		v, ok := values[f.Name]
		switch {
		case f.Type == Object && f.bind == nil:
			m, _ := v.(map[string]any)
			bindAll(f.Fields, m)
		case !ok || v == nil || f.bind == nil:
		default:
			f.bind(v)
		}
	}
}

// ByteSize is a Size field: written as 1048576, "64KiB" or "1MB".
type ByteSize int64

// Option refines a Field made by Bind.
type Option func(*Field)

// Required makes a key mandatory.
func Required() Option { return func(f *Field) { f.Required = true } }

// Default is the value of an absent key; its Go type must be the bound
// field's (a time.Duration for a duration, a ByteSize for a size).
func Default(v any) Option { return func(f *Field) { f.defaultValue = v } }

// OneOf limits a string key to the values given.
func OneOf(values ...string) Option { return func(f *Field) { f.Enum = values } }

// Example is shown in docs and the schema.
func Example(v any) Option { return func(f *Field) { f.Example = v } }

// Range bounds a number, size or duration, inclusively; min and max have
// the bound field's Go type.
func Range(min, max any) Option {
	return func(f *Field) { f.rangeMin, f.rangeMax = min, max }
}

// AtLeast bounds a number, size or duration from below only.
func AtLeast(min any) Option { return func(f *Field) { f.rangeMin = min } }

// AsExpr marks a string key as an expr-lang expression.
func AsExpr() Option { return func(f *Field) { f.Type = Expr } }

// Bind declares key name, filling *p. The key's type follows *p's Go type:
// string, int, float64, bool, time.Duration, ByteSize, []string,
// map[string]string, or any (free-form, checked by Build). A declaration
// that contradicts itself (a default or bound of another type) panics at
// init: it is a programming error that no config could trigger.
func Bind[V any](p *V, name, doc string, opts ...Option) Field {
	f := Field{Name: name, Doc: doc}
	var set func(v any)
	switch p := any(p).(type) {
	case *string:
		f.Type = String
		set = func(v any) { *p, _ = v.(string) }
	case *int:
		f.Type = Int
		set = func(v any) { *p = toInt(v) }
	case *float64:
		f.Type = Float
		set = func(v any) { *p = toFloat(v) }
	case *bool:
		f.Type = Bool
		set = func(v any) { *p, _ = v.(bool) }
	case *time.Duration:
		f.Type = Duration
		set = func(v any) { *p, _ = v.(time.Duration) }
	case *ByteSize:
		f.Type = Size
		set = func(v any) { n, _ := v.(int64); *p = ByteSize(n) }
	case *[]string:
		f.Type, f.Elem = List, String
		set = func(v any) { *p = toStrings(v) }
	case *map[string]string:
		f.Type, f.Elem = Map, String
		set = func(v any) {
			m, _ := v.(map[string]any)
			out := make(map[string]string, len(m))
			for k, x := range m {
				out[k], _ = x.(string)
			}
			*p = out
		}
	case *any:
		f.Type = Any
		set = func(v any) { *p = v }
	default:
		panic(fmt.Sprintf("registry: key %q is bound to a %T, which no field type reads", name, p))
	}
	for _, o := range opts {
		o(&f)
	}
	if f.Type == Expr {
		if _, ok := any(p).(*string); !ok {
			panic(fmt.Sprintf("registry: key %q: AsExpr needs a string", name))
		}
	}
	if f.defaultValue != nil {
		if _, ok := f.defaultValue.(V); !ok {
			panic(fmt.Sprintf("registry: key %q: default %#v is a %T, the field a %T", name, f.defaultValue, f.defaultValue, *p))
		}
		f.Default = docValue(f.defaultValue)
		f.defaultValue = loaderValue(f.defaultValue)
	}
	f.bounds2(name, f.rangeMin, true)
	f.bounds2(name, f.rangeMax, false)
	f.bind = set
	return f
}

// Section declares a nested mapping (e.g. tls) whose keys are bound to
// fields of their own.
func Section(name, doc string, fields ...Field) Field {
	return Field{Name: name, Type: Object, Doc: doc, Fields: fields}
}

// bounds2 turns a typed Range end into the Field's bound.
func (f *Field) bounds2(name string, v any, lower bool) {
	if v == nil {
		return
	}
	set := func(x float64) {
		if lower {
			f.Min = &x
		} else {
			f.Max = &x
		}
	}
	switch v := v.(type) {
	case int:
		set(float64(v))
	case float64:
		set(v)
	case ByteSize:
		set(float64(v))
	case time.Duration:
		if lower {
			f.MinDuration = v
		} else {
			f.MaxDuration = v
		}
	default:
		panic(fmt.Sprintf("registry: key %q: a bound of type %T", name, v))
	}
	ok := false
	switch v.(type) {
	case int:
		ok = f.Type == Int
	case float64:
		ok = f.Type == Float
	case ByteSize:
		ok = f.Type == Size
	case time.Duration:
		ok = f.Type == Duration
	}
	if !ok {
		panic(fmt.Sprintf("registry: key %q of type %s: bound %v is a %T", name, f.Type, v, v))
	}
}

// docValue is a default as docs and the schema show it.
func docValue(v any) any {
	switch v := v.(type) {
	case time.Duration:
		return FormatDuration(v)
	case ByteSize:
		return FormatSize(int64(v))
	}
	return v
}

// loaderValue is a default as the config loader produces values.
func loaderValue(v any) any {
	switch v := v.(type) {
	case ByteSize:
		return int64(v)
	}
	return v
}

func toInt(v any) int {
	switch v := v.(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return 0
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return 0
}

func toStrings(v any) []string {
	switch v := v.(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}
