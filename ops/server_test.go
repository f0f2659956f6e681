package ops

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedev/sluice/flow"
	"github.com/sluicedev/sluice/registry"
)

// flaky is a source whose readiness the test sets.
type flaky struct {
	numbers
	notReady atomic.Pointer[error]
	panics   bool
}

func (f *flaky) Ready() error {
	if f.panics {
		panic("probe exploded")
	}
	if p := f.notReady.Load(); p != nil {
		return *p
	}
	return nil
}

func TestReadyzFollowsReadiers(t *testing.T) {
	src := &flaky{}
	down := errors.New("broker unreachable")
	src.notReady.Store(&down)
	p := flow.New("ready", flow.WithLogger(quietLog())).
		Source("kafka_in", src).
		Sink("out", &counting{}, flow.Inputs("kafka_in"))
	base := serve(t, p, Config{}, nil)

	code, _, body := get(t, base+"/readyz", "")
	if code != 503 || !strings.Contains(body, "kafka_in: broker unreachable") {
		t.Fatalf("unready source: %d %q, want 503 naming kafka_in and why", code, body)
	}
	src.notReady.Store(nil)
	if code, _, body := get(t, base+"/readyz", ""); code != 200 || body != "ready\n" {
		t.Fatalf("ready source: %d %q, want 200 ready", code, body)
	}
	src.notReady.Store(&down)
	if code, _, _ := get(t, base+"/readyz", ""); code != 503 {
		t.Fatalf("source unready again: %d, want 503", code)
	}
}

func TestReadyzSurvivesAPanickingProbe(t *testing.T) {
	p := flow.New("ready", flow.WithLogger(quietLog())).
		Source("bad", &flaky{panics: true}).
		Sink("out", &counting{}, flow.Inputs("bad"))
	base := serve(t, p, Config{}, nil)
	code, _, body := get(t, base+"/readyz", "")
	if code != 503 || !strings.Contains(body, "bad: readiness probe panicked: probe exploded") {
		t.Fatalf("%d %q, want 503 naming the panic", code, body)
	}
	if code, _, body := get(t, base+"/healthz", ""); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz after a panicking probe: %d %q", code, body)
	}
}

func TestTokenGuardsEverythingButHealthz(t *testing.T) {
	p := newChain("guarded", &numbers{n: 10, size: 10}, &counting{})
	base := serve(t, p, Config{Token: "s3cret", Pprof: true}, nil)

	for _, path := range []string{"/metrics", "/readyz", "/graph", "/graph.json", "/", "/debug/pprof/", "/no/such/path"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret2", "Basic czNjcmV0", "s3cret", "Bearer"} {
			code, hdr, body := get(t, base+path, auth)
			if code != 401 || body != "" {
				t.Errorf("%s with Authorization %q: %d %q, want 401 and an empty body", path, auth, code, body)
			}
			if v := hdr.Get("WWW-Authenticate"); v != `Bearer realm="sluice"` {
				t.Errorf("%s: 401 says WWW-Authenticate %q, want a Bearer challenge", path, v)
			}
		}
	}
	for _, path := range []string{"/metrics", "/readyz", "/graph", "/graph.json", "/debug/pprof/"} {
		for _, auth := range []string{"Bearer s3cret", "bearer s3cret"} {
			if code, _, body := get(t, base+path, auth); code != 200 {
				t.Errorf("%s with the token: %d %q, want 200", path, code, body)
			}
		}
	}
	if code, _, body := get(t, base+"/healthz", ""); code != 200 || body != "ok\n" {
		t.Errorf("/healthz without a token: %d %q, want 200 ok", code, body)
	}
	// The page polls /graph.json with the credentials it was fetched with.
	_, _, page := get(t, base+"/graph", "Bearer s3cret")
	if !strings.Contains(page, `data-auth="Bearer s3cret"`) {
		t.Errorf("the page does not pass its credentials to its script")
	}
}

