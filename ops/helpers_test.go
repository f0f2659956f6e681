package ops

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// numbers emits n records (or, with n < 0, until stopped) in batches of
// size, pausing pace between batches so an endless run stays cheap. With
// stamped, each record's Timestamp is age before it was emitted.
type numbers struct {
	n, size int
	pace    time.Duration
	stamped bool
	age     time.Duration
	acked   atomic.Int64
}

func (s *numbers) Run(ctx context.Context, out flow.Emitter) error {
	var tick <-chan time.Time
	if s.pace > 0 {
		t := time.NewTicker(s.pace)
		defer t.Stop()
		tick = t.C
	}
	for i := 0; s.n < 0 || i < s.n; {
		recs := make([]flow.Record, 0, s.size)
		for ; len(recs) < s.size && (s.n < 0 || i < s.n); i++ {
			r := flow.Record{Value: strconv.AppendInt(nil, int64(i), 10)}
			if s.stamped {
				r.Timestamp = time.Now().Add(-s.age)
			}
			recs = append(recs, r)
		}
		cnt := int64(len(recs))
		ack := flow.NewAck(func(err error) {
			if err == nil {
				s.acked.Add(cnt)
			}
		})
		if err := out.Emit(ctx, flow.NewBatch(recs, ack)); err != nil {
			return nil
		}
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return nil
			}
		}
	}
	return nil
}

// passthrough is a stage that changes nothing.
var passthrough = flow.ProcessFunc(func(_ context.Context, in []flow.Record, out *flow.Output) error {
	out.Records = append(out.Records, in...)
	return nil
})

// counting is a sink that counts what it was given.
type counting struct{ written atomic.Int64 }

func (s *counting) Write(_ context.Context, recs []flow.Record) error {
	s.written.Add(int64(len(recs)))
	return nil
}

// newChain is numbers -> copy -> out.
func newChain(name string, src *numbers, sink flow.Sink, opts ...flow.Option) *flow.Pipeline {
	return flow.New(name, append([]flow.Option{flow.WithLogger(quietLog())}, opts...)...).
		Source("numbers", src, flow.Type("test_numbers")).
		Stage("copy", flow.ProcessorStage(passthrough), flow.Inputs("numbers"), flow.Type("test_copy")).
		Sink("out", sink, flow.Inputs("copy"), flow.Type("test_count"))
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// logBuffer is a concurrency-safe log destination for asserting warnings.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// listen binds a Server to a free loopback port and stops it when the
// test ends.
func listen(t *testing.T, cfg Config, log *slog.Logger) (*Server, string) {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if log == nil {
		log = quietLog()
	}
	srv, err := Listen(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv, "http://" + srv.Addr().String()
}

// serve is listen, then Serve p.
func serve(t *testing.T, p *flow.Pipeline, cfg Config, log *slog.Logger) string {
	t.Helper()
	srv, base := listen(t, cfg, log)
	srv.Serve(p)
	return base
}

// runInBackground runs p until the test ends, then cancels and waits.
func runInBackground(t *testing.T, p *flow.Pipeline) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
}

// client opens a connection per request, so no idle connection outlives
// a test (goleak).
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// get fetches url with an optional Authorization header value.
func get(t *testing.T, url, auth string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
