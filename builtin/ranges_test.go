package builtin_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// numericFields calls fn for every Int, Float, Duration and Size field of
// every registered component, of settings and of the fields every node
// has, naming each by where it is.
func numericFields(fn func(where string, f registry.Field)) {
	var walk func(where string, fs []registry.Field)
	walk = func(where string, fs []registry.Field) {
		for _, f := range fs {
			if f.Numeric() {
				fn(where+f.Name, f)
			}
			if f.Type == registry.List || f.Type == registry.Map {
				if elem := (registry.Field{Name: f.Name, Type: f.Elem}); elem.Numeric() {
					fn(where+f.Name+"[]", elem)
				}
			}
			walk(where+f.Name+".", f.Fields)
		}
	}
	walk("settings.", registry.SettingsFields)
	for _, k := range []flow.Kind{flow.KindSource, flow.KindStage, flow.KindSink} {
		walk(fmt.Sprintf("every %s: ", k), registry.CommonFields(k))
	}
	for _, s := range registry.All() {
		walk(fmt.Sprintf("%s %s: ", s.Kind, s.Type), s.Fields)
	}
}

// Every number a config can hold has a declared range (issue 9: a buffer,
// a parallelism and a window slide each let through a value the run could
// not survive), and its default and example lie in it.
func TestEveryNumericFieldHasARange(t *testing.T) {
	seen := 0
	numericFields(func(where string, f registry.Field) {
		seen++
		if !f.Bounded() {
			t.Errorf("%s (%s) declares no full range", where, f.Type)
			return
		}
		if f.Type == registry.Duration && f.MinDuration > f.MaxDuration || f.Min != nil && f.Max != nil && *f.Min > *f.Max {
			t.Errorf("%s: empty range %s", where, f.RangeText())
		}
		for what, v := range map[string]any{"default": f.Default, "example": f.Example} {
			if v == nil {
				continue
			}
			x, err := typed(f, v)
			if err != nil {
				t.Errorf("%s: %s %v: %v", where, what, v, err)
				continue
			}
			if err := f.CheckRange(x); err != nil {
				t.Errorf("%s: %s %v is out of its range: %v", where, what, v, err)
			}
		}
	})
	if seen < 40 {
		t.Errorf("only %d numeric fields found: is the walk broken?", seen)
	}
}

// typed turns a declared default or example into what the config loader
// makes of it.
func typed(f registry.Field, v any) (any, error) {
	switch f.Type {
	case registry.Duration:
		if s, ok := v.(string); ok {
			return time.ParseDuration(s)
		}
	case registry.Size:
		switch v := v.(type) {
		case string:
			return registry.ParseSize(v)
		case int:
			return int64(v), nil
		}
	case registry.Int:
		if n, ok := v.(int); ok {
			return n, nil
		}
	case registry.Float:
		switch v := v.(type) {
		case int:
			return float64(v), nil
		case float64:
			return v, nil
		}
	}
	return nil, fmt.Errorf("a %T where a %s is expected", v, f.Type)
}