func TestNoTokenNoGuard(t *testing.T) {
	p := newChain("open", &numbers{n: 10, size: 10}, &counting{})
	base := serve(t, p, Config{}, nil)
	if code, _, _ := get(t, base+"/metrics", ""); code != 200 {
		t.Fatalf("/metrics without a configured token: %d, want 200", code)
	}
	if _, _, page := get(t, base+"/graph", "Bearer whatever"); !strings.Contains(page, `data-auth=""`) {
		t.Errorf("the page echoes an Authorization header no token asked for")
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	p := newChain("profiling", &numbers{n: 10, size: 10}, &counting{})
	off := serve(t, p, Config{}, nil)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine", "/debug/pprof/cmdline"} {
		if code, _, _ := get(t, off+path, ""); code != 404 {
			t.Errorf("%s with pprof off: %d, want 404", path, code)
		}
	}
	if _, _, index := get(t, off+"/", ""); strings.Contains(index, "pprof") {
		t.Errorf("index lists pprof while it is off:\n%s", index)
	}
	on := serve(t, p, Config{Pprof: true}, nil)
	if code, _, body := get(t, on+"/debug/pprof/goroutine?debug=1", ""); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("/debug/pprof/goroutine with pprof on: %d", code)
	}
}

func TestListenRefusesABusyPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = Listen(context.Background(), Config{Listen: taken.Addr().String()}, quietLog())
	if err == nil || !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "settings.http.listen") {
		t.Fatalf("Listen on a busy port: %v, want an error naming the setting and saying the address is in use", err)
	}
}

func TestStopWithoutServeFreesThePort(t *testing.T) {
	srv, err := Listen(context.Background(), Config{Listen: "127.0.0.1:0"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr().String()
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still held after Stop: %v", err)
	}
	again.Close()
	srv.Serve(flow.New("late"))
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatal("Serve after Stop answers")
	}
}

// stuck is a source whose readiness probe blocks until released.
type stuck struct {
	numbers
	entered chan struct{}
	release chan struct{}
}

func (s *stuck) Ready() error {
	s.entered <- struct{}{}
	<-s.release
	return nil
}

func TestStopCutsRequestsInFlightAtTheDeadline(t *testing.T) {
	src := &stuck{entered: make(chan struct{}), release: make(chan struct{})}
	p := flow.New("stuck", flow.WithLogger(quietLog())).
		Source("stuck", src).
		Sink("out", &counting{}, flow.Inputs("stuck"))
	srv, err := Listen(context.Background(), Config{Listen: "127.0.0.1:0"}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	srv.Serve(p)
	failed := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + srv.Addr().String() + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		failed <- err
	}()
	<-src.entered
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop with a request in flight: %v, want the deadline error", err)
	}
	if err := <-failed; err == nil {
		t.Error("the request in flight got an answer after Stop cut its connection")
	}
	close(src.release) // let the abandoned handler end before goleak looks
}

func TestConfigFrom(t *testing.T) {
	http := func(vals map[string]any) *registry.Conf {
		return &registry.Conf{Values: map[string]any{"http": vals}}
	}
	cases := []struct {
		name string
		conf *registry.Conf
		want Config
		err  string
	}{
		{"no settings", nil, Config{Listen: DefaultListen}, ""},
		{"no http block", &registry.Conf{Values: map[string]any{}}, Config{Listen: DefaultListen}, ""},
		{"off", http(map[string]any{"listen": ""}), Config{}, ""},
		{"all set", http(map[string]any{"listen": ":9000", "token": "t", "pprof": true}), Config{Listen: ":9000", Token: "t", Pprof: true}, ""},
		{"no port", http(map[string]any{"listen": "9464"}), Config{}, `settings.http.listen "9464": want host:port`},
		{"port out of range", http(map[string]any{"listen": "localhost:70000"}), Config{}, `port "70000" is not a number`},
		{"port not a number", http(map[string]any{"listen": "localhost:http"}), Config{}, `port "http" is not a number`},
		{"empty token", http(map[string]any{"listen": ":9000", "token": ""}), Config{}, `settings.http.token "": an empty token would turn authentication off`},
	}
	for _, c := range cases {
		got, err := ConfigFrom(c.conf)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
		case got != c.want:
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
		var se *SettingError
		if c.err != "" && (!errors.As(err, &se) || !strings.HasPrefix(err.Error(), "settings.http."+se.Key+" ")) {
			t.Errorf("%s: error %#v does not name its key", c.name, err)
		}
	}
}

// The listener says where it listens once it serves: a run that stops at
// a config error after Listen prints nothing but the errors.
func TestListenIsQuietUntilServe(t *testing.T) {
	var logs logBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	srv, _ := listen(t, Config{}, log)
	if got := logs.String(); got != "" {
		t.Fatalf("Listen logged %q", got)
	}
	srv.Serve(newChain("quiet", &numbers{n: 1, size: 1}, &counting{}))
	if got, want := logs.String(), `msg="http listening" addr=`+srv.Addr().String(); !strings.Contains(got, want) {
		t.Errorf("after Serve the log is %q, want %q", got, want)
	}
}
