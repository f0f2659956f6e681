package main

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicedev/sluice/plugins/host"
)

// sluiceModule is the module a scaffolded plugin requires.
const sluiceModule = "github.com/sluicedev/sluice"

// envSluiceSrc names a sluice source tree for `plugin new`.
const envSluiceSrc = "SLUICE_SRC"

// unpublishedVersion is the version required of a module that a replace
// directive supplies (the go command's own placeholder).
const unpublishedVersion = "v0.0.0-00010101000000-000000000000"

//go:embed scaffold/*.tmpl scaffold/python/*.tmpl
var scaffoldFS embed.FS

func newPluginCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "plugin",
		Aliases: []string{"plugins"},
		Short:   "Create plugins and list the installed ones",
		Long: `A plugin is a pipeline stage running in its own process (type: plugin).
'sluice plugin new' scaffolds one in Go or Python; 'sluice plugins list' shows those in
the plugin directories. docs/plugins.md has the guide.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q; run '%s --help'", args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newPluginNewCmd(), newPluginListCmd())
	return cmd
}

func newPluginNewCmd() *cobra.Command {
	var src, lang string
	cmd := &cobra.Command{
		Use:   "new NAME [DIR]",
		Short: "Scaffold a plugin project (Go or Python): the plugin, a test, a README and a demo pipeline",
		Long: `new writes a Go module for a plugin named after NAME's last element into
DIR (default ./<that name>): go.mod (module NAME), main.go, plugin.go with the
per-record function, plugin_test.go using sdktest, README.md and
pipeline.yaml. Existing files are never overwritten.

sluice is not a published module, so go.mod gets a replace directive pointing
at a sluice source tree: --sluice-src, else $SLUICE_SRC, else the tree this
sluice binary was built from if it is still there. Without one the replace is
left commented out for you to fill in.

