package stages

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/sluicedev/sluice/expr"
	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// mapConfig is the map stage's config: expression sources.
type mapConfig struct {
	Value   string
	Key     string
	Headers any // header name to expression; Build checks each is a string
}

func init() {
	registry.Declare(registry.Component[mapConfig]{
		Kind:    flow.KindStage,
		Type:    "map",
		Summary: "rewrite each record's value, key and headers with expressions",
		Fields: func(c *mapConfig) []registry.Field {
			headers := registry.Bind(&c.Headers, "headers", "header name to an expression for its new value (replacing headers of that name); nil removes the header",
				registry.Example(map[string]any{"origin-topic": "topic"}))
			headers.Type, headers.Elem = registry.Map, registry.Expr // Bind has no Go type for a map of expressions
			return []registry.Field{
				registry.Bind(&c.Value, "value", "new value; a string or bytes result is written as is, anything else as JSON, nil as a null value (object literals keep their key order)",
					registry.AsExpr(), registry.Example(`{"seq": value.seq, "double": value.seq * 2}`)),
				registry.Bind(&c.Key, "key", "new key; a string as is, anything else as JSON, nil as a null key",
					registry.AsExpr(), registry.Example("value.user_id")),
				headers,
			}
		},
		Build: buildMap,
	})
}

func buildMap(c *mapConfig, n *registry.Conf) (any, error) {
	var value, key *expr.Program
	var headers []HeaderExpr
	var err error
	// A key written empty is an empty expression, refused; one left out
	// leaves its part of the record unchanged.
	if n.Has("value") {
		if value, err = expr.Compile(c.Value); err != nil {
			return nil, registry.FieldErr("value", err)
		}
	}
	if n.Has("key") {
		if key, err = expr.Compile(c.Key); err != nil {
			return nil, registry.FieldErr("key", err)
		}
	}
	hs, _ := c.Headers.(map[string]any)
	for name, raw := range hs {
		src, ok := raw.(string)
		if !ok {
			return nil, registry.FieldErr("headers."+name, fmt.Errorf("want an expression string, got %T", raw))
		}
		p, err := expr.Compile(src)
		if err != nil {
			return nil, registry.FieldErr("headers."+name, err)
		}
		headers = append(headers, HeaderExpr{Name: name, Expr: p})
	}
	return NewMap(value, key, headers...)
}

// HeaderExpr sets one header.
type HeaderExpr struct {
	Name string
	Expr *expr.Program
}

// Map is the map stage: a flow.Processor rewriting records in place.
type Map struct {
	value   *expr.Program
	key     *expr.Program
	headers []HeaderExpr // sorted by name

	workers sync.Pool // *mapWorker: one Env per goroutine
}

type mapWorker struct {
	env      *expr.Env
	perValue int // bytes per record of the last batch, to size the next
}

// NewMap returns a map stage computing the new value, key and headers;
// value and key may be nil (left unchanged), but not all three missing.
func NewMap(value, key *expr.Program, headers ...HeaderExpr) (*Map, error) {
	if value == nil && key == nil && len(headers) == 0 {
		return nil, errors.New("map needs at least one of value, key or headers")
	}
	hs := slices.Clone(headers)
	slices.SortFunc(hs, func(a, b HeaderExpr) int { return strings.Compare(a.Name, b.Name) })
	return &Map{value: value, key: key, headers: hs}, nil
}

func (m *Map) worker() *mapWorker {
	if w, ok := m.workers.Get().(*mapWorker); ok {
		return w
	}
	progs := []*expr.Program{}
	for _, p := range []*expr.Program{m.value, m.key} {
		if p != nil {
			progs = append(progs, p)
		}
	}
	for _, h := range m.headers {
		progs = append(progs, h.Expr)
	}
	return &mapWorker{env: expr.NewEnv(progs...), perValue: 64}
}

