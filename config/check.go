package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/internal/spelling"
	"github.com/sluicedev/sluice/registry"
)

// checker checks raw values against registry field declarations and
// converts them to what registry.Conf's getters read: string, int,
// float64, bool, time.Duration, int64 (sizes), []string or []any, and
// map[string]any. Every problem is collected; a bad value is left out (or
// replaced by its default) so that checking goes on.
type checker struct {
	src  *source // nil when checking declared defaults
	errs *Errors
}

func (c *checker) pos(p path, wantKey bool) Pos {
	if c.src == nil {
		return Pos{}
	}
	return c.src.pos(p, wantKey)
}

// prefix names the value at p at the start of a message.
func (p path) prefix() string {
	if len(p) == 0 {
		return ""
	}
	return p.String() + ": "
}

// nodeConf is a node's checked config.
type nodeConf struct {
	typ    string
	spec   registry.Spec
	known  bool           // typ is registered for the node's kind
	values map[string]any // common and type fields, defaults filled in
}

// node checks one source, stage or sink: its type decides which keys
// beyond the kind's common ones are valid.
func (c *checker) node(kind flow.Kind, at path, raw map[string]any) nodeConf {
	var nc nodeConf
	nc.typ, _ = raw["type"].(string)
	fields := registry.CommonFields(kind)
	if _, given := raw["type"].(string); given {
		nc.spec, nc.known = registry.Lookup(kind, nc.typ)
		if !nc.known {
			types := registry.Types(kind)
			hint := suggest(nc.typ, types)
			if hint == "" && len(types) > 0 {
				hint = fmt.Sprintf(" (known %s types: %s)", kind, strings.Join(types, ", "))
			}
			c.errs.add(c.pos(at.child("type"), false), "%s.type: unknown %s type %s%s", at, kind, clip(nc.typ), hint)
		}
		fields = append(fields, nc.spec.Fields...)
	}
	// With the type unknown, keys beyond the common ones cannot be judged.
	nc.values = c.object(fields, raw, at, nc.known)
	return nc
}

// object checks a mapping against fields: unknown keys (when strict),
// missing required keys, each value's type; absent keys get defaults.
func (c *checker) object(fields []registry.Field, raw map[string]any, at path, strict bool) map[string]any {
	byName := make(map[string]registry.Field, len(fields))
	var names []string
	for _, f := range fields {
		if _, dup := byName[f.Name]; !dup {
			byName[f.Name] = f
			names = append(names, f.Name)
		}
	}
	out := make(map[string]any, len(fields))
	for _, k := range sortedKeys(raw) {
		f, ok := byName[k]
		switch {
		case !ok && strict:
			c.errs.add(c.pos(at.child(k), true), "%sunknown key %s%s", at.prefix(), clip(k), keyHint(k, names))
		case !ok, raw[k] == nil: // null is as good as absent
		default:
			if v, ok := c.value(f, raw[k], at.child(k)); ok {
				out[k] = v
			}
		}
	}
	for _, name := range names {
		f := byName[name]
		if _, done := out[name]; done {
			continue
		}
		if f.Required && raw[name] == nil {
			c.errs.add(c.pos(at, true), "%smissing required key %q", at.prefix(), name)
			continue
		}
		if v, ok := c.fallback(f, at); ok {
			out[name] = v
		}
	}
	return out
}

// fallback is the value of an absent field: its default, or for an object
// whose keys have defaults (and none is required) the object of those
// defaults, so Conf.Object(...).String(...) reads them.
func (c *checker) fallback(f registry.Field, at path) (any, bool) {
	switch {
	case f.Default != nil:
		var errs Errors
		v, ok := (&checker{errs: &errs}).value(f, f.Default, path{f.Name})
		if len(errs) > 0 {
			c.errs.add(c.pos(at, true), "%sthe declared default of %q is invalid: %s", at.prefix(), f.Name, errs[0].Msg)
			return nil, false
		}
		return v, ok
	case f.Type == registry.Object && len(f.Fields) > 0 &&
		slices.ContainsFunc(f.Fields, func(f registry.Field) bool { return f.Default != nil }) &&
		!slices.ContainsFunc(f.Fields, func(f registry.Field) bool { return f.Required }):
		return c.object(f.Fields, nil, at.child(f.Name), true), true
	}
	return nil, false
}

// value checks one present value against its field.
func (c *checker) value(f registry.Field, v any, at path) (any, bool) {
	if c.src != nil && c.src.broken(at) {
		return nil, false // an unresolved ${VAR}, already reported
	}
	if c.src != nil {
		v = c.src.typed(f.Type, v, at) // ${N} and overrides are text
	}
	bad := func(format string, args ...any) (any, bool) {
		c.errs.add(c.pos(at, false), "%s"+format, append([]any{at.prefix()}, args...)...)
		return nil, false
	}
	switch f.Type {
	case registry.String, registry.Expr:
		s, ok := v.(string)
		if !ok && isScalar(v) && c.src != nil {
			s, ok = c.src.text(at)
		}
		if !ok {
			if isScalar(v) {
				return bad("want a string, got %s (quote it)", describe(v))
			}
			return bad("want a string, got %s", describe(v))
		}
		if len(f.Enum) > 0 && !slices.Contains(f.Enum, s) {
			return bad("want one of %s; got %s%s", strings.Join(f.Enum, ", "), clip(s), suggest(s, f.Enum))
		}
		return s, true
	case registry.Int:
		n, ok := asInt(v)
		if !ok {
			return bad("want an integer, got %s", describe(v))
		}
		if err := f.CheckRange(n); err != nil {
			return bad("%v", err)
		}
		return n, true
	case registry.Float:
		x, ok := asFloat(v)
		if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
			return bad("want a number, got %s", describe(v))
		}
		if err := f.CheckRange(x); err != nil {
			return bad("%v", err)
		}
		return x, true
	case registry.Bool:
		b, ok := v.(bool)
		if !ok {
			return bad("want true or false, got %s", describe(v))
		}
		return b, true
	case registry.Duration:
		return c.duration(f, v, bad)
	case registry.Size:
		return c.size(f, v, bad)
	case registry.List:
		return c.list(f, v, at, bad)
	case registry.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("want a mapping, got %s", describe(v))
		}
		elem := registry.Field{Name: f.Name, Type: elemType(f.Elem)}
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			if m[k] == nil && elem.Type == registry.Any {
				out[k] = nil
				continue
			}
			if x, ok := c.value(elem, m[k], at.child(k)); ok {
				out[k] = x
			}
		}
		return out, true
	case registry.Object:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("want a mapping, got %s", describe(v))
		}
		return c.object(f.Fields, m, at, true), true
	case registry.Any, "":
		return v, true
	}
	return bad("the field declares unknown type %q", f.Type)
}

