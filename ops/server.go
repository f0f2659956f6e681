// Package ops serves a running pipeline's operational endpoints over HTTP:
// Prometheus metrics, liveness and readiness probes, a live drawing of the
// graph, and optionally pprof.
//
//	GET /metrics       Prometheus text format
//	GET /healthz       200 "ok" while the process serves (never guarded)
//	GET /readyz        200 "ready", or 503 naming each unready node and why
//	GET /graph         HTML page: the DAG with live rates, buffer fill and sink record ages
//	GET /graph.json    the data the page polls
//	GET /debug/pprof/  only with settings.http.pprof: true
//
// With settings.http.token set, every endpoint but /healthz wants
// "Authorization: Bearer <token>" and answers 401 (WWW-Authenticate:
// Bearer, empty body) otherwise.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicedev/sluice/flow"
)

// ErrAddrInUse is wrapped by Listen's error when another process holds
// the port, so a caller can tell a busy default port from a broken config.
var ErrAddrInUse = errors.New("address already in use")

// readHeaderTimeout bounds how long a client may take to send its request
// headers, so idle half-open connections cannot pile up.
const readHeaderTimeout = 10 * time.Second

// sampleEvery is how often the server reads the counters for rates, so
// a page opened now shows the last second's rates at once.
const sampleEvery = time.Second

// Server is the HTTP listener of one pipeline run. Listen binds the port
// before the pipeline is built (a busy port fails fast, before any
// component starts), Serve logs the address and starts answering once the
// pipeline exists, and Stop ends it after the run.
type Server struct {
	cfg     Config
	log     *slog.Logger
	latency *Latency
	ln      net.Listener

	mu          sync.Mutex
	srv         *http.Server
	served      chan struct{} // closed when the Serve goroutine returned
	stopSampler context.CancelFunc
	sampled     chan struct{} // closed when the sampler returned
	stopped     bool
}

// Listen binds cfg.Listen. The error names the setting; a port in use says
// so plainly.
func Listen(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	if !cfg.Enabled() {
		return nil, errors.New(`ops: Listen with settings.http.listen "" (the listener is off)`)
	}
	if err := checkListen(cfg.Listen); err != nil {
		return nil, fmt.Errorf("settings.http.listen %q: %w", cfg.Listen, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("settings.http.listen %s: %w (another sluice?): pick another port, or \"\" to turn the listener off", cfg.Listen, ErrAddrInUse)
		}
		return nil, fmt.Errorf("settings.http.listen %s: %w", cfg.Listen, err)
	}
	return &Server{cfg: cfg, log: log, latency: NewLatency(), ln: ln}, nil
}

// Addr is the address the server is bound to (the real port when
// cfg.Listen asked for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Observer is the batch latency histogram to hand to the pipeline with
// flow.WithObserver, so /metrics can export it.
func (s *Server) Observer() *Latency { return s.latency }

// Serve starts answering requests about p in goroutines Stop ends. Only
// the first call after Listen counts; after Stop it does nothing.
func (s *Server) Serve(p *flow.Pipeline) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.srv != nil {
		return
	}
	// Said once the pipeline is built: a run that stops at a config error
	// prints the errors and nothing else.
	addr := s.ln.Addr().String()
	s.log.Info("http listening", "addr", addr,
		"endpoints", "/metrics /healthz /readyz /graph", "token", s.cfg.Token != "", "pprof", s.cfg.Pprof)
	if tcp, ok := s.ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && s.cfg.Token == "" {
		s.log.Warn("http listener is reachable from other hosts and has no settings.http.token", "addr", addr)
	}
	handler, graph := newHandler(p, s.cfg, s.latency, s.log)
	s.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopSampler, s.sampled = cancel, make(chan struct{})
	go func() {
		defer close(s.sampled)
		graph.sample(ctx, sampleEvery)
	}()
	s.served = make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http listener failed", "addr", s.ln.Addr().String(), "err", err)
		}
	}()
}

// Stop lets requests in flight finish until ctx ends, then closes every
// connection (a handler still running then sees its request's context
// end), and returns once the serving goroutine did. Stop is safe to call
// more than once and without Serve.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.srv == nil {
		return s.ln.Close()
	}
	s.stopSampler()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		// Past the deadline (a long pprof profile, a stuck client):
		// cut the connections rather than outlive the pipeline.
		err = errors.Join(err, s.srv.Close())
	}
	<-s.served
	<-s.sampled
	return err
}

// Handler serves every endpoint for p, for a program embedding sluice to
// mount on a server of its own (rates are then sampled per /graph.json
// request). latency may be nil (no batch histogram).
func Handler(p *flow.Pipeline, cfg Config, latency *Latency, log *slog.Logger) http.Handler {
	h, _ := newHandler(p, cfg, latency, log)
	return h
}

func newHandler(p *flow.Pipeline, cfg Config, latency *Latency, log *slog.Logger) (http.Handler, *graphSource) {
	if log == nil {
		log = slog.Default()
	}
	reg := newRegistry(p, latency, log)
	graph := newGraphSource(p)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// One broken component collector must not hide every other metric.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}))
	mux.HandleFunc("GET "+openPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /readyz", readyHandler(p))
	mux.Handle("GET /graph", pageHandler(graph, cfg.Token != ""))
	mux.Handle("GET /graph.json", graph.jsonHandler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "sluice pipeline %s\n\n/metrics\n/healthz\n/readyz\n/graph\n/graph.json\n", p.Name())
		if cfg.Pprof {
			fmt.Fprintln(w, "/debug/pprof/")
		}
	})
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return requireToken(cfg.Token, mux), graph
}
