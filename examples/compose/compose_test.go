// Package compose holds the docker-compose demo. Docker does not run on
// CI machines, so these tests check the files instead of starting them:
// docker-compose parses the compose file, `sluice validate` accepts each
// pipeline with the environment the compose file (or the Kubernetes
// example) gives it, and the Dockerfile and the wiring between the files
// agree with the repository.
package compose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gopkg.in/yaml.v3"
)

var (
	here     string // examples/compose
	repoRoot string

	sluice struct {
		once sync.Once
		dir  string
		path string
		err  error
	}
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	here = filepath.Dir(file)
	repoRoot = filepath.Dir(filepath.Dir(here))
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if sluice.dir != "" {
			os.RemoveAll(sluice.dir)
		}
		os.Exit(code)
	}))
}

// Where the demo's plugin comes from; the demo pipeline names it in one
// marked stage block.
const (
	pluginDir  = "examples/plugins/redact"
	pluginName = "redact"
)

// composeFile is the part of docker-compose.yml the tests look at.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	readYAML(t, filepath.Join(here, "docker-compose.yml"), &c)
	return c
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestComposeConfig has docker-compose parse and validate the file (no
// Docker engine needed).
func TestComposeConfig(t *testing.T) {
	dc, err := exec.LookPath("docker-compose")
	if err != nil {
		msg := "docker-compose not found (scripts/deps.sh installs the Debian package)"
		if testing.Short() {
			t.Skip("SKIPPING (-short): " + msg)
		}
		t.Fatal(msg)
	}
	cmd := exec.Command(dc, "--file", "docker-compose.yml", "config", "--quiet")
	cmd.Dir = here
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
}

// TestComposeWiring checks that the services start in the right order and
// that the files they mount, the ports and the topics agree.
func TestComposeWiring(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"kafka", "topics", "loadgen", "sluice", "consumer", "prometheus"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
	}
	if len(c.Services["kafka"].Healthcheck.Test) == 0 {
		t.Error("kafka has no healthcheck: service_healthy would never hold")
	}
	wantDep := func(svc, on, cond string) {
		if got := c.Services[svc].DependsOn[on].Condition; got != cond {
			t.Errorf("%s depends on %s with condition %q, want %q", svc, on, got, cond)
		}
	}
	wantDep("topics", "kafka", "service_healthy")
	for _, svc := range []string{"loadgen", "sluice", "consumer"} {
		wantDep(svc, "topics", "service_completed_successfully")
	}

	topics := strings.Join(c.Services["topics"].Command, " ")
	for _, spec := range []string{"orders:6", "orders-enriched:"} {
		if !strings.Contains(topics, spec) {
			t.Errorf("the topics service does not create %q: %s", spec, topics)
		}
	}
	if got, want := c.Services["loadgen"].Environment["ORDERS_TOPIC"], c.Services["sluice"].Environment["ORDERS_TOPIC"]; got != want {
		t.Errorf("loadgen writes %q but sluice reads %q", got, want)
	}
	if out := c.Services["sluice"].Environment["ENRICHED_TOPIC"]; !slices.Contains(c.Services["consumer"].Command, out) {
		t.Errorf("the consumer does not read sluice's output topic %q: %v", out, c.Services["consumer"].Command)
	}

	for _, svc := range []string{"loadgen", "sluice"} {
		s := c.Services[svc]
		ctx := filepath.Clean(filepath.Join(here, s.Build.Context))
		if ctx != repoRoot {
			t.Errorf("%s builds from %s, want the repository root %s", svc, ctx, repoRoot)
		}
		if _, err := os.Stat(filepath.Join(ctx, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: %v", svc, err)
		}
		pipeline, _ := mountedPipeline(t, svc, s)
		if _, err := os.Stat(pipeline); err != nil {
			t.Errorf("%s mounts a missing pipeline: %v", svc, err)
		}
	}

	// Prometheus scrapes the port each pipeline listens on, on all interfaces.
	prom, err := os.ReadFile(filepath.Join(here, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"sluice", "loadgen"} {
		host, port, err := net.SplitHostPort(c.Services[svc].Environment["HTTP_LISTEN"])
		if err != nil || host != "0.0.0.0" {
			t.Errorf("%s: HTTP_LISTEN %q, want 0.0.0.0:PORT so Prometheus can reach it (%v)", svc, c.Services[svc].Environment["HTTP_LISTEN"], err)
			continue
		}
		scraped := regexp.MustCompile(`(?s)names: \[` + svc + `\].*?port: ` + port + `\b|"` + svc + `:` + port + `"`)
		if !scraped.Match(prom) {
			t.Errorf("prometheus.yml does not scrape %s:%s", svc, port)
		}
	}

	// The grace period covers the worst drain: otherwise Docker's SIGKILL
	// cuts the final commit and LeaveGroup.
	pipeline, _ := mountedPipeline(t, "sluice", c.Services["sluice"])
	grace, err := time.ParseDuration(c.Services["sluice"].StopGracePeriod)
	if err != nil {
		t.Fatalf("sluice stop_grace_period: %v", err)
	}
	if need := drainBudget(t, pipeline); grace <= need {
		t.Errorf("sluice stop_grace_period %s, want more than the worst drain %s", grace, need)
	}
}

// mountedPipeline returns the host path of the pipeline a sluice service
// runs (the last argument of `run`, mounted from this directory) and its
// path in the container.
func mountedPipeline(t *testing.T, svc string, s composeService) (host, container string) {
	t.Helper()
	if len(s.Command) < 2 || s.Command[0] != "run" {
		t.Fatalf("%s: command %v, want [run ... pipeline.yaml]", svc, s.Command)
	}
	container = s.Command[len(s.Command)-1]
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == container {
			return filepath.Join(here, parts[0]), container
		}
	}
	t.Fatalf("%s runs %s but mounts nothing there: %v", svc, container, s.Volumes)
	return "", ""
}

// drainBudget is the longest a SIGTERM'd sluice running pipeline may take
// to exit: settings.drain_timeout, then up to a quarter of it (at least
// 5s) for the final commits and closes, plus 5s for nodes that ignore
// the drain deadline (flow.Pipeline.Run).
func drainBudget(t *testing.T, pipeline string) time.Duration {
	t.Helper()
	var p struct {
		Settings struct {
			DrainTimeout string `yaml:"drain_timeout"`
		} `yaml:"settings"`
	}
	readYAML(t, pipeline, &p)
	d := 30 * time.Second // the registry's default
	if p.Settings.DrainTimeout != "" {
		var err error
		if d, err = time.ParseDuration(p.Settings.DrainTimeout); err != nil {
			t.Fatalf("%s: settings.drain_timeout: %v", pipeline, err)
		}
	}
	return d + max(d/4, 5*time.Second) + 5*time.Second
}

// TestPipelinesValidate runs `sluice validate` on each pipeline the compose
// file runs, with the environment the compose file gives it.
func TestPipelinesValidate(t *testing.T) {
	c := loadCompose(t)
	for _, svc := range []string{"loadgen", "sluice"} {
		t.Run(svc, func(t *testing.T) {
			s := c.Services[svc]
			pipeline, _ := mountedPipeline(t, svc, s)
			var args []string
			if usesPlugin(t, pipeline) {
				args = append(args, "--plugins-dir", buildPlugin(t))
			}
			validate(t, pipeline, s.Environment, args...)
		})
	}
}

// usesPlugin reports whether a pipeline has a plugin stage.
func usesPlugin(t *testing.T, pipeline string) bool {
	t.Helper()
	var p struct {
		Stages map[string]struct {
			Type string `yaml:"type"`
		} `yaml:"stages"`
	}
	readYAML(t, pipeline, &p)
	for _, st := range p.Stages {
		if st.Type == "plugin" {
			return true
		}
	}
	return false
}

// buildPlugin builds the demo's plugin into a fresh folder and returns it,
// or skips while the plugin does not exist yet.
func buildPlugin(t *testing.T) string {
	t.Helper()
	if srcs, _ := filepath.Glob(filepath.Join(repoRoot, pluginDir, "*.go")); len(srcs) == 0 {
		t.Skipf("TODO(operations): %s has no Go files yet; the demo pipeline's plugin stage validates once it does", pluginDir)
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, pluginName), "./"+pluginDir)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the %s plugin: %v\n%s", pluginName, err, out)
	}
	return dir
}