// Process implements flow.Processor. Outputs are written over the inputs
// already read, changing only the fields the map sets (copying whole
// records costs GC write barriers); the bytes of a batch's new values,
// keys and headers share one allocation.
func (m *Map) Process(_ context.Context, in []flow.Record, out *flow.Output) error {
	w := m.worker()
	defer func() {
		w.env.Bind(nil)
		m.workers.Put(w)
	}()
	arena := make([]byte, 0, w.perValue*len(in))
	var kept int
	if m.key == nil && m.headers == nil {
		kept, arena = m.values(w.env, in, out, arena)
	} else {
		kept, arena = m.records(w.env, in, out, arena)
	}
	out.Records = in[:kept]
	switch {
	case len(arena) > 0:
		w.perValue = len(arena)/len(in) + 8
	case len(in) > 0:
		w.perValue = 0 // values kept as they were (Same): no arena
	}
	return nil
}

// values is Process for a map of the value alone, the common one: each
// record's value is computed straight into the arena.
func (m *Map) values(env *expr.Env, in []flow.Record, out *flow.Output, arena []byte) (int, []byte) {
	kept := 0
	for i := range in {
		r := &in[i]
		env.Bind(r)
		same := env.Same(m.value)
		var value []byte
		if !same {
			var err error
			if value, arena, err = appendField(env, m.value, arena); err != nil {
				out.Errors = append(out.Errors, flow.RecordError{Record: *r, Err: err})
				continue
			}
		}
		if kept != i {
			in[kept] = *r
		}
		if !same {
			in[kept].Value = value
		}
		kept++
	}
	return kept, arena
}

// records is Process for a map that sets the key or headers too.
func (m *Map) records(env *expr.Env, in []flow.Record, out *flow.Output, arena []byte) (int, []byte) {
	kept := 0
	for i := range in {
		var err error
		var f fields
		if f, arena, err = m.apply(env, &in[i], arena); err != nil {
			out.Errors = append(out.Errors, flow.RecordError{Record: in[i], Err: err})
			continue
		}
		if kept != i {
			in[kept] = in[i]
		}
		r := &in[kept]
		if m.value != nil {
			r.Value = f.value
		}
		if m.key != nil {
			r.Key = f.key
		}
		if m.headers != nil {
			r.Headers = f.headers
		}
		kept++
	}
	return kept, arena
}

// fields are a record's new parts.
type fields struct {
	value, key []byte
	headers    []flow.Header
}

// apply computes the new fields of *r, leaving *r untouched.
func (m *Map) apply(env *expr.Env, r *flow.Record, arena []byte) (fields, []byte, error) {
	env.Bind(r)
	var f fields
	var err error
	switch {
	case m.value == nil:
	case env.Same(m.value):
		f.value = r.Value // immutable: kept, not copied
	default:
		if f.value, arena, err = appendField(env, m.value, arena); err != nil {
			return f, arena, err
		}
	}
	if m.key != nil {
		if f.key, arena, err = appendField(env, m.key, arena); err != nil {
			return f, arena, fmt.Errorf("key: %w", err)
		}
	}
	if len(m.headers) > 0 {
		hs := make([]flow.Header, 0, len(r.Headers)+len(m.headers))
		for _, h := range r.Headers {
			if !m.setsHeader(h.Key) {
				hs = append(hs, h)
			}
		}
		for _, h := range m.headers {
			var v []byte
			if v, arena, err = appendField(env, h.Expr, arena); err != nil {
				return f, arena, fmt.Errorf("header %s: %w", h.Name, err)
			}
			if v != nil {
				hs = append(hs, flow.Header{Key: h.Name, Value: v})
			}
		}
		f.headers = hs
	}
	return f, arena, nil
}

func (m *Map) setsHeader(name string) bool {
	for _, h := range m.headers {
		if h.Name == name {
			return true
		}
	}
	return false
}

// appendField evaluates p into arena and returns its bytes, capped so a
// later append cannot write into them; nil for a nil result.
func appendField(env *expr.Env, p *expr.Program, arena []byte) ([]byte, []byte, error) {
	start := len(arena)
	arena, ok, err := env.AppendBytes(arena, p)
	if err != nil || !ok {
		return nil, arena[:start], err
	}
	if len(arena) == start {
		return []byte{}, arena, nil
	}
	return arena[start:len(arena):len(arena)], arena, nil
}