With --lang python it writes a Python project instead: pyproject.toml (a
console script NAME, the executable sluice starts), <module>/plugin.py with
the per-record function and a config dataclass, tests/test_plugin.py using
sluice_plugin.testing, README.md and pipeline.yaml. The SDK (sluice-plugin)
is not on PyPI: pyproject.toml requires it from the sluice source tree found
as above (<tree>/plugins/python).`,
		Example: `  sluice plugin new enrich
  sluice plugin new github.com/acme/geoip ./geoip --sluice-src ~/src/sluice
  sluice plugin new --lang python sentiment`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageErrorf("plugin new takes NAME and an optional DIR, got %d arguments; usage: %s", len(args), cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := ""
			if len(args) == 2 {
				dir = args[1]
			}
			switch lang {
			case "go":
				return scaffoldPlugin(args[0], dir, src, os.Getenv, cmd.OutOrStdout())
			case "python":
				return scaffoldPython(args[0], dir, src, os.Getenv, cmd.OutOrStdout())
			}
			return usageErrorf("--lang %q: want go or python", lang)
		},
	}
	cmd.Flags().StringVar(&src, "sluice-src", "", "sluice source tree for go.mod's replace directive or the Python SDK's location (default $"+envSluiceSrc+", else the tree this binary was built from)")
	cmd.Flags().StringVar(&lang, "lang", "go", "language of the plugin: go or python")
	return cmd
}

// modulePathRe is a conservative module path: slash-separated elements of
// letters, digits and . _ ~ -.
var modulePathRe = regexp.MustCompile(`^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$`)

// scaffoldData fills the templates.
type scaffoldData struct {
	Module, Name  string
	GoVersion     string
	SluiceModule  string
	SluiceVersion string
	SluiceSrc     string   // absolute; "" when none was found
	NeedReplace   bool     // no published version to require either
	Requires      []string // "path version" of sluice's dependencies
}

// scaffoldFiles maps each template to the file it becomes.
var scaffoldFiles = []struct{ tmpl, file string }{
	{"go.mod.tmpl", "go.mod"},
	{"main.go.tmpl", "main.go"},
	{"plugin.go.tmpl", "plugin.go"},
	{"plugin_test.go.tmpl", "plugin_test.go"},
	{"README.md.tmpl", "README.md"},
	{"pipeline.yaml.tmpl", "pipeline.yaml"},
	{"gitignore.tmpl", ".gitignore"},
}

func scaffoldPlugin(module, dir, srcFlag string, getenv func(string) string, out io.Writer) error {
	name := module[strings.LastIndex(module, "/")+1:]
	switch {
	case !modulePathRe.MatchString(module) || strings.Contains(module, ".."):
		return usageErrorf("plugin name %q is not a Go module path (letters, digits, . _ ~ - and /, like enrich or github.com/acme/enrich)", module)
	case strings.HasPrefix(name, ".") || strings.HasPrefix(name, "-"):
		return usageErrorf("plugin name %q: %q cannot start a binary name", module, name)
	}
	if dir == "" {
		dir = name
	}
	data := scaffoldData{Module: module, Name: name, GoVersion: goDirective(runtime.Version()),
		SluiceModule: sluiceModule, SluiceVersion: unpublishedVersion}
	src, how, err := findSluiceSource(srcFlag, getenv)
	if err != nil {
		return err
	}
	var goSum []byte
	switch {
	case src != "":
		data.SluiceSrc = src
		if data.Requires, goSum, err = sluiceDeps(src); err != nil {
			return err
		}
	case publishedVersion() != "":
		data.SluiceVersion = publishedVersion()
	default:
		data.NeedReplace = true
	}

	for _, f := range scaffoldFiles {
		if _, err := os.Lstat(filepath.Join(dir, f.file)); err == nil {
			return usageErrorf("%s already exists: plugin new does not overwrite files; pick another DIR", filepath.Join(dir, f.file))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range scaffoldFiles {
		if err := writeTemplate(filepath.Join(dir, f.file), f.tmpl, data); err != nil {
			return err
		}
	}
	if goSum != nil {
		if err := os.WriteFile(filepath.Join(dir, "go.sum"), goSum, 0o644); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "created plugin %s in %s (module %s)\n", name, dir, module)
	switch {
	case src != "":
		fmt.Fprintf(out, "go.mod builds against the sluice source in %s (%s)\n", src, how)
	case !data.NeedReplace:
		fmt.Fprintf(out, "go.mod requires %s %s\n", sluiceModule, data.SluiceVersion)
	default:
		fmt.Fprintf(out, "warning: no sluice source found (%s); edit the commented replace line in %s before building (see its README.md)\n",
			how, filepath.Join(dir, "go.mod"))
	}
	fmt.Fprintf(out, "next:\n  cd %s\n  go test ./...\n  go build -o plugins.d/%s .\n  sluice run --plugins-dir plugins.d pipeline.yaml\n", dir, name)
	return nil
}

// pythonNameRe is a Python distribution name that is also a usable
// console-script (executable) name.
var pythonNameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]*$`)

// pythonScaffoldData fills the Python templates.
type pythonScaffoldData struct {
	Name    string // distribution and executable name
	Module  string // the import package
	SDKPath string // absolute plugins/python of a sluice tree; "" when none was found
}

// pythonScaffoldFiles maps each Python template to the file it becomes
// ("MODULE" is replaced by the package name).
var pythonScaffoldFiles = []struct{ tmpl, file string }{
	{"python/pyproject.toml.tmpl", "pyproject.toml"},
	{"python/init.py.tmpl", "MODULE/__init__.py"},
	{"python/plugin.py.tmpl", "MODULE/plugin.py"},
	{"python/test_plugin.py.tmpl", "tests/test_plugin.py"},
	{"python/README.md.tmpl", "README.md"},
	{"python/pipeline.yaml.tmpl", "pipeline.yaml"},
	{"python/gitignore.tmpl", ".gitignore"},
}

