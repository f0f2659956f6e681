package registry

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	Register(Spec{
		Kind: c.Kind, Type: c.Type, Summary: c.Summary, Fields: c.Fields(new(T)),
		Build: func(n *Conf) (any, error) {
			// The loader fills in defaults too; starting from them keeps
			// the promise for a Conf that did not pass through it.
			cfg := Defaults(c.Fields)
			bindAll(c.Fields(&cfg), n.Values)
			return c.Build(&cfg, n)
		},
	})
}

// Defaults returns a T holding every declared default: the starting point
// for Go code that builds a component without a pipeline file.
func Defaults[T any](fields func(c *T) []Field) T {
	cfg := new(T)
	applyDefaults(fields(cfg))
	return *cfg
}

func applyDefaults(fields []Field) {
	for _, f := range fields {
		switch {
		case f.defaultValue != nil && f.bind != nil:
			f.bind(f.defaultValue)
		case f.Type == Object:
			applyDefaults(f.Fields)
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

// Check reports the values of c that its declaration refuses: a string
// outside its OneOf values, a number, size or duration outside its Range.
// The config loader refuses those at their line; Check holds a T made in
// Go (from Defaults, then changed) to the same rules, so a constructor
// can call it. The zero value of a key without a default stands for the
// key left out and passes; Required is not checked, since what "missing"
// means for a Go value is the component's to say.
func Check[T any](fields func(c *T) []Field, c *T) error {
	return checkFields(fields(c), "")
}

func checkFields(fields []Field, prefix string) error {
	var errs []error
	for _, f := range fields {
		if f.Type == Object && f.get == nil {
			errs = append(errs, checkFields(f.Fields, prefix+f.Name+"."))
			continue
		}
		if f.get == nil {
			continue
		}
		v := f.get()
		if f.Default == nil && isZero(v) {
			continue
		}
		if err := f.refuse(v); err != nil {
			errs = append(errs, FieldErr(prefix+f.Name, err))
		}
	}
	return errors.Join(errs...)
}

// refuse says why f does not accept v, a value as the loader holds it.
func (f Field) refuse(v any) error {
	if s, ok := v.(string); ok && len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
		return fmt.Errorf("unknown %s %q (want %s)", f.Name, s, strings.Join(f.Enum, ", "))
	}
	return f.outside(v)
}

// outside says how v lies outside f's range, as "10ms is below 100ms" or
// "2h is above 1h"; nil when v is inside.
func (f Field) outside(v any) error {
	err := f.CheckRange(v)
	if err == nil {
		return nil
	}
	var show string
	var below bool
	switch v := v.(type) {
	case time.Duration:
		show, below = FormatDuration(v), v < f.MinDuration
	case int64:
		show, below = FormatSize(v), f.Min != nil && float64(v) < *f.Min
	case int:
		show, below = strconv.Itoa(v), f.Min != nil && float64(v) < *f.Min
	case float64:
		show, below = formatNumber(v), f.Min != nil && v < *f.Min
	}
	lo, hi := f.bounds()
	switch {
	case below && lo != "":
		return fmt.Errorf("%s is below %s", show, lo)
	case !below && hi != "":
		return fmt.Errorf("%s is above %s", show, hi)
	}
	return err // a negative duration, NaN
}

func isZero(v any) bool {
	switch v := v.(type) {
	case string:
		return v == ""
	case int:
		return v == 0
	case int64:
		return v == 0
	case float64:
		return v == 0
	case time.Duration:
		return v == 0
	}
	return false
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
func Example(v any) Option { return func(f *Field) { f.Example = docValue(v) } }

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
// that contradicts itself (a default or bound of another type, a default
// its own enum or range refuses) panics at init: it is a programming
// error that no config could trigger.
func Bind[V any](p *V, name, doc string, opts ...Option) Field {
	f := Field{Name: name, Doc: doc}
	var set func(v any)
	var get func() any
	switch p := any(p).(type) {
	case *string:
		f.Type = String
		set, get = func(v any) { *p, _ = v.(string) }, func() any { return *p }
	case *int:
		f.Type = Int
		set, get = func(v any) { *p = int(toInt64(v)) }, func() any { return *p }
	case *float64:
		f.Type = Float
		set, get = func(v any) { *p = toFloat(v) }, func() any { return *p }
	case *bool:
		f.Type = Bool
		set, get = func(v any) { *p, _ = v.(bool) }, func() any { return *p }
	case *time.Duration:
		f.Type = Duration
		set, get = func(v any) { *p, _ = v.(time.Duration) }, func() any { return *p }
	case *ByteSize:
		f.Type = Size
		set, get = func(v any) { *p = ByteSize(toInt64(v)) }, func() any { return int64(*p) }
	case *[]string:
		f.Type, f.Elem = List, String
		set, get = func(v any) { *p = toStrings(v) }, func() any { return *p }
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
		get = func() any { return *p }
	case *any:
		f.Type = Any
		set, get = func(v any) { *p = v }, func() any { return *p }
	default:
		panic(fmt.Sprintf("registry: key %q is bound to a %T, which no field type reads", name, p))
	}
	for _, o := range opts {
		o(&f)
	}
	if _, ok := any(p).(*string); !ok && (f.Type == Expr || len(f.Enum) > 0) {
		panic(fmt.Sprintf("registry: key %q: AsExpr and OneOf need a string, not a %T", name, *p))
	}
	f.bound(f.rangeMin, true)
	f.bound(f.rangeMax, false)
	f.rangeMin, f.rangeMax = nil, nil
	if f.defaultValue != nil {
		if _, ok := f.defaultValue.(V); !ok {
			panic(fmt.Sprintf("registry: key %q: default %#v is a %T, the field a %T", name, f.defaultValue, f.defaultValue, *p))
		}
		if f.Required {
			panic(fmt.Sprintf("registry: key %q is required and has a default", name))
		}
		f.Default = docValue(f.defaultValue)
		f.defaultValue = loaderValue(f.defaultValue)
		if err := f.refuse(f.defaultValue); err != nil {
			panic(fmt.Sprintf("registry: key %q: its own declaration refuses its default: %v", name, err))
		}
	}
	f.bind, f.get = set, get
	return f
}

// Section declares a nested mapping (e.g. tls) whose keys are bound to
// fields of their own.
func Section(name, doc string, fields ...Field) Field {
	return Field{Name: name, Type: Object, Doc: doc, Fields: fields}
}

// bound turns a typed end of a Range into the Field's Min or Max (for a
// duration, MinDuration or MaxDuration); its type must match the field's.
func (f *Field) bound(v any, lower bool) {
	if v == nil {
		return
	}
	var x float64
	var ok bool
	switch v := v.(type) {
	case int:
		x, ok = float64(v), f.Type == Int
	case float64:
		x, ok = v, f.Type == Float
	case ByteSize:
		x, ok = float64(v), f.Type == Size
	case time.Duration:
		if ok = f.Type == Duration; ok && lower {
			f.MinDuration = v
		} else if ok {
			f.MaxDuration = v
		}
	}
	if !ok {
		panic(fmt.Sprintf("registry: key %q of type %s: bound %v is a %T", f.Name, f.Type, v, v))
	}
	if f.Type == Duration {
		return
	}
	if lower {
		f.Min = &x
	} else {
		f.Max = &x
	}
}

// docValue is a default or example as docs and the schema show it.
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
	case map[string]string:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = x
		}
		return m
	}
	return v
}

func toInt64(v any) int64 {
	switch v := v.(type) {
	case int:
		return int64(v)
	case int64:
		return v
	case float64:
		return int64(v)
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
