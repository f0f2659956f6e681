//go:build unix

package host_test

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/plugins/host"
)

// The Python SDK (plugins/python) through the real host: the same
// guarantees as for Go plugins.

// envPython names the interpreter of a virtualenv with the sluice_plugin
// package installed; scripts/deps.sh makes one in .cache/python and
// scripts/test.sh exports it.
const envPython = "SLUICE_PYTHON"

// sdkPython returns that interpreter, or skips the test (loudly) when
// there is none: python3 or the package could not be installed. Set
// explicitly and broken, it fails the test.
func sdkPython(t testing.TB) string {
	t.Helper()
	py := os.Getenv(envPython)
	explicit := py != ""
	if !explicit {
		cand, err := filepath.Abs("../../.cache/python/bin/python")
		if err == nil {
			if _, err := os.Stat(cand); err == nil {
				py = cand
			}
		}
	}
	if py == "" {
		t.Skipf("!!! PYTHON PLUGIN TEST SKIPPED: no Python with the sluice_plugin package: run scripts/deps.sh (it makes .cache/python) or set $%s", envPython)
	}
	if out, err := exec.Command(py, "-c", "import sluice_plugin").CombinedOutput(); err != nil {
		if explicit {
			t.Fatalf("$%s=%s cannot import sluice_plugin: %v\n%s", envPython, py, err, out)
		}
		t.Skipf("!!! PYTHON PLUGIN TEST SKIPPED: %s cannot import sluice_plugin (%v): run scripts/deps.sh\n%s", py, err, out)
	}
	return py
}

