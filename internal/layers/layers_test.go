// Package layers holds the test that keeps the import graph one-way:
//
//	cmd → builtin (composition root) → components (connectors, stages,
//	plugins, expr, adapters) → registry, config, ops → flow (stdlib only)
//
// A cycle-free build is not enough: an upward import compiles fine and
// quietly makes the engine depend on what it should not know.
package layers

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sluicedev/sluice"

type pkg struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

// listPackages returns every non-test package of the module with its
// direct imports.
func listPackages(t *testing.T) map[string]pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = p
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func under(path string, roots ...string) bool {
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, r+"/") {
			return true
		}
	}
	return false
}

func TestImportsGoOneWay(t *testing.T) {
	pkgs := listPackages(t)
	components := []string{"connectors", "stages", "plugins", "expr", "adapters"}
	services := []string{"registry", "config", "ops", "pipelinetest"}
	for path, p := range pkgs {
		for _, imp := range p.Imports {
			local, ours := strings.CutPrefix(imp, module+"/")
			switch {
			case under(path, "flow"):
				// The engine: standard library only, so it can be read,
				// embedded and tested alone.
				if strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
					t.Errorf("%s imports %s: flow/ is the engine and imports only the standard library", path, imp)
				}
			case !ours:
			case under(local, "cmd"):
				t.Errorf("%s imports %s: nothing imports a command", path, imp)
			case under(local, "builtin") && !under(path, "cmd", "e2e", "examples", "builtin"):
				t.Errorf("%s imports %s: only commands compile every component in", path, imp)
			case under(path, "connectors") && under(local, "stages"):
				t.Errorf("%s imports %s: a connector imports no stage package (shared code lives in its own package, e.g. expr)", path, imp)
			case under(path, services...) && under(local, components...):
				t.Errorf("%s imports %s: registry, config, ops and pipelinetest do not know any component", path, imp)
			case under(path, "registry") && under(local, "config", "ops", "pipelinetest"):
				t.Errorf("%s imports %s: the registry sits below config and ops", path, imp)
			case under(path, "state") && !under(local, "flow"):
				t.Errorf("%s imports %s: state is the contract between stateful stages and sources, on the engine alone", path, imp)
			}
		}
	}
}
