package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// Plugin stages run as a user runs them: the example plugins and a test
// plugin built once, sluice started with --plugins-dir, plugin processes
// found among sluice's children and killed.

var pluginBuild struct {
	once sync.Once
	dir  string
	err  error
}

// pluginBins builds examples/plugins/* and plugins/testdata/panicky once
// into a directory next to the sluice binary (TestMain removes both).
func pluginBins(t *testing.T) string {
	t.Helper()
	pluginBuild.once.Do(func() {
		dir := filepath.Join(filepath.Dir(bin), "plugins")
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./examples/plugins/...", "./plugins/testdata/panicky")
		cmd.Dir = repoDir
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginBuild.err = fmt.Errorf("building the plugins: %v\n%s", err, out)
			return
		}
		pluginBuild.dir = dir
	})
	if pluginBuild.err != nil {
		t.Fatal(pluginBuild.err)
	}
	return pluginBuild.dir
}

// pluginRun runs a pipeline with the built plugins to completion.
func pluginRun(t *testing.T, cfg string) (code int, stderr string) {
	t.Helper()
	code, _, stderr = run(t, 120*time.Second, nil, "run", "--progress", "never", "--plugins-dir", pluginBins(t), cfg)
	return code, stderr
}

// pluginWantLines fails unless path holds exactly want, in order.
func pluginWantLines(t *testing.T, path string, want []string) {
	t.Helper()
	got := readLines(t, path)
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s line %d:\n got %s\nwant %s", filepath.Base(path), i+1, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d lines, want %d", filepath.Base(path), len(got), len(want))
	}
}

// generate → map → enrich (plugin) → aggregate (plugin) → file: every
// line exactly as computed here.
func TestPluginEnrichAggregateExactOutput(t *testing.T) {
	const n = 3000
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := writeFile(t, dir, "p.yaml", `
name: plugin-chain
settings: {http: {listen: ""}}
sources:
  gen: {type: generate, count: `+strconv.Itoa(n)+`, batch: 100}
stages:
  shape:
    type: map
    inputs: [gen]
    value: '{"seq": value.seq, "customer": "c" + string(value.seq % 4)}'
  enrich:
    type: plugin
    inputs: [shape]
    plugin: enrich
    batch: {size: 64}
    config:
      field: customer
      target: info
      on_missing: "null"
      table: {c0: {tier: gold}, c1: {tier: silver}, c2: {tier: bronze, since: 2021}}
  totals:
    type: plugin
    inputs: [enrich]
    plugin: aggregate
    config: {field: seq, key_field: customer, target: totals}
sinks:
  out: {type: file, inputs: [totals], path: `+out+`}
`)
	if code, stderr := pluginRun(t, cfg); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	// The config reaches the plugin as JSON with sorted keys.
	tiers := []string{`{"tier":"gold"}`, `{"tier":"silver"}`, `{"since":2021,"tier":"bronze"}`, `null`}
	type totals struct {
		Count int64   `json:"count"`
		Sum   float64 `json:"sum"`
		Min   float64 `json:"min"`
		Max   float64 `json:"max"`
		Avg   float64 `json:"avg"`
	}
	var running [4]totals
	want := make([]string, n)
	for i := range n {
		k := i % 4
		s := &running[k]
		if s.Count == 0 {
			s.Min = float64(i)
		}
		s.Count++
		s.Sum += float64(i)
		s.Max = float64(i)
		s.Avg = s.Sum / float64(s.Count)
		agg, _ := json.Marshal(s)
		want[i] = fmt.Sprintf(`{"seq":%d,"customer":"c%d","info":%s,"totals":%s}`, i, k, tiers[k], agg)
	}
	pluginWantLines(t, out, want)
}