// elemType reads an undeclared element type as Any, as registry.Map documents.
func elemType(t registry.FieldType) registry.FieldType {
	if t == "" {
		return registry.Any
	}
	return t
}

func (c *checker) duration(f registry.Field, v any, bad func(string, ...any) (any, bool)) (any, bool) {
	var d time.Duration
	switch v := v.(type) {
	case time.Duration:
		d = v
	case string:
		var err error
		if d, err = time.ParseDuration(strings.TrimSpace(v)); err != nil {
			return bad("want a duration such as 250ms, 5s or 1m30s; got %s", clip(v))
		}
	default:
		if _, isNum := asFloat(v); isNum {
			return bad("want a duration such as 250ms, 5s or 1m30s; got %s, which has no unit", describe(v))
		}
		return bad("want a duration such as 250ms, 5s or 1m30s; got %s", describe(v))
	}
	if err := f.CheckRange(d); err != nil {
		return bad("%v", err)
	}
	return d, true
}

func (c *checker) size(f registry.Field, v any, bad func(string, ...any) (any, bool)) (any, bool) {
	var n int64
	if s, ok := v.(string); ok {
		var err error
		if n, err = registry.ParseSize(s); err != nil {
			return bad("%v", err)
		}
	} else {
		i, ok := asInt(v)
		switch {
		case !ok:
			return bad("want a size such as 1048576, 64KiB or 1MB; got %s", describe(v))
		case i < 0:
			return bad("must not be negative, got %d", i)
		}
		n = int64(i)
	}
	if err := f.CheckRange(n); err != nil {
		return bad("%v", err)
	}
	return n, true
}

func (c *checker) list(f registry.Field, v any, at path, bad func(string, ...any) (any, bool)) (any, bool) {
	var items []any
	switch v := v.(type) {
	case []any:
		items = v
	case []string: // a declared default
		for _, s := range v {
			items = append(items, s)
		}
	default:
		return bad("want a list, got %s", describe(v))
	}
	elem := registry.Field{Name: f.Name, Type: elemType(f.Elem), Fields: f.Fields}
	if elem.Type == registry.String || elem.Type == registry.Expr {
		out := make([]string, 0, len(items))
		for i, it := range items {
			if x, ok := c.value(elem, it, at.child(fmt.Sprint(i))); ok {
				out = append(out, x.(string))
			}
		}
		return out, true
	}
	out := make([]any, 0, len(items))
	for i, it := range items {
		if it == nil && elem.Type == registry.Any {
			out = append(out, nil)
			continue
		}
		if x, ok := c.value(elem, it, at.child(fmt.Sprint(i))); ok {
			out = append(out, x)
		}
	}
	return out, true
}

// mapping returns v as a mapping; null is an empty one.
func (c *checker) mapping(v any, at path, hint string) map[string]any {
	m, ok := v.(map[string]any)
	if !ok && v != nil {
		c.errs.add(c.pos(at, false), "%swant a mapping, got %s%s", at.prefix(), describe(v), hint)
	}
	return m
}

func asInt(v any) (int, bool) {
	switch v := v.(type) {
	case int:
		return v, true
	case int64:
		if v >= math.MinInt && v <= math.MaxInt {
			return int(v), true
		}
	case uint64:
		if v <= math.MaxInt {
			return int(v), true
		}
	case float64:
		// 1e3 or 10.0 mean a whole number; 1.5 does not.
		if v == math.Trunc(v) && v >= math.MinInt && v < math.MaxInt {
			return int(v), true
		}
	}
	return 0, false
}

func asFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

func isScalar(v any) bool {
	switch v.(type) {
	case nil, map[string]any, []any:
		return false
	}
	return true
}

// describe names a value's YAML type, and the value if it is short.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + clip(v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case int, int64, uint64:
		return fmt.Sprintf("integer %v", v)
	case float64:
		return fmt.Sprintf("number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// suggest returns ` (did you mean "x"?)` for a near miss among candidates.
func suggest(word string, candidates []string) string {
	if s := spelling.Nearest(word, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// keyHint follows an unknown key: the valid key it is a typo of, else the
// list of valid keys, so that a key put on the wrong node (expr on a map
// stage) is answered by what that node takes rather than by the least
// unlike of its keys.
func keyHint(key string, valid []string) string {
	if s := spelling.Typo(key, valid); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	if len(valid) == 0 {
		return ""
	}
	return " (valid keys: " + strings.Join(slices.Sorted(slices.Values(valid)), ", ") + ")"
}