// validate runs `sluice validate` with only env (and PATH, HOME) in the
// environment and fails unless it says ok.
func validate(t *testing.T, pipeline string, env map[string]string, args ...string) {
	t.Helper()
	cmd := exec.Command(sluiceBin(t), append(append([]string{"validate"}, args...), pipeline)...)
	cmd.Dir = here
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.HasPrefix(out, []byte("ok: ")) {
		t.Fatalf("sluice validate %s: %v\n%s", pipeline, err, out)
	}
}

// sluiceBin builds ./cmd/sluice once for the package.
func sluiceBin(t *testing.T) string {
	t.Helper()
	sluice.once.Do(func() {
		if sluice.dir, sluice.err = os.MkdirTemp("", "sluice-compose-"); sluice.err != nil {
			return
		}
		sluice.path = filepath.Join(sluice.dir, "sluice")
		cmd := exec.Command("go", "build", "-o", sluice.path, "./cmd/sluice")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			sluice.err = fmt.Errorf("building sluice: %v\n%s", err, out)
		}
	})
	if sluice.err != nil {
		t.Fatal(sluice.err)
	}
	return sluice.path
}

// dockerInstr is one Dockerfile instruction with its line continuations
// joined.
type dockerInstr struct {
	line int
	op   string // upper case
	args string
}

