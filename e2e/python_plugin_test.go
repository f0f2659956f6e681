package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Python plugins (plugins/python) in real pipelines, through the real
// broker: the same guarantees as Go plugins.

// pythonE2EPlugin is a Python plugin: it tags every JSON value with
// "by":"python", raises on every poison_every-th seq (seq % poison_every
// == 7), which fails that record alone, and hangs on seq hang_on.
const pythonE2EPlugin = `
import dataclasses
import json
import time

from sluice_plugin import FieldError, Plugin, serve


@dataclasses.dataclass
class Config:
    poison_every: int = 1000
    hang_on: int = -1

    def validate(self):
        if self.poison_every < 10:
            raise FieldError("poison_every", "must be >= 10")


def process(record):
    v = json.loads(record.value)
    if v["seq"] == plugin.config.hang_on:
        time.sleep(3600)
    if v["seq"] % plugin.config.poison_every == 7:
        raise ValueError(f"poison seq {v['seq']}")
    v["by"] = "python"
    record.value = json.dumps(v, separators=(",", ":")).encode()
    return [record]


plugin = Plugin("py-e2e", "1.0.0", process=process, config=Config)
serve(plugin)
`

// pythonPlugin writes the plugin as an executable script whose first line
// is the SDK's interpreter: a virtualenv's python, which finds the
// sluice_plugin package with no environment (a plugin gets none). That is
// $SLUICE_PYTHON (scripts/test.sh exports the one scripts/deps.sh makes),
// else the repo's .cache/python. Without one the test is skipped, loudly.
func pythonPlugin(t *testing.T, dir string) string {
	t.Helper()
	py := os.Getenv("SLUICE_PYTHON")
	explicit := py != ""
	if !explicit {
		if cand := filepath.Join(repoDir, ".cache", "python", "bin", "python"); fileExists(cand) {
			py = cand
		}
	}
	if py == "" {
		t.Skip("!!! PYTHON PLUGIN E2E SKIPPED: no Python with the sluice_plugin package: run scripts/deps.sh (it makes .cache/python) or set $SLUICE_PYTHON")
	}
	if out, err := exec.Command(py, "-c", "import sluice_plugin").CombinedOutput(); err != nil {
		if explicit {
			t.Fatalf("$SLUICE_PYTHON=%s cannot import sluice_plugin: %v\n%s", py, err, out)
		}
		t.Skipf("!!! PYTHON PLUGIN E2E SKIPPED: %s cannot import sluice_plugin (%v): run scripts/deps.sh", py, err)
	}
	path := filepath.Join(dir, "py-e2e")
	if err := os.WriteFile(path, []byte("#!"+py+"\n"+pythonE2EPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// kcatValues reads a whole topic: each record's headers (kcat's
// "k=v,k2=v2") and value.
func kcatValues(t *testing.T, broker, topic string) (headers, values []string) {
	t.Helper()
	out, err := exec.Command("kcat", "-F", "/dev/null", "-b", broker, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
		"-f", "%h\t%s\n").Output()
	if err != nil {
		t.Fatalf("kcat reading %s: %v", topic, err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		h, v, _ := strings.Cut(line, "\t")
		headers, values = append(headers, h), append(values, v)
	}
	return headers, values
}

// Kafka -> Python plugin -> Kafka while the Python process is killed with
// SIGKILL ten times: every record reaches the output topic exactly once,
// the records that raise are dead-lettered (to a topic, with the error
// header) and only those, and SIGTERM then drains: exit 0.
func TestPythonPluginKafkaSurvivesKill9AndDeadLetters(t *testing.T) {
	broker := kafkaBroker(t)
	dir := t.TempDir()
	plugin := pythonPlugin(t, dir)
	const n, kills = 200000, 10
	in, out, dlq := kafkaName(t, "in"), kafkaName(t, "out"), kafkaName(t, "dlq")
	for _, topic := range []string{in, out, dlq} {
		createTopic(t, broker, topic, 1)
	}
	cfg := writeFile(t, dir, "p.yaml", `
name: python-plugin-kafka
settings: {http: {listen: ""}, drain_timeout: 30s}
sources:
  gen: {type: generate, count: `+strconv.Itoa(n)+`, rate: 10000, key: "k-{seq}", template: {t: x}}
  in:
    type: kafka
    brokers: ["`+broker+`"]
    topics: ["`+in+`"]
    group: "`+kafkaName(t, "g")+`"
    max_wait: 100ms
    commit_interval: 200ms
stages:
  py:
    type: plugin
    inputs: [in]
    plugin: `+plugin+`
    timeout: 10s
    config: {poison_every: 1000}
    on_error: {action: dead_letter, dead_letter: rejects}
sinks:
  produce: {type: kafka, inputs: [gen], brokers: ["`+broker+`"], topic: "`+in+`"}
  out: {type: kafka, inputs: [py], brokers: ["`+broker+`"], topic: "`+out+`"}
  rejects: {type: kafka, brokers: ["`+broker+`"], topic: "`+dlq+`"}
`)
	cl := kafkaClient(t, broker)
	began := time.Now()
	// Debug logs say when a plugin process is started and configured: a
	// kill must not land in the middle of the interpreter's start (that
	// would be a failed start, not the crash of a running plugin).
	p := start(t, nil, "run", "--progress", "never", "--log-level", "debug", cfg)
	sluicePid := p.cmd.Process.Pid
	killed := map[int]bool{}
	for k := range kills {
		var pid int
		waitRunning(t, 60*time.Second, "a new Python plugin process, started and configured", func() bool {
			for _, c := range pluginChildren(sluicePid) {
				if !killed[c] && strings.Contains(p.stderr.String(), `msg="plugin started"`) &&
					regexp.MustCompile(`msg="plugin started".* pid=`+strconv.Itoa(c)+` `).MatchString(p.stderr.String()) {
					pid = c
					return true
				}
			}
			return false
		}, p)
		// More than a window's worth through the new process first, so no
		// record is in flight alone for two kills (that would make it the
		// culprit and dead-letter it).
		from := written(cl, out)
		waitRunning(t, 60*time.Second, "records through the new process", func() bool { return written(cl, out) >= from+5000 }, p)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d (kill %d of %d): %v", pid, k+1, kills, err)
		}
		killed[pid] = true
	}
	const poisoned = n / 1000
	waitRunning(t, 120*time.Second, fmt.Sprintf("%d records in the output and dead-letter topics", n), func() bool {
		return written(cl, out)+written(cl, dlq) >= n
	}, p)
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, p.stderr.String())
	}

	_, values := kcatValues(t, broker, out)
	seen := make([]int, n)
	for _, v := range values {
		var rec struct {
			Seq int    `json:"seq"`
			By  string `json:"by"`
		}
		if err := json.Unmarshal([]byte(v), &rec); err != nil || rec.By != "python" || rec.Seq < 0 || rec.Seq >= n {
			t.Fatalf("output record %q is not one of the plugin's", v)
		}
		seen[rec.Seq]++
	}
	for i, c := range seen {
		want := 1
		if i%1000 == 7 {
			want = 0
		}
		if c != want {
			t.Fatalf("seq %d is in the output %d times, want %d", i, c, want)
		}
	}
	headers, dead := kcatValues(t, broker, dlq)
	if len(dead) != poisoned {
		t.Fatalf("%d dead letters, want %d", len(dead), poisoned)
	}
	for i, v := range dead {
		var rec struct{ Seq int }
		if err := json.Unmarshal([]byte(v), &rec); err != nil || rec.Seq%1000 != 7 {
			t.Fatalf("dead letter %q is not a poison record", v)
		}
		if want := fmt.Sprintf("sluice.error=ValueError: poison seq %d", rec.Seq); !strings.Contains(headers[i], want) {
			t.Fatalf("dead letter %d headers %q, want %q", i, headers[i], want)
		}
	}
	restarts := pluginRestartRe.FindAllStringSubmatch(p.stderr.String(), -1)
	if len(restarts) != kills {
		t.Fatalf("%d restarts logged, want %d:\n%s", len(restarts), kills, p.stderr.String())
	}
	t.Logf("%d records, %d kills of the Python process, %d dead letters, done in %s",
		n, kills, poisoned, time.Since(began).Round(time.Millisecond))
}

// A config error of a Python plugin: `sluice validate` exits 2 naming
// config.<field> at its line:col, as for Go plugins.
func TestPythonPluginConfigErrorAtField(t *testing.T) {
	dir := t.TempDir()
	plugin := pythonPlugin(t, dir)
	for _, c := range []struct{ config, want string }{
		{"{poison_every: 3}", "p.yaml:8:28: stages.py.config.poison_every: must be >= 10"},
		{"{poison_evry: 3}", "p.yaml:8:27: stages.py.config.poison_evry: unknown field"},
		{`{poison_every: "x"}`, "p.yaml:8:28: stages.py.config.poison_every: want an integer, got a string"},
	} {
		cfg := writeFile(t, dir, "p.yaml", `name: bad
sources:
  gen: {type: generate, count: 1}
stages:
  py:
    type: plugin
    inputs: [gen]
    config: `+c.config+`
    plugin: `+plugin+`
sinks:
  out: {type: discard, inputs: [py]}
`)
		code, stdout, stderr := run(t, 60*time.Second, nil, "validate", cfg)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("config %s: exit %d, want 2 and %q:\n%s%s", c.config, code, c.want, stdout, stderr)
		}
	}
}