// pythonScript writes body as an executable script run by the SDK's
// interpreter (a virtualenv's python: it finds its packages with no
// environment variables, which a plugin does not get).
func pythonScript(t testing.TB, body string) string {
	t.Helper()
	py := sdkPython(t)
	path := filepath.Join(t.TempDir(), "plugin.py")
	if err := os.WriteFile(path, []byte("#!"+py+"\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// hostPlugin is plugins/python/tests/plugins/hostplugin.py as an executable.
func hostPlugin(t testing.TB) string { return pythonTestPlugin(t, "hostplugin") }

// pythonTestPlugin is plugins/python/tests/plugins/<name>.py as an executable.
func pythonTestPlugin(t testing.TB, name string) string {
	t.Helper()
	src, err := os.ReadFile("../python/tests/plugins/" + name + ".py")
	if err != nil {
		t.Fatal(err)
	}
	return pythonScript(t, string(src))
}

func TestPythonRoundTripInOrder(t *testing.T) {
	bin := hostPlugin(t)
	for _, mode := range []string{"process", "batch"} {
		t.Run(mode, func(t *testing.T) {
			st, _ := newStage(t, host.Config{Path: bin, Instances: 2, BatchSize: 97, Window: 3,
				Env: map[string]string{"MODE": mode}, Config: map[string]any{"suffix": "!"}})
			src := &source{n: 20000, size: 250, value: values(20000, nil)}
			out := &sink{}
			if err := run(t, st, src, out, nil); err != nil {
				t.Fatal(err)
			}
			checkInOrder(t, out, src, nil, "!")
			if src.acked.Load() != 20000 || src.failed.Load() != 0 {
				t.Fatalf("acked %d failed %d, want 20000 and 0", src.acked.Load(), src.failed.Load())
			}
			if s := st.Stats(); s.Restarts != 0 {
				t.Fatalf("restarts = %d on a healthy run", s.Restarts)
			}
		})
	}
}

func TestPythonRaisingRecordFailsAlone(t *testing.T) {
	bin := hostPlugin(t)
	for _, mode := range []string{"process", "batch"} {
		t.Run(mode, func(t *testing.T) {
			special := map[int]string{7: "bad-7", 123: "bad-123", 124: "bad-124"}
			st, _ := newStage(t, host.Config{Path: bin, BatchSize: 50, Env: map[string]string{"MODE": mode},
				Config: map[string]any{"fail_on": "bad"}})
			src := &source{n: 400, size: 40, value: values(400, special)}
			out, dlq := &sink{}, &sink{}
			if err := run(t, st, src, out, dlq); err != nil {
				t.Fatal(err)
			}
			checkInOrder(t, out, src, map[int]bool{7: true, 123: true, 124: true}, "")
			dead := dlq.records()
			if len(dead) != 3 {
				t.Fatalf("dead letters %v, want the 3 bad records", dlq.values())
			}
			for i, off := range []int64{7, 123, 124} {
				msg, _ := dead[i].Header(flow.HeaderError)
				if dead[i].Origin.Offset != off || string(msg) != "ValueError: refused: value contains bad" {
					t.Errorf("dead letter %d: offset %d error %q", i, dead[i].Origin.Offset, msg)
				}
			}
			if s := st.Stats(); s.Restarts != 0 {
				t.Errorf("restarts = %d: an exception must not restart the plugin", s.Restarts)
			}
		})
	}
}

func TestPythonKill9MidStreamLosesNothing(t *testing.T) {
	st, _ := newStage(t, host.Config{Path: hostPlugin(t), BatchSize: 100, Window: 4})
	src := &source{n: 30000, size: 100, value: values(30000, nil)}
	killed := make(chan int, 1)
	out := &sink{}
	out.hook = func(total int) {
		if total >= 5000 && len(killed) == 0 {
			pid := st.Pids()[0]
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Errorf("kill %d: %v", pid, err)
			}
			killed <- pid
		}
	}
	if err := run(t, st, src, out, nil); err != nil {
		t.Fatal(err)
	}
	if len(killed) != 1 {
		t.Fatal("the plugin was never killed")
	}
	checkInOrder(t, out, src, nil, "")
	if s := st.Stats(); s.Restarts < 1 {
		t.Fatalf("restarts = %d after a kill -9", s.Restarts)
	}
	if src.acked.Load() != 30000 {
		t.Fatalf("acked %d, want 30000", src.acked.Load())
	}
}

func TestPythonDrainAndCloseOnShutdown(t *testing.T) {
	events := filepath.Join(t.TempDir(), "events")
	st, logs := newStage(t, host.Config{Path: hostPlugin(t), Config: map[string]any{"events": events}})
	src := &source{n: 3000, size: 100, value: values(3000, nil)}
	out := &sink{}
	if err := run(t, st, src, out, nil); err != nil { // the engine calls Close
		t.Fatal(err)
	}
	pids := st.Pids()
	got, err := os.ReadFile(events)
	if err != nil || string(got) != "drain\nclose\n" {
		t.Fatalf("plugin saw %q (%v), want drain then close", got, err)
	}
	if line := logs.find("plugin drained", "records=3000", "node=plugin"); line == "" {
		t.Fatalf("no drain log with the records count in:\n%s", strings.Join(logs.lines(), "\n"))
	}
	// Python logging records keep their level and attributes.
	if logs.find("INFO lifecycle event", "event=close", "node=plugin") == "" {
		t.Errorf("no Python log line in:\n%s", strings.Join(logs.lines(), "\n"))
	}
	// go-plugin's Shutdown ended the process: no SIGKILL needed, no
	// "failed to exit gracefully".
	if logs.find("failed to exit gracefully") != "" {
		t.Errorf("the plugin did not exit on Shutdown:\n%s", strings.Join(logs.lines(), "\n"))
	}
	if logs.find("stdio service not available") != "" {
		t.Errorf("the host found no stdio service:\n%s", strings.Join(logs.lines(), "\n"))
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("plugin %d still running after Close", pid)
		}
	}
}

func TestPythonConfigErrorsPointAtFields(t *testing.T) {
	bin := hostPlugin(t)
	for _, tc := range []struct {
		config map[string]any
		field  string
		msg    string
	}{
		{map[string]any{"suffix": strings.Repeat("x", 20)}, "config.suffix", "at most 16 bytes"},
		{map[string]any{"sufix": "!"}, "config.sufix", "unknown field"},
		{map[string]any{"suffix": 3}, "config.suffix", "want a string, got an integer"},
	} {
		_, err := buildStage(t, map[string]any{"plugin": bin, "config": tc.config})
		if got := fieldErrors(err); got[tc.field] != tc.msg || len(got) != 1 {
			t.Errorf("config %v: field errors %v (err %v), want %s: %s", tc.config, got, err, tc.field, tc.msg)
		}
	}
	if _, err := buildStage(t, map[string]any{"plugin": bin, "config": map[string]any{"suffix": "ok"}}); err != nil {
		t.Fatal(err)
	}
}

// A plugin whose module is missing dies before its handshake: the error
// shows Python's own message from its stderr.
func TestPythonImportErrorIsShown(t *testing.T) {
	err := startErr(t, pythonScript(t, "import sluice_plugin\nimport no_such_module_for_sluice\n"))
	msg := err.Error()
	for _, want := range []string{"exited before its handshake: exit status 1",
		"ModuleNotFoundError: No module named 'no_such_module_for_sluice'"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestPythonProbe(t *testing.T) {
	info, err := host.Probe(context.Background(), hostPlugin(t), 20*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "hostplugin" || info.Version != "0.0.1" || info.SDK != "sluice-python-sdk" || info.ProtocolVersion != 1 {
		t.Fatalf("Probe = %+v", info)
	}
}

// BenchmarkPythonPlugin runs the benchmark of BenchmarkPlugin (generate ->
// stage -> discard, 1000-record batches, one instance) through the Go
// passthrough plugin and the Python one, with process and process_batch,
// side by side in one run (scripts/bench.sh prints the ratios):
//
//	go test ./plugins/host -run '^$' -bench PythonPlugin -benchtime 2s
func BenchmarkPythonPlugin(b *testing.B) {
	const size = 100
	b.Run("100B/go-plugin", func(b *testing.B) {
		benchStage(b, size, func(b *testing.B) flow.Stage { return benchPlugin(b) })
	})
	for _, mode := range []string{"process_batch", "process"} {
		b.Run("100B/python-"+mode, func(b *testing.B) {
			benchStage(b, size, func(b *testing.B) flow.Stage {
				bin := pythonTestPlugin(b, "passthrough") // untimed, as the start
				st, err := host.New(context.Background(), host.Config{Path: bin, Env: map[string]string{"MODE": mode},
					Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				return st
			})
		})
	}
}

// A script whose interpreter is gone (a deleted virtualenv) is refused
// naming the interpreter, not with exec's "no such file or directory" for
// the script itself.
func TestMissingInterpreterIsNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugin.py")
	if err := os.WriteFile(path, []byte("#!/nonexistent/venv/bin/python\nimport sluice_plugin\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := host.Resolve(path, nil, "")
	if err == nil || !strings.Contains(err.Error(), "names the interpreter /nonexistent/venv/bin/python on its first line, which does not exist") {
		t.Fatalf("Resolve = %v", err)
	}
	_, err = buildStage(t, map[string]any{"plugin": path})
	if got := fieldErrors(err); !strings.Contains(got["plugin"], "/nonexistent/venv/bin/python") {
		t.Fatalf("field errors %v (err %v)", got, err)
	}
}

// A Python plugin does not outlive its host: sluice's parent-death signal
// kills it, and under a bare go-plugin host (no such signal) the SDK
// notices the closed connection, runs close() and exits.
func TestPythonPluginExitsWhenHostDies(t *testing.T) {
	checkExitsWhenHostDies(t, hostPlugin(t), "Python plugin")
}
