package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Issue 9, part 4: a run that fails validation prints what validate
// prints, and nothing else.
func TestRunConfigErrorsPrintOnlyTheErrors(t *testing.T) {
	cases := map[string]string{
		// Load finds the problem; the build's problems are added.
		"unset variable": `name: noisy
settings:
  http: {listen: "127.0.0.1:0"}
sources:
  gen: {type: generate, count: "${SLUICE_TEST_SURELY_UNSET}"}
  more: {type: generate, count: 3}
sinks:
  out: {type: discard, inputs: [gen, more]}
`,
		// Only the build finds it, after the listener is bound.
		"dangling input": `name: noisy
settings:
  http: {listen: "127.0.0.1:0"}
sources:
  gen: {type: generate, count: 3}
sinks:
  out: {type: discard, inputs: [gen, gne]}
`,
		"bad listen address": `name: noisy
settings:
  http: {listen: "nope"}
sources:
  gen: {type: generate, count: 3}
sinks:
  out: {type: discard, inputs: [gen]}
`,
		"empty token": `name: noisy
settings:
  http: {listen: "127.0.0.1:0", token: ""}
sources:
  gen: {type: generate, count: 3}
sinks:
  out: {type: discard, inputs: [gen]}
`,
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			path := writePipeline(t, text)
			var validateErr, runErr bytes.Buffer
			if code := execute(context.Background(), []string{"validate", path}, io.Discard, &validateErr); code != exitUsage {
				t.Fatalf("validate: exit %d, want 2; stderr:\n%s", code, validateErr.String())
			}
			if code := execute(context.Background(), []string{"run", "--progress", "never", path}, io.Discard, &runErr); code != exitUsage {
				t.Fatalf("run: exit %d, want 2; stderr:\n%s", code, runErr.String())
			}
			if runErr.String() != validateErr.String() {
				t.Errorf("run printed\n%s\nvalidate printed\n%s", runErr.String(), validateErr.String())
			}
			for _, line := range strings.Split(strings.TrimSpace(runErr.String()), "\n") {
				if !regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:\d+:\d+: `).MatchString(line) {
					t.Errorf("run printed %q: not an error at file:line:col", line)
				}
			}
		})
	}
}

// The HTTP listen address is checked with a position, by run and validate.
func TestListenAddressErrorHasAPosition(t *testing.T) {
	path := writePipeline(t, `name: bad
settings:
  http:
    listen: "9464"
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`)
	for _, cmd := range []string{"validate", "run"} {
		var stderr bytes.Buffer
		code := execute(context.Background(), []string{cmd, path}, io.Discard, &stderr)
		want := path + `:4:13: settings.http.listen "9464": want host:port`
		if code != exitUsage || !strings.HasPrefix(stderr.String(), want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %s", cmd, code, stderr.String(), want)
		}
	}
}

// lineWatch is a log destination that signals when a line matching re
// was written, and keeps the submatches.
type lineWatch struct {
	mu    sync.Mutex
	b     bytes.Buffer
	re    *regexp.Regexp
	match []string
	seen  chan struct{}
}

func newLineWatch(re *regexp.Regexp) *lineWatch {
	return &lineWatch{re: re, seen: make(chan struct{})}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if w.match == nil {
		if m := w.re.FindStringSubmatch(w.b.String()); m != nil {
			w.match = m
			close(w.seen)
		}
	}
	return len(p), nil
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Issue 9, part 2: `token: ${TOK}` with TOK=null is the token "null", not
// "no token": the listener still wants it, and says so in its 401.
func TestRunTokenFromAVariableThatLooksNull(t *testing.T) {
	t.Setenv("SLUICE_TEST_TOK", "null")
	path := writePipeline(t, `name: guarded
settings:
  http:
    listen: 127.0.0.1:0
    token: ${SLUICE_TEST_TOK}
sources:
  gen: {type: generate, rate: 100}
sinks:
  out: {type: discard, inputs: [gen]}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := newLineWatch(regexp.MustCompile(`"http listening" addr=(\S+) .* token=(\w+)`))
	code := make(chan int, 1)
	go func() { code <- execute(ctx, []string{"run", "--progress", "never", path}, io.Discard, stderr) }()
	select {
	case <-stderr.seen:
	case c := <-code:
		t.Fatalf("run ended (exit %d) before listening; stderr:\n%s", c, stderr.String())
	}
	addr, token := stderr.match[1], stderr.match[2]
	if token != "true" {
		t.Errorf("the listener logs token=%s", token)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, auth := range []string{"", "Bearer ", "Bearer wrong"} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("/metrics with Authorization %q: %d, WWW-Authenticate %q; want 401 and a Bearer challenge", auth, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer null")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics with the token \"null\": %d", resp.StatusCode)
	}
	cancel()
	if c := <-code; c != exitOK {
		t.Errorf("exit %d after cancel; stderr:\n%s", c, stderr.String())
	}
}

// An empty TOK is a config error at the token, never a listener without one.
func TestRunRefusesAnEmptyTokenVariable(t *testing.T) {
	t.Setenv("SLUICE_TEST_TOK", "")
	path := writePipeline(t, `name: guarded
settings:
  http:
    listen: 127.0.0.1:0
    token: ${SLUICE_TEST_TOK}
sources:
  gen: {type: generate, count: 3}
sinks:
  out: {type: discard, inputs: [gen]}
`)
	var stderr bytes.Buffer
	code := execute(context.Background(), []string{"run", "--progress", "never", path}, io.Discard, &stderr)
	want := path + `:5:12: settings.http.token: is empty (written as "${SLUICE_TEST_TOK}")`
	if code != exitUsage || !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %s", code, stderr.String(), want)
	}
}