// A Python plugin hanging on one record: the process is killed after the
// node's timeout and restarted, the record is narrowed down and
// dead-lettered alone (beside one that raises), everything else is written
// in order.
func TestPythonPluginHangIsTimedOutAndIsolated(t *testing.T) {
	dir := t.TempDir()
	plugin := pythonPlugin(t, dir)
	const n, hang = 300, 123
	out, rejects := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "rejects.jsonl")
	cfg := writeFile(t, dir, "p.yaml", `
name: python-plugin-hang
settings: {http: {listen: ""}}
sources:
  gen: {type: generate, count: `+strconv.Itoa(n)+`, batch: 50}
stages:
  py:
    type: plugin
    inputs: [gen]
    plugin: `+plugin+`
    batch: {size: 20}
    timeout: 1s
    config: {poison_every: 1000, hang_on: `+strconv.Itoa(hang)+`}
    on_error: {action: dead_letter, dead_letter: rejects}
sinks:
  out: {type: file, inputs: [py], path: `+out+`}
  rejects: {type: file, path: `+rejects+`}
`)
	code, _, stderr := run(t, 120*time.Second, nil, "run", "--progress", "never", cfg)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var want []string
	for i := range n {
		if i != hang && i != 7 {
			want = append(want, fmt.Sprintf(`{"seq":%d,"by":"python"}`, i))
		}
	}
	pluginWantLines(t, out, want)
	// seq 7 raises (poison_every), seq 123 hangs.
	pluginWantLines(t, rejects, []string{`{"seq":7}`, fmt.Sprintf(`{"seq":%d}`, hang)})
	if !strings.Contains(stderr, `msg="plugin made no progress; killing and restarting it" node=py`) {
		t.Fatalf("no restart logged:\n%s", stderr)
	}
}
