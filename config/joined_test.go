package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

func init() {
	registry.Register(registry.Spec{
		Kind: flow.KindStage, Type: "test_picky",
		Fields: []registry.Field{{Name: "config", Type: registry.Any}},
		Build: func(c *registry.Conf) (any, error) {
			// As a plugin refusing two of its config fields at once.
			return nil, errors.Join(
				registry.FieldErr("config.a", errors.New("a is wrong")),
				registry.FieldErr("config.b", errors.New("b is wrong")))
		},
	})
}

// Several field errors from one Build each point at their own field.
func TestJoinedFieldErrorsPointAtEachField(t *testing.T) {
	path := writeFile(t, `
sources:
  numbers: {type: test_gen}
stages:
  picky:
    type: test_picky
    inputs: [numbers]
    config:
      a: 1
      b: 2
sinks:
  out: {type: test_sink, inputs: [picky], path: out.txt}
`)
	f, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(f, nil)
	for _, want := range []string{path + ":9:10: stages.picky.config.a: a is wrong", path + ":10:10: stages.picky.config.b: b is wrong"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("errors %v lack %q", err, want)
		}
	}
}