func readDockerfile(t *testing.T) []dockerInstr {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstr
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{line: start, op: strings.ToUpper(op), args: strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDockerfile checks the root Dockerfile against the repository: the
// Go version of go.mod, the packages it builds, the files it copies, and
// the runtime settings the demo and docs rely on.
func TestDockerfile(t *testing.T) {
	instrs := readDockerfile(t)
	has := func(op, args string) bool {
		return slices.ContainsFunc(instrs, func(in dockerInstr) bool { return in.op == op && in.args == args })
	}

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "golang:" + string(m[1]) + " AS build"; !has("FROM", want) {
		t.Errorf("Dockerfile does not build with FROM %s (go.mod says go %s)", want, m[1])
	}

	var froms int
	for _, in := range instrs {
		switch in.op {
		case "FROM":
			froms++
		case "COPY":
			if strings.HasPrefix(in.args, "--from=") {
				continue
			}
			fields := strings.Fields(in.args)
			for _, src := range fields[:len(fields)-1] {
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Errorf("Dockerfile:%d: COPY %s: %v", in.line, src, err)
				}
			}
		case "RUN":
			// Every package directory a go build names must exist, except
			// the example plugins, which the RUN only builds if present.
			for _, pkg := range regexp.MustCompile(`\./[\w./-]+`).FindAllString(in.args, -1) {
				dir := strings.TrimSuffix(pkg, "/...")
				_, err := os.Stat(filepath.Join(repoRoot, dir))
				switch {
				case dir == "./examples/plugins":
					if !strings.Contains(in.args, "[ -d examples/plugins ]") {
						t.Errorf("Dockerfile:%d builds ./examples/plugins/... without checking it exists", in.line)
					}
				case err != nil:
					t.Errorf("Dockerfile:%d builds %s: %v", in.line, pkg, err)
				}
			}
		}
	}
	if froms < 2 {
		t.Errorf("Dockerfile has %d stages, want a build stage and a runtime stage", froms)
	}
	for _, want := range [][2]string{
		{"ENV", "CGO_ENABLED=0"},
		{"ENV", "SLUICE_PLUGIN_DIR=/plugins"},
		{"COPY", "--from=build /out/plugins/ /plugins/"},
		{"ENTRYPOINT", `["sluice"]`},
	} {
		if !has(want[0], want[1]) {
			t.Errorf("Dockerfile lacks %s %s", want[0], want[1])
		}
	}
	if !regexp.MustCompile(`go build .*-o /out/sluice \./cmd/sluice`).MatchString(joinArgs(instrs, "RUN")) {
		t.Error("Dockerfile does not build ./cmd/sluice into /out/sluice")
	}
	if users := argsOf(instrs, "USER"); len(users) == 0 || slices.ContainsFunc(users, func(u string) bool {
		return u == "root" || u == "0" || strings.HasPrefix(u, "root:") || strings.HasPrefix(u, "0:")
	}) {
		t.Errorf("Dockerfile runs as %v, want a non-root USER", users)
	}

	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(ignore), "\n")
	for _, want := range []string{".git", ".cache", "bin"} {
		if !slices.Contains(lines, want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

func argsOf(instrs []dockerInstr, op string) []string {
	var out []string
	for _, in := range instrs {
		if in.op == op {
			out = append(out, in.args)
		}
	}
	return out
}

func joinArgs(instrs []dockerInstr, op string) string { return strings.Join(argsOf(instrs, op), "\n") }

// k8sObject is the part of the Kubernetes example the test looks at.
type k8sObject struct {
	Kind string            `yaml:"kind"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Args []string `yaml:"args"`
					Env  []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					LivenessProbe  k8sProbe   `yaml:"livenessProbe"`
					ReadinessProbe k8sProbe   `yaml:"readinessProbe"`
					VolumeMounts   []k8sMount `yaml:"volumeMounts"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

// TestKubernetesExample validates the pipeline of examples/k8s with the
// Deployment's environment and checks the pod wiring docs/scaling.md
// describes: probes on the pipeline's listener, the pipeline mounted
// where the container runs it, and a grace period above the drain.
func TestKubernetesExample(t *testing.T) {
	path := filepath.Join(repoRoot, "examples", "k8s", "deployment.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cm, deploy *k8sObject
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var o k8sObject
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		switch o.Kind {
		case "ConfigMap":
			cm = &o
		case "Deployment":
			deploy = &o
		}
	}
	if cm == nil || deploy == nil || cm.Data["pipeline.yaml"] == "" {
		t.Fatalf("%s: want a ConfigMap with pipeline.yaml and a Deployment", path)
	}
	if n := len(deploy.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%s: %d containers, want 1", path, n)
	}
	ctr := deploy.Spec.Template.Spec.Containers[0]
	pipeline := filepath.Join(t.TempDir(), "pipeline.yaml")
	if err := os.WriteFile(pipeline, []byte(cm.Data["pipeline.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, e := range ctr.Env {
		env[e.Name] = e.Value
	}
	validate(t, pipeline, env)

	if len(ctr.Args) < 2 || ctr.Args[0] != "run" {
		t.Fatalf("container args %v, want [run ... pipeline.yaml]", ctr.Args)
	}
	runs := ctr.Args[len(ctr.Args)-1]
	if !slices.ContainsFunc(ctr.VolumeMounts, func(m k8sMount) bool {
		return m.Name == "pipeline" && filepath.Join(m.MountPath, "pipeline.yaml") == runs
	}) {
		t.Errorf("the container runs %s but the ConfigMap is not mounted there", runs)
	}

	var settings struct {
		Settings struct {
			HTTP struct {
				Listen string `yaml:"listen"`
			} `yaml:"http"`
		} `yaml:"settings"`
	}
	readYAML(t, pipeline, &settings)
	host, port, err := net.SplitHostPort(settings.Settings.HTTP.Listen)
	if err != nil || host != "0.0.0.0" {
		t.Fatalf("pipeline settings.http.listen %q: want 0.0.0.0:PORT for the kubelet's probes (%v)", settings.Settings.HTTP.Listen, err)
	}
	portName := ""
	for _, p := range ctr.Ports {
		if fmt.Sprint(p.ContainerPort) == port {
			portName = p.Name
		}
	}
	if portName == "" {
		t.Errorf("no containerPort %s, the pipeline's listener", port)
	}
	for _, pr := range []struct {
		what  string
		probe k8sProbe
		path  string
	}{{"livenessProbe", ctr.LivenessProbe, "/healthz"}, {"readinessProbe", ctr.ReadinessProbe, "/readyz"}} {
		if pr.probe.HTTPGet.Path != pr.path || pr.probe.HTTPGet.Port != portName {
			t.Errorf("%s gets %s on port %q, want %s on %q", pr.what, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port, pr.path, portName)
		}
	}

	grace := time.Duration(deploy.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if need := drainBudget(t, pipeline); grace <= need {
		t.Errorf("terminationGracePeriodSeconds %s, want more than the worst drain %s", grace, need)
	}
	if deploy.Spec.Replicas < 2 {
		t.Errorf("replicas %d: the example is about sharing partitions", deploy.Spec.Replicas)
	}
}