// scaffoldPython writes a Python plugin project for name into dir.
func scaffoldPython(name, dir, srcFlag string, getenv func(string) string, out io.Writer) error {
	if !pythonNameRe.MatchString(name) {
		return usageErrorf("plugin name %q is not a Python project name (a letter, then letters, digits, . _ -; like sentiment or geo-ip)", name)
	}
	module := strings.ToLower(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	if dir == "" {
		dir = name
	}
	data := pythonScaffoldData{Name: name, Module: module}
	src, how, err := findSluiceSource(srcFlag, getenv)
	if err != nil {
		return err
	}
	if src != "" {
		sdk := filepath.Join(src, "plugins", "python")
		if _, err := os.Stat(filepath.Join(sdk, "pyproject.toml")); err != nil {
			return usageErrorf("the sluice tree %s has no Python SDK (plugins/python/pyproject.toml): %v", src, err)
		}
		data.SDKPath = sdk
	}
	files := make([]string, len(pythonScaffoldFiles))
	for i, f := range pythonScaffoldFiles {
		files[i] = filepath.Join(dir, filepath.FromSlash(strings.ReplaceAll(f.file, "MODULE", module)))
		if _, err := os.Lstat(files[i]); err == nil {
			return usageErrorf("%s already exists: plugin new does not overwrite files; pick another DIR", files[i])
		}
	}
	for i, f := range pythonScaffoldFiles {
		if err := os.MkdirAll(filepath.Dir(files[i]), 0o755); err != nil {
			return err
		}
		if err := writeTemplate(files[i], f.tmpl, data); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "created Python plugin %s in %s (package %s)\n", name, dir, module)
	if src != "" {
		fmt.Fprintf(out, "pyproject.toml installs the sluice SDK from %s (%s)\n", data.SDKPath, how)
	} else {
		fmt.Fprintf(out, "warning: no sluice source found (%s); point the sluice-plugin dependency in %s at a checkout (see its README.md)\n",
			how, filepath.Join(dir, "pyproject.toml"))
	}
	fmt.Fprintf(out, "next:\n  cd %s\n  python3 -m venv .venv\n  .venv/bin/pip install -e '.[test]'\n  .venv/bin/python -m pytest\n"+
		"  mkdir -p plugins.d && ln -sf \"$PWD/.venv/bin/%s\" plugins.d/%s\n  sluice run --plugins-dir plugins.d pipeline.yaml\n", dir, name, name)
	return nil
}

func writeTemplate(path, name string, data any) error {
	t, err := template.ParseFS(scaffoldFS, "scaffold/"+name)
	if err != nil {
		return err // the embedded templates are part of the binary: a bug
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("rendering %s: %w", name, err)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// goDirective turns the toolchain's version (go1.26.8) into a go.mod go
// line no newer than what built sluice (1.26.0).
func goDirective(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "go"), ".", 3)
	if len(parts) < 2 {
		return "1.26.0"
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i] // go1.27rc1
	}
	return parts[0] + "." + minor + ".0"
}

// findSluiceSource returns the absolute sluice source tree to build
// against and how it was found, or "" and why none was.
func findSluiceSource(flag string, getenv func(string) string) (dir, how string, err error) {
	if flag != "" {
		dir, err := checkSluiceSource(flag)
		if err != nil {
			return "", "", usageErrorf("--sluice-src: %v", err)
		}
		return dir, "--sluice-src", nil
	}
	if env := getenv(envSluiceSrc); env != "" {
		dir, err := checkSluiceSource(env)
		if err != nil {
			return "", "", usageErrorf("$%s: %v", envSluiceSrc, err)
		}
		return dir, "$" + envSluiceSrc, nil
	}
	// The compiler records this file's path; unless the binary was built
	// with -trimpath it leads back to the source tree.
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", "no --sluice-src, no $" + envSluiceSrc + ", and this binary does not record its source path", nil
	}
	for d := filepath.Dir(file); ; d = filepath.Dir(d) {
		if mod, _ := moduleOf(d); mod == sluiceModule {
			return d, "the tree this binary was built from", nil
		}
		if filepath.Dir(d) == d {
			return "", "no --sluice-src, no $" + envSluiceSrc + ", and the tree this binary was built from is gone", nil
		}
	}
}

func checkSluiceSource(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	mod, err := moduleOf(abs)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s is not a sluice source tree: %w", abs, err)
	case mod != sluiceModule:
		return "", fmt.Errorf("%s holds module %q, not %s", abs, mod, sluiceModule)
	}
	return abs, nil
}

// moduleOf reads the module path from dir/go.mod.
func moduleOf(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("go.mod has no module line")
}