// configs/plugin-redact.yaml as shipped: every generated user masked.
func TestPluginRedactShippedConfig(t *testing.T) {
	dir := t.TempDir()
	out, rejects := filepath.Join(dir, "out.jsonl"), filepath.Join(dir, "rejects.jsonl")
	code, _, stderr := run(t, 60*time.Second, []string{"COUNT=200", "OUT=" + out, "REJECTS=" + rejects},
		"run", "--progress", "never", "--plugins-dir", pluginBins(t), "configs/plugin-redact.yaml")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	want := make([]string, 200)
	for i := range want {
		want[i] = fmt.Sprintf(`{"seq":%d,"card":"**** **** **** 1111","email":"*******@***********",`+
			`"note":"call ***-***-**** or write to ***@***********; order 2024-01-15","phone":"+* (***) ***-****"}`, i)
	}
	pluginWantLines(t, out, want)
	if c := countLines(rejects); c != 0 {
		t.Fatalf("%d rejects", c)
	}
}

// The redacted form of the records the redact tests generate.
const (
	pluginPII      = `template: {email: ann.lee@example.com, card: "4111 1111 1111 1111", note: "call +1 (555) 123-4567 on 2024-01-15"}`
	pluginRedacted = `{"seq":%d,"card":"**** **** **** 1111","email":"*******@***********","note":"call +* (***) ***-**** on 2024-01-15"}`
)

// generate → Kafka topic → Kafka source → redact (plugin) → file, on the
// real broker: every record exactly once.
func TestPluginKafkaToPluginToFile(t *testing.T) {
	broker := pluginKafkaBroker(t)
	const n = 20000
	topic := pluginKafkaName(t, "t")
	pluginCreateTopic(t, broker, topic)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	cfg := writeFile(t, dir, "p.yaml", `
name: plugin-kafka
settings: {http: {listen: ""}, drain_timeout: 30s}
sources:
  gen: {type: generate, count: `+strconv.Itoa(n)+`, key: "user-{seq}", `+pluginPII+`}
  topic:
    type: kafka
    brokers: ["`+broker+`"]
    topics: ["`+topic+`"]
    group: "`+pluginKafkaName(t, "g")+`"
    max_wait: 100ms
    commit_interval: 200ms
stages:
  redact: {type: plugin, inputs: [topic], plugin: redact, batch: {size: 500}}
sinks:
  produce: {type: kafka, inputs: [gen], brokers: ["`+broker+`"], topic: "`+topic+`"}
  out: {type: file, inputs: [redact], path: `+out+`, fsync: false}
`)
	began := time.Now()
	p := start(t, nil, "run", "--progress", "never", "--plugins-dir", pluginBins(t), cfg)
	waitRunning(t, 120*time.Second, fmt.Sprintf("%d records in the file", n), func() bool { return countLines(out) >= n }, p)
	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, p.stderr.String())
	}
	lines := readLines(t, out)
	seen := make(map[string]int, n)
	for _, l := range lines {
		seen[l]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf(pluginRedacted, i)]; c != 1 {
			t.Fatalf("record %d is in the file %d times", i, c)
		}
	}
	if len(lines) != n {
		t.Fatalf("%d lines, want %d (something else was written)", len(lines), n)
	}
	t.Logf("%d records through Kafka and the plugin in %s; in generation order: %v",
		n, time.Since(began).Round(time.Millisecond), slices.IsSortedFunc(lines, pluginBySeq(t)))
}

