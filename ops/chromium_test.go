package ops

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// chromium finds a headless-capable Chromium on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if testing.Short() {
		t.Skip("chromium is not installed (scripts/deps.sh installs it); skipping the /graph browser test under -short")
	}
	t.Fatal("chromium is not installed: run scripts/deps.sh (it installs Debian's chromium) for the /graph browser test, or use -short to skip it")
	return ""
}

// browse runs headless Chromium on url with extra flags and returns its
// stdout. Chromium runs in its own process group, killed whole when done,
// so no renderer or helper outlives the test.
func browse(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--window-size=1200,800",
		// Virtual time lets the page's script poll /graph.json a few
		// times before the DOM is dumped or the screenshot taken.
		"--virtual-time-budget=5000",
	}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\nstderr:\n%s", strings.Join(extra, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// gate is a sink that blocks until released, so its input edge fills.
type gate struct{ open chan struct{} }

func (g *gate) Write(ctx context.Context, _ []flow.Record) error {
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestGraphPageInHeadlessChromium(t *testing.T) {
	bin := chromium(t)
	jam := &gate{open: make(chan struct{})}
	p := flow.New("browser-test", flow.WithLogger(quietLog()), flow.WithDrainTimeout(5*time.Second)).
		Source("numbers", &numbers{n: -1, size: 50, pace: 5 * time.Millisecond, stamped: true, age: 40 * time.Second}, flow.Type("test_numbers")).
		Source("flood", &numbers{n: -1, size: 64}, flow.Type("test_flood")).
		Stage("copy", flow.ProcessorStage(passthrough), flow.Inputs("numbers"), flow.Type("test_copy")).
		Sink("out", &counting{}, flow.Inputs("copy"), flow.Type("test_count")).
		Sink("jammed", jam, flow.Inputs("flood"), flow.Type("test_gate"), flow.Buffer(256))
	base := serve(t, p, Config{}, nil)
	runInBackground(t, p)
	t.Cleanup(func() { close(jam.open) }) // runs before the pipeline's cleanup

	eventually(t, 15*time.Second, "traffic on numbers and a full buffer in front of jammed", func() bool {
		g := fetchGraph(t, base)
		return g.Nodes[0].OutRate > 0 && g.Nodes[4].Fill >= 1
	})

	dom := string(browse(t, bin, base+"/graph", "--dump-dom"))
	for _, id := range []string{"numbers", "flood", "copy", "out", "jammed"} {
		if !strings.Contains(dom, `data-node="`+id+`"`) || !strings.Contains(dom, ">"+id+"<") {
			t.Errorf("the rendered DOM does not show node %s", id)
		}
	}
	if !strings.Contains(dom, `data-state="live"`) {
		t.Errorf("the page's script never updated it from /graph.json; status: %s", between(dom, `id="status"`, "</span>"))
	}
	// Drawn by the script from /graph.json: a full buffer turns its edge red.
	if edge := between(dom, `data-to="jammed"`, ">"); !strings.Contains(edge, `stroke="hsl(0,70%,42%)"`) {
		t.Errorf("the edge into the jammed sink is not drawn full: %s", edge)
	}
	if rates := between(dom, `data-node="numbers"`, "</g>"); !strings.Contains(rates, "/s") || strings.Contains(rates, "out 0/s") {
		t.Errorf("numbers shows no live rate: %s", rates)
	}
	// Drawn by the script too: the records reach out about 40 s after
	// their timestamps.
	if age := between(dom, `data-node="out"`, "</g>"); !regexp.MustCompile(`>age p50 [3-6][0-9]s  p99 [3-6][0-9]s<`).MatchString(age) {
		t.Errorf("out shows no record age: %s", age)
	}

	shot := filepath.Join(t.TempDir(), "graph.png")
	browse(t, bin, base+"/graph", "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 800 {
		t.Errorf("screenshot is %dx%d, want 1200x800", b.Dx(), b.Dy())
	}
	if n := colours(img); n < 5 {
		t.Errorf("screenshot has %d colours: the page rendered (nearly) blank", n)
	}
}

// colours counts the distinct colours of img, up to 1000.
func colours(img image.Image) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= 1000 {
				return len(seen)
			}
		}
	}
	return len(seen)
}

// between returns the text of s from the first from up to the next to.
func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return "(" + from + " not found)"
	}
	rest := s[i:]
	if j := strings.Index(rest, to); j >= 0 {
		return rest[:j+len(to)]
	}
	return rest
}
