package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// pluginRepoRoot is the sluice source tree these tests run in.
func pluginRepoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// pluginGo runs the go command in dir; GOFLAGS gains -mod=mod so a
// scaffold whose requirements are incomplete still builds from the module
// cache and the proxy.
func pluginGo(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=mod"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	code = execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// The scaffold is a module that builds, passes its own tests and runs in
// a pipeline.
func TestPluginNewScaffoldBuildsAndRuns(t *testing.T) {
	t.Setenv(envSluiceSrc, "") // found from this binary's own source path
	dir := filepath.Join(t.TempDir(), "hello")
	code, stdout, stderr := runCLI(t, "plugin", "new", "example.com/hello", dir)
	if code != 0 {
		t.Fatalf("plugin new: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, f := range []string{"go.mod", "go.sum", "main.go", "plugin.go", "plugin_test.go", "README.md", "pipeline.yaml", ".gitignore"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("scaffold lacks %s: %v", f, err)
		}
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.HasPrefix(string(gomod), "module example.com/hello\n") ||
		!strings.Contains(string(gomod), "\nreplace github.com/sluicedev/sluice => "+pluginRepoRoot(t)+"\n") {
		t.Fatalf("go.mod:\n%s", gomod)
	}
	main, _ := os.ReadFile(filepath.Join(dir, "main.go"))
	if n := bytes.Count(main, []byte("\n")); n >= 15 {
		t.Errorf("main.go has %d lines, want under 15", n)
	}

	if out := pluginGo(t, dir, "test", "-count=1", "./..."); !strings.Contains(out, "ok  \texample.com/hello") {
		t.Fatalf("the scaffold's own tests:\n%s", out)
	}
	plugins := filepath.Join(t.TempDir(), "plugins")
	pluginGo(t, dir, "build", "-o", filepath.Join(plugins, "hello"), ".")

	code, _, stderr = runCLI(t, "run", "--progress", "never", "--plugins-dir", plugins, filepath.Join(dir, "pipeline.yaml"))
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
	if code != 0 || !regexp.MustCompile(`(?m)^hello +0\.1\.0 +1 +\S+/hello$`).MatchString(stdout) {
		t.Fatalf("plugins list: exit %d\n%s", code, stdout)
	}
}

func TestPluginNewRefusals(t *testing.T) {
	existing := t.TempDir()
	if err := os.WriteFile(filepath.Join(existing, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notSluice := t.TempDir()
	if err := os.WriteFile(filepath.Join(notSluice, "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"plugin", "new"}, "takes NAME and an optional DIR"},
		{[]string{"plugin", "new", "a", "b", "c"}, "takes NAME and an optional DIR"},
		{[]string{"plugin", "new", "has space", t.TempDir()}, "is not a Go module path"},
		{[]string{"plugin", "new", "example.com/../x", t.TempDir()}, "is not a Go module path"},
		{[]string{"plugin", "new", "example.com/-x", t.TempDir()}, "cannot start a binary name"},
		{[]string{"plugin", "new", "ok", existing}, "main.go already exists"},
		{[]string{"plugin", "new", "--sluice-src", notSluice, "ok", t.TempDir()}, `holds module "example.com/other"`},
		{[]string{"plugin", "new", "--sluice-src", t.TempDir(), "ok", t.TempDir()}, "is not a sluice source tree"},
		{[]string{"plugin", "nwe"}, "unknown command"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(existing, "main.go")); string(got) != "package main\n" {
		t.Errorf("an existing file was changed: %q", got)
	}
}

// Without a sluice source the replace is left for the user, and said so.
func TestPluginNewGoModWithoutSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "go.mod")
	data := scaffoldData{Module: "x", Name: "x", GoVersion: "1.26.0", SluiceModule: sluiceModule,
		SluiceVersion: unpublishedVersion, NeedReplace: true}
	if err := writeTemplate(path, "go.mod.tmpl", data); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "module x\n\ngo 1.26.0\n\nrequire github.com/sluicedev/sluice v0.0.0-00010101000000-000000000000\n\n" +
		"// sluice is not published: point this at a checkout of its source, e.g.\n" +
		"// replace github.com/sluicedev/sluice => /path/to/sluice\n" +
		"// (sluice plugin new found none: pass --sluice-src or set SLUICE_SRC).\n"
	if string(got) != want {
		t.Fatalf("go.mod:\n%s\nwant:\n%s", got, want)
	}
}

func TestGoDirective(t *testing.T) {
	for in, want := range map[string]string{"go1.26.8": "1.26.0", "go1.27rc1": "1.27.0", "devel": "1.26.0"} {
		if got := goDirective(in); got != want {
			t.Errorf("goDirective(%q) = %q, want %q", in, got, want)
		}
	}
}

// list shows plugins with their version and protocol, and other files
// with the reason they are not plugins, exiting 0.
func TestPluginsList(t *testing.T) {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "pt"), "./plugins/testdata/passthrough")
	build.Dir = pluginRepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building a plugin: %v\n%s", err, out)
	}
	files := map[string]string{"hello.sh": "#!/bin/sh\necho hello\n", "silent.sh": "#!/bin/sh\nexit 0\n"}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "plugin", "list", "--plugins-dir", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	want := []string{
		`^PLUGIN +VERSION +PROTOCOL +PATH +NOTE$`,
		`^hello\.sh +- +- +\S+/hello\.sh +not a sluice plugin: Unrecognized remote plugin message: hello$`,
		`^notes\.txt +- +- +\S+/notes\.txt +not a sluice plugin: not executable$`,
		`^pt +1\.0\.0 +1 +\S+/pt +calls itself "passthrough"$`,
		`^silent\.sh +- +- +\S+/silent\.sh +not a sluice plugin: it printed no handshake line$`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want %s", i, lines[i], re)
		}
	}

	code, _, stderr = runCLI(t, "plugins", "list", "--plugins-dir", filepath.Join(dir, "missing"))
	if code != exitUsage || !strings.Contains(stderr, "missing") {
		t.Errorf("a missing --plugins-dir: exit %d, %q", code, stderr)
	}
	empty := t.TempDir()
	code, stdout, _ = runCLI(t, "plugins", "list", "--plugins-dir", empty)
	if code != 0 || stdout != "no plugins found in "+empty+"\n" {
		t.Errorf("an empty dir: exit %d, %q", code, stdout)
	}
}