// kill -9 of the plugin process ten times while records flow: the run
// completes with every record once, in order, none dead-lettered. At
// 50k records/s the plugin is busy enough that kills land with batches in
// flight, which the host must send again to the next process.
func TestPluginSurvivesKill9TenTimes(t *testing.T) {
	const n, kills = 500000, 10
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	rejects := filepath.Join(dir, "rejects.jsonl")
	cfg := writeFile(t, dir, "p.yaml", `
name: plugin-kill
settings: {http: {listen: ""}, drain_timeout: 30s}
sources:
  gen: {type: generate, count: `+strconv.Itoa(n)+`, rate: 50000, template: {email: a@b.io}}
stages:
  redact:
    type: plugin
    inputs: [gen]
    plugin: redact
    timeout: 10s
    on_error: {action: dead_letter, dead_letter: rejects}
sinks:
  out: {type: file, inputs: [redact], path: `+out+`, fsync: false}
  rejects: {type: file, path: `+rejects+`}
`)
	began := time.Now()
	p := start(t, nil, "run", "--progress", "never", "--plugins-dir", pluginBins(t), cfg)
	sluicePid := p.cmd.Process.Pid
	killed := map[int]bool{}
	for k := range kills {
		var pid int
		waitRunning(t, 30*time.Second, "a new plugin process", func() bool {
			for _, c := range pluginChildren(sluicePid) {
				if !killed[c] {
					pid = c
					return true
				}
			}
			return false
		}, p)
		// Let the new process answer more than a window's worth (4 batches
		// of at most 1000), so the batches resent to it are done and no
		// record is alone in flight for two kills (which would mark it as
		// the culprit and dead-letter it).
		from := countLines(out)
		waitRunning(t, 30*time.Second, "records through the new process", func() bool { return countLines(out) >= from+5000 }, p)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d (kill %d of %d): %v", pid, k+1, kills, err)
		}
		killed[pid] = true
	}
	if code := p.wait(120 * time.Second); code != 0 {
		t.Fatalf("exit %d:\n%s", code, p.stderr.String())
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprintf(`{"seq":%d,"email":"*@****"}`, i)
	}
	pluginWantLines(t, out, want)
	if c := countLines(rejects); c != 0 {
		t.Fatalf("%d records dead-lettered:\n%v", c, readLines(t, rejects))
	}
	restarts := pluginRestartRe.FindAllStringSubmatch(p.stderr.String(), -1)
	inFlight := 0
	for _, m := range restarts {
		n, _ := strconv.Atoi(m[1])
		inFlight += n
	}
	if len(restarts) != kills || inFlight == 0 {
		t.Fatalf("%d restarts logged with %d batches in flight in all; want %d restarts, some with batches in flight:\n%s",
			len(restarts), inFlight, kills, p.stderr.String())
	}
	t.Logf("%d records, %d kills with %d batches in flight in all, done in %s",
		n, kills, inFlight, time.Since(began).Round(time.Millisecond))
}

var pluginRestartRe = regexp.MustCompile(`msg="plugin process failed; restarting it".* reason="signal: killed" in_flight=(\d+)`)

