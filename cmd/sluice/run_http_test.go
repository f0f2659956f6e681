package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedev/sluice/ops"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const endlessPipeline = `name: served
settings:
  http: {listen: "127.0.0.1:0"}
sources:
  gen: {type: generate, rate: 2000, batch: 50}
sinks:
  out: {type: discard, inputs: [gen]}
`

var listenLine = regexp.MustCompile(`"http listening" addr=(\S+)`)

// TestRunServesMetricsWhileRunning runs a pipeline through the CLI and
// scrapes it: the listener is up during the run, the batch histogram is
// wired into the pipeline, and the listener is gone once run returns.
func TestRunServesMetricsWhileRunning(t *testing.T) {
	path := writePipeline(t, endlessPipeline)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- execute(ctx, []string{"run", "--progress", "never", path}, io.Discard, &stderr)
	}()

	var addr string
	deadline := time.Now().Add(20 * time.Second)
	for addr == "" {
		if m := listenLine.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no listen address logged; stderr:\n%s", stderr.String())
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	histogram := regexp.MustCompile(`sluice_batch_duration_seconds_count\{kind="sink",node="out"\} ([1-9][0-9]*)`)
	var body string
	for !histogram.MatchString(body) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("/metrics never showed the sink's batch histogram:\n%s", body)
		}
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			cancel()
			t.Fatalf("scraping the running pipeline: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(body, `sluice_node_records_out_total{kind="source",node="gen",pipeline="served",type="generate"}`) {
		t.Errorf("/metrics lacks the source's counter:\n%s", body)
	}

	cancel() // as SIGINT does: drain, exit 0
	if c := <-code; c != exitOK {
		t.Fatalf("exit %d after cancel; stderr:\n%s", c, stderr.String())
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("%s still answers after run returned", addr)
	}
}

func TestRunHTTPListenErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	cases := []struct {
		name, listen string
		code         int
		want         string
	}{
		{"not host:port", "9464", exitUsage, `settings.http.listen "9464": want host:port`},
		{"port out of range", "127.0.0.1:99999", exitUsage, `port "99999" is not a number`},
		{"explicit port taken", taken.Addr().String(), exitRuntime, "address already in use"},
	}
	for _, c := range cases {
		path := writePipeline(t, `name: bad
settings:
  http: {listen: "`+c.listen+`"}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`)
		var stderr bytes.Buffer
		got := execute(context.Background(), []string{"run", "--progress", "never", path}, io.Discard, &stderr)
		if got != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit %d and %q", c.name, got, stderr.String(), c.code, c.want)
		}
	}
}

// A second pipeline on one host finds the default port taken: it runs
// anyway, without a listener, and says so.
func TestRunWithTheDefaultPortTaken(t *testing.T) {
	if l, err := net.Listen("tcp", ops.DefaultListen); err == nil {
		defer l.Close()
	} // else someone else holds it already, which is the case under test
	path := writePipeline(t, `name: second
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`)
	var stderr bytes.Buffer
	if got := execute(context.Background(), []string{"run", "--progress", "never", path}, io.Discard, &stderr); got != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", got, stderr.String())
	}
	if !strings.Contains(stderr.String(), "http listener off: the default port is taken") {
		t.Errorf("no warning that the listener is off; stderr:\n%s", stderr.String())
	}
}

func TestRunWithTheListenerOff(t *testing.T) {
	path := writePipeline(t, `name: quiet
settings:
  http: {listen: ""}
sources:
  gen: {type: generate, count: 10}
sinks:
  out: {type: discard, inputs: [gen]}
`)
	var stderr bytes.Buffer
	if got := execute(context.Background(), []string{"run", "--progress", "never", path}, io.Discard, &stderr); got != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", got, stderr.String())
	}
	if strings.Contains(stderr.String(), "http listen") {
		t.Errorf("listener mentioned although turned off:\n%s", stderr.String())
	}
}