// sluiceDeps returns the requirements of the sluice module in src and its
// go.sum, which a plugin building against it needs too: with them the
// first build works without the network.
func sluiceDeps(src string) (requires []string, goSum []byte, err error) {
	mod, err := os.ReadFile(filepath.Join(src, "go.mod"))
	if err != nil {
		return nil, nil, err
	}
	inBlock := false
	for line := range strings.Lines(string(mod)) {
		line = strings.TrimSpace(line)
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "require (":
			inBlock = true
		case inBlock && line == ")":
			inBlock = false
		case inBlock && line != "":
			requires = append(requires, line)
		case strings.HasPrefix(line, "require "):
			requires = append(requires, strings.TrimSpace(strings.TrimPrefix(line, "require ")))
		}
	}
	goSum, err = os.ReadFile(filepath.Join(src, "go.sum"))
	if errors.Is(err, fs.ErrNotExist) {
		return requires, nil, nil
	}
	return requires, goSum, err
}

// publishedVersion is this binary's sluice module version when it was
// built from a published release (go install ...@vX.Y.Z), else "".
func publishedVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok || info.Main.Path != sluiceModule || info.Main.Version == "" || info.Main.Version == "(devel)" {
		return ""
	}
	return info.Main.Version
}

func newPluginListCmd() *cobra.Command {
	var dirs string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the plugins in the plugin directories with their name, version and protocol",
		Long: `list starts every executable in the plugin directories (--plugins-dir,
else $SLUICE_PLUGIN_DIR, else ./plugins.d; a list separated by ':') the way a
pipeline would, with an empty environment, asks it for its name, version and
protocol version, and stops it. An executable that is not a sluice plugin is
listed with the reason; that is not an error.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return listPlugins(cmd.Context(), filepath.SplitList(pluginsDir(dirs, os.Getenv)), dirs != "", timeout, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&dirs, "plugins-dir", "", "directory of plugin binaries (default $SLUICE_PLUGIN_DIR, else ./plugins.d)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long each executable may take to start and answer")
	return cmd
}

// pluginEntry is one file of a plugin directory.
type pluginEntry struct {
	file, path string
	info       host.Info
	err        error
}

func listPlugins(ctx context.Context, dirs []string, explicit bool, timeout time.Duration, out io.Writer) error {
	var entries []pluginEntry
	for _, dir := range dirs {
		des, err := os.ReadDir(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist) && !explicit:
			fmt.Fprintf(out, "no plugin directory %s\n", dir)
			continue
		case err != nil:
			return usageErrorf("plugin directory: %v", err)
		}
		for _, de := range des {
			path := filepath.Join(dir, de.Name())
			st, err := os.Stat(path) // follows symlinks, as starting it would
			if err != nil || st.IsDir() {
				continue
			}
			if abs, err := filepath.Abs(path); err == nil {
				path = abs
			}
			e := pluginEntry{file: de.Name(), path: path}
			if st.Mode().Perm()&0o111 == 0 {
				e.err = errors.New("not executable")
			} else {
				e.info, e.err = host.Probe(ctx, path, timeout, slog.New(slog.DiscardHandler))
			}
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		fmt.Fprintf(out, "no plugins found in %s\n", strings.Join(dirs, ", "))
		return nil
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].file < entries[j].file })
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tVERSION\tPROTOCOL\tPATH\tNOTE")
	for _, e := range entries {
		if e.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\tnot a sluice plugin: %s\n", e.file, e.path, probeReason(e.err, e.path))
			continue
		}
		note := ""
		if e.info.Name != e.file {
			note = fmt.Sprintf("calls itself %q", e.info.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", e.file, orDash(e.info.Version), e.info.ProtocolVersion, e.path, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(out, strings.TrimRight(line, " \n")) // an empty NOTE leaves padding
	}
	return nil
}

// probeReason is the first line of a failed probe's error, without the
// path the listing shows anyway.
func probeReason(err error, path string) string {
	s, _, _ := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	s = strings.TrimSpace(s)
	for _, prefix := range []string{"starting plugin " + path + ": ", "plugin " + path + ": "} {
		s = strings.TrimPrefix(s, prefix)
	}
	if s == "Unrecognized remote plugin message:" { // go-plugin read an empty line
		return "it printed no handshake line"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