// A plugin binary that is not the one pinned by sha256 is refused before
// it runs: exit 2 and an error at the sha256 line.
func TestPluginTamperedBinaryRefused(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "enrich")
	orig, err := os.ReadFile(filepath.Join(pluginBins(t), "enrich"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(orig)
	out := filepath.Join(dir, "out.jsonl")
	cfg := writeFile(t, dir, "p.yaml", `name: pinned
settings: {http: {listen: ""}}
sources:
  gen: {type: generate, count: 5}
stages:
  enrich:
    type: plugin
    inputs: [gen]
    plugin: ./enrich
    sha256: `+hex.EncodeToString(sum[:])+`
    config: {field: seq, table: {"1": one}}
sinks:
  out: {type: file, inputs: [enrich], path: `+out+`}
`)
	if code, stderr := pluginRun(t, cfg); code != 0 || countLines(out) != 5 {
		t.Fatalf("the pinned binary itself: exit %d, %d lines:\n%s", code, countLines(out), stderr)
	}
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}

	tampered := append(slices.Clone(orig), 0)
	if err := os.WriteFile(exe, tampered, 0o755); err != nil {
		t.Fatal(err)
	}
	actual := sha256.Sum256(tampered)
	want := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(cfg) + `:10:13: stages\.enrich\.sha256: sha256 mismatch for ` +
		regexp.QuoteMeta(exe) + `: expected ` + hex.EncodeToString(sum[:]) + `, actual ` + hex.EncodeToString(actual[:]) + `; refusing to start it$`)
	for _, cmd := range []string{"validate", "run"} {
		code, _, stderr := run(t, 60*time.Second, nil, cmd, "--plugins-dir", pluginBins(t), cfg)
		if code != 2 || !want.MatchString(stderr) {
			t.Fatalf("%s: exit %d, stderr:\n%s\nwant exit 2 and a line matching %s", cmd, code, stderr, want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the refused pipeline wrote %s (%v)", out, err)
	}
}

// Records the plugin panics on go to the dead-letter sink, exactly those;
// the others flow on in order.
func TestPluginPanicsDeadLetterExactly(t *testing.T) {
	const n = 5000
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	rejects := filepath.Join(dir, "rejects.txt")
	cfg := writeFile(t, dir, "p.yaml", `
name: plugin-panics
settings: {http: {listen: ""}}
sources:
  gen: {type: generate, count: `+strconv.Itoa(n)+`, batch: 128}
stages:
  mark:
    type: map
    inputs: [gen]
    value: 'value.seq % 10 == 3 ? "poison " + string(value.seq) : string(value.seq)'
  panicky:
    type: plugin
    inputs: [mark]
    plugin: panicky
    batch: {size: 50}
    on_error: {action: dead_letter, dead_letter: rejects}
sinks:
  out: {type: file, inputs: [panicky], path: `+out+`}
  rejects: {type: file, path: `+rejects+`}
`)
	if code, stderr := pluginRun(t, cfg); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	var wantOut, wantRejects []string
	for i := range n {
		if i%10 == 3 {
			wantRejects = append(wantRejects, "poison "+strconv.Itoa(i))
		} else {
			wantOut = append(wantOut, strconv.Itoa(i))
		}
	}
	pluginWantLines(t, out, wantOut)
	pluginWantLines(t, rejects, wantRejects)
}

// pluginChildren lists the child processes of pid: for sluice, its plugin
// processes.
func pluginChildren(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var kids []int
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, field := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(field); err == nil && !slices.Contains(kids, c) && !pluginZombie(c) {
				kids = append(kids, c)
			}
		}
	}
	return kids
}

// pluginZombie reports whether pid has exited but was not reaped yet.
func pluginZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// pluginBySeq orders redacted lines by their seq.
func pluginBySeq(t *testing.T) func(a, b string) int {
	return func(a, b string) int {
		return int(decode(t, a)["seq"].(float64) - decode(t, b)["seq"].(float64))
	}
}

// pluginKafkaBroker is the real broker of scripts/kafka.sh. Without it,
// -short skips loudly and a full run fails.
func pluginKafkaBroker(t *testing.T) string {
	t.Helper()
	b := os.Getenv("SLUICE_KAFKA_BROKERS")
	if b == "" {
		msg := "KAFKA: SLUICE_KAFKA_BROKERS is not set; this test needs the real broker: run `scripts/kafka.sh start && eval \"$(scripts/kafka.sh env)\"`"
		if testing.Short() {
			t.Skip("SKIPPING (-short) " + msg)
		}
		t.Fatal(msg)
	}
	return b
}

func pluginKafkaName(t *testing.T, what string) string {
	return fmt.Sprintf("e2e-plugin-%s-%s-%d", regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "_"), what, time.Now().UnixNano())
}

// pluginCreateTopic creates a one-partition topic and waits for its
// leader.
func pluginCreateTopic(t *testing.T, broker, topic string) {
	t.Helper()
	conn, err := kafka.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctl, err := conn.Controller()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := kafka.Dial("tcp", net.JoinHostPort(ctl.Host, strconv.Itoa(ctl.Port)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
	eventually(t, 30*time.Second, "a leader for "+topic, func() bool {
		ps, err := conn.ReadPartitions(topic)
		return err == nil && len(ps) == 1 && ps[0].Leader.ID >= 0
	})
}
