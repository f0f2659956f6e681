package builtin_test

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// The JSON schema is generated from the declarations validation uses; this
// keeps the two in step for every registered component.
func TestSchemaMatchesSpecs(t *testing.T) {
	schema := registry.Schema()
	props := schema["properties"].(map[string]any)
	sections := map[flow.Kind]string{flow.KindSource: "sources", flow.KindStage: "stages", flow.KindSink: "sinks"}
	for _, s := range registry.All() {
		sec := props[sections[s.Kind]].(map[string]any)
		variants := sec["additionalProperties"].(map[string]any)["oneOf"].([]any)
		var found map[string]any
		for _, v := range variants {
			v := v.(map[string]any)
			if v["title"] == s.Type {
				found = v
			}
		}
		if found == nil {
			t.Errorf("%s %s: missing from the schema", s.Kind, s.Type)
			continue
		}
		var want, got []string
		for _, f := range append(registry.CommonFields(s.Kind), s.Fields...) {
			want = append(want, f.Name)
		}
		for k := range found["properties"].(map[string]any) {
			got = append(got, k)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s %s: schema keys %v, declared %v", s.Kind, s.Type, got, want)
		}
		if found["additionalProperties"] != false {
			t.Errorf("%s %s: schema must reject unknown keys as the loader does", s.Kind, s.Type)
		}
	}
}

// Every component and field says what it is for.
func TestSpecsAreDocumented(t *testing.T) {
	var walk func(spec string, fs []registry.Field)
	walk = func(spec string, fs []registry.Field) {
		for _, f := range fs {
			if f.Doc == "" {
				t.Errorf("%s: field %q has no Doc", spec, f.Name)
			}
			walk(spec+"."+f.Name, f.Fields)
		}
	}
	for _, s := range registry.All() {
		if s.Summary == "" {
			t.Errorf("%s %s has no Summary", s.Kind, s.Type)
		}
		walk(s.Kind.String()+" "+s.Type, s.Fields)
	}
}

// docs/components.md is generated; it must match the code.
func TestComponentDocsUpToDate(t *testing.T) {
	var b bytes.Buffer
	if err := registry.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../docs/components.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Fatal("docs/components.md is stale: run `go run ./cmd/sluice docs > docs/components.md`")
	}
}
