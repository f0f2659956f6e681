package registry

import (
	"strings"

	"github.com/sluicedev/sluice/flow"
)

// Schema returns a JSON Schema (draft 2020-12) of the pipeline YAML, built
// from the same Specs and CommonFields the config loader validates against.
// Editors use it for completion and inline errors (see the README).
func Schema() map[string]any {
	section := func(kind flow.Kind) map[string]any {
		var variants []any
		for _, s := range All() {
			if s.Kind != kind {
				continue
			}
			fields := append(CommonFields(kind), s.Fields...)
			obj := objectSchema(fields)
			obj["properties"].(map[string]any)["type"] = map[string]any{"const": s.Type, "description": s.Summary}
			obj["title"] = s.Type
			variants = append(variants, obj)
		}
		return map[string]any{
			"type":                 "object",
			"description":          kind.String() + "s keyed by id",
			"propertyNames":        map[string]any{"pattern": "^[A-Za-z0-9_-]+$"},
			"additionalProperties": map[string]any{"oneOf": variants},
		}
	}
	return map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  "https://sluice.dev/schema/pipeline.json",
		"title":                "sluice pipeline",
		"type":                 "object",
		"additionalProperties": false,
		"properties": map[string]any{
			"name":     map[string]any{"type": "string", "description": "pipeline name (default: the file name)"},
			"settings": objectSchema(SettingsFields),
			"sources":  section(flow.KindSource),
			"stages":   section(flow.KindStage),
			"sinks":    section(flow.KindSink),
		},
	}
}

func objectSchema(fields []Field) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range fields {
		props[f.Name] = fieldSchema(f)
		if f.Required {
			required = append(required, f.Name)
		}
	}
	obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		obj["required"] = required
	}
	return obj
}

// interpolated admits "${VAR}" where a number, bool or list is expected:
// the loader substitutes before type checks.
var interpolated = map[string]any{"type": "string", "pattern": `\$\{`}

func fieldSchema(f Field) map[string]any {
	var s map[string]any
	switch f.Type {
	case String, Expr:
		s = map[string]any{"type": "string"}
		if len(f.Enum) > 0 {
			s["enum"] = f.Enum
		}
	case Int:
		s = map[string]any{"anyOf": []any{withRange(map[string]any{"type": "integer"}, f), interpolated}}
	case Float:
		s = map[string]any{"anyOf": []any{withRange(map[string]any{"type": "number"}, f), interpolated}}
	case Bool:
		s = map[string]any{"anyOf": []any{map[string]any{"type": "boolean"}, interpolated}}
	case Duration:
		s = map[string]any{"type": "string", "pattern": `^(\$\{.*\}|([0-9.]+(ns|us|µs|ms|s|m|h))+)$`}
	case Size:
		bytes := withRange(map[string]any{"type": "integer", "minimum": 0}, f)
		s = map[string]any{"anyOf": []any{bytes, map[string]any{"type": "string"}}}
	case List:
		items := fieldSchema(Field{Type: f.Elem, Fields: f.Fields})
		if f.Elem == "" {
			items = map[string]any{}
		}
		s = map[string]any{"anyOf": []any{map[string]any{"type": "array", "items": items}, interpolated}}
	case Map:
		vals := map[string]any{}
		if f.Elem != "" {
			vals = fieldSchema(Field{Type: f.Elem})
		}
		s = map[string]any{"type": "object", "additionalProperties": vals}
	case Object:
		s = objectSchema(f.Fields)
	default:
		s = map[string]any{}
	}
	if f.Doc != "" {
		s["description"] = f.Doc
	}
	if r := f.RangeText(); r != "" {
		// A duration's or a written size's range is beyond JSON Schema's
		// minimum and maximum: the description carries it for all.
		s["description"] = strings.TrimSpace(f.Doc + " (range " + r + ")")
	}
	if f.Default != nil {
		s["default"] = f.Default
	}
	if f.Example != nil {
		s["examples"] = []any{f.Example}
	}
	return s
}

// withRange adds f's bounds to the schema of a number.
func withRange(s map[string]any, f Field) map[string]any {
	if f.Min != nil {
		s["minimum"] = *f.Min
	}
	if f.Max != nil {
		s["maximum"] = *f.Max
	}
	return s
}
