//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sdkPython is the interpreter of a virtualenv holding the Python SDK
// (sluice_plugin), pytest and setuptools: $SLUICE_PYTHON (scripts/test.sh
// exports the one scripts/deps.sh makes), else .cache/python. Without one
// the test is skipped, loudly; set and broken, it fails.
func sdkPython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("SLUICE_PYTHON")
	explicit := py != ""
	if !explicit {
		cand := filepath.Join(pluginRepoRoot(t), ".cache", "python", "bin", "python")
		if _, err := os.Stat(cand); err == nil {
			py = cand
		}
	}
	if py == "" {
		t.Skip("!!! PYTHON SCAFFOLD TEST SKIPPED: no Python with the sluice_plugin package: run scripts/deps.sh (it makes .cache/python) or set $SLUICE_PYTHON")
	}
	if out, err := exec.Command(py, "-c", "import sluice_plugin, pytest, setuptools").CombinedOutput(); err != nil {
		if explicit {
			t.Fatalf("$SLUICE_PYTHON=%s lacks the SDK, pytest or setuptools: %v\n%s", py, err, out)
		}
		t.Skipf("!!! PYTHON SCAFFOLD TEST SKIPPED: %s lacks the SDK, pytest or setuptools (%v): run scripts/deps.sh\n%s", py, err, out)
	}
	return py
}

func runIn(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// The Python scaffold installs with pip into a virtualenv, passes its own
// tests and runs in a pipeline through the venv's console script, which
// `plugins list` shows.
func TestPluginNewPythonScaffoldInstallsAndRuns(t *testing.T) {
	py := sdkPython(t)
	t.Setenv(envSluiceSrc, "") // found from this binary's own source path
	dir := filepath.Join(t.TempDir(), "text-score")
	code, stdout, stderr := runCLI(t, "plugin", "new", "--lang", "python", "text-score", dir)
	if code != 0 {
		t.Fatalf("plugin new: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, f := range []string{"pyproject.toml", "text_score/__init__.py", "text_score/plugin.py", "tests/test_plugin.py",
		"README.md", "pipeline.yaml", ".gitignore"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("scaffold lacks %s: %v", f, err)
		}
	}
	pyproject, _ := os.ReadFile(filepath.Join(dir, "pyproject.toml"))
	sdk := filepath.Join(pluginRepoRoot(t), "plugins", "python")
	if !strings.Contains(string(pyproject), `"sluice-plugin @ file://`+sdk+`"`) ||
		!strings.Contains(string(pyproject), `text-score = "text_score.plugin:main"`) {
		t.Fatalf("pyproject.toml:\n%s", pyproject)
	}

	// A fresh virtualenv. It sees the SDK's virtualenv's packages (grpcio,
	// protobuf, the SDK, pytest) through a .pth file so that the test needs
	// no network; the scaffold itself is pip-installed as a user would.
	venv := filepath.Join(t.TempDir(), "venv")
	runIn(t, dir, py, "-m", "venv", "--without-pip", venv)
	site := strings.TrimSpace(runIn(t, dir, py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"))
	newSite := strings.TrimSpace(runIn(t, dir, filepath.Join(venv, "bin", "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"))
	// addsitedir, not a bare path: the SDK is installed editable there,
	// through a .pth file of its own.
	pth := fmt.Sprintf("import site; site.addsitedir(%q)\n", site)
	if err := os.WriteFile(filepath.Join(newSite, "sdk-venv.pth"), []byte(pth), 0o644); err != nil {
		t.Fatal(err)
	}
	runIn(t, dir, filepath.Join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
		"--disable-pip-version-check", ".")
	script := filepath.Join(venv, "bin", "text-score")
	head, err := os.ReadFile(script)
	if err != nil || !strings.HasPrefix(string(head), "#!"+filepath.Join(venv, "bin", "python")) {
		t.Fatalf("console script %s: %v\n%.200s", script, err, head)
	}

	if out := runIn(t, dir, filepath.Join(venv, "bin", "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"); !strings.Contains(out, "3 passed") {
		t.Fatalf("the scaffold's own tests:\n%s", out)
	}

	plugins := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(script, filepath.Join(plugins, "text-score")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	code, _, stderr = runCLI(t, "run", "--progress", "never", "--plugins-dir", plugins, "pipeline.yaml")
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	got, err := os.ReadFile(filepath.Join(dir, "out.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range 10 {
		fmt.Fprintf(&want, "{\"seq\":%d,\"tag\":\"hello\"}\n", i)
	}
	if string(got) != want.String() {
		t.Fatalf("out.jsonl:\n%s\nwant:\n%s", got, want.String())
	}
	if rejects, _ := os.ReadFile(filepath.Join(dir, "rejects.jsonl")); len(rejects) != 0 {
		t.Fatalf("rejects.jsonl: %s", rejects)
	}

	code, stdout, _ = runCLI(t, "plugins", "list", "--plugins-dir", plugins)
	if code != 0 || !regexp.MustCompile(`(?m)^text-score +0\.1\.0 +1 +\S+/text-score$`).MatchString(stdout) {
		t.Fatalf("plugins list: exit %d\n%s", code, stdout)
	}
}

func TestPluginNewPythonRefusals(t *testing.T) {
	existing := t.TempDir()
	if err := os.WriteFile(filepath.Join(existing, "pyproject.toml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plugin", "new", "--lang", "python", "has space", t.TempDir()}, "is not a Python project name"},
		{[]string{"plugin", "new", "--lang", "python", "9lives", t.TempDir()}, "is not a Python project name"},
		{[]string{"plugin", "new", "--lang", "python", "ok", existing}, "pyproject.toml already exists"},
		{[]string{"plugin", "new", "--lang", "rust", "ok", t.TempDir()}, `--lang "rust": want go or python`},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(existing, "pyproject.toml")); string(got) != "x" {
		t.Errorf("an existing file was changed: %q", got)
	}
}
